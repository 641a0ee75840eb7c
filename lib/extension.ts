/**
 * Extension messages as one session sees them: values in the session's
 * chosen encoding, bytes on the wire. Without an encoding, messages are
 * length-prefixed bytes (compact-encoding's `buffer`), as Hypercore 11 sends
 * them: raw bytes would not decode on a Hypercore 11 peer.
 */
import b4a from 'b4a'
import c from 'compact-encoding'
import { resolveEncoding, type Codec } from './value-encoding'
import type { Extension, ExtensionHandlers } from './session-options'
import type { Peer } from './peer'

const LENGTH_PREFIXED: Codec = {
  encode: (value) => c.encode(c.buffer, value instanceof Uint8Array ? value : b4a.from(String(value))),
  decode: (bytes) => c.decode(c.buffer, bytes) ?? b4a.alloc(0)
}

/** Where an extension is registered and whom it talks to. */
export interface ExtensionHost {
  register (name: string, onmessage: (bytes: Uint8Array, peer: Peer) => void): void
  unregister (name: string): void
  peers (): Peer[]
}

export function createExtension<T> (host: ExtensionHost, name: string, handlers: ExtensionHandlers<T>): Extension<T> {
  const enc = handlers.encoding === undefined || handlers.encoding === null ? LENGTH_PREFIXED : resolveEncoding(handlers.encoding)
  host.register(name, (bytes, peer) => {
    let value: T
    try {
      value = enc.decode(bytes) as T
    } catch {
      return // a message that does not decode is the peer's problem, not ours
    }
    handlers.onmessage?.(value, peer)
  })
  return {
    name,
    send: (message, peer) => peer.sendExtension(name, enc.encode(message)),
    broadcast: (message) => {
      const bytes = enc.encode(message)
      for (const peer of host.peers()) peer.sendExtension(name, bytes)
    },
    destroy: () => host.unregister(name)
  }
}
