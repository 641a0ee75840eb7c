/**
 * What a store says about one core it holds, and the 32-byte id that says
 * it in set reconciliation. Two stores whose ids for a core are equal have
 * nothing to replicate for it; a core whose ids differ needs a channel.
 *
 * An id is the first 16 bytes of the core's discovery key (so an id learned
 * from a peer names its core without another round trip) followed by 16
 * bytes of a hash of the key, fork, length, flags and — for stores that keep
 * full replicas — how many blocks are held. Sparse stores leave the count
 * out: holding different blocks of a core is what sparse replicas do, and
 * should not cost a channel on every reconnect.
 */
import b4a from 'b4a'
import { hash } from '../crypto'
import { writeU64 } from '../uint-le'

/** The core is in repair mode (tree roots missing): a peer can heal it. */
export const STATE_REPAIR = 1

/** Bytes of the discovery key an id starts with. */
export const PREFIX_BYTES = 16

export interface CoreState {
  fork: number
  length: number
  /** Blocks held. */
  held: number
  flags: number
}

export const EMPTY_STATE: Readonly<CoreState> = Object.freeze({ fork: 0, length: 0, held: 0, flags: 0 })

export function sameState (a: CoreState, b: CoreState): boolean {
  return a.fork === b.fork && a.length === b.length && a.held === b.held && a.flags === b.flags
}

/**
 * The reconciliation id of `state` of the core `key` (with discovery key
 * `discoveryKey`). `full`: the store keeps full replicas, so what is held counts.
 */
export function stateId (key: Uint8Array, discoveryKey: Uint8Array, state: CoreState, full: boolean): Uint8Array {
  const fields = new Uint8Array(32)
  writeU64(fields, 0, state.fork)
  writeU64(fields, 8, state.length)
  writeU64(fields, 16, full ? state.held : 0)
  writeU64(fields, 24, state.flags)
  const id = b4a.allocUnsafe(32)
  id.set(discoveryKey.subarray(0, PREFIX_BYTES), 0)
  id.set(hash([key, fields]).subarray(0, 32 - PREFIX_BYTES), PREFIX_BYTES)
  return id
}

/**
 * The id both sides put in place of a core's id while they settle that core
 * directly (it was in one side's list of changes): equal on both sides
 * whatever each holds, so reconciliation looks only at the other cores.
 */
export function placeholderId (discoveryKey: Uint8Array): Uint8Array {
  const id = b4a.alloc(32)
  id.set(discoveryKey.subarray(0, PREFIX_BYTES), 0)
  return id
}

/** The map key of an id's (or a discovery key's) prefix. */
export function prefixOf (idOrDiscoveryKey: Uint8Array): string {
  return b4a.toString(idOrDiscoveryKey.subarray(0, PREFIX_BYTES) as Buffer, 'hex')
}
