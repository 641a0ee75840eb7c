/**
 * Ids as reconciliation sees them: 32 bytes, compared bytewise, addressed
 * by hex digit (the prefix tree splits on one digit per level). Small pure
 * helpers over ids stored back to back in one buffer, a growable buffer of
 * ids, and the one-pass sort that bulk builds start from.
 */
import { BAD_ARGUMENT } from '../errors'

export const ID_BYTES = 32
/** Hex digits in an id: the deepest a prefix can be. */
export const MAX_DEPTH = 64

/** The k-th hex digit of the id stored at `buf[at..]`. */
export function nibbleAt (buf: Uint8Array, at: number, depth: number): number {
  const b = buf[at + (depth >>> 1)]!
  return (depth & 1) === 0 ? b >>> 4 : b & 15
}

/** Compares the ids at a[ai..] and b[bi..], bytewise. */
export function compareAt (a: Uint8Array, ai: number, b: Uint8Array, bi: number): number {
  for (let i = 0; i < ID_BYTES; i++) {
    const d = a[ai + i]! - b[bi + i]!
    if (d !== 0) return d
  }
  return 0
}

/** Whether the first `depth` digits of the id at buf[at..] are those of `prefix`. */
export function hasPrefix (buf: Uint8Array, at: number, prefix: Uint8Array, depth: number): boolean {
  const whole = depth >>> 1
  for (let i = 0; i < whole; i++) if (buf[at + i] !== prefix[i]) return false
  if ((depth & 1) === 1 && (buf[at + whole]! >>> 4) !== (prefix[whole]! >>> 4)) return false
  return true
}

/** Whether the first `depth` digits of the id at buf[at..] sort before (<0), as (0) or after (>0) `prefix`. */
export function comparePrefix (buf: Uint8Array, at: number, prefix: Uint8Array, depth: number): number {
  const whole = depth >>> 1
  for (let i = 0; i < whole; i++) {
    const d = buf[at + i]! - prefix[i]!
    if (d !== 0) return d
  }
  if ((depth & 1) === 1) return (buf[at + whole]! >>> 4) - (prefix[whole]! >>> 4)
  return 0
}

/** `prefix` (of `depth` digits) extended by the digit `v`. */
export function childPrefix (prefix: Uint8Array, depth: number, v: number): Uint8Array {
  const p = prefix.slice()
  const byte = depth >>> 1
  p[byte] = (depth & 1) === 0 ? (v << 4) : ((p[byte]! & 0xf0) | v)
  return p
}

export function checkId (id: unknown): asserts id is Uint8Array {
  if (!(id instanceof Uint8Array) || id.byteLength !== ID_BYTES) throw BAD_ARGUMENT('An id is a Uint8Array of 32 bytes')
}

/** Binary search of the sorted ids `buf` (`count` of them): index of `id`, or ~(insertion point). */
export function searchLeaf (buf: Uint8Array, count: number, id: Uint8Array, at: number): number {
  let lo = 0
  let hi = count - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const c = compareAt(buf, mid * ID_BYTES, id, at)
    if (c < 0) lo = mid + 1
    else if (c > 0) hi = mid - 1
    else return mid
  }
  return ~lo
}

/** The 32-bit words of an aligned buffer, in memory order. */
export function words (buf: Uint8Array): Int32Array {
  return new Int32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2)
}

/** Ids back to back in a growable buffer. */
export class IdBuffer {
  buf: Uint8Array
  n = 0

  constructor (cap = 16) {
    this.buf = new Uint8Array(Math.max(1, cap) * ID_BYTES)
  }

  push (src: Uint8Array, at: number): void {
    if ((this.n + 1) * ID_BYTES > this.buf.byteLength) {
      const grown = new Uint8Array(this.buf.byteLength * 2)
      grown.set(this.buf)
      this.buf = grown
    }
    this.buf.set(src.subarray(at, at + ID_BYTES), this.n * ID_BYTES)
    this.n++
  }

  /** For sorted contents: whether the id at src[at..] is in. */
  includes (src: Uint8Array, at: number): boolean {
    return this.n > 0 && searchLeaf(this.buf, this.n, src, at) >= 0
  }

  /** The ids as fresh copies. */
  list (): Uint8Array[] {
    const out = new Array<Uint8Array>(this.n)
    for (let i = 0; i < out.length; i++) out[i] = this.buf.slice(i * ID_BYTES, (i + 1) * ID_BYTES)
    return out
  }
}

/**
 * Sorts `n` ids stored back to back in `flat` and drops duplicates.
 * Returns the sorted ids (a new buffer) and, for each, its index in `flat`.
 */
export function sortIds (flat: Uint8Array, n: number): { sorted: Uint8Array, order: Uint32Array, count: number } {
  if (n < 4096) return sortFew(flat, n)
  // The first 4 bytes as a number, radix sorted 16 bits at a time (stable), then runs of equal keys by the rest.
  const key = new Uint32Array(n)
  for (let i = 0, a = 0; i < n; i++, a += ID_BYTES) key[i] = ((flat[a]! << 24) | (flat[a + 1]! << 16) | (flat[a + 2]! << 8) | flat[a + 3]!) >>> 0
  let perm = new Uint32Array(n)
  let tmp = new Uint32Array(n)
  for (let i = 0; i < n; i++) perm[i] = i
  const counts = new Uint32Array(65537)
  for (const shift of [0, 16]) {
    counts.fill(0)
    for (let i = 0; i < n; i++) counts[((key[i]! >>> shift) & 0xffff) + 1]!++
    for (let k = 0; k < 65536; k++) counts[k + 1]! += counts[k]!
    for (let j = 0; j < n; j++) {
      const i = perm[j]!
      tmp[counts[(key[i]! >>> shift) & 0xffff]!++] = i
    }
    const swap = perm
    perm = tmp
    tmp = swap
  }
  for (let s = 0; s < n;) {
    let e = s + 1
    while (e < n && key[perm[e]!] === key[perm[s]!]) e++
    if (e - s > 1) sortSegment(flat, perm, tmp, s, e, 4)
    s = e
  }
  if ((flat.byteOffset & 3) !== 0) flat = flat.slice()
  const flat32 = words(flat)
  const out = new Uint8Array(n * ID_BYTES)
  const out32 = words(out)
  const order = new Uint32Array(n)
  let m = 0
  for (let j = 0; j < n; j++) {
    const p = perm[j]!
    if (m > 0 && key[p] === key[order[m - 1]!] && compareAt(flat, p * 32, out, (m - 1) * 32) === 0) continue
    const src = p * 8
    const dst = m * 8
    for (let k = 0; k < 8; k++) out32[dst + k] = flat32[src + k]!
    order[m++] = p
  }
  return { sorted: m === n ? out : out.subarray(0, m * ID_BYTES), order: order.subarray(0, m), count: m }
}

/** `sortIds` for a few ids: a comparison sort (the counting sort's 65,536 buckets would dominate). */
function sortFew (flat: Uint8Array, n: number): { sorted: Uint8Array, order: Uint32Array, count: number } {
  const perm = Array.from({ length: n }, (_, i) => i).sort((a, b) => compareAt(flat, a * ID_BYTES, flat, b * ID_BYTES))
  const out = new Uint8Array(n * ID_BYTES)
  const order = new Uint32Array(n)
  let m = 0
  for (const p of perm) {
    if (m > 0 && compareAt(flat, p * ID_BYTES, out, (m - 1) * ID_BYTES) === 0) continue
    out.set(flat.subarray(p * ID_BYTES, (p + 1) * ID_BYTES), m * ID_BYTES)
    order[m++] = p
  }
  return { sorted: m === n ? out : out.subarray(0, m * ID_BYTES), order: order.subarray(0, m), count: m }
}

function sortSegment (flat: Uint8Array, perm: Uint32Array, tmp: Uint32Array, s: number, e: number, byte: number): void {
  if (e - s <= 24 || byte >= 32) {
    for (let i = s + 1; i < e; i++) {
      const x = perm[i]!
      let j = i - 1
      while (j >= s && compareFrom(flat, perm[j]! * 32, x * 32, byte) > 0) {
        perm[j + 1] = perm[j]!
        j--
      }
      perm[j + 1] = x
    }
    return
  }
  const counts = new Uint32Array(257)
  for (let i = s; i < e; i++) counts[flat[perm[i]! * 32 + byte]! + 1]!++
  for (let k = 0; k < 256; k++) counts[k + 1]! += counts[k]!
  const fill = counts.slice(0, 256)
  for (let i = s; i < e; i++) {
    const p = perm[i]!
    tmp[s + fill[flat[p * 32 + byte]!]!++] = p
  }
  perm.set(tmp.subarray(s, e), s)
  for (let k = 0; k < 256; k++) {
    const a = s + counts[k]!
    const b = s + counts[k + 1]!
    if (b - a > 1) sortSegment(flat, perm, tmp, a, b, byte + 1)
  }
}

function compareFrom (flat: Uint8Array, a: number, b: number, from: number): number {
  for (let i = from; i < ID_BYTES; i++) {
    const d = flat[a + i]! - flat[b + i]!
    if (d !== 0) return d
  }
  return 0
}
