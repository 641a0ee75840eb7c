/**
 * What the one-sided path (subset-flow.ts) and the coded cells
 * (symbols-flow.ts) read of their session: the two sets as the cells see
 * them (after the one-sided path, the smaller side counted with what it
 * learned), the session's key, what it learned, and its limits.
 */
import type { IdSink } from './bulk'
import type { SymbolTable } from './coded-symbols'
import type { Sum64 } from './fingerprint'
import type { KeyedHash } from './hash'
import type { IdBuffer } from './ids'
import type { TreeData } from './tree-data'

export interface FlowContext extends IdSink {
  readonly tree: TreeData
  readonly symbols: SymbolTable
  readonly hasher: KeyedHash
  readonly myCount: number
  readonly theirCount: number
  readonly myFp: Sum64
  readonly theirFp: Sum64
  /** Their hello's 16 estimator buckets (modulo 16). */
  readonly theirEst1: readonly number[]
  /** The ids learned so far. */
  readonly learned: IdBuffer
  /** The estimated difference the cells were sized for. */
  readonly estimate: number
  /** The most cells either side offers. */
  readonly limit: number
  readonly maxLearned: number
  /** Most ids we accept in one message, and the remote does. */
  readonly recvLimit: number
  readonly peerLimit: number
}
