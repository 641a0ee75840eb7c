/**
 * Wire and storage encodings of Hypercore 11, byte for byte.
 *
 * Every codec is a compact-encoding triple (`preencode`/`encode`/`decode`).
 * Encoders trust their input (it comes from us); decoders treat their bytes as
 * hostile: integers must be safe, arrays are bounded both by a fixed limit and
 * by the bytes actually left, unknown ids are refused. Use `decode` /
 * `decodeExact` to turn every decoding failure into `INVALID_MESSAGE`.
 *
 * Decoded buffers are views into the input (no copies), except the handshake
 * capability, which is copied so a 32-byte value does not pin a large frame.
 */
import c from 'compact-encoding'
import type { State } from 'compact-encoding'
import b4a from 'b4a'
import { INVALID_MESSAGE, BAD_ARGUMENT, HypercoreError } from './errors'
import type { TreeNode } from './tree-node'

/** A compact-encoding codec; structurally the same as `c.Encoder<T>`. */
export interface Codec<T> {
  preencode (state: State, value: T): void
  encode (state: State, value: T): void
  decode (state: State): T
}

export type { State }

/** Most tree nodes a decoded node array may hold. */
export const MAX_NODES = 1024
/** Largest signature (single or multi-signature) a data upgrade may carry. */
export const MAX_SIGNATURE_BYTES = 64 * 1024
/** Most elements of any other decoded array (compact-encoding's own limit). */
export const MAX_ARRAY = 0x100000

// ---------------------------------------------------------------------------
// Primitives

/** A varint that must be a safe integer. */
const uint: Codec<number> = {
  preencode (state, n) {
    c.uint.preencode(state, n)
  },
  encode (state, n) {
    c.uint.encode(state, n)
  },
  decode (state) {
    const n = c.uint.decode(state)
    if (n > Number.MAX_SAFE_INTEGER) throw INVALID_MESSAGE('Integer is not safe')
    return n
  }
}

const fixed32: Codec<Uint8Array> = c.fixed32
const fixed64: Codec<Uint8Array> = c.fixed64

/** Length-prefixed buffer (`c.buffer`). */
const buffer: Codec<Uint8Array> = {
  preencode (state, b) {
    c.uint.preencode(state, b.byteLength)
    state.end += b.byteLength
  },
  encode (state, b) {
    c.uint.encode(state, b.byteLength)
    state.buffer!.set(b, state.start)
    state.start += b.byteLength
  },
  decode (state) {
    return take(state, uint.decode(state))
  }
}

function take (state: State, len: number): Uint8Array {
  if (len > state.end - state.start) throw INVALID_MESSAGE('Out of bounds')
  return state.buffer!.subarray(state.start, (state.start += len))
}

/** `c.optionalBuffer` (empty decodes as null) with a size cap on decode. */
function optionalBuffer (max: number): Codec<Uint8Array | null> {
  return {
    preencode (state, b) {
      if (b) buffer.preencode(state, b)
      else state.end++
    },
    encode (state, b) {
      if (b) buffer.encode(state, b)
      else c.uint.encode(state, 0)
    },
    decode (state) {
      const len = uint.decode(state)
      if (len === 0) return null
      if (len > max) throw INVALID_MESSAGE('Buffer is too big')
      return take(state, len)
    }
  }
}

/**
 * `c.array(codec)`, refusing on decode more than `max` elements or more
 * elements than the remaining bytes could hold at `minBytes` each.
 */
function array<T> (codec: Codec<T>, max: number, minBytes: number): Codec<T[]> {
  return {
    preencode (state, list) {
      if (list.length > max) throw BAD_ARGUMENT('Array is too big')
      c.uint.preencode(state, list.length)
      for (let i = 0; i < list.length; i++) codec.preencode(state, list[i]!)
    },
    encode (state, list) {
      c.uint.encode(state, list.length)
      for (let i = 0; i < list.length; i++) codec.encode(state, list[i]!)
    },
    decode (state) {
      const len = uint.decode(state)
      if (len > max) throw INVALID_MESSAGE('Array is too big')
      if (len * minBytes > state.end - state.start) throw INVALID_MESSAGE('Out of bounds')
      const list = new Array<T>(len)
      for (let i = 0; i < len; i++) list[i] = codec.decode(state)
      return list
    }
  }
}

/** `c.uint32array` with the length checked before anything is sliced. */
const uint32array: Codec<Uint32Array> = {
  preencode (state, a) {
    c.uint32array.preencode(state, a)
  },
  encode (state, a) {
    c.uint32array.encode(state, a)
  },
  decode (state) {
    const start = state.start
    const len = uint.decode(state)
    if (len > (state.end - state.start) / 4) throw INVALID_MESSAGE('Out of bounds')
    state.start = start
    return c.uint32array.decode(state)
  }
}

// ---------------------------------------------------------------------------
// Manifest

export type HashAlgorithm = 'blake2b'
export type SignatureAlgorithm = 'ed25519'

export interface ManifestSigner {
  signature: SignatureAlgorithm
  /** 32 bytes; `caps.DEFAULT_NAMESPACE` unless chosen otherwise. */
  namespace: Uint8Array
  /** 32-byte ed25519 public key. */
  publicKey: Uint8Array
}

/** A fixed first `length` blocks whose tree hash is `hash`. */
export interface Prologue {
  hash: Uint8Array
  length: number
}

export interface Manifest {
  /** 0, 1 or 2. */
  version: number
  hash: HashAlgorithm
  allowPatch: boolean
  quorum: number
  signers: ManifestSigner[]
  prologue: Prologue | null
  /** Version 2 only: keys of linked cores (32 bytes each). */
  linked: Uint8Array[] | null
  /** Version 2 only. */
  userData: Uint8Array | null
}

const MANIFEST_PATCH = 1
const MANIFEST_PROLOGUE = 2
const MANIFEST_LINKED = 4
const MANIFEST_USER_DATA = 8

const hashAlgorithm: Codec<HashAlgorithm> = {
  preencode (state) {
    state.end++
  },
  encode (state, h) {
    if (h !== 'blake2b') throw BAD_ARGUMENT('Unknown hash: ' + String(h))
    c.uint.encode(state, 0)
  },
  decode (state) {
    const id = c.uint.decode(state)
    if (id !== 0) throw INVALID_MESSAGE('Unknown hash id: ' + id)
    return 'blake2b'
  }
}

const signatureAlgorithm: Codec<SignatureAlgorithm> = {
  preencode (state) {
    state.end++
  },
  encode (state, s) {
    if (s !== 'ed25519') throw BAD_ARGUMENT('Unknown signature: ' + String(s))
    c.uint.encode(state, 0)
  },
  decode (state) {
    const id = c.uint.decode(state)
    if (id !== 0) throw INVALID_MESSAGE('Unknown signature id: ' + id)
    return 'ed25519'
  }
}

export const signer: Codec<ManifestSigner> = {
  preencode (state, s) {
    signatureAlgorithm.preencode(state, s.signature)
    fixed32.preencode(state, s.namespace)
    fixed32.preencode(state, s.publicKey)
  },
  encode (state, s) {
    signatureAlgorithm.encode(state, s.signature)
    fixed32.encode(state, s.namespace)
    fixed32.encode(state, s.publicKey)
  },
  decode (state) {
    return {
      signature: signatureAlgorithm.decode(state),
      namespace: fixed32.decode(state),
      publicKey: fixed32.decode(state)
    }
  }
}

const signerArray = array(signer, MAX_ARRAY, 65)
const fixed32Array = array(fixed32, MAX_ARRAY, 32)

export const prologue: Codec<Prologue> = {
  preencode (state, p) {
    fixed32.preencode(state, p.hash)
    uint.preencode(state, p.length)
  },
  encode (state, p) {
    fixed32.encode(state, p.hash)
    uint.encode(state, p.length)
  },
  decode (state) {
    return {
      hash: fixed32.decode(state),
      length: uint.decode(state)
    }
  }
}

// Version 0 layout: hash, type, then by type
//   0: prologue hash only (no signers), 1: a single signer, 2: flags, quorum, signers.
function manifestv0Type (m: Manifest): 0 | 1 | 2 {
  if (m.prologue && m.signers.length === 0) return 0
  if (m.quorum === 1 && m.signers.length === 1 && !m.allowPatch) return 1
  return 2
}

const manifestv0: Codec<Manifest> = {
  preencode (state, m) {
    hashAlgorithm.preencode(state, m.hash)
    state.end++ // type
    const type = manifestv0Type(m)
    if (type === 0) {
      fixed32.preencode(state, m.prologue!.hash)
    } else if (type === 1) {
      signer.preencode(state, m.signers[0]!)
    } else {
      state.end++ // flags
      uint.preencode(state, m.quorum)
      signerArray.preencode(state, m.signers)
    }
  },
  encode (state, m) {
    hashAlgorithm.encode(state, m.hash)
    const type = manifestv0Type(m)
    c.uint.encode(state, type)
    if (type === 0) {
      fixed32.encode(state, m.prologue!.hash)
    } else if (type === 1) {
      signer.encode(state, m.signers[0]!)
    } else {
      c.uint.encode(state, m.allowPatch ? 1 : 0)
      uint.encode(state, m.quorum)
      signerArray.encode(state, m.signers)
    }
  },
  decode (state) {
    const hash = hashAlgorithm.decode(state)
    const type = c.uint.decode(state)

    if (type === 0) {
      return {
        version: 0,
        hash,
        allowPatch: false,
        quorum: 0,
        signers: [],
        prologue: { hash: fixed32.decode(state), length: 0 },
        linked: null,
        userData: null
      }
    }

    if (type === 1) {
      return {
        version: 0,
        hash,
        allowPatch: false,
        quorum: 1,
        signers: [signer.decode(state)],
        prologue: null,
        linked: null,
        userData: null
      }
    }

    if (type !== 2) throw INVALID_MESSAGE('Unknown manifest type: ' + type)

    const flags = c.uint.decode(state)
    return {
      version: 0,
      hash,
      allowPatch: (flags & 1) !== 0,
      quorum: uint.decode(state),
      signers: signerArray.decode(state),
      prologue: null,
      linked: null,
      userData: null
    }
  }
}

function checkVersion (version: number): void {
  if (version !== 0 && version !== 1 && version !== 2) {
    throw BAD_ARGUMENT('Unknown manifest version: ' + String(version))
  }
}

export const manifest: Codec<Manifest> = {
  preencode (state, m) {
    checkVersion(m.version)
    state.end++ // version
    if (m.version === 0) return manifestv0.preencode(state, m)

    state.end++ // flags
    hashAlgorithm.preencode(state, m.hash)
    uint.preencode(state, m.quorum)
    signerArray.preencode(state, m.signers)
    if (m.prologue) prologue.preencode(state, m.prologue)
    if (m.linked) fixed32Array.preencode(state, m.linked)
    if (m.userData) buffer.preencode(state, m.userData)
  },
  encode (state, m) {
    c.uint.encode(state, m.version)
    if (m.version === 0) return manifestv0.encode(state, m)

    const flags =
      (m.allowPatch ? MANIFEST_PATCH : 0) |
      (m.prologue ? MANIFEST_PROLOGUE : 0) |
      (m.linked ? MANIFEST_LINKED : 0) |
      (m.userData ? MANIFEST_USER_DATA : 0)

    c.uint.encode(state, flags)
    hashAlgorithm.encode(state, m.hash)
    uint.encode(state, m.quorum)
    signerArray.encode(state, m.signers)
    if (m.prologue) prologue.encode(state, m.prologue)
    if (m.linked) fixed32Array.encode(state, m.linked)
    if (m.userData) buffer.encode(state, m.userData)
  },
  decode (state) {
    const version = c.uint.decode(state)
    if (version === 0) return manifestv0.decode(state)
    if (version > 2) throw INVALID_MESSAGE('Unknown manifest version: ' + version)

    const flags = c.uint.decode(state)
    const hash = hashAlgorithm.decode(state)
    const quorum = uint.decode(state)
    const signers = signerArray.decode(state)

    return {
      version,
      hash,
      allowPatch: (flags & MANIFEST_PATCH) !== 0,
      quorum,
      signers,
      prologue: (flags & MANIFEST_PROLOGUE) !== 0 ? prologue.decode(state) : null,
      linked: (flags & MANIFEST_LINKED) !== 0 ? fixed32Array.decode(state) : null,
      userData: (flags & MANIFEST_USER_DATA) !== 0 ? buffer.decode(state) : null
    }
  }
}

// ---------------------------------------------------------------------------
// Tree nodes

export const node: Codec<TreeNode> = {
  preencode (state, n) {
    uint.preencode(state, n.index)
    uint.preencode(state, n.size)
    fixed32.preencode(state, n.hash)
  },
  encode (state, n) {
    uint.encode(state, n.index)
    uint.encode(state, n.size)
    fixed32.encode(state, n.hash)
  },
  decode (state) {
    return {
      index: uint.decode(state),
      size: uint.decode(state),
      hash: fixed32.decode(state)
    }
  }
}

/** At most `MAX_NODES` nodes on decode. */
export const nodeArray: Codec<TreeNode[]> = array(node, MAX_NODES, 34)

// ---------------------------------------------------------------------------
// Replication wire messages

export interface HandshakeMessage {
  seeks: boolean
  /** 32 bytes. */
  capability: Uint8Array
}

export interface RequestBlock {
  index: number
  /** How many tree nodes the requester already has (proof can be shorter). */
  nodes: number
}

export interface RequestSeek {
  bytes: number
  padding: number
}

export interface RequestUpgrade {
  start: number
  length: number
}

export interface RequestMessage {
  id: number
  fork: number
  block: RequestBlock | null
  hash: RequestBlock | null
  seek: RequestSeek | null
  upgrade: RequestUpgrade | null
  manifest: boolean
  priority: number
}

export interface CancelMessage {
  request: number
}

export interface DataBlock {
  index: number
  value: Uint8Array
  nodes: TreeNode[]
}

export interface DataHash {
  index: number
  nodes: TreeNode[]
}

export interface DataSeek {
  bytes: number
  nodes: TreeNode[]
}

export interface DataUpgrade {
  start: number
  length: number
  nodes: TreeNode[]
  additionalNodes: TreeNode[]
  signature: Uint8Array | null
}

export interface DataMessage {
  request: number
  fork: number
  block: DataBlock | null
  hash: DataHash | null
  seek: DataSeek | null
  upgrade: DataUpgrade | null
  manifest: Manifest | null
}

export interface NoDataMessage {
  request: number
  reason: number
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

const handshake: Codec<HandshakeMessage> = {
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

const requestBlock: Codec<RequestBlock> = {
  preencode (state, b) {
    uint.preencode(state, b.index)
    uint.preencode(state, b.nodes)
  },
  encode (state, b) {
    uint.encode(state, b.index)
    uint.encode(state, b.nodes)
  },
  decode (state) {
    return { index: uint.decode(state), nodes: uint.decode(state) }
  }
}

const requestSeek: Codec<RequestSeek> = {
  preencode (state, s) {
    uint.preencode(state, s.bytes)
    uint.preencode(state, s.padding)
  },
  encode (state, s) {
    uint.encode(state, s.bytes)
    uint.encode(state, s.padding)
  },
  decode (state) {
    return { bytes: uint.decode(state), padding: uint.decode(state) }
  }
}

const requestUpgrade: Codec<RequestUpgrade> = {
  preencode (state, u) {
    uint.preencode(state, u.start)
    uint.preencode(state, u.length)
  },
  encode (state, u) {
    uint.encode(state, u.start)
    uint.encode(state, u.length)
  },
  decode (state) {
    return { start: uint.decode(state), length: uint.decode(state) }
  }
}

const request: Codec<RequestMessage> = {
  preencode (state, m) {
    state.end++ // flags
    uint.preencode(state, m.id)
    uint.preencode(state, m.fork)
    if (m.block) requestBlock.preencode(state, m.block)
    if (m.hash) requestBlock.preencode(state, m.hash)
    if (m.seek) requestSeek.preencode(state, m.seek)
    if (m.upgrade) requestUpgrade.preencode(state, m.upgrade)
    if (m.priority) uint.preencode(state, m.priority)
  },
  encode (state, m) {
    c.uint.encode(state,
      (m.block ? 1 : 0) |
      (m.hash ? 2 : 0) |
      (m.seek ? 4 : 0) |
      (m.upgrade ? 8 : 0) |
      (m.manifest ? 16 : 0) |
      (m.priority ? 32 : 0))
    uint.encode(state, m.id)
    uint.encode(state, m.fork)
    if (m.block) requestBlock.encode(state, m.block)
    if (m.hash) requestBlock.encode(state, m.hash)
    if (m.seek) requestSeek.encode(state, m.seek)
    if (m.upgrade) requestUpgrade.encode(state, m.upgrade)
    if (m.priority) uint.encode(state, m.priority)
  },
  decode (state) {
    const flags = c.uint.decode(state)
    return {
      id: uint.decode(state),
      fork: uint.decode(state),
      block: (flags & 1) !== 0 ? requestBlock.decode(state) : null,
      hash: (flags & 2) !== 0 ? requestBlock.decode(state) : null,
      seek: (flags & 4) !== 0 ? requestSeek.decode(state) : null,
      upgrade: (flags & 8) !== 0 ? requestUpgrade.decode(state) : null,
      manifest: (flags & 16) !== 0,
      priority: (flags & 32) !== 0 ? uint.decode(state) : 0
    }
  }
}

const cancel: Codec<CancelMessage> = {
  preencode (state, m) {
    uint.preencode(state, m.request)
  },
  encode (state, m) {
    uint.encode(state, m.request)
  },
  decode (state) {
    return { request: uint.decode(state) }
  }
}

const signatureBuffer = optionalBuffer(MAX_SIGNATURE_BYTES)

const dataUpgrade: Codec<DataUpgrade> = {
  preencode (state, u) {
    uint.preencode(state, u.start)
    uint.preencode(state, u.length)
    nodeArray.preencode(state, u.nodes)
    nodeArray.preencode(state, u.additionalNodes)
    signatureBuffer.preencode(state, u.signature)
  },
  encode (state, u) {
    uint.encode(state, u.start)
    uint.encode(state, u.length)
    nodeArray.encode(state, u.nodes)
    nodeArray.encode(state, u.additionalNodes)
    signatureBuffer.encode(state, u.signature)
  },
  decode (state) {
    return {
      start: uint.decode(state),
      length: uint.decode(state),
      nodes: nodeArray.decode(state),
      additionalNodes: nodeArray.decode(state),
      signature: signatureBuffer.decode(state)
    }
  }
}

const dataSeek: Codec<DataSeek> = {
  preencode (state, s) {
    uint.preencode(state, s.bytes)
    nodeArray.preencode(state, s.nodes)
  },
  encode (state, s) {
    uint.encode(state, s.bytes)
    nodeArray.encode(state, s.nodes)
  },
  decode (state) {
    return { bytes: uint.decode(state), nodes: nodeArray.decode(state) }
  }
}

const dataBlock: Codec<DataBlock> = {
  preencode (state, b) {
    uint.preencode(state, b.index)
    buffer.preencode(state, b.value)
    nodeArray.preencode(state, b.nodes)
  },
  encode (state, b) {
    uint.encode(state, b.index)
    buffer.encode(state, b.value)
    nodeArray.encode(state, b.nodes)
  },
  decode (state) {
    return {
      index: uint.decode(state),
      value: buffer.decode(state),
      nodes: nodeArray.decode(state)
    }
  }
}

const dataHash: Codec<DataHash> = {
  preencode (state, h) {
    uint.preencode(state, h.index)
    nodeArray.preencode(state, h.nodes)
  },
  encode (state, h) {
    uint.encode(state, h.index)
    nodeArray.encode(state, h.nodes)
  },
  decode (state) {
    return { index: uint.decode(state), nodes: nodeArray.decode(state) }
  }
}

const data: Codec<DataMessage> = {
  preencode (state, m) {
    state.end++ // flags
    uint.preencode(state, m.request)
    uint.preencode(state, m.fork)
    if (m.block) dataBlock.preencode(state, m.block)
    if (m.hash) dataHash.preencode(state, m.hash)
    if (m.seek) dataSeek.preencode(state, m.seek)
    if (m.upgrade) dataUpgrade.preencode(state, m.upgrade)
    if (m.manifest) manifest.preencode(state, m.manifest)
  },
  encode (state, m) {
    c.uint.encode(state,
      (m.block ? 1 : 0) |
      (m.hash ? 2 : 0) |
      (m.seek ? 4 : 0) |
      (m.upgrade ? 8 : 0) |
      (m.manifest ? 16 : 0))
    uint.encode(state, m.request)
    uint.encode(state, m.fork)
    if (m.block) dataBlock.encode(state, m.block)
    if (m.hash) dataHash.encode(state, m.hash)
    if (m.seek) dataSeek.encode(state, m.seek)
    if (m.upgrade) dataUpgrade.encode(state, m.upgrade)
    if (m.manifest) manifest.encode(state, m.manifest)
  },
  decode (state) {
    const flags = c.uint.decode(state)
    return {
      request: uint.decode(state),
      fork: uint.decode(state),
      block: (flags & 1) !== 0 ? dataBlock.decode(state) : null,
      hash: (flags & 2) !== 0 ? dataHash.decode(state) : null,
      seek: (flags & 4) !== 0 ? dataSeek.decode(state) : null,
      upgrade: (flags & 8) !== 0 ? dataUpgrade.decode(state) : null,
      manifest: (flags & 16) !== 0 ? manifest.decode(state) : null
    }
  }
}

// The trailing flags of noData/want/unwant are optional on the wire (older
// peers did not send them), so they are read only if bytes remain.
const noData: Codec<NoDataMessage> = {
  preencode (state, m) {
    uint.preencode(state, m.request)
    state.end++ // flags
    if (m.reason) uint.preencode(state, m.reason)
  },
  encode (state, m) {
    uint.encode(state, m.request)
    c.uint.encode(state, m.reason ? 1 : 0)
    if (m.reason) uint.encode(state, m.reason)
  },
  decode (state) {
    const request = uint.decode(state)
    const flags = state.start < state.end ? c.uint.decode(state) : 0
    return { request, reason: (flags & 1) !== 0 ? uint.decode(state) : 0 }
  }
}

const want: Codec<WantMessage> = {
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

const range: Codec<RangeMessage> = {
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

const bitfield: Codec<BitfieldMessage> = {
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

const sync: Codec<SyncMessage> = {
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

const reorgHint: Codec<ReorgHintMessage> = {
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

const extension: Codec<ExtensionMessage> = {
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

/** The messages of the replication protocol, one per protomux message type. */
export const wire: {
  readonly handshake: Codec<HandshakeMessage>
  readonly request: Codec<RequestMessage>
  readonly cancel: Codec<CancelMessage>
  readonly data: Codec<DataMessage>
  readonly noData: Codec<NoDataMessage>
  readonly want: Codec<WantMessage>
  readonly unwant: Codec<UnwantMessage>
  readonly range: Codec<RangeMessage>
  readonly bitfield: Codec<BitfieldMessage>
  readonly sync: Codec<SyncMessage>
  readonly reorgHint: Codec<ReorgHintMessage>
  readonly extension: Codec<ExtensionMessage>
} = {
  handshake,
  request,
  cancel,
  data,
  noData,
  want,
  unwant: want,
  range,
  bitfield,
  sync,
  reorgHint,
  extension
}

// ---------------------------------------------------------------------------
// Multi-signatures

export interface MultiSignatureProof {
  /** Index into the manifest's signers. */
  signer: number
  /** 64 bytes. */
  signature: Uint8Array
  /** How many blocks the signer's tree is behind (0: none). */
  patch: number
}

export interface MultiSignature {
  proofs: MultiSignatureProof[]
  /** Nodes shared by the proofs' patches. */
  patch: TreeNode[]
}

export interface MultiSignaturePatchV0 {
  start: number
  length: number
  /** Indices into the multi-signature's `patch`. */
  nodes: number[]
}

export interface MultiSignatureProofV0 {
  signer: number
  signature: Uint8Array
  patch: MultiSignaturePatchV0 | null
}

export interface MultiSignatureV0 {
  proofs: MultiSignatureProofV0[]
  patch: TreeNode[]
}

const multisigProof: Codec<MultiSignatureProof> = {
  preencode (state, p) {
    uint.preencode(state, p.signer)
    fixed64.preencode(state, p.signature)
    uint.preencode(state, p.patch)
  },
  encode (state, p) {
    uint.encode(state, p.signer)
    fixed64.encode(state, p.signature)
    uint.encode(state, p.patch)
  },
  decode (state) {
    return {
      signer: uint.decode(state),
      signature: fixed64.decode(state),
      patch: uint.decode(state)
    }
  }
}

const patchIndexArray = array(uint, MAX_NODES, 1)

const patchv0: Codec<MultiSignaturePatchV0> = {
  preencode (state, p) {
    uint.preencode(state, p.start)
    uint.preencode(state, p.length)
    patchIndexArray.preencode(state, p.nodes)
  },
  encode (state, p) {
    uint.encode(state, p.start)
    uint.encode(state, p.length)
    patchIndexArray.encode(state, p.nodes)
  },
  decode (state) {
    return {
      start: uint.decode(state),
      length: uint.decode(state),
      nodes: patchIndexArray.decode(state)
    }
  }
}


const multisigProofv0: Codec<MultiSignatureProofV0> = {
  preencode (state, p) {
    state.end++ // flags
    uint.preencode(state, p.signer)
    fixed64.preencode(state, p.signature)
    if (p.patch) patchv0.preencode(state, p.patch)
  },
  encode (state, p) {
    c.uint.encode(state, p.patch ? 1 : 0)
    uint.encode(state, p.signer)
    fixed64.encode(state, p.signature)
    if (p.patch) patchv0.encode(state, p.patch)
  },
  decode (state) {
    const flags = c.uint.decode(state)
    return {
      signer: uint.decode(state),
      signature: fixed64.decode(state),
      patch: (flags & 1) !== 0 ? patchv0.decode(state) : null
    }
  }
}

const multisigProofArray = array(multisigProof, MAX_ARRAY, 66)
const multisigProofArrayv0 = array(multisigProofv0, MAX_ARRAY, 66)

export const multiSignature: Codec<MultiSignature> = {
  preencode (state, s) {
    multisigProofArray.preencode(state, s.proofs)
    nodeArray.preencode(state, s.patch)
  },
  encode (state, s) {
    multisigProofArray.encode(state, s.proofs)
    nodeArray.encode(state, s.patch)
  },
  decode (state) {
    return { proofs: multisigProofArray.decode(state), patch: nodeArray.decode(state) }
  }
}

export const multiSignaturev0: Codec<MultiSignatureV0> = {
  preencode (state, s) {
    multisigProofArrayv0.preencode(state, s.proofs)
    nodeArray.preencode(state, s.patch)
  },
  encode (state, s) {
    multisigProofArrayv0.encode(state, s.proofs)
    nodeArray.encode(state, s.patch)
  },
  decode (state) {
    return { proofs: multisigProofArrayv0.decode(state), patch: nodeArray.decode(state) }
  }
}

// ---------------------------------------------------------------------------
// Helpers

/** Encodes `value` into a fresh buffer of exactly the right size. */
export function encode<T> (codec: Codec<T>, value: T): Uint8Array {
  const state: State = { start: 0, end: 0, buffer: null }
  try {
    codec.preencode(state, value)
    state.buffer = b4a.allocUnsafe(state.end)
    codec.encode(state, value)
  } catch (err) {
    if (err instanceof HypercoreError) throw err
    throw BAD_ARGUMENT('Cannot encode: ' + reason(err))
  }
  return state.buffer
}

/**
 * Decodes one value from the front of `bytes`; trailing bytes are ignored
 * (forward compatibility, as Hypercore). Any failure is `INVALID_MESSAGE`.
 */
export function decode<T> (codec: Codec<T>, bytes: Uint8Array): T {
  try {
    return codec.decode({ start: 0, end: bytes.byteLength, buffer: bytes })
  } catch (err) {
    throw INVALID_MESSAGE('Cannot decode: ' + reason(err))
  }
}

/** As `decode`, but trailing bytes are an error too. */
export function decodeExact<T> (codec: Codec<T>, bytes: Uint8Array): T {
  const state: State = { start: 0, end: 0, buffer: bytes }
  let value: T
  try {
    state.end = bytes.byteLength
    value = codec.decode(state)
  } catch (err) {
    throw INVALID_MESSAGE('Cannot decode: ' + reason(err))
  }
  if (state.start !== state.end) throw INVALID_MESSAGE('Trailing bytes after message')
  return value
}

function reason (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
