/**
 * Decoding the difference from the remote's cells: subtract ours, peel.
 *
 * The remote sends cells [0, S) short (8 bytes of XOR, checksum, count mod
 * 256) and cells [0, L) with their other 24 bytes. Subtracting our cells
 * leaves, in each, the ids of the symmetric difference coded into it, ours
 * counted -1 and theirs +1. A cell holding one of them is *pure*: count ±1,
 * and its 8 bytes of XOR are a short id whose checksum is the cell's and
 * whose cells include this one. Peeling a pure cell takes its id out of
 * every cell it is in, which makes others pure, until all are empty (done)
 * or none is pure (stalled: more cells are needed).
 *
 * Then our own ids among them are looked up by their short id in our tree,
 * their last 24 bytes taken out of the long cells, and the remote's ids'
 * last 24 bytes solved for (long-solve.ts). Anything inconsistent — a short
 * id we do not have counted as ours, two of ours sharing one, a decoded id
 * we already hold — means cells crafted to collide or a wrong peel: the
 * session falls back to the tree walk. What decodes is still only a
 * candidate until the keyed fingerprints confirm it.
 */
import { ID_BYTES } from './ids'
import type { TreeData } from './tree-data'
import { CellWalk, LONG_BYTES, SHORT_CELL_BYTES, checksum, shortLo, shortHi, type SymbolTable } from './coded-symbols'
import { LONG_WORDS, solveLong } from './long-solve'

export type DecodeResult =
  /** The difference: their ids we lack, our ids they lack (each back to back). */
  | { kind: 'done', theirs: Uint8Array, nTheirs: number, mine: Uint8Array, nMine: number }
  /** Peeling stalled: more cells needed; about `left` ids are still coded in them. */
  | { kind: 'short', decoded: number, left: number }
  /** The short ids are known, their last bytes are not determined yet: more long cells needed for `u` ids. */
  | { kind: 'long', u: number, nMine: number }
  /** Inconsistent: the cells cannot be decoded (crafted collisions, or not what they claim). */
  | { kind: 'fail', why: string }

export interface DecodeInput {
  /** Our cells, and our tree as of the same moment. */
  mine: SymbolTable
  tree: TreeData
  /** Their cells [0, S) as sent: 13 bytes each. */
  short: Uint8Array
  S: number
  /** Their cells [0, L) last 24 bytes. */
  long: Uint8Array
  L: number
  /** Their count minus ours (exact). */
  dn: number
}

export function decode (input: DecodeInput): DecodeResult {
  const { mine, tree, short, S, long, L, dn } = input
  const myBytes = new Uint8Array(mine.xor.buffer, mine.xor.byteOffset, mine.cells * ID_BYTES)
  // The difference cells: 8 bytes of XOR as two words, checksum, count.
  const lo = new Uint32Array(S)
  const hi = new Uint32Array(S)
  const chk = new Uint32Array(S)
  const cnt = new Int32Array(S)
  for (let c = 0; c < S; c++) {
    const o = c * SHORT_CELL_BYTES
    lo[c] = (shortLo(short, o) ^ shortLo(myBytes, c * ID_BYTES)) >>> 0
    hi[c] = (shortHi(short, o) ^ shortHi(myBytes, c * ID_BYTES)) >>> 0
    chk[c] = (shortLo(short, o + 8) ^ mine.chk[c]!) >>> 0
    cnt[c] = c === 0 ? dn : (short[o + 12]! - (mine.cnt[c]! & 255)) & 255
  }
  const walk = new CellWalk()
  // Decoded short ids, in order, with their side (+1 theirs, -1 ours).
  const dLo: number[] = []
  const dHi: number[] = []
  const dSign: number[] = []
  const seen = new Set<string>()
  const queue: number[] = []
  const sideOf = (c: number): number => {
    const k = cnt[c]!
    if (c === 0) return k === 1 || k === -1 ? k : 0
    const m = k & 255
    return m === 1 ? 1 : m === 255 ? -1 : 0
  }
  for (let c = 0; c < S; c++) if (sideOf(c) !== 0) queue.push(c)
  const maxPeels = S + 64
  while (queue.length > 0) {
    const c = queue.pop()!
    const sign = sideOf(c)
    if (sign === 0) continue
    const a = lo[c]!
    const b = hi[c]!
    const k = checksum(a, b)
    if (k !== chk[c]) continue
    // Its cells must include this one.
    let at = walk.start(a, b)
    while (at < c) at = walk.next()
    if (at !== c) continue
    const name = a + ':' + b
    if (seen.has(name)) return { kind: 'fail', why: 'An id decoded twice' }
    if (dLo.length >= maxPeels) return { kind: 'fail', why: 'More ids than cells' }
    seen.add(name)
    dLo.push(a)
    dHi.push(b)
    dSign.push(sign)
    for (let x = walk.start(a, b); x < S; x = walk.next()) {
      lo[x] = (lo[x]! ^ a) >>> 0
      hi[x] = (hi[x]! ^ b) >>> 0
      chk[x] = (chk[x]! ^ k) >>> 0
      cnt[x] = cnt[x]! - sign
      if (sideOf(x) !== 0) queue.push(x)
    }
  }
  const busy = (c: number): boolean => lo[c] !== 0 || hi[c] !== 0 || chk[c] !== 0 || (c === 0 ? cnt[c] !== 0 : (cnt[c]! & 255) !== 0)
  for (let c = 0; c < S; c++) if (busy(c)) return { kind: 'short', decoded: dLo.length, left: leftIn(S, busy) }

  // Our ids, by their short ids; theirs are the unknowns.
  const n = dLo.length
  const prefix = new Uint8Array(ID_BYTES)
  const mineIds = new Uint8Array(n * ID_BYTES)
  let nMine = 0
  const theirIdx: number[] = []
  for (let i = 0; i < n; i++) {
    if (dSign[i] === 1) {
      theirIdx.push(i)
      continue
    }
    writeShort(prefix, 0, dLo[i]!, dHi[i]!)
    const found = tree.onlyUnder(prefix, 16)
    if (found === null) return { kind: 'fail', why: 'A decoded id of ours that we do not have' }
    if (found === 'many') return { kind: 'fail', why: 'Two of our ids share a short id' }
    mineIds.set(found[0].subarray(found[1], found[1] + ID_BYTES), nMine * ID_BYTES)
    nMine++
  }
  const u = theirIdx.length
  if (u > 0 && L === 0) return { kind: 'long', u, nMine }

  // The long cells, less our ids.
  const payload = new Int32Array(L * LONG_WORDS)
  const pBytes = new Uint8Array(payload.buffer)
  for (let c = 0; c < L; c++) {
    for (let i = 0; i < LONG_BYTES; i++) pBytes[c * LONG_BYTES + i] = long[c * LONG_BYTES + i]! ^ myBytes[c * ID_BYTES + 8 + i]!
  }
  for (let m = 0; m < nMine; m++) {
    const at = m * ID_BYTES
    for (let x = walk.start(shortLo(mineIds, at), shortHi(mineIds, at)); x < L; x = walk.next()) {
      for (let i = 0; i < LONG_BYTES; i++) pBytes[x * LONG_BYTES + i] = pBytes[x * LONG_BYTES + i]! ^ mineIds[at + 8 + i]!
    }
  }
  const colStart = new Int32Array(u + 1)
  const cols: number[] = []
  for (let j = 0; j < u; j++) {
    const i = theirIdx[j]!
    for (let x = walk.start(dLo[i]!, dHi[i]!); x < L; x = walk.next()) cols.push(x)
    colStart[j + 1] = cols.length
  }
  const values = solveLong(L, payload, u, colStart, Int32Array.from(cols))
  if (values === 'under') return { kind: 'long', u, nMine }
  if (values === 'bad') return { kind: 'fail', why: 'Long cells contradict each other' }
  const vBytes = new Uint8Array(values.buffer)
  const theirs = new Uint8Array(u * ID_BYTES)
  for (let j = 0; j < u; j++) {
    const i = theirIdx[j]!
    const at = j * ID_BYTES
    writeShort(theirs, at, dLo[i]!, dHi[i]!)
    theirs.set(vBytes.subarray(j * LONG_BYTES, (j + 1) * LONG_BYTES), at + 8)
    if (tree.has(theirs, at)) return { kind: 'fail', why: 'A decoded id of theirs that we have' }
  }
  return { kind: 'done', theirs, nTheirs: u, mine: mineIds.subarray(0, nMine * ID_BYTES), nMine }
}

/**
 * About how many ids are still coded in the cells after a stall: the r for
 * which as many of the later cells would hold two or more of r ids (an id
 * is in cell i with probability 2 / (i + 2); a stall leaves no cell with
 * exactly one) as do.
 */
function leftIn (S: number, busy: (c: number) => boolean): number {
  const from = S >>> 2
  let seen = 0
  for (let c = from; c < S; c++) if (busy(c)) seen++
  const expected = (r: number): number => {
    let e = 0
    for (let c = from; c < S; c++) {
      const l = r * 2 / (c + 2)
      e += 1 - Math.exp(-l) * (1 + l)
    }
    return e
  }
  if (seen >= S - from) return 4 * S
  let lo = 0
  let hi = 4 * S
  for (let k = 0; k < 30; k++) {
    const mid = (lo + hi) / 2
    if (expected(mid) < seen) lo = mid
    else hi = mid
  }
  return Math.ceil(lo)
}

function writeShort (buf: Uint8Array, at: number, lo: number, hi: number): void {
  buf[at] = lo & 0xff
  buf[at + 1] = (lo >>> 8) & 0xff
  buf[at + 2] = (lo >>> 16) & 0xff
  buf[at + 3] = lo >>> 24
  buf[at + 4] = hi & 0xff
  buf[at + 5] = (hi >>> 8) & 0xff
  buf[at + 6] = (hi >>> 16) & 0xff
  buf[at + 7] = hi >>> 24
}
