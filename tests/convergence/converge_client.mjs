// A stock Yjs client (y-websocket's WebsocketProvider, unmodified) for the convergence
// suite, driven over JSON lines like tests/e2e/yjs_client.mjs, but with one Y.Doc that
// outlives its providers: `disconnect` destroys the provider and leaves the doc, which keeps
// taking edits offline; `connect` (to the same or another server) builds a new provider on
// the same doc, and the y-websocket handshake sends what each side lacks, as a browser tab
// that comes back online does.
//
// Edits follow the suite's workload (see workload.py, whose Python twin must pick the
// same kinds of positions): text content is made of tokens "<...>" and filler "~", an
// insert lands only between tokens, a delete removes only filler, formatting spans any
// range, map keys and XML blocks are unique per edit. Random choices come from the
// Python side (`r` in [0, 1)) so a seed decides them.
//
// Every wait is bounded by the command's `timeout` (ms).

import { createInterface } from 'node:readline'
import WS from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

const doc = new Y.Doc()
const text = doc.getText('text')
const meta = doc.getMap('meta')
const blocks = doc.getXmlFragment('blocks')
let provider = null
let refusedStatus = null

const reply = (id, body) => process.stdout.write(JSON.stringify({ id, ...body }) + '\n')
const b64 = (bytes) => Buffer.from(bytes).toString('base64')

function waitFor (predicate, timeout, what) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeout
    const check = () => {
      if (predicate()) resolve()
      else if (Date.now() >= deadline) reject(new Error(`timed out after ${timeout} ms waiting for ${what}`))
      else setTimeout(check, 10)
    }
    check()
  })
}

function socketClass (headers) {
  return class HeaderWebSocket extends WS {
    constructor (url, protocols) {
      super(url, protocols, { headers })
      this.on('error', (err) => {
        const match = /Unexpected server response: (\d+)/.exec(String(err && err.message))
        if (match) refusedStatus = Number(match[1])
      })
    }
  }
}

/** Positions where an insert does not split a token: the start, or after '>' or '~'. */
function boundaries () {
  const s = text.toString()
  const out = [0]
  for (let i = 1; i <= s.length; i++) if (s[i - 1] === '>' || s[i - 1] === '~') out.push(i)
  return out
}

const pick = (items, r) => items[Math.min(items.length - 1, Math.floor(r * items.length))]

const edits = {
  insert ({ token, r }) {
    text.insert(pick(boundaries(), r), token + '~~')
  },
  delete ({ r }) {
    const s = text.toString()
    const fillers = []
    for (let i = 0; i < s.length; i++) if (s[i] === '~') fillers.push(i)
    if (fillers.length) text.delete(pick(fillers, r), 1)
  },
  format ({ r, r2, mark }) {
    const n = text.length
    if (n < 2) return
    const start = Math.floor(r * (n - 1))
    const length = 1 + Math.floor(r2 * Math.min(20, n - start - 1))
    text.format(start, length, { [mark]: true })
  },
  map ({ token, key }) {
    meta.set(key, token)
  },
  xml ({ token, r }) {
    const paragraph = new Y.XmlElement('paragraph')
    paragraph.insert(0, [new Y.XmlText(token)])
    blocks.insert(Math.floor(r * (blocks.length + 1)), [paragraph])
  }
}

const commands = {
  async connect (args) {
    if (provider !== null) throw new Error('already connected')
    const headers = {}
    if (args.cookie) headers.Cookie = args.cookie
    if (args.origin) headers.Origin = args.origin
    refusedStatus = null
    provider = new WebsocketProvider(args.url, args.room, doc, {
      WebSocketPolyfill: socketClass(headers),
      disableBc: true,
      maxBackoffTime: 500
    })
    if (args.wait === false) return { ok: true }
    await waitFor(() => provider.synced || refusedStatus !== null, args.timeout, 'the first sync')
    if (refusedStatus !== null) throw new Error(`handshake refused with HTTP ${refusedStatus}`)
    return { ok: true, clientID: doc.clientID }
  },

  async disconnect () {
    if (provider !== null) provider.destroy()
    provider = null
    return { ok: true }
  },

  async edit (args) {
    edits[args.op](args)
    return { ok: true }
  },

  async state () {
    return {
      ok: true,
      update: b64(Y.encodeStateAsUpdate(doc)),
      stateVector: b64(Y.encodeStateVector(doc)),
      connected: provider !== null && provider.wsconnected,
      synced: provider !== null && provider.synced
    }
  },

  async exit () {
    if (provider !== null) provider.destroy()
    setImmediate(() => process.exit(0))
    return { ok: true }
  }
}

const lines = createInterface({ input: process.stdin })
lines.on('line', async (line) => {
  if (!line.trim()) return
  const request = JSON.parse(line)
  const handler = Object.hasOwn(commands, request.cmd) ? commands[request.cmd] : null
  try {
    if (handler === null) throw new Error(`unknown command ${request.cmd}`)
    reply(request.id, await handler({ timeout: 10000, ...request }))
  } catch (err) {
    reply(request.id, { ok: false, error: String(err && err.stack ? err.stack : err) })
  }
})
lines.on('close', () => process.exit(0))
process.stdout.write(JSON.stringify({ id: null, ready: true }) + '\n')
