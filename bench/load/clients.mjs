// Real Yjs clients for the load generator: stock y-websocket providers for the servers
// that speak the plain protocol (ours, @y/websocket-server, pycrdt-websocket), the
// Hocuspocus provider for Hocuspocus, and a raw y-protocols client where a scenario needs
// frame-exact control (cold-open server time, saved notices).
import WebSocket from 'ws'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { WebsocketProvider } from 'y-websocket'
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'

// A ws subclass that sends our session cookie and Origin, as a browser would.
const wsWithHeaders = headers => class extends WebSocket {
  constructor (url, protocols) { super(url, protocols, { headers }) }
}

export const headersFor = (server, cookie) => server.kind === 'ours'
  ? { Cookie: `sessionid=${cookie}`, Origin: server.url.replace('ws://', 'http://') }
  : {}

/**
 * One client on `room` of `server` ({kind, url}). Resolves once synced.
 * @returns {Promise<{doc: Y.Doc, provider: any, destroy: () => void, times: object}>}
 */
export function connect (server, room, { cookie, extensions = false, timeoutMs = 60000 } = {}) {
  const doc = new Y.Doc()
  const times = { start: performance.now(), open: 0, synced: 0 }
  let provider
  let destroy
  const synced = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sync timeout on ${server.kind} ${room}`)), timeoutMs)
    const done = () => { if (!times.synced) { times.synced = performance.now(); clearTimeout(timer); resolve() } }
    if (server.kind === 'hocus') {
      const socket = new HocuspocusProviderWebsocket({ url: server.url, WebSocketPolyfill: WebSocket })
      socket.on('open', () => { times.open ||= performance.now() })
      provider = new HocuspocusProvider({ websocketProvider: socket, name: room, document: doc })
      if (typeof provider.attach === 'function' && !provider.isAttached) provider.attach()
      provider.on('synced', ({ state }) => { if (state !== false) done() })
      destroy = () => { provider.destroy(); socket.destroy() }
    } else {
      const base = server.kind === 'ours' ? `${server.url}/ws/documents` : server.url
      provider = new WebsocketProvider(base, room, doc, {
        WebSocketPolyfill: wsWithHeaders(headersFor(server, cookie)),
        disableBc: true,
        params: extensions ? { extensions: '1' } : {},
        maxBackoffTime: 60000
      })
      provider.on('status', ({ status }) => { if (status === 'connected') times.open ||= performance.now() })
      provider.on('sync', isSynced => { if (isSynced) done() })
      destroy = () => provider.destroy()
    }
  })
  return synced.then(() => ({ doc, provider, destroy, times }))
}

const encodeSync = (step, payload) => {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, 0)
  encoding.writeVarUint(encoder, step)
  encoding.writeVarUint8Array(encoder, payload)
  return encoding.toUint8Array(encoder)
}

/**
 * A raw plain-protocol client: sends step 1 with `doc`'s state vector on open and reports
 * frames through callbacks. `onStep2(payload, t)`, `onUpdate(payload, t)`, `onSaved(n, t)`.
 */
export function rawConnect (server, room, { cookie, extensions = false, doc = new Y.Doc(), onStep2, onSaved, onUpdate }) {
  const base = server.kind === 'ours' ? `${server.url}/ws/documents/${room}` : `${server.url}/${room}`
  const url = extensions ? `${base}?extensions=1` : base
  const times = { start: performance.now(), open: 0 }
  const ws = new WebSocket(url, { headers: headersFor(server, cookie) })
  ws.binaryType = 'arraybuffer'
  ws.on('open', () => {
    times.open = performance.now()
    ws.send(encodeSync(0, Y.encodeStateVector(doc)))
  })
  ws.on('message', data => {
    const t = performance.now()
    const decoder = decoding.createDecoder(new Uint8Array(data))
    const type = decoding.readVarUint(decoder)
    if (type === 0) {
      const step = decoding.readVarUint(decoder)
      if (step === 1 && onStep2) onStep2(decoding.readVarUint8Array(decoder), t)
      if (step === 2 && onUpdate) onUpdate(decoding.readVarUint8Array(decoder), t)
    } else if (type === 100 && onSaved) {
      onSaved(decoding.readVarUint(decoder), t)
    }
  })
  const sendUpdate = update => ws.send(encodeSync(2, update))
  const opened = new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  return { ws, times, opened, sendUpdate, close: () => ws.terminate() }
}
