/**
 * Rateless coded symbols over a whole set, kept up to date on every insert
 * and delete, so a session only subtracts and peels.
 *
 * Cell i of the code is the XOR of the ids mapped into it, the XOR of their
 * 32-bit checksums and their count. Every id is in cell 0; from cell j it
 * moves on to cell j + ⌈(j + 1.5)(1/√u − 1)⌉ with u uniform in (0, 1] drawn
 * from a generator seeded by the id, so an id is in cell j with probability
 * about 1/(1 + j/2) (the degree distribution of Rateless IBLT, Yang et al.
 * 2024): any prefix of the cells decodes any difference small enough for
 * it, about 1.35–1.55 cells per differing id.
 *
 * Everything about an id's place in the code — the cells, the checksum,
 * the estimator buckets — derives from its first 8 bytes (its *short id*).
 * A cell can then travel compact: its first 8 bytes of XOR, the checksum
 * and the count modulo 256 (13 bytes; the exact counts travel in the
 * hello) decode the short ids of the difference, and only as many cells as
 * there are ids to learn need their other 24 bytes as well (see peel.ts).
 * The mapping is unkeyed — it cannot be keyed per session when the cells
 * are cached — so ids crafted to collide in it can stall decoding or hide
 * from it: the keyed fingerprint of the whole set is what confirms a
 * decode, and a session that cannot confirm one falls back to the tree walk.
 *
 * A set of n ids keeps the first `cellsFor(n)` cells (64 to 65,536; 40
 * bytes each), about 1 + 2 ln(cells) of which hold any one id, plus two
 * small histograms of the ids by checksum (16 and 128 buckets) from which
 * two peers estimate how many ids they differ in.
 */
import type { TreeData } from './tree-data'
import { ID_BYTES, words } from './ids'
import { fmix32 } from './hash'

export const SHORT_BYTES = 8
export const LONG_BYTES = ID_BYTES - SHORT_BYTES
/** Bytes of a cell sent short: 8 bytes of XOR, the checksum, the count mod 256. */
export const SHORT_CELL_BYTES = SHORT_BYTES + 4 + 1
export const MIN_CELLS = 64
export const MAX_CELLS = 1 << 16
/** Buckets of the estimator in the hello, and of the finer one sent when that one saturates. */
export const EST1_BUCKETS = 16
export const EST2_BUCKETS = 128

/** How many cells a set of `n` ids keeps up to date and offers a peer. */
export function cellsFor (n: number): number {
  let c = MIN_CELLS
  while (c < n && c < MAX_CELLS) c *= 2
  return c
}

/** The short id of the id at buf[at..]: its first 8 bytes as two little-endian words. */
export function shortLo (buf: Uint8Array, at: number): number {
  return (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0
}

export function shortHi (buf: Uint8Array, at: number): number {
  return (buf[at + 4]! | (buf[at + 5]! << 8) | (buf[at + 6]! << 16) | (buf[at + 7]! << 24)) >>> 0
}

/** The 32-bit checksum of a short id. */
export function checksum (lo: number, hi: number): number {
  return fmix32((lo ^ 0x6a09e667) + Math.imul(fmix32(hi ^ 0xbb67ae85), 0x9e3779b1))
}

/** The estimator bucket (of `EST1_BUCKETS` or `EST2_BUCKETS`) of an id with checksum `chk`. */
export function bucket1 (chk: number): number { return chk >>> 28 }
export function bucket2 (chk: number): number { return chk >>> 25 }

/**
 * The cells an id is coded into, in increasing order, from its short id:
 * `for (let c = walk.start(lo, hi); c < limit; c = walk.next())`.
 * The generator is xoroshiro64** (32-bit output), seeded from the short id.
 */
export class CellWalk {
  #s0 = 0
  #s1 = 0
  #cell = 0

  start (lo: number, hi: number): number {
    this.#s0 = seed0(lo, hi)
    this.#s1 = seed1(lo, hi)
    this.#cell = 0
    return 0
  }

  next (): number {
    const s0 = this.#s0
    let s1 = this.#s1
    const r = Math.imul(rotl(Math.imul(s0, 0x9e3779bb), 5), 5) >>> 0
    s1 ^= s0
    this.#s0 = (rotl(s0, 26) ^ s1 ^ (s1 << 9)) | 0
    this.#s1 = rotl(s1, 13)
    const j = this.#cell
    const gap = Math.ceil((j + 1.5) * (65536 / Math.sqrt(r + 1) - 1))
    this.#cell = j + (gap > 1 ? gap : 1)
    return this.#cell
  }
}

function seed0 (lo: number, hi: number): number {
  return fmix32(lo ^ Math.imul(hi, 0xcc9e2d51) ^ 0x3c6ef372) | 0
}

function seed1 (lo: number, hi: number): number {
  return fmix32(hi ^ Math.imul(lo, 0x1b873593) ^ 0xa54ff53a) | 1
}

function rotl (x: number, k: number): number {
  return (x << k) | (x >>> (32 - k))
}

/** The cells of a set, as a session reads them: immutable once handed out. */
export interface SymbolTable {
  readonly cells: number
  /** 8 words per cell: XOR of the ids, in memory order (its bytes are the XOR of the ids' bytes). */
  readonly xor: Int32Array
  /** XOR of the checksums. */
  readonly chk: Int32Array
  /** Number of ids in the cell. */
  readonly cnt: Int32Array
  /** Ids per estimator bucket. */
  readonly est1: Int32Array
  readonly est2: Int32Array
}

function emptyTable (cells: number): SymbolTable {
  return {
    cells,
    xor: new Int32Array(cells * 8),
    chk: new Int32Array(cells),
    cnt: new Int32Array(cells),
    est1: new Int32Array(EST1_BUCKETS),
    est2: new Int32Array(EST2_BUCKETS)
  }
}

function copyTable (t: SymbolTable): SymbolTable {
  return { cells: t.cells, xor: t.xor.slice(), chk: t.chk.slice(), cnt: t.cnt.slice(), est1: t.est1.slice(), est2: t.est2.slice() }
}

/** A copy of `t` with `n` more ids (back to back in `flat`) coded in: the cells of a set as if it held them too. */
export function withIds (t: SymbolTable, flat: Uint8Array, n: number): SymbolTable {
  const out = copyTable(t)
  const bytes = (flat.byteOffset & 3) === 0 ? flat : flat.slice(0, n * ID_BYTES)
  const w = new Int32Array(bytes.buffer, bytes.byteOffset, n * 8)
  for (let i = 0; i < n; i++) apply(out, bytes, i * ID_BYTES, w, i * 8, 1)
  return out
}

/**
 * Adds (sign 1) or removes (sign -1) the id at `bytes[at..]` (whose words
 * are `w[o..o+8]`) to every cell of `tab`. The hot loop of building and of
 * every insert and delete: `CellWalk` inlined.
 */
function apply (tab: SymbolTable, bytes: Uint8Array, at: number, w: Int32Array, o: number, sign: number): void {
  const lo = shortLo(bytes, at)
  const hi = shortHi(bytes, at)
  const chk = checksum(lo, hi)
  tab.est1[bucket1(chk)]! += sign
  tab.est2[bucket2(chk)]! += sign
  const { xor, cnt } = tab
  const chks = tab.chk
  const w0 = w[o]!
  const w1 = w[o + 1]!
  const w2 = w[o + 2]!
  const w3 = w[o + 3]!
  const w4 = w[o + 4]!
  const w5 = w[o + 5]!
  const w6 = w[o + 6]!
  const w7 = w[o + 7]!
  const limit = tab.cells
  let s0 = seed0(lo, hi)
  let s1 = seed1(lo, hi)
  let c = 0
  while (c < limit) {
    const x = c << 3
    xor[x] ^= w0
    xor[x + 1] ^= w1
    xor[x + 2] ^= w2
    xor[x + 3] ^= w3
    xor[x + 4] ^= w4
    xor[x + 5] ^= w5
    xor[x + 6] ^= w6
    xor[x + 7] ^= w7
    chks[c] ^= chk
    cnt[c] += sign
    const r = Math.imul(rotl(Math.imul(s0, 0x9e3779bb), 5), 5) >>> 0
    s1 ^= s0
    s0 = (rotl(s0, 26) ^ s1 ^ (s1 << 9)) | 0
    s1 = rotl(s1, 13)
    const gap = Math.ceil((c + 1.5) * (65536 / Math.sqrt(r + 1) - 1))
    c += gap > 1 ? gap : 1
  }
}

/** The cached cells of a set: updated on every change, copied before a change when a session holds them. */
export class CodedSymbols {
  #tab: SymbolTable
  #shared = false

  constructor (cells = MIN_CELLS) {
    this.#tab = emptyTable(cells)
  }

  get cells (): number {
    return this.#tab.cells
  }

  /** The cells as they are now; later changes copy them first. */
  snapshot (): SymbolTable {
    this.#shared = true
    return this.#tab
  }

  /** Adds (sign 1) or removes (sign -1) one id: its bytes at `bytes[0..32]`, its words `w` (the same memory, aligned). */
  update (bytes: Uint8Array, w: Int32Array, sign: 1 | -1): void {
    if (this.#shared) {
      this.#tab = copyTable(this.#tab)
      this.#shared = false
    }
    apply(this.#tab, bytes, 0, w, 0, sign)
  }

  /** Recomputes every cell from the ids of `tree` (at least `cellsFor` its size). */
  rebuild (tree: TreeData, cells = cellsFor(tree.size)): void {
    this.rebuildFlat(tree.flat(), tree.size, cells)
  }

  /** Recomputes every cell from `n` ids back to back in `flat`. */
  rebuildFlat (flat: Uint8Array, n: number, cells = cellsFor(n)): void {
    this.#tab = encodeFlat(flat, n, Math.max(cells, MIN_CELLS))
    this.#shared = false
  }

  /** Grows the cells to `cellsFor(size)` when the set has outgrown them. */
  fit (tree: TreeData): void {
    if (cellsFor(tree.size) > this.#tab.cells) this.rebuild(tree, cellsFor(tree.size))
  }
}

/** Cells per pass of a bulk encode: their XORs (320 KB) stay in a core's cache while every id is coded into them. */
const BLOCK = 8192

/**
 * A table of `cells` cells coding the `n` ids back to back in `flat`. The
 * cells are filled a block at a time, each pass coding every id into the
 * block's cells and keeping where its walk stopped: the cells an id is
 * coded into are spread over the whole table, and a table of 65,536 cells
 * does not fit a core's cache, so coding id by id would miss the cache at
 * every cell.
 */
export function encodeFlat (flat: Uint8Array, n: number, cells: number): SymbolTable {
  const tab = emptyTable(cells)
  if ((flat.byteOffset & 3) !== 0) flat = flat.slice(0, n * ID_BYTES)
  const w = words(flat)
  const { xor, cnt, est1, est2 } = tab
  const chks = tab.chk
  const state0 = new Int32Array(n)
  const state1 = new Int32Array(n)
  const next = new Float64Array(n)
  for (let from = 0; from < cells; from += BLOCK) {
    const to = Math.min(cells, from + BLOCK)
    for (let i = 0; i < n; i++) {
      let c = from === 0 ? 0 : next[i]!
      if (c >= to) continue
      const at = i * ID_BYTES
      const lo = shortLo(flat, at)
      const hi = shortHi(flat, at)
      const chk = checksum(lo, hi)
      let s0: number
      let s1: number
      if (from === 0) {
        est1[bucket1(chk)]!++
        est2[bucket2(chk)]!++
        s0 = seed0(lo, hi)
        s1 = seed1(lo, hi)
      } else {
        s0 = state0[i]!
        s1 = state1[i]!
      }
      const o = i * 8
      const w0 = w[o]!
      const w1 = w[o + 1]!
      const w2 = w[o + 2]!
      const w3 = w[o + 3]!
      const w4 = w[o + 4]!
      const w5 = w[o + 5]!
      const w6 = w[o + 6]!
      const w7 = w[o + 7]!
      while (c < to) {
        const x = c << 3
        xor[x] ^= w0
        xor[x + 1] ^= w1
        xor[x + 2] ^= w2
        xor[x + 3] ^= w3
        xor[x + 4] ^= w4
        xor[x + 5] ^= w5
        xor[x + 6] ^= w6
        xor[x + 7] ^= w7
        chks[c] ^= chk
        cnt[c]++
        const r = Math.imul(rotl(Math.imul(s0, 0x9e3779bb), 5), 5) >>> 0
        s1 ^= s0
        s0 = (rotl(s0, 26) ^ s1 ^ (s1 << 9)) | 0
        s1 = rotl(s1, 13)
        const gap = Math.ceil((c + 1.5) * (65536 / Math.sqrt(r + 1) - 1))
        c += gap > 1 ? gap : 1
      }
      state0[i] = s0
      state1[i] = s1
      next[i] = c
    }
  }
  return tab
}

/** A fresh table of `cells` cells coding the given ids (tests compare it with the cached one). */
export function encodeIds (ids: readonly Uint8Array[], cells: number): SymbolTable {
  const flat = new Uint8Array(ids.length * ID_BYTES)
  ids.forEach((id, i) => flat.set(id, i * ID_BYTES))
  return encodeFlat(flat, ids.length, cells)
}
