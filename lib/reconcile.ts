/**
 * Set reconciliation for anti-entropy: two parties holding sets of 32-byte
 * ids learn each other's missing ids with bandwidth that grows with the
 * difference, not the size of the sets. See lib/reconcile/session.ts for
 * the protocol and lib/reconcile/tree.ts for the set.
 */
export { ReconcileSet, TreeData, ID_BYTES, MAX_DEPTH, LEAF_MAX, MERGE_AT } from './reconcile/tree'
export type { NodeSummary, SyncPoint, ViewPredicate, ReconcileSetOptions } from './reconcile/tree'
export { Session, createSession, sync, L1_MIN, LIST_MAX, COLD_RATIO, HASH_MAX } from './reconcile/session'
export type { SessionOptions, SyncOptions, SyncResult, ReconcileMode } from './reconcile/session'
export { KeyedHash, deriveSessionKey, NONCE_BYTES } from './reconcile/hash'
