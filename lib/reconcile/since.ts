/**
 * The since path: two sets that were equal at their last sync and since
 * only gained ids. Each side's hello carries the ids it added since (the
 * set's insert log, checked against the summary it had then, so a delete
 * or a log overrun withdraws the offer); if A without its additions and B
 * without its own are the same set — equal counts and keyed fingerprints —
 * each lacks exactly the other's additions it does not hold. With a shared
 * key both fingerprints are in the hellos: one flight.
 *
 * Otherwise the session goes on as if no list had been offered.
 */
import { INVALID_MESSAGE } from '../errors'
import { ID_BYTES, compareAt } from './ids'
import type { KeyedHash } from './hash'
import { sumHashes, type Sum64 } from './fingerprint'
import type { Reader, Writer } from './wire'

/** Most ids a since list may carry. */
export const SINCE_HARD_MAX = 65536

export function writeSince (w: Writer, ids: Uint8Array): void {
  w.uint(ids.byteLength / ID_BYTES)
  w.fixed(ids)
}

/** A since list: sorted, distinct ids. */
export function readSince (r: Reader): Uint8Array {
  const k = r.uint(SINCE_HARD_MAX)
  const ids = r.fixed(k * ID_BYTES)
  for (let i = 1; i < k; i++) {
    if (compareAt(ids, (i - 1) * ID_BYTES, ids, i * ID_BYTES) >= 0) throw INVALID_MESSAGE('Since ids not sorted')
  }
  return ids
}

/** Whether two sets, each less its since list, are the same set. */
export function sinceMatches (h: KeyedHash, myCount: number, myFp: Sum64, mySince: Uint8Array, theirCount: number, theirFp: Sum64, theirSince: Uint8Array): boolean {
  const mine = mySince.byteLength / ID_BYTES
  const theirs = theirSince.byteLength / ID_BYTES
  if (myCount - mine !== theirCount - theirs) return false
  const a: Sum64 = [myFp[0], myFp[1]]
  const b: Sum64 = [theirFp[0], theirFp[1]]
  sumHashes(h, mySince, mine, a, -1)
  sumHashes(h, theirSince, theirs, b, -1)
  return a[0] === b[0] && a[1] === b[1]
}
