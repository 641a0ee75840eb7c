/**
 * nomadcore: a Hypercore 11 compatible append-only log that repairs itself.
 *
 * ```ts
 * import Hypercore from 'nomadcore'
 * const core = new Hypercore('./my-core')
 * await core.append('hello')
 * ```
 */
import { Hypercore } from './lib/hypercore'
import * as errors from './lib/errors'
import * as crypto from './lib/crypto'
import * as reconcile from './lib/reconcile'
import { Store } from './lib/store'
import { importStore } from './lib/import'

export type {
  HypercoreOptions, GetOptions, ReadStreamOptions, Info, VerifiedTree,
  KeyPair, Proof, ProofRequest, ValueEncoding, Manifest, StorageFactory
} from './lib/hypercore'
export type { TreeNode } from './lib/tree-node'
export type { EncryptionProvider, EncryptionCore, EncryptionOptions, EncryptionKeyOptions } from './lib/encryption'
export type { ErrorCode, HypercoreError } from './lib/errors'
export type { StoreOptions, StoreGetOptions, RepairSummary, StoreStats, ReconcileStats, CoreWatcher } from './lib/store'
export type { ImportOptions, ImportProgress, ImportSummary, ImportedCore, FailedCore, CoreRef } from './lib/import'

export { Hypercore, Store, errors, crypto, reconcile, importStore }
export default Hypercore

// `require('nomadcore')` is the class itself, as `require('hypercore')` is.
module.exports = Object.assign(Hypercore, { Hypercore, default: Hypercore, Store, errors, crypto, reconcile, importStore })
