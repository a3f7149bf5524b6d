// The editor page: Tiptap bound to a Yjs document synced over y-websocket, cached in
// IndexedDB for offline work. Content is never seeded here: the document starts as what
// the server and the local cache hold (seeding duplicates text when two clients do it).
import { Editor } from '@tiptap/core'
import StarterKit from '@tiptap/starter-kit'
import Collaboration from '@tiptap/extension-collaboration'
import CollaborationCaret from '@tiptap/extension-collaboration-caret'
import { TaskItem, TaskList } from '@tiptap/extension-list'
import { yUndoPluginKey } from '@tiptap/y-tiptap'
import * as decoding from 'lib0/decoding'
import { WebsocketProvider } from 'y-websocket'
import { IndexeddbPersistence } from 'y-indexeddb'
import * as Y from 'yjs'

import { throttleAwareness } from './awareness-throttle.js'
import { ChunkedPaste } from './chunked-paste.js'
import { cacheName, SESSION_CHANNEL, whenStored } from './offline-cache.js'
import { bindPresence } from './presence.js'
import { describeStatus, MESSAGE_SAVED, SaveTracker, STATUS } from './save-status.js'
import { bindToolbar } from './toolbar.js'

const MESSAGE_AUTH = 2
const MESSAGE_TITLE = 101

// Closes a reconnect cannot fix (collab.protocol.CloseCode): stop reconnecting, say why.
const FINAL_CLOSES = {
  4401: 'Signed out — sign in again to keep editing',
  4403: 'Your access to this document was removed',
  4404: 'This document was deleted or moved to the trash',
  4409: 'Too many open connections — close some tabs or windows, then reload',
  4413: 'This document is too large to take more changes',
}

function start (root) {
  const config = JSON.parse(document.getElementById('editor-config').textContent)
  const ydoc = new Y.Doc()
  const persistence = new IndexeddbPersistence(cacheName(config.user.id, config.documentId), ydoc)
  const tracker = new SaveTracker()
  const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws'
  const provider = new WebsocketProvider(
    `${scheme}://${window.location.host}/ws/documents`,
    config.documentId,
    ydoc,
    { connect: false, params: { extensions: '1' }, WebSocketPolyfill: tracker.webSocketClass() },
  )
  throttleAwareness(provider)
  provider.messageHandlers[MESSAGE_SAVED] = (encoder, decoder) => tracker.handleSaved(encoder, decoder)
  provider.messageHandlers[MESSAGE_TITLE] = (_encoder, decoder) => {
    const title = decoding.readVarString(decoder)
    document.dispatchEvent(new CustomEvent('document:title', { detail: { title } }))
  }

  const editor = new Editor({
    element: root.querySelector('[data-editor-content]'),
    editable: config.canWrite,
    extensions: [
      // Undo/redo comes from the Yjs undo manager (Collaboration), which undoes only this
      // user's own changes; ProseMirror's history would undo other people's too.
      StarterKit.configure({
        undoRedo: false,
        link: { openOnClick: false, autolink: true, defaultProtocol: 'https' },
      }),
      TaskList,
      TaskItem.configure({ nested: true }),
      Collaboration.configure({ document: ydoc, field: 'default' }),
      CollaborationCaret.configure({ provider, user: config.user }),
      // Big pastes go out in several updates, each far below the server's frame cap.
      ChunkedPaste,
    ],
    editorProps: {
      attributes: { class: 'prose', 'aria-label': 'Document content', spellcheck: 'true' },
    },
  })

  const statusLine = root.querySelector('[data-status]')
  let storedLocally = true
  let signedOut = false
  let finalStatus = null
  let readOnlyNow = false
  // Every status shown, in order, for the browser tests ("Saved" never before the commit).
  const statusLog = []
  const renderStatus = () => {
    let text = finalStatus ?? (signedOut
      ? STATUS.signedOut
      : describeStatus(provider, tracker, { storedLocally, online: navigator.onLine }))
    if (!finalStatus && text === STATUS.saved) {
      if (readOnlyNow) text = STATUS.downgraded
      else if (!config.canWrite) text = STATUS.viewOnly
    }
    if (statusLine.textContent !== text) {
      statusLine.textContent = text
      statusLog.push(text)
    }
    statusLine.dataset.state = Object.keys(STATUS).find((key) => STATUS[key] === text)
  }
  ydoc.on('update', (_update, origin) => {
    if (origin === provider || origin === persistence) return
    if (!provider.wsconnected) {
      tracker.localEditWhileDisconnected()
      if (persistence.db) {
        storedLocally = false
        whenStored(persistence.db).then(() => { storedLocally = true; renderStatus() })
      }
    }
    // The provider sends a local update in its own (earlier) update handler, so the sent
    // count already includes it here.
    renderStatus()
  })
  provider.on('connection-close', (event) => {
    const message = event && FINAL_CLOSES[event.code]
    if (!message) return
    finalStatus = message
    editor.setEditable(false)
    provider.disconnect()
    renderStatus()
  })
  // The server refuses writes from a socket that was downgraded to viewer (a
  // permission-denied notice): stop offering edits it would drop.
  provider.messageHandlers[MESSAGE_AUTH] = (_encoder, decoder) => {
    decoding.readVarUint(decoder)
    decoding.readVarString(decoder)
    readOnlyNow = true
    editor.setEditable(false)
    root.querySelector('[data-toolbar]')?.setAttribute('hidden', '')
    renderStatus()
  }
  tracker.onChange(renderStatus)
  provider.on('status', renderStatus)
  provider.on('sync', renderStatus)
  window.addEventListener('online', renderStatus)
  window.addEventListener('offline', renderStatus)
  renderStatus()

  // A rename anywhere (this page's title field, another editor, the list) arrives as the
  // TITLE extension; an input being typed into is left alone.
  document.addEventListener('document:title', (event) => {
    const { title } = event.detail
    document.title = `${title} · Editor`
    for (const node of document.querySelectorAll('[data-document-title]')) {
      if (!(node instanceof HTMLInputElement)) node.textContent = title
      else if (document.activeElement !== node) node.value = title
    }
  })

  bindPresence(root.querySelector('[data-presence]'), provider.awareness)
  const toolbar = root.querySelector('[data-toolbar]')
  if (toolbar) bindToolbar(toolbar, editor)

  // Another tab signed out: let go of the cache so that it can be deleted, and stop.
  if (typeof BroadcastChannel !== 'undefined') {
    const channel = new BroadcastChannel(SESSION_CHANNEL)
    channel.onmessage = (event) => {
      if (event.data !== 'signed-out') return
      signedOut = true
      editor.setEditable(false)
      provider.destroy()
      persistence.destroy()
      renderStatus()
    }
  }

  window.addEventListener('beforeunload', (event) => {
    if (storedLocally || provider.wsconnected) return
    event.preventDefault()
  })

  // Connect once the local cache is in the document. The provider sends every change it
  // did not receive itself, so a cache applied after the socket opened would go out as one
  // update the size of the whole document, which the server closes (4413) once that is
  // over its frame cap (COLLAB_MAX_MESSAGE_BYTES). Connected, sync step 2 carries only what
  // the server lacks. IndexedDB that never answers (unavailable, blocked) delays it 10 s.
  let connectRequested = false
  const connect = () => {
    if (connectRequested || signedOut || finalStatus) return
    connectRequested = true
    provider.connect()
  }
  persistence.whenSynced.then(connect)
  setTimeout(connect, 10_000)

  // Handles for the browser tests and for debugging from the console.
  window.collab = {
    editor,
    ydoc,
    provider,
    persistence,
    tracker,
    statusLog,
    get undoManager () { return yUndoPluginKey.getState(editor.state)?.undoManager },
  }
}

const root = document.querySelector('[data-editor]')
if (root) start(root)
