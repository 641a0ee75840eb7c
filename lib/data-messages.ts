/**
 * The request/answer half of the replication protocol: `request` asks for a
 * block, hash, seek and/or upgrade; `data` answers with the bytes and the
 * tree nodes that prove them; `noData` says it cannot; `cancel` withdraws a
 * request. Byte for byte as Hypercore 11.
 *
 * Apart from the control messages because this is the hot path of
 * replication and the one that carries proofs: every decoded node array and
 * signature here is bounded before anything is verified.
 */
import c from 'compact-encoding'
import type { TreeNode } from './tree-node'
import { type Codec, uint, buffer, optionalBuffer, nodeArray } from './codec-primitives'
import { manifest, type Manifest } from './manifest-codec'
import type { Proof } from './proof'
import { INVALID_PROOF } from './errors'

/** Largest signature (single or multi-signature) a data upgrade may carry. */
export const MAX_SIGNATURE_BYTES = 64 * 1024

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

export const request: Codec<RequestMessage> = {
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

export const cancel: Codec<CancelMessage> = {
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

export const data: Codec<DataMessage> = {
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

// The trailing flags of noData are optional on the wire (older peers did not
// send them), so they are read only if bytes remain.
export const noData: Codec<NoDataMessage> = {
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

/**
 * A proof made anywhere but the wire (by `proof()`, or by a caller) copied
 * into the shapes `data.decode` gives a data message: the same fields in the
 * same order, so the checks every replicated block goes through see one
 * shape of each. Checking callers' proofs in their own shapes made those
 * checks polymorphic for the rest of the process (V8's inline caches,
 * traced after the bench's `verify` row); the encoder that serves
 * downloads sees it too, for a fully remote proof. A part that is not a
 * list of nodes is refused here, as the decoder refuses it.
 */
export function shapedAsDecoded (p: Proof): DataMessage {
  const { block, hash, seek, upgrade } = p
  const message: DataMessage = {
    request: 0,
    fork: p.fork,
    block: block == null ? null : { index: block.index, value: block.value as Uint8Array, nodes: decodedNodes(block.nodes) },
    hash: hash == null ? null : { index: hash.index, nodes: decodedNodes(hash.nodes) },
    seek: seek == null ? null : { bytes: seek.bytes, nodes: decodedNodes(seek.nodes) },
    upgrade: upgrade == null
      ? null
      : { start: upgrade.start, length: upgrade.length, nodes: decodedNodes(upgrade.nodes), additionalNodes: decodedNodes(upgrade.additionalNodes), signature: upgrade.signature },
    manifest: p.manifest ?? null
  }
  return message
}

function decodedNodes (nodes: readonly TreeNode[]): TreeNode[] {
  if (!Array.isArray(nodes)) throw INVALID_PROOF('Proof nodes are not a list')
  const out = new Array<TreeNode>(nodes.length)
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i]
    if (typeof n !== 'object' || n === null) throw INVALID_PROOF('Proof node ' + i + ' is not a node')
    out[i] = { index: n.index, size: n.size, hash: n.hash }
  }
  return out
}
