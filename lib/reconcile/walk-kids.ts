/**
 * The children of a prefix as one side of the tree walk reports them: per
 * hex digit a count and a keyed fingerprint, with path compression (all
 * the side's ids under the prefix share a longer one: the children of that
 * come instead) and a heavy path (a child holding ¾ of the ids comes with
 * its own children), so clustered ids cost no extra round trips.
 *
 * On the wire: a bitmap of the non-empty children, then for each but the
 * last its fingerprint and its count (zigzag, relative to an even split of
 * the parent's); the last one's count and fingerprint are what is left of
 * the parent's (the reader knows both).
 */
import { INVALID_MESSAGE } from '../errors'
import { MAX_DEPTH, nibbleAt, childPrefix } from './ids'
import type { Reader, Writer } from './wire'

/** A prefix with at most this many ids on both sides is settled by exchanging keyed hashes of them. */
export const HASH_MAX = 24

export class Kids {
  readonly c = new Float64Array(16)
  readonly lo = new Uint32Array(16)
  readonly hi = new Uint32Array(16)
  /** Path compression: the side's ids all share `qp` (`q` digits), and these are the children of that; null: of the parent itself. */
  qp: Uint8Array | null = null
  q = 0
  /** Heavy path: the child holding most of the ids (-1: none) and its own children, sent along. */
  hv = -1
  heavy: Kids | null = null
}

/** The child of a node of `pc` ids worth descending into at once: ≥ 3/4 of the ids, too many to hash. */
export function heavyChild (kids: Kids, pc: number): number {
  if (kids.q + 1 >= MAX_DEPTH - 1) return -1
  for (let v = 0; v < 16; v++) {
    const c = kids.c[v]!
    if (c > HASH_MAX && c * 4 >= pc * 3) return v
  }
  return -1
}

function zigzag (d: number): number {
  return d >= 0 ? d * 2 : -d * 2 - 1
}

function unzigzag (z: number): number {
  return z % 2 === 0 ? z / 2 : -(z + 1) / 2
}

function popcount16 (x: number): number {
  let n = 0
  for (; x !== 0; x &= x - 1) n++
  return n
}

/** Writes `kids` of a parent at `depth` holding `pc` ids (whose count and fingerprint the reader knows). */
export function writeKids (w: Writer, kids: Kids, depth: number, pc: number): void {
  if (kids.q > depth) {
    // An empty bitmap for a non-empty parent: a span of shared digits follows.
    w.u16(0)
    const skip = kids.q - depth
    w.uint(skip)
    const packed = new Uint8Array((skip + 1) >>> 1)
    for (let i = 0; i < skip; i++) packed[i >>> 1] = packed[i >>> 1]! | (nibbleAt(kids.qp!, 0, depth + i) << ((i & 1) === 0 ? 4 : 0))
    w.fixed(packed)
  }
  let bitmap = 0
  let k = 0
  for (let v = 0; v < 16; v++) {
    if (kids.c[v]! > 0) {
      bitmap |= 1 << v
      k++
    }
  }
  w.u16(bitmap)
  if (k === 0) return
  const exp = Math.floor(pc / k)
  let seen = 0
  for (let v = 0; v < 16; v++) {
    if (kids.c[v] === 0) continue
    if (++seen === k) break
    w.fp(kids.lo[v]!, kids.hi[v]!)
    w.uint(zigzag(kids.c[v]! - exp))
  }
  if (kids.heavy !== null) writeKids(w, kids.heavy, kids.q + 1, kids.c[kids.hv]!)
}

/**
 * Reads children of a parent at `depth` holding `pc` ids with fingerprint
 * (plo, phi), with their path compression and heavy path.
 */
export function readKids (r: Reader, prefix: Uint8Array, depth: number, pc: number, plo: number, phi: number): Kids {
  const kids = new Kids()
  kids.q = depth
  let bitmap = r.u16()
  if (bitmap === 0 && pc > 0) {
    const skip = r.uint(MAX_DEPTH - 1 - depth)
    if (skip < 1 || pc < 2) throw INVALID_MESSAGE('Bad span')
    const packed = r.fixed((skip + 1) >>> 1)
    if ((skip & 1) === 1 && (packed[packed.length - 1]! & 0x0f) !== 0) throw INVALID_MESSAGE('Bad span padding')
    const qp = prefix.slice()
    for (let i = 0; i < skip; i++) {
      const d = depth + i
      const v = (packed[i >>> 1]! >>> ((i & 1) === 0 ? 4 : 0)) & 15
      const byte = d >>> 1
      qp[byte] = (d & 1) === 0 ? (v << 4) : ((qp[byte]! & 0xf0) | v)
    }
    kids.qp = qp
    kids.q = depth + skip
    bitmap = r.u16()
    if (bitmap === 0) throw INVALID_MESSAGE('Empty span')
  }
  const k = popcount16(bitmap)
  if ((pc === 0) !== (bitmap === 0)) throw INVALID_MESSAGE('Children do not match their parent')
  if (k === 0) return kids
  const exp = Math.floor(pc / k)
  let seen = 0
  let sum = 0
  let lo = 0
  let hi = 0
  const h = [0, 0]
  for (let v = 0; v < 16; v++) {
    if ((bitmap & (1 << v)) === 0) continue
    if (++seen < k) {
      r.fp(h)
      const cnt = exp + unzigzag(r.uint(0x3ffffffff))
      sum += cnt
      if (cnt < 1 || sum > pc - (k - seen)) throw INVALID_MESSAGE('Children counts do not add up')
      kids.c[v] = cnt
      kids.lo[v] = h[0]!
      kids.hi[v] = h[1]!
      const s = (lo + h[0]!) >>> 0
      hi = (hi + h[1]! + (s < h[0]! ? 1 : 0)) >>> 0
      lo = s
    } else {
      kids.c[v] = pc - sum
      kids.lo[v] = (plo - lo) >>> 0
      kids.hi[v] = (phi - hi - (plo < lo ? 1 : 0)) >>> 0
    }
  }
  const hv = heavyChild(kids, pc)
  if (hv >= 0) {
    kids.hv = hv
    kids.heavy = readKids(r, childPrefix(kids.qp ?? prefix, kids.q, hv), kids.q + 1, kids.c[hv]!, kids.lo[hv]!, kids.hi[hv]!)
  }
  return kids
}
