// A stock y-websocket client for end-to-end tests, driven over stdin/stdout.
//
// One JSON object per line on stdin: {"id": 1, "cmd": "connect", ...}. One JSON object
// per line on stdout answers it: {"id": 1, "ok": true, ...} or {"id": 1, "ok": false,
// "error": "..."}. Anything else the libraries print goes to stderr (console.warn/error),
// and the Python side ignores stdout lines that are not replies.
//
// The provider is y-websocket's `WebsocketProvider`, unmodified. The only adaptation is the
// WebSocket class handed to it: `ws`'s WebSocket with the Cookie and Origin headers a
// browser would send (Node has no cookie jar), plus a note of the HTTP status when the
// server refuses the handshake, so that a test can tell a 403 from a dead server.
//
// Every wait is bounded by the `timeout` (ms) of its command and reports an error when it
// runs out: a test must fail, never hang.

import { createInterface } from 'node:readline'
import WS from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

const TEXT_NAME = 'text'
const DEFAULT_TIMEOUT_MS = 10000
const POLL_MS = 10

/** @type {Y.Doc | null} */
let doc = null
/** @type {WebsocketProvider | null} */
let provider = null
/** Status events and socket closes, in order, with a time stamp: the test asserts on them
 * (e.g. "never disconnected" while healing). */
let events = []
/** HTTP status of the last refused handshake, if any. */
let refusedStatus = null
/** Interval timer of renewPresence, if running. */
let renewTimer = null

const now = () => Date.now()

function reply (id, body) {
  process.stdout.write(JSON.stringify({ id, ...body }) + '\n')
}

function requireProvider () {
  if (provider === null || doc === null) throw new Error('not connected: send connect first')
  return provider
}

/** Resolve once `predicate()` is true; reject with `what` after `timeout` ms. */
function waitFor (predicate, timeout, what) {
  return new Promise((resolve, reject) => {
    const deadline = now() + timeout
    const check = () => {
      let value
      try {
        value = predicate()
      } catch (err) {
        reject(err)
        return
      }
      if (value) {
        resolve(value)
      } else if (now() >= deadline) {
        reject(new Error(`timed out after ${timeout} ms waiting for ${what}`))
      } else {
        setTimeout(check, POLL_MS)
      }
    }
    check()
  })
}

function makeSocketClass (headers) {
  return class HeaderWebSocket extends WS {
    constructor (url, protocols) {
      super(url, protocols, { headers })
      // An extra listener next to the provider's onerror: ws reports a refused upgrade as
      // an error "Unexpected server response: <status>".
      this.on('error', (err) => {
        const match = /Unexpected server response: (\d+)/.exec(String(err && err.message))
        if (match) {
          refusedStatus = Number(match[1])
          events.push({ t: now(), event: 'refused', status: refusedStatus })
        }
      })
    }
  }
}

function remoteStates () {
  const p = requireProvider()
  const out = []
  for (const [clientID, state] of p.awareness.getStates()) {
    if (clientID !== doc.clientID) out.push({ clientID, state })
  }
  return out
}

function hasPresence (name) {
  return remoteStates().some((entry) => entry.state && entry.state.user && entry.state.user.name === name)
}

function textMatches (args) {
  const text = doc.getText(TEXT_NAME).toString()
  if (args.equals !== undefined) return text === args.equals
  if (args.contains !== undefined) return text.includes(args.contains)
  throw new Error('waitText needs equals or contains')
}

function statusSummary () {
  const p = provider
  return {
    connected: p !== null && p.wsconnected,
    synced: p !== null && p.synced,
    events,
    connects: events.filter((e) => e.event === 'status' && e.status === 'connected').length,
    disconnects: events.filter((e) => e.event === 'status' && e.status === 'disconnected').length,
    refusedStatus
  }
}

const commands = {
  async connect (args) {
    if (provider !== null) throw new Error('already connected')
    const timeout = args.timeout ?? DEFAULT_TIMEOUT_MS
    const headers = {}
    if (args.cookie) headers.Cookie = args.cookie
    if (args.origin) headers.Origin = args.origin
    doc = new Y.Doc()
    events = []
    refusedStatus = null
    provider = new WebsocketProvider(args.url, args.room, doc, {
      WebSocketPolyfill: makeSocketClass(headers),
      params: args.params ?? {},
      // Every edit must travel through the server, never through a same-machine channel.
      disableBc: true
    })
    provider.on('status', ({ status }) => events.push({ t: now(), event: 'status', status }))
    provider.on('sync', (synced) => events.push({ t: now(), event: 'sync', synced }))
    provider.on('connection-close', (event) => {
      events.push({ t: now(), event: 'close', code: event ? event.code : null })
    })
    try {
      await waitFor(() => provider.synced || refusedStatus !== null, timeout, 'the first sync')
    } catch (err) {
      return { ok: false, error: err.message, ...statusSummary() }
    }
    if (refusedStatus !== null) {
      // Stop the provider's reconnect loop: the refusal is the answer.
      provider.disconnect()
      return { ok: false, error: `handshake refused with HTTP ${refusedStatus}`, ...statusSummary() }
    }
    return { ok: true, clientID: doc.clientID }
  },

  async insert (args) {
    requireProvider()
    const text = doc.getText(TEXT_NAME)
    const index = args.index === undefined ? text.length : args.index
    text.insert(index, args.text)
    return { ok: true, text: text.toString() }
  },

  async text () {
    requireProvider()
    return { ok: true, text: doc.getText(TEXT_NAME).toString() }
  },

  async waitText (args) {
    requireProvider()
    const timeout = args.timeout ?? DEFAULT_TIMEOUT_MS
    try {
      await waitFor(() => textMatches(args), timeout, `text ${JSON.stringify(args)}`)
    } catch (err) {
      return { ok: false, error: err.message, text: doc.getText(TEXT_NAME).toString() }
    }
    return { ok: true, text: doc.getText(TEXT_NAME).toString() }
  },

  async setPresence (args) {
    requireProvider().awareness.setLocalStateField('user', args.user)
    return { ok: true }
  },

  // y-protocols renews the local state every 15 s (outdatedTimeout / 2); this renews it
  // faster, exactly the same way, so that a test can use a short server-side presence
  // timeout without a live client ever looking stale.
  async renewPresence (args) {
    const p = requireProvider()
    if (renewTimer !== null) clearInterval(renewTimer)
    renewTimer = setInterval(() => p.awareness.setLocalState(p.awareness.getLocalState()), args.intervalMs)
    return { ok: true }
  },

  async presence () {
    return { ok: true, states: remoteStates() }
  },

  async waitPresence (args) {
    requireProvider()
    const timeout = args.timeout ?? DEFAULT_TIMEOUT_MS
    const present = args.present ?? true
    try {
      await waitFor(
        () => hasPresence(args.name) === present,
        timeout,
        `presence of ${args.name} to be ${present ? 'present' : 'absent'}`
      )
    } catch (err) {
      return { ok: false, error: err.message, states: remoteStates() }
    }
    return { ok: true, states: remoteStates() }
  },

  async waitConnected (args) {
    requireProvider()
    const timeout = args.timeout ?? DEFAULT_TIMEOUT_MS
    const atLeast = args.connects ?? 1
    try {
      await waitFor(
        () => provider.synced && statusSummary().connects >= atLeast,
        timeout,
        `${atLeast} connection(s) and a sync`
      )
    } catch (err) {
      return { ok: false, error: err.message, ...statusSummary() }
    }
    return { ok: true, ...statusSummary() }
  },

  async status () {
    return { ok: true, ...statusSummary() }
  },

  async disconnect () {
    if (renewTimer !== null) clearInterval(renewTimer)
    renewTimer = null
    if (provider !== null) {
      provider.destroy()
      provider = null
    }
    return { ok: true }
  },

  async exit () {
    if (provider !== null) provider.destroy()
    // Leave after the reply is flushed.
    setImmediate(() => process.exit(0))
    return { ok: true }
  }
}

const lines = createInterface({ input: process.stdin })
lines.on('line', async (line) => {
  if (!line.trim()) return
  let request
  try {
    request = JSON.parse(line)
  } catch (err) {
    reply(null, { ok: false, error: `bad JSON: ${err.message}` })
    return
  }
  const handler = Object.hasOwn(commands, request.cmd) ? commands[request.cmd] : null
  if (handler === null) {
    reply(request.id, { ok: false, error: `unknown command ${request.cmd}` })
    return
  }
  try {
    reply(request.id, await handler(request))
  } catch (err) {
    reply(request.id, { ok: false, error: String(err && err.stack ? err.stack : err) })
  }
})
// The test process went away: do not linger.
lines.on('close', () => process.exit(0))
process.stdout.write(JSON.stringify({ id: null, ready: true }) + '\n')
