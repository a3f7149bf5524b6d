// Hocuspocus (@hocuspocus/server 4.7.0), in memory, on 127.0.0.1:PORT. The room named in
// PRELOAD_ROOM is loaded from PRELOAD_FILE on every open (onLoadDocument), like a
// database extension would; nothing is stored.
import fs from 'node:fs'
import * as Y from 'yjs'
import { Server } from '@hocuspocus/server'

const port = Number(process.env.PORT)
const preloadRoom = process.env.PRELOAD_ROOM || ''
const preloadFile = process.env.PRELOAD_FILE || ''

const server = new Server({
  port,
  address: '127.0.0.1',
  quiet: true,
  stopOnSignals: false,
  // Unload as soon as the last client leaves, so every cold open really loads.
  unloadImmediately: true,
  websocketOptions: { maxPayload: 64 * 1024 * 1024 },
  async onLoadDocument ({ documentName, document }) {
    if (documentName === preloadRoom && preloadFile) Y.applyUpdate(document, fs.readFileSync(preloadFile))
    return document
  }
})
await server.listen()
console.log(`hocuspocus on ${port}`)
const stop = async () => { await server.destroy(); process.exit(0) }
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
