// The status line: "Saved" only when the server has committed every write frame this
// browser sent on the current socket (the SAVED protocol extension), never earlier.
import * as decoding from 'lib0/decoding'

export const MESSAGE_SAVED = 100

const isWriteFrame = (bytes) =>
  bytes.length >= 2 && bytes[0] === 0 && (bytes[1] === 1 || bytes[1] === 2)

export const STATUS = Object.freeze({
  connecting: 'Connecting…',
  saved: 'Saved',
  saving: 'Saving…',
  reconnecting: 'Reconnecting…',
  offline: 'Offline — changes kept on this device',
  offlineStoring: 'Offline — keeping changes on this device…',
  signedOut: 'Signed out — this editor is closed',
  viewOnly: 'View only',
  downgraded: 'View only — your access changed',
})

/**
 * Tracks what the current socket sent and what the server confirmed. The counts reset with
 * every socket because the server's SAVED count is per connection.
 */
export class SaveTracker {
  constructor () {
    this.socket = null
    this.sent = 0
    this.committed = 0
    this.everConnected = false
    this.failedAttempts = 0
    this.socketsOpened = 0
    this.socketsClosed = 0
    // Local edits made while no socket was open; they travel in the next sync step 2.
    this.unsentOfflineEdits = false
    this.listeners = new Set()
  }

  /** A WebSocket class for WebsocketProvider's `WebSocketPolyfill` option. */
  webSocketClass () {
    const tracker = this
    return class CountingWebSocket extends WebSocket {
      constructor (url, protocols) {
        super(url, protocols)
        tracker._adopt(this)
      }

      send (data) {
        const bytes = data instanceof Uint8Array ? data : new Uint8Array(data)
        if (this === tracker.socket && isWriteFrame(bytes)) {
          tracker.sent++
          if (bytes[1] === 1) tracker.unsentOfflineEdits = false
          tracker._changed()
        }
        super.send(data)
      }
    }
  }

  _adopt (socket) {
    this.socket = socket
    this.sent = 0
    this.committed = 0
    let opened = false
    socket.addEventListener('open', () => {
      opened = true
      this.socketsOpened++
      this.everConnected = true
      this.failedAttempts = 0
      this._changed()
    })
    socket.addEventListener('close', () => {
      if (opened) this.socketsClosed++
      else this.failedAttempts++
      this._changed()
    })
  }

  /** y-websocket message handler for the SAVED extension. */
  handleSaved (_encoder, decoder) {
    this.committed = decoding.readVarUint(decoder)
    this._changed()
  }

  localEditWhileDisconnected () {
    this.unsentOfflineEdits = true
  }

  onChange (listener) {
    this.listeners.add(listener)
  }

  _changed () {
    for (const listener of this.listeners) listener()
  }
}

/**
 * The status text for the provider's state. `storedLocally` is false while an offline edit
 * is still on its way into IndexedDB.
 */
export function describeStatus (provider, tracker, { storedLocally, online }) {
  if (provider.wsconnected) {
    const allCommitted = provider.synced && !tracker.unsentOfflineEdits &&
      tracker.committed >= tracker.sent
    return allCommitted ? STATUS.saved : STATUS.saving
  }
  if (!tracker.everConnected && tracker.failedAttempts === 0 && online) return STATUS.connecting
  if (!online || tracker.failedAttempts > 0) {
    return storedLocally ? STATUS.offline : STATUS.offlineStoring
  }
  return STATUS.reconnecting
}
