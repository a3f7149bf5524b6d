// Presence traffic control. Stock y-websocket sends an awareness frame for every change it
// sees, remote ones included (it echoes other people's carets back to the server), and one
// per caret move: fast typing then exceeds the server's presence rate limit (30/s, close
// code 4429). Send only this client's own state, at most once per interval, latest wins.
// Relies on y-websocket 3.1.0's `_awarenessUpdateHandler` (the version is pinned).

export function throttleAwareness (provider, intervalMs = 80) {
  const { awareness } = provider
  const sendOwnState = provider._awarenessUpdateHandler
  awareness.off('update', sendOwnState)
  let timer = null
  let lastSent = 0
  const send = () => {
    timer = null
    lastSent = Date.now()
    sendOwnState({ added: [], updated: [awareness.clientID], removed: [] }, null)
  }
  awareness.on('update', ({ added, updated, removed }) => {
    const own = awareness.clientID
    if (removed.includes(own)) {
      // Leaving is sent at once: others should not see a ghost caret.
      clearTimeout(timer)
      send()
      return
    }
    if (!added.includes(own) && !updated.includes(own)) return
    if (timer !== null) return
    const wait = lastSent + intervalMs - Date.now()
    if (wait <= 0) send()
    else timer = setTimeout(send, wait)
  })
}
