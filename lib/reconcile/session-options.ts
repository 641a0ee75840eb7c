/**
 * What a session can be told, and the settings it runs with: every option
 * clamped to what the protocol allows.
 */
import { BAD_ARGUMENT } from '../errors'
import { MAX_BURST_COVER } from './burst'
import { DEFAULT_MAX_IDS_PER_MESSAGE, MAX_IDS_PER_MESSAGE_LIMIT } from './hello'
import { SINCE_HARD_MAX } from './since'

const DEFAULT_SINCE_LIMIT = 1024
const DEFAULT_MAX_LEARNED = 1 << 22
const DEFAULT_MAX_OPEN = 1 << 18

export type ReconcileMode = 'symbols' | 'subset' | 'tree' | 'since' | 'bulk'

export interface SessionOptions {
  /** Who the remote is, for the since path: uses and needs `set.markSynced(peer)` from a previous sync. */
  peer?: string
  /** Most ids sent on the since path (default 1024); more added since falls back to the other paths. */
  sinceLimit?: number
  /** Most ids this side accepts in one message, announced to the remote (default 262144). */
  maxIdsPerMessage?: number
  /** Most ids this session learns or holds for the remote (default 2^22). */
  maxLearned?: number
  /** Most open prefixes at once in the tree walk (default 2^18). */
  maxOpen?: number
  /**
   * A secret both sides already share (e.g. their Noise handshake hash):
   * keys the fingerprints, saves a round trip, and lets the set keep the
   * fingerprint up to date between sessions. Both sides give one or neither.
   */
  sessionKey?: Uint8Array
  /**
   * Follow the hello with coded cells for a difference of up to about this
   * many ids (at most 4096), sent before hearing from the remote, so such a
   * difference is known after one flight (the remote) and two (this side).
   * Costs those cells' bytes whatever the difference (about 45 B per id
   * covered). Needs a `sessionKey`; only one side of a session may burst,
   * and the remote needs no option to take one. `burst()` gives them.
   */
  burst?: number
}

export interface SessionSettings {
  peer: string | null
  sinceLimit: number
  recvLimit: number
  maxLearned: number
  maxOpen: number
  /** The difference a burst covers (0: none). */
  cover: number
  secret: Uint8Array | null
}

export function sessionSettings (opts: SessionOptions): SessionSettings {
  if (opts.sessionKey !== undefined && !(opts.sessionKey instanceof Uint8Array)) throw BAD_ARGUMENT('sessionKey is bytes')
  return {
    peer: opts.peer ?? null,
    sinceLimit: Math.min(Math.max(0, opts.sinceLimit ?? DEFAULT_SINCE_LIMIT), SINCE_HARD_MAX),
    recvLimit: Math.min(Math.max(1, opts.maxIdsPerMessage ?? DEFAULT_MAX_IDS_PER_MESSAGE), MAX_IDS_PER_MESSAGE_LIMIT),
    maxLearned: Math.max(0, opts.maxLearned ?? DEFAULT_MAX_LEARNED),
    maxOpen: Math.max(16, opts.maxOpen ?? DEFAULT_MAX_OPEN),
    cover: Math.min(Math.max(0, Math.floor(opts.burst ?? 0)), MAX_BURST_COVER),
    secret: opts.sessionKey ?? null
  }
}
