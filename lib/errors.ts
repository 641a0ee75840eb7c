/**
 * Coded errors. They are instances of `hypercore-errors`' class, the one
 * Hypercore 11 throws, with the same codes, so code written against Hypercore
 * 11 that branches on `err.code` (or checks the class) keeps working. Two
 * codes are ours: STORAGE_CORRUPT (bytes on disk that do not check out) and
 * INVALID_MESSAGE (bytes from a peer that do not decode).
 */
import HypercoreErrorClass from 'hypercore-errors'

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
  | 'SNAPSHOT_NOT_AVAILABLE'
  | 'REQUEST_CANCELLED'
  | 'REQUEST_TIMEOUT'
  | 'SESSION_NOT_WRITABLE'
  | 'SESSION_CLOSED'
  | 'SESSION_MOVED'
  | 'WRITE_FAILED'
  | 'DECODING_ERROR'

/** An `Error` with a stable `code` to branch on: `hypercore-errors`' class. */
export interface HypercoreError extends Error {
  readonly code: ErrorCode
  readonly discoveryKey: Uint8Array | null
  /** Set when the operation failed for want of this tree node (it can be fetched and repaired). */
  missingNode?: number
}

/** The class itself, for `instanceof` checks (the same one `require('hypercore-errors')` gives). */
export const HypercoreError = HypercoreErrorClass as unknown as {
  new (msg: string, code: ErrorCode, fn?: Function, discoveryKey?: Uint8Array | null): HypercoreError
  prototype: HypercoreError
}

function factory (code: ErrorCode, fallback: string) {
  const make = (msg: string = fallback, discoveryKey: Uint8Array | null = null): HypercoreError =>
    new HypercoreError(msg, code, make, discoveryKey)
  return make
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
/** A snapshot cannot give a block: it was truncated away, or lies past the snapshot. */
export const SNAPSHOT_NOT_AVAILABLE = factory('SNAPSHOT_NOT_AVAILABLE', 'Snapshot is not available')
export const REQUEST_CANCELLED = factory('REQUEST_CANCELLED', 'Request was cancelled')
export const REQUEST_TIMEOUT = factory('REQUEST_TIMEOUT', 'Request timed out')
export const SESSION_NOT_WRITABLE = factory('SESSION_NOT_WRITABLE', 'Session is not writable')
export const SESSION_CLOSED = factory('SESSION_CLOSED', 'Session is closed')
export const SESSION_MOVED = factory('SESSION_MOVED', 'Session moved')
export const WRITE_FAILED = factory('WRITE_FAILED', 'Write to storage failed')
/** A block that the value encoding cannot decode. */
export const DECODING_ERROR = factory('DECODING_ERROR', 'Decoding error')

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

/** True when `err` is a coded Hypercore error and carries `code`. */
export function isCoded (err: unknown, code?: ErrorCode): err is HypercoreError {
  return err instanceof HypercoreError && (code === undefined || err.code === code)
}

/** A coded error's message without the "CODE: " prefix it reads with (for a line that names the code apart). */
export function plainMessage (err: { code: string, message: string }): string {
  return err.message.startsWith(err.code + ': ') ? err.message.slice(err.code.length + 2) : err.message
}
