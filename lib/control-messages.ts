/**
 * The control half of the replication protocol: what a peer says about
 * itself rather than asks for: the handshake, its length and fork (`sync`),
 * which ranges it wants (`want`/`unwant`) or holds (`range`, `bitfield`),
 * where it reorganised (`reorgHint`), and extension messages. Byte for byte
 * as Hypercore 11.
 *
 * Apart from the data messages because none of these carries proof nodes:
 * they update a peer's state, they are not verified against the tree.
 */
import c from 'compact-encoding'
import b4a from 'b4a'
import { type Codec, uint, fixed32, take, uint32array } from './codec-primitives'

export interface HandshakeMessage {
  seeks: boolean
  /** 32 bytes. */
  capability: Uint8Array
}

export interface WantMessage {
  start: number
  length: number
  any: boolean
}

export type UnwantMessage = WantMessage

export interface RangeMessage {
  drop: boolean
  start: number
  length: number
}

export interface BitfieldMessage {
  start: number
  bitfield: Uint32Array
}

export interface SyncMessage {
  fork: number
  length: number
  remoteLength: number
  canUpgrade: boolean
  uploading: boolean
  downloading: boolean
  hasManifest: boolean
  allowPush: boolean
}

export interface ReorgHintMessage {
  from: number
  to: number
  ancestors: number
}

export interface ExtensionMessage {
  name: string
  message: Uint8Array
}

// Decoded buffers elsewhere are views into the frame; the capability is copied
// so a 32-byte value does not pin a large frame.
export const handshake: Codec<HandshakeMessage> = {
  preencode (state, m) {
    state.end++ // flags
    fixed32.preencode(state, m.capability)
  },
  encode (state, m) {
    c.uint.encode(state, m.seeks ? 1 : 0)
    fixed32.encode(state, m.capability)
  },
  decode (state) {
    const flags = c.uint.decode(state)
    const capability = b4a.allocUnsafeSlow(32)
    capability.set(fixed32.decode(state))
    return { seeks: (flags & 1) !== 0, capability }
  }
}

// The trailing flags of want/unwant are optional on the wire (older peers did
// not send them), so they are read only if bytes remain.
export const want: Codec<WantMessage> = {
  preencode (state, m) {
    uint.preencode(state, m.start)
    uint.preencode(state, m.length)
    if (m.any) state.end++ // flags
  },
  encode (state, m) {
    uint.encode(state, m.start)
    uint.encode(state, m.length)
    if (m.any) c.uint.encode(state, 1)
  },
  decode (state) {
    const start = uint.decode(state)
    const length = uint.decode(state)
    const flags = state.start < state.end ? c.uint.decode(state) : 0
    return { start, length, any: (flags & 1) !== 0 }
  }
}

export const range: Codec<RangeMessage> = {
  preencode (state, m) {
    state.end++ // flags
    uint.preencode(state, m.start)
    if (m.length !== 1) uint.preencode(state, m.length)
  },
  encode (state, m) {
    c.uint.encode(state, (m.drop ? 1 : 0) | (m.length === 1 ? 2 : 0))
    uint.encode(state, m.start)
    if (m.length !== 1) uint.encode(state, m.length)
  },
  decode (state) {
    const flags = c.uint.decode(state)
    return {
      drop: (flags & 1) !== 0,
      start: uint.decode(state),
      length: (flags & 2) !== 0 ? 1 : uint.decode(state)
    }
  }
}

export const bitfield: Codec<BitfieldMessage> = {
  preencode (state, m) {
    uint.preencode(state, m.start)
    uint32array.preencode(state, m.bitfield)
  },
  encode (state, m) {
    uint.encode(state, m.start)
    uint32array.encode(state, m.bitfield)
  },
  decode (state) {
    return { start: uint.decode(state), bitfield: uint32array.decode(state) }
  }
}

export const sync: Codec<SyncMessage> = {
  preencode (state, m) {
    state.end++ // flags
    uint.preencode(state, m.fork)
    uint.preencode(state, m.length)
    uint.preencode(state, m.remoteLength)
  },
  encode (state, m) {
    c.uint.encode(state,
      (m.canUpgrade ? 1 : 0) |
      (m.uploading ? 2 : 0) |
      (m.downloading ? 4 : 0) |
      (m.hasManifest ? 8 : 0) |
      (m.allowPush ? 16 : 0))
    uint.encode(state, m.fork)
    uint.encode(state, m.length)
    uint.encode(state, m.remoteLength)
  },
  decode (state) {
    const flags = c.uint.decode(state)
    return {
      fork: uint.decode(state),
      length: uint.decode(state),
      remoteLength: uint.decode(state),
      canUpgrade: (flags & 1) !== 0,
      uploading: (flags & 2) !== 0,
      downloading: (flags & 4) !== 0,
      hasManifest: (flags & 8) !== 0,
      allowPush: (flags & 16) !== 0
    }
  }
}

export const reorgHint: Codec<ReorgHintMessage> = {
  preencode (state, m) {
    uint.preencode(state, m.from)
    uint.preencode(state, m.to)
    uint.preencode(state, m.ancestors)
  },
  encode (state, m) {
    uint.encode(state, m.from)
    uint.encode(state, m.to)
    uint.encode(state, m.ancestors)
  },
  decode (state) {
    return { from: uint.decode(state), to: uint.decode(state), ancestors: uint.decode(state) }
  }
}

export const extension: Codec<ExtensionMessage> = {
  preencode (state, m) {
    c.string.preencode(state, m.name)
    state.end += m.message.byteLength
  },
  encode (state, m) {
    c.string.encode(state, m.name)
    state.buffer!.set(m.message, state.start)
    state.start += m.message.byteLength
  },
  decode (state) {
    const name = c.string.decode(state)
    return { name, message: take(state, state.end - state.start) }
  }
}
