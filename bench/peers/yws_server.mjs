// The reference Node server (@y/websocket-server 0.1.5), in memory, on 127.0.0.1:PORT.
// A room named in PRELOAD_ROOM is loaded from PRELOAD_FILE (a Yjs update) every time it
// is opened, the way a persistence adapter (LevelDB) would, so cold opens are comparable.
import http from 'node:http'
import fs from 'node:fs'
import { WebSocketServer } from 'ws'
import * as Y from 'yjs'
import { setupWSConnection, setPersistence } from '@y/websocket-server/utils'

const port = Number(process.env.PORT)
const preloadRoom = process.env.PRELOAD_ROOM || ''
const preloadFile = process.env.PRELOAD_FILE || ''

setPersistence({
  provider: null,
  bindState: (name, doc) => {
    if (name === preloadRoom && preloadFile) Y.applyUpdate(doc, fs.readFileSync(preloadFile))
  },
  writeState: async () => {}
})

const server = http.createServer((_req, res) => { res.writeHead(200); res.end('ok') })
const wss = new WebSocketServer({ noServer: true })
wss.on('connection', setupWSConnection)
server.on('upgrade', (req, socket, head) => {
  wss.handleUpgrade(req, socket, head, ws => wss.emit('connection', ws, req))
})
server.listen(port, '127.0.0.1', () => console.log(`y-websocket-server on ${port}`))
const stop = () => { wss.clients.forEach(ws => ws.terminate()); server.close(); process.exit(0) }
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
