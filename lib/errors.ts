/**
 * Coded errors, named as `hypercore-errors` names them, so code written against
 * Hypercore 11 that branches on `err.code` keeps working.
 */

export type ErrorCode =
  | 'ERR_ASSERTION'
  | 'BAD_ARGUMENT'
  | 'STORAGE_EMPTY'
  | 'STORAGE_CONFLICT'
  | 'STORAGE_CORRUPT'
  | 'INVALID_SIGNATURE'
  | 'INVALID_CAPABILITY'
  | 'INVALID_CHECKSUM'
  | 'INVALID_OPERATION'
  | 'INVALID_PROOF'
  | 'INVALID_MESSAGE'
  | 'BLOCK_NOT_AVAILABLE'
  | 'REQUEST_CANCELLED'
  | 'REQUEST_TIMEOUT'
  | 'SNAPSHOT_NOT_AVAILABLE'
  | 'SESSION_NOT_WRITABLE'
  | 'SESSION_CLOSED'
  | 'WRITE_FAILED'

/** An `Error` with a stable `code` to branch on. */
export class HypercoreError extends Error {
  readonly code: ErrorCode
  /** Set when the operation failed for want of this tree node (it can be fetched and repaired). */
  missingNode?: number

  constructor (msg: string, code: ErrorCode) {
    super(`${code}: ${msg}`)
    this.code = code
  }

  override get name (): string {
    return 'HypercoreError'
  }
}

function factory (code: ErrorCode, fallback: string) {
  return (msg: string = fallback): HypercoreError => {
    const err = new HypercoreError(msg, code)
    Error.captureStackTrace?.(err, factory)
    return err
  }
}

/** Broken invariant or forbidden state (Hypercore uses `ERR_ASSERTION`). */
export const ASSERTION = factory('ERR_ASSERTION', 'Assertion failed')
export const BAD_ARGUMENT = factory('BAD_ARGUMENT', 'Bad argument')
export const STORAGE_EMPTY = factory('STORAGE_EMPTY', 'No Hypercore is stored here')
export const STORAGE_CONFLICT = factory('STORAGE_CONFLICT', 'Another Hypercore is stored here')
/** Bytes read from disk that do not decode or do not check out. */
export const STORAGE_CORRUPT = factory('STORAGE_CORRUPT', 'Storage is corrupt')
export const INVALID_SIGNATURE = factory('INVALID_SIGNATURE', 'Signature does not verify')
export const INVALID_CAPABILITY = factory('INVALID_CAPABILITY', 'Remote sent an invalid replication capability')
export const INVALID_CHECKSUM = factory('INVALID_CHECKSUM', 'Invalid checksum')
export const INVALID_OPERATION = factory('INVALID_OPERATION', 'Invalid operation')
export const INVALID_PROOF = factory('INVALID_PROOF', 'Proof not verifiable')
/** Bytes from a peer that do not decode as the message they claim to be. */
export const INVALID_MESSAGE = factory('INVALID_MESSAGE', 'Malformed message')
export const BLOCK_NOT_AVAILABLE = factory('BLOCK_NOT_AVAILABLE', 'Block is not available')
export const REQUEST_CANCELLED = factory('REQUEST_CANCELLED', 'Request was cancelled')
export const REQUEST_TIMEOUT = factory('REQUEST_TIMEOUT', 'Request timed out')
/** A block that was in the tree when asked for was truncated away before it came (Hypercore 11's answer). */
export const SNAPSHOT_NOT_AVAILABLE = factory('SNAPSHOT_NOT_AVAILABLE', 'Snapshot is not available')
export const SESSION_NOT_WRITABLE = factory('SESSION_NOT_WRITABLE', 'Session is not writable')
export const SESSION_CLOSED = factory('SESSION_CLOSED', 'Session is closed')
export const WRITE_FAILED = factory('WRITE_FAILED', 'Write to storage failed')

/** INVALID_OPERATION for a tree node that is not on disk, carrying its index. */
export function MISSING_NODE (index: number): HypercoreError {
  const err = INVALID_OPERATION('Expected tree node ' + index + ', it is missing')
  err.missingNode = index
  return err
}

/** The tree node whose absence caused `err`, if that is what happened. */
export function missingNodeOf (err: unknown): number | null {
  return err instanceof HypercoreError && typeof err.missingNode === 'number' ? err.missingNode : null
}

/** True when `err` is one of ours and carries `code`. */
export function isCoded (err: unknown, code?: ErrorCode): err is HypercoreError {
  return err instanceof HypercoreError && (code === undefined || err.code === code)
}
