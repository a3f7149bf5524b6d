// Helper process for the event-loop measurement: a stock client that pastes a big
// document, another that watches it arrive, and a fresh client that opens the big
// automerge-paper document, all driven by commands on stdin ("paste", "load", "exit").
// It runs apart from the generator so that integrating megabytes of Yjs content never
// stalls the process that measures typing latency.
import readline from 'node:readline'
import * as Y from 'yjs'
import { connect } from './clients.mjs'

const { server, room, b4, cookie, pasteBytes } = JSON.parse(process.argv[2])
const events = {}
const line = 'The quick brown fox pastes a long document into the editor, line after line.\n'
const source = new Y.Doc()
source.getText('bench').applyDelta(Array.from({ length: Math.floor(pasteBytes / line.length) }, (_, i) => ({ insert: line, attributes: i % 2 ? { bold: true } : {} })))
const paste = Y.encodeStateAsUpdate(source)
events.paste_update_bytes = paste.length
const watcher = await connect(server, room, { cookie })
const paster = await connect(server, room, { cookie })
let pastedAt = 0
watcher.doc.getText('bench').observe(() => { events.paste_delivered_ms = performance.now() - pastedAt })
process.stdout.write('ready\n')
for await (const command of readline.createInterface({ input: process.stdin })) {
  if (command === 'paste') {
    pastedAt = performance.now()
    Y.applyUpdate(paster.doc, paste)
    events.paste_local_apply_ms = performance.now() - pastedAt
  } else if (command === 'load') {
    connect(server, b4, { cookie, timeoutMs: 120000 }).then(c => {
      events.b4_open_to_synced_ms = c.times.synced - c.times.open
      c.destroy()
    })
  } else if (command === 'exit') {
    break
  }
}
watcher.destroy()
paster.destroy()
await new Promise(resolve => setTimeout(resolve, 300))
process.stdout.write(JSON.stringify(events) + '\n')
process.exit(0)
