// Helper process for the throttled-neighbour measurement: a stock client that writes into
// one document far faster than its update budget (one keystroke per update, as a script
// or an agent typing through a Yjs provider does), and a stock client on the same document
// that counts what of it the server passes on. Commands on stdin: "go", "stop"; on "stop"
// it prints one JSON line. Apart from the generator, so that making and encoding the
// flood's updates never delays the process that measures latency.
import readline from 'node:readline'
import { connect } from './clients.mjs'

const { server, room, cookie, rate } = JSON.parse(process.argv[2])
const flooder = await connect(server, room, { cookie })
const watcher = await connect(server, room, { cookie })
const closes = [] // by the server, during the flood
let stopping = false
flooder.provider.on('connection-close', event => { if (!stopping) closes.push(event?.code ?? null) })
const text = flooder.doc.getText('bench')
const watched = watcher.doc.getText('bench')
let sent = 0
let t0 = 0
let timer = null
let maxBuffered = 0
const tick = () => {
  const due = Math.floor(((performance.now() - t0) / 1000) * rate)
  // One transaction, hence one update frame, per keystroke.
  while (sent < due) { text.insert(text.length, 'x'); sent++ }
  const ws = flooder.provider.ws
  if (ws && typeof ws.bufferedAmount === 'number') maxBuffered = Math.max(maxBuffered, ws.bufferedAmount)
}
process.stdout.write('ready\n')
for await (const command of readline.createInterface({ input: process.stdin })) {
  if (command === 'go') {
    t0 = performance.now()
    timer = setInterval(tick, 5)
  } else if (command === 'stop') {
    break
  }
}
clearInterval(timer)
stopping = true
const seconds = (performance.now() - t0) / 1000
const delivered = watched.length
const result = {
  offered: sent,
  offered_per_s: Math.round(sent / seconds),
  delivered,
  delivered_per_s: Math.round(delivered / seconds),
  // What the flooder's socket could not hand to the kernel: TCP holding it back.
  max_buffered_bytes: maxBuffered,
  closes
}
flooder.destroy()
watcher.destroy()
process.stdout.write(JSON.stringify(result) + '\n')
process.exit(0)
