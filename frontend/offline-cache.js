// IndexedDB databases that keep documents on this device (y-indexeddb, one per document).
// Names carry the user id, so another account signing in in the same browser never opens
// them, and sign-out deletes them all.

const PREFIX = 'editor-cache:'
export const SESSION_CHANNEL = 'editor-session'

export const cacheName = (userId, documentId) => `${PREFIX}${userId}:${documentId}`

const deleteDatabase = (name) => new Promise((resolve) => {
  const request = indexedDB.deleteDatabase(name)
  request.onsuccess = request.onerror = () => resolve()
  // "blocked" means an editor tab still holds it open; the deletion completes once that
  // tab closes it, which it does on the sign-out broadcast below.
  request.onblocked = () => resolve()
})

/** Delete every document cache on this device, waiting at most `timeoutMs`. */
export async function clearDocumentCaches (timeoutMs = 2000) {
  if (typeof BroadcastChannel !== 'undefined') {
    const channel = new BroadcastChannel(SESSION_CHANNEL)
    channel.postMessage('signed-out')
    channel.close()
  }
  if (!indexedDB.databases) return
  const work = indexedDB.databases().then((databases) => Promise.all(
    databases
      .map((database) => database.name)
      .filter((name) => name && name.startsWith(PREFIX))
      .map(deleteDatabase),
  ))
  await Promise.race([work, new Promise((resolve) => setTimeout(resolve, timeoutMs))])
}

/** Resolve once every write already queued on `db`'s update store has committed. */
export function whenStored (db) {
  return new Promise((resolve) => {
    // Transactions on one store run in creation order, so a read-only one completes only
    // after every earlier write to that store.
    const transaction = db.transaction(['updates'], 'readonly')
    transaction.oncomplete = transaction.onerror = transaction.onabort = () => resolve()
  })
}
