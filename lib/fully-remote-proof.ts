/**
 * The fully remote proof: a proof that carries all it needs to be checked by
 * someone holding only the core's key — the 32-byte discovery key, then a
 * wire `data` message whose upgrade starts at length 0. Hypercore 11 uses it
 * to restore lost tree nodes (`generateRemoteProofForTreeNode`).
 */
import c from 'compact-encoding'
import b4a from 'b4a'
import { Iterator, fullRoots } from './flat-tree'
import { wire, shapedAsDecoded, type DataMessage } from './messages'
import { INVALID_MESSAGE, BAD_ARGUMENT } from './errors'
import type { Proof, ProofRequest } from './proof'

export interface FullyRemoteProof {
  discoveryKey: Uint8Array
  proof: DataMessage
}

export function encodeFullyRemote (discoveryKey: Uint8Array, proof: Proof): Uint8Array {
  const msg = shapedAsDecoded(proof)
  const state: c.State = { start: 0, end: 32, buffer: null }
  wire.data.preencode(state, msg)
  const buffer = b4a.allocUnsafe(state.end)
  state.buffer = buffer
  buffer.set(discoveryKey, 0)
  state.start = 32
  wire.data.encode(state, msg)
  return buffer
}

/** Decodes hostile bytes; anything malformed is INVALID_MESSAGE. */
export function decodeFullyRemote (bytes: Uint8Array): FullyRemoteProof {
  if (!(bytes instanceof Uint8Array) || bytes.byteLength < 33) throw INVALID_MESSAGE('A fully remote proof is at least 33 bytes')
  const state: c.State = { start: 32, end: bytes.byteLength, buffer: bytes }
  let proof: DataMessage
  try {
    proof = wire.data.decode(state)
  } catch (err) {
    throw INVALID_MESSAGE('Not a fully remote proof: ' + (err instanceof Error ? err.message : String(err)))
  }
  return { discoveryKey: bytes.subarray(0, 32), proof }
}

/**
 * What to prove so that tree node `index` can be restored by a peer. The
 * tree is cut right after the node's last block: if the node is then a root
 * the plain upgrade proves it (byte for byte what Hypercore 11 sends, and
 * what Hypercore's recovery writes); otherwise the node is asked for as a
 * hash with its path, which Hypercore verifies as well and we restore from.
 */
export function treeNodeProofRequest (index: number, length: number): ProofRequest {
  if (!Number.isSafeInteger(index) || index < 0) throw BAD_ARGUMENT('Tree node index must be a non-negative integer')
  const cut = new Iterator(index).rightSpan() / 2 + 1
  if (cut > length) throw BAD_ARGUMENT('Tree node ' + index + ' is outside a tree of length ' + length)
  const upgrade = { start: 0, length: cut }
  if (fullRoots(2 * cut).includes(index)) return { upgrade }
  return { hash: { index, nodes: 0 }, upgrade }
}
