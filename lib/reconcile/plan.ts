/**
 * How many cells to send: estimating the size of the difference from the
 * counts, and sizing batches of cells from the estimate.
 *
 * Each side keeps a histogram of its ids by checksum; each differing id
 * moves one bucket of the difference of two histograms by ±1, so the
 * variance of those differences (around their mean, the count difference
 * spread evenly) estimates the number of differing ids. The hello carries
 * 16 buckets modulo 16 (8 bytes: good to ±35% up to ~100 differences); when
 * that saturates, both sides exchange 128 buckets modulo 256 (±12%, up to
 * ~200,000).
 *
 * Both sides compute the plan from the same numbers, so the batch sizes
 * never travel: only a request for more, with its new sizes, does.
 */
import { INVALID_MESSAGE } from '../errors'
import { EST1_BUCKETS, EST2_BUCKETS } from './coded-symbols'
import type { Reader, Writer } from './wire'

/** Above this the 16-bucket estimate is unreliable (its buckets wrap). */
const EST1_MAX = 96
/** ... and the 128-bucket one. */
const EST2_MAX = 200_000

/** Relative error of the two estimates (√(2 / (buckets − 1))). */
export const EST1_ERROR = 0.37
export const EST2_ERROR = 0.125
/** How many standard errors of the estimate the first batch covers. */
const MARGIN = 0.3

/** Requests for more cells before falling back to the tree walk. */
export const MAX_REQUESTS = 6

export function writeEst1 (w: Writer, hist: Int32Array): void {
  for (let v = 0; v < EST1_BUCKETS; v += 2) w.u8(((hist[v]! & 15) << 4) | (hist[v + 1]! & 15))
}

export function readEst1 (r: Reader): number[] {
  const out = new Array<number>(EST1_BUCKETS)
  for (let v = 0; v < EST1_BUCKETS; v += 2) {
    const b = r.u8()
    out[v] = b >>> 4
    out[v + 1] = b & 15
  }
  return out
}

export function writeEst2 (w: Writer, hist: Int32Array): void {
  for (let v = 0; v < EST2_BUCKETS; v++) w.u8(hist[v]! & 255)
}

export function readEst2 (r: Reader): number[] {
  const out = new Array<number>(EST2_BUCKETS)
  for (let v = 0; v < EST2_BUCKETS; v++) out[v] = r.u8()
  return out
}

/**
 * Estimated ids in the symmetric difference from our histogram, theirs
 * (each bucket modulo `mod`) and their count minus ours; null when the
 * buckets have wrapped too often to tell (the estimate is above `max`).
 */
export function estimate (mine: ArrayLike<number>, theirs: ArrayLike<number>, mod: number, dn: number, max = mod === 16 ? EST1_MAX : EST2_MAX): number | null {
  const B = theirs.length
  const mean = dn / B
  let sum = 0
  for (let v = 0; v < B; v++) {
    const raw = (((theirs[v]! - mine[v]!) % mod) + mod) % mod
    const x = raw - mean
    const t = x - mod * Math.round(x / mod)
    sum += t * t
  }
  const d = sum * B / (B - 1)
  if (d > max) return null
  // At least the count difference, and of its parity; two sets that differ at all differ in 1 or more.
  let e = Math.max(Math.abs(dn), Math.round(d), 1)
  if ((e - Math.abs(dn)) % 2 !== 0) e++
  return e
}

/** A batch: cells [0, S) short and [0, L) long in all (what was sent before included). */
export interface Batch { S: number, L: number }

/** Short cells that decode `d` differences 9 times in 10 (Rateless IBLT's overhead, larger for small d). */
export function shortCells (d: number): number {
  return d <= 1 ? 1 : Math.ceil(d * (1.36 + 2.8 / Math.sqrt(d)) + 1)
}

/**
 * Long cells that determine `u` ids 9 times in 10 (inactivation decoding;
 * the cells' rows are sparse, and past the first few hundred some hold
 * none of the ids, hence the 8% more).
 */
export function longCells (u: number): number {
  return u <= 1 ? u : Math.ceil(1.08 * u + 2 + 1.2 * Math.sqrt(u))
}

/**
 * The first batch for `d` estimated differences with relative error
 * `error`, `dn` = the encoder's count minus the decoder's (negative when
 * the encoder is the side that sent its cells first, a burst, and holds
 * fewer): enough for the estimate plus `MARGIN` errors, or for exactly
 * |dn| when the estimate is within two errors of it. Long cells are for
 * the ids the decoder lacks, about (d + dn) / 2 of them.
 */
export function firstBatch (d: number, dn: number, error: number): Batch {
  const adn = Math.abs(dn)
  // Counts that differ by about the whole estimate: the difference is most likely all on one side, and then exactly |dn|.
  const oneSided = adn > 0 && d <= adn * (1 + 2 * error)
  const hi = d <= 1 ? d : oneSided ? adn : Math.max(adn, d * (1 + MARGIN * error))
  const S = shortCells(Math.ceil(hi))
  const L = longCells(Math.max(0, Math.ceil((hi + dn) / 2)))
  return { S, L: Math.min(L, S) }
}

/**
 * The next batch after one that did not decode: peeling stalled after
 * `decoded` ids with about `left` to go (short), or the last bytes of `u`
 * ids are not determined yet (long).
 */
export function nextBatch (prev: Batch, d: number, dn: number, stalled: { decoded: number, left: number } | { u: number }): Batch {
  if ('u' in stalled) {
    const L = Math.max(Math.ceil(prev.L * 1.05) + 8, longCells(stalled.u) + 8)
    return { S: Math.max(prev.S, L), L }
  }
  // Peeling stalled: there are more differences than the cells could take.
  // The cells still busy tell about how many; never plan for fewer than the cells held.
  const dl = Math.max(d, stalled.decoded + stalled.left, stalled.decoded + 2, Math.ceil(prev.S / 1.6))
  const S = Math.max(Math.ceil(prev.S * 1.2), prev.S + 4, shortCells(Math.ceil(dl * 1.1)))
  const L = Math.min(S, Math.max(prev.L, longCells(Math.max(0, Math.ceil((dl * 1.1 + dn) / 2)))))
  return { S, L }
}

export function writeBatch (w: Writer, b: Batch): void {
  w.uint(b.S)
  w.uint(b.L)
}

/** A requested batch: more than `prev`, within `limit` cells. */
export function readBatch (r: Reader, prev: Batch, limit: number): Batch {
  const S = r.uint(limit)
  const L = r.uint(S)
  if (S < prev.S || L < prev.L || (S === prev.S && L === prev.L)) throw INVALID_MESSAGE('A request for no more cells')
  return { S, L }
}
