/**
 * The one-sided path: when one set holds the other plus `dn` more ids, the
 * smaller side tells the larger which of its ids it lacks in about two
 * bytes a missing id, and then receives only those — close to the floor of
 * 32 bytes an id, where coded cells cost 40 % more.
 *
 * Both sides split their ids into 2^bits buckets by the ids' first bits
 * and exchange each bucket's count modulo 16; the differences say how many
 * ids the smaller side lacks in each bucket (k). The smaller side then
 * sends, for each bucket with k > 0, the first k power sums of its ids'
 * short hashes in a prime field. The larger side subtracts them from its
 * own, which leaves the power sums of the k missing hashes; Newton's
 * identities turn those into the polynomial whose roots they are, and
 * every id of the bucket whose hash is a root is sent. A root that is not
 * missing (two hashes that collide) costs one id sent in vain, which the
 * receiver drops as one it has; the receiver's keyed fingerprint confirms
 * the whole result before the session ends.
 *
 * When the numbers fit no subset (the smaller side has ids of its own) the
 * counts do not add up to `dn`, or a bucket has fewer roots than k: both
 * are found before any id is sent, and the session takes another path.
 */
import { INVALID_MESSAGE } from '../errors'
import { ID_BYTES, IdBuffer } from './ids'
import type { TreeData } from './tree-data'
import type { Reader, Writer } from './wire'

/** Below this many missing ids the coded cells' extra round is not worth saving bytes on. */
export const SUBSET_MIN = 64
/** The most buckets (their counts take half a byte each, both ways). */
const MAX_BITS = 20
/** Missing ids a bucket is planned for at most: a count difference of 16 or more would wrap. */
const MAX_PER_BUCKET = 3
export const SUBSET_MAX = MAX_PER_BUCKET << MAX_BITS

/** Prime fields for the power sums: the largest primes below 2^16 and 2^24 (products stay exact in a double). */
const P16 = 65521
const FIELDS: ReadonlyArray<{ bytes: 2 | 3, p: number }> = [
  { bytes: 2, p: P16 },
  { bytes: 3, p: 16777213 }
]

/** a·b mod 65521 in 32-bit integers (2^16 ≡ 15): the hot loops' multiply, without a floating-point remainder. */
function mul16 (a: number, b: number): number {
  let t = Math.imul(a, b) >>> 0
  t = (t >>> 16) * 15 + (t & 0xffff)
  t = (t >>> 16) * 15 + (t & 0xffff)
  return t >= P16 ? t - P16 : t
}

function addMod (a: number, b: number, p: number): number {
  const s = a + b
  return s >= p ? s - p : s
}

/** The multiply of a plan's field. */
function mulOf (p: number): (a: number, b: number) => number {
  return p === P16 ? mul16 : (a, b) => (a * b) % p
}

export interface SubsetPlan {
  /** 2^bits buckets, by the ids' first bits. */
  bits: number
  /** Bytes of a power sum on the wire, and the field's prime. */
  bytes: 2 | 3
  p: number
}

/**
 * The cheapest split for `dn` missing ids among `n` candidates: counts
 * (a byte a bucket, both ways together), the power sums, and the ids sent
 * in vain when a candidate's hash collides with a missing one. Null when
 * the path does not apply.
 */
export function planSubset (dn: number, n: number): SubsetPlan | null {
  if (dn < SUBSET_MIN || dn > SUBSET_MAX || n < dn) return null
  let best: SubsetPlan | null = null
  let bestCost = Infinity
  for (const { bytes, p } of FIELDS) {
    for (let bits = 0; bits <= MAX_BITS; bits++) {
      const K = 2 ** bits
      if (dn > K * MAX_PER_BUCKET) continue
      const cost = K + dn * bytes + ID_BYTES * (n / K) * dn / p
      if (cost < bestCost) {
        bestCost = cost
        best = { bits, bytes, p }
      }
    }
  }
  return best
}

/** The bucket of the id at buf[at]: its first `bits` bits. */
function bucketOf (buf: Uint8Array, at: number, bits: number): number {
  return ((buf[at]! << 16) | (buf[at + 1]! << 8) | buf[at + 2]!) >>> (24 - bits)
}

/** The id's short hash in the field: bytes the bucket does not use. */
function hashOf (buf: Uint8Array, at: number, plan: SubsetPlan): number {
  const v = plan.bytes === 2
    ? buf[at + 4]! | (buf[at + 5]! << 8)
    : buf[at + 4]! | (buf[at + 5]! << 8) | (buf[at + 6]! << 16)
  return v % plan.p
}

/**
 * How many of our ids fall in each bucket: from the prefix tree's counts
 * where its nodes are as fine as the buckets (a node at digit depth D lies
 * in one bucket), from the ids where a leaf stops above that.
 */
export function bucketCounts (tree: TreeData, bits: number): Uint32Array {
  const out = new Uint32Array(2 ** bits)
  const D = Math.ceil(bits / 4)
  const shift = 4 * D - bits
  const visit = (node: number, depth: number, prefix: number): void => {
    if (depth === D) {
      out[prefix >>> shift] += tree.count[node]!
      return
    }
    const first = tree.child[node]!
    if (first >= 0) {
      for (let v = 0; v < 16; v++) if (tree.count[first + v]! > 0) visit(first + v, depth + 1, prefix * 16 + v)
      return
    }
    const buf = tree.leaves[node]!
    for (let i = 0, at = 0, n = tree.count[node]!; i < n; i++, at += ID_BYTES) out[bucketOf(buf, at, bits)]!++
  }
  if (tree.count[0]! > 0) visit(0, 0, 0)
  return out
}

/** The counts modulo 16, two a byte. */
export function writeCounts (w: Writer, counts: Uint32Array): void {
  for (let b = 0; b < counts.length; b += 2) w.u8((counts[b]! & 15) | ((b + 1 < counts.length ? counts[b + 1]! & 15 : 0) << 4))
}

export function readCounts (r: Reader, K: number): Uint8Array {
  const out = new Uint8Array(K)
  for (let b = 0; b < K; b += 2) {
    const v = r.u8()
    out[b] = v & 15
    if (b + 1 < K) out[b + 1] = v >>> 4
    else if ((v >>> 4) !== 0) throw INVALID_MESSAGE('Padding in counts')
  }
  return out
}

/** A count difference modulo 16 this high is read as the smaller side holding 16 − v more ids there. */
const NEGATIVE = 12

/**
 * How many ids the smaller side lacks in each bucket, from the larger
 * side's counts and the smaller's (either may be modulo 16), and their sum;
 * and how many buckets show the smaller side with more ids (left out: k = 0).
 */
export function lacking (larger: ArrayLike<number>, smaller: ArrayLike<number>): { k: Uint8Array, total: number, negative: number, excess: number } {
  const k = new Uint8Array(larger.length)
  let total = 0
  let negative = 0
  let excess = 0
  for (let b = 0; b < k.length; b++) {
    const v = (larger[b]! - smaller[b]!) & 15
    if (v >= NEGATIVE) {
      negative++
      excess += 16 - v
      continue
    }
    k[b] = v
    total += v
  }
  return { k, total, negative, excess }
}

/** Where each bucket's sums start in a list of all of them (k[b] for bucket b). */
function offsets (k: Uint8Array): Uint32Array {
  const at = new Uint32Array(k.length + 1)
  for (let b = 0; b < k.length; b++) at[b + 1] = at[b]! + k[b]!
  return at
}

/** For each bucket b, the power sums 1..k[b] of our ids' hashes in it, back to back. */
export function powerSums (tree: TreeData, plan: SubsetPlan, k: Uint8Array): Uint32Array {
  const at = offsets(k)
  // Added up unreduced (a bucket's ids times p stays far below 2^53), reduced once at the end.
  const sums = new Float64Array(at[k.length]!)
  const { bits, p } = plan
  const mul = mulOf(p)
  tree.forEachLeaf((buf, n) => {
    for (let i = 0, a = 0; i < n; i++, a += ID_BYTES) {
      const b = bucketOf(buf, a, bits)
      const kb = k[b]!
      if (kb === 0) continue
      const h = hashOf(buf, a, plan)
      let x = h
      const j0 = at[b]!
      sums[j0] += x
      for (let j = j0 + 1, end = j0 + kb; j < end; j++) {
        x = mul(x, h)
        sums[j] += x
      }
    }
  })
  const out = new Uint32Array(sums.length)
  for (let j = 0; j < sums.length; j++) out[j] = sums[j]! % p
  return out
}

export function writeSums (w: Writer, sums: Uint32Array, plan: SubsetPlan): void {
  for (let j = 0; j < sums.length; j++) {
    const v = sums[j]!
    if (plan.bytes === 2) w.u16(v)
    else {
      w.u16(v & 0xffff)
      w.u8(v >>> 16)
    }
  }
}

export function readSums (r: Reader, count: number, plan: SubsetPlan): Uint32Array {
  const out = new Uint32Array(count)
  for (let j = 0; j < count; j++) {
    const v = plan.bytes === 2 ? r.u16() : r.u16() + r.u8() * 65536
    if (v >= plan.p) throw INVALID_MESSAGE('A power sum outside its field')
    out[j] = v
  }
  return out
}

/** x^e mod p for the inverses of small numbers (Fermat). */
function powMod (x: number, e: number, p: number): number {
  let r = 1
  let b = x % p
  while (e > 0) {
    if ((e & 1) === 1) r = (r * b) % p
    b = (b * b) % p
    e = Math.floor(e / 2)
  }
  return r
}

/**
 * The coefficients c1..ck of x^k + c1·x^(k-1) + … + ck, whose roots have
 * the power sums `s` (Newton's identities: i·e_i = Σ_j (-1)^(j-1) e_(i-j) s_j).
 */
function polynomial (s: Float64Array, from: number, k: number, p: number, inv: Float64Array, out: Float64Array): void {
  const e = out
  for (let i = 1; i <= k; i++) {
    let acc = 0
    for (let j = 1; j <= i; j++) {
      const prev = j === i ? 1 : e[from + i - j - 1]!
      const term = (prev * s[from + j - 1]!) % p
      acc = (j & 1) === 1 ? acc + term : acc - term + p
    }
    e[from + i - 1] = ((acc % p) * inv[i]!) % p
  }
  // Signs: x^k − e1·x^(k−1) + e2·x^(k−2) − …
  for (let i = 1; i <= k; i += 2) e[from + i - 1] = (p - e[from + i - 1]!) % p
}

export interface Found {
  /** Sorted: in every bucket that fits, the ids the smaller side lacks and any whose hash collides with one of them. */
  ids: IdBuffer
  /** Buckets with fewer roots than ids missing (the smaller side has ids of its own there): none of their ids are in `ids`. */
  misfit: number
  /** Ids missing in those buckets, by the counts. */
  misfitLack: number
}

/** The larger side: from the smaller side's power sums, the ids of ours it lacks. */
export function findLacking (tree: TreeData, plan: SubsetPlan, k: Uint8Array, theirs: Uint32Array): Found {
  const mine = powerSums(tree, plan, k)
  const { bits, p } = plan
  const mul = mulOf(p)
  const at = offsets(k)
  const delta = new Float64Array(mine.length)
  for (let j = 0; j < mine.length; j++) delta[j] = (mine[j]! - theirs[j]! + p) % p
  const inv = new Float64Array(16)
  for (let i = 1; i < 16; i++) inv[i] = powMod(i, p - 2, p)
  const e = new Float64Array(mine.length)
  for (let b = 0; b < k.length; b++) if (k[b]! > 0) polynomial(delta, at[b]!, k[b]!, p, inv, e)
  const coef = Uint32Array.from(e)

  const ids = new IdBuffer(Math.max(16, mine.length))
  let misfit = 0
  let misfitLack = 0
  // Buckets with ids missing that we hold ids in, and how many they miss: the rest hold none of ours, a misfit all the same.
  let seen = 0
  let seenLack = 0
  // Ids come in order, so a bucket's are together: when it ends, its roots are dropped if too few.
  let cur = -1
  let from = 0
  let roots = 0
  const close = (): void => {
    if (cur >= 0 && roots < k[cur]!) {
      ids.n = from
      misfit++
      misfitLack += k[cur]!
    }
  }
  tree.forEachLeaf((buf, n) => {
    for (let i = 0, a = 0; i < n; i++, a += ID_BYTES) {
      const b = bucketOf(buf, a, bits)
      const kb = k[b]!
      if (kb === 0) continue
      if (b !== cur) {
        close()
        cur = b
        from = ids.n
        roots = 0
        seen++
        seenLack += kb
      }
      const x = hashOf(buf, a, plan)
      let v = 1
      for (let j = at[b]!, end = j + kb; j < end; j++) v = addMod(mul(v, x), coef[j]!, p)
      if (v !== 0) continue
      ids.push(buf, a)
      roots++
    }
  })
  close()
  let lacking = 0
  for (let b = 0; b < k.length; b++) if (k[b]! > 0) lacking++
  return { ids, misfit: misfit + lacking - seen, misfitLack: misfitLack + theirs.length - seenLack }
}
