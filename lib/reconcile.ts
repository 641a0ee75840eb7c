/**
 * Set reconciliation for anti-entropy: two parties holding sets of 32-byte
 * ids learn each other's missing ids with bandwidth close to the ids that
 * differ, not the size of the sets. lib/reconcile/set.ts holds the set
 * (prefix tree, cached coded symbols, keyed fingerprints, views, since
 * bookkeeping); lib/reconcile/session.ts the message flow.
 */
export { ReconcileSet } from './reconcile/set'
export type { SyncPoint, ViewPredicate, ReconcileSetOptions } from './reconcile/set'
export { TreeData } from './reconcile/tree-data'
export type { NodeSummary } from './reconcile/tree-data'
export { ID_BYTES, MAX_DEPTH } from './reconcile/ids'
export { LEAF_MAX, MERGE_AT } from './reconcile/prefix-tree'
export { Session } from './reconcile/session'
export type { SessionOptions, ReconcileMode } from './reconcile/session'
export { sync, createSession } from './reconcile/sync'
export type { SyncOptions, SyncResult } from './reconcile/sync'
export { LIST_MAX, COLD_RATIO } from './reconcile/walk'
export { HASH_MAX } from './reconcile/walk-kids'
export { KeyedHash, deriveSessionKey, deriveSharedKey, NONCE_BYTES } from './reconcile/hash'
export { CellWalk, encodeIds, cellsFor, MAX_CELLS } from './reconcile/coded-symbols'
export type { SymbolTable } from './reconcile/coded-symbols'
