/**
 * In-memory bitfield, one bit per block: bit `i` lives in byte `i >> 3` at bit
 * `i & 7` (LSB first), which is also the on-disk layout of the bitfield file.
 *
 * Memory is split in 4 KiB pages (32768 bits, as Hypercore 11's) allocated on
 * demand, so setting a bit far out does not allocate everything before it,
 * and a short core holds one small page: a Store keeps thousands of them
 * open. (With 32 KiB pages, the page was most of what an open one-block core
 * held off the heap; the download, read and audit rows ran the same with
 * either size.) Pages are kept as bytes; a Uint32Array view of the same
 * memory is only used for tests that do not depend on the host's endianness
 * (word === 0, word === 0xffffffff, popcount), so the code is correct on
 * big-endian hosts too.
 *
 * Changes are tracked as dirty byte ranges; `takeDirty()` hands them back
 * coalesced so the storage layer can write few, small runs.
 */
import { BAD_ARGUMENT } from './errors'
import { lowerBound } from './sorted'

export const PAGE_BYTES = 4096
export const PAGE_BITS = PAGE_BYTES * 8
const PAGE_WORDS = PAGE_BYTES / 4

/** Dirty ranges closer than this many bytes are written as one run. */
const DIRTY_GAP = 64
/** Compact the dirty list when it grows past this many ranges. */
const DIRTY_COMPACT = 4096

const ALL_ONES = 0xffffffff

interface Page {
  bytes: Uint8Array
  words: Uint32Array
}

/** One changed byte range, `bytes` is a copy of the bitfield bytes at `offset`. */
export interface DirtyRange {
  offset: number
  bytes: Uint8Array
}

export class Bitfield {
  private readonly _pages = new Map<number, Page>()
  /** Allocated page indices, ascending. */
  private _keys: number[] = []
  /** One-entry lookup cache for the hot path. */
  private _cacheIndex = -1
  private _cachePage: Page | null = null
  /** Flat [start, end) byte pairs changed since the last takeDirty(). */
  private _dirty: number[] = []

  /** Bit `i` is byte `i >> 3`, bit `i & 7` of `bytes`. Not marked dirty. */
  static fromBytes (bytes: Uint8Array): Bitfield {
    const b = new Bitfield()
    for (let off = 0; off < bytes.byteLength; off += PAGE_BYTES) {
      const end = Math.min(off + PAGE_BYTES, bytes.byteLength)
      let nonZero = false
      for (let j = off; j < end; j++) {
        if (bytes[j] !== 0) { nonZero = true; break }
      }
      if (!nonZero) continue
      const page = b._page(off / PAGE_BYTES, true) as Page
      page.bytes.set(bytes.subarray(off, end))
    }
    return b
  }

  /** The bytes up to and including the one holding the last set bit. */
  toBytes (): Uint8Array {
    const last = this.lastSet()
    if (last === -1) return new Uint8Array(0)
    const out = new Uint8Array(Math.floor(last / 8) + 1)
    this._copyOut(out, 0)
    return out
  }

  /** Number of bytes `toBytes()` would return. */
  get byteLength (): number {
    const last = this.lastSet()
    return last === -1 ? 0 : Math.floor(last / 8) + 1
  }

  get (i: number): boolean {
    const p = Math.floor(i / PAGE_BITS)
    const page = p === this._cacheIndex ? this._cachePage : this._page(p, false)
    if (page === null) return false
    const r = i - p * PAGE_BITS
    return (page.bytes[r >>> 3] & (1 << (r & 7))) !== 0
  }

  /** Sets bit `i`; returns true if it changed. */
  set (i: number, value: boolean): boolean {
    if (!(i >= 0) || !Number.isSafeInteger(i)) throw BAD_ARGUMENT('Bitfield index must be a non-negative integer')
    const p = Math.floor(i / PAGE_BITS)
    const page = p === this._cacheIndex ? this._cachePage : this._page(p, value)
    if (page === null) return false // clearing a bit in an unallocated page
    const r = i - p * PAGE_BITS
    const b = r >>> 3
    const old = page.bytes[b]
    const next = value ? old | (1 << (r & 7)) : old & ~(1 << (r & 7))
    if (next === old) return false
    page.bytes[b] = next
    const at = p * PAGE_BYTES + b
    this._markDirty(at, at + 1)
    return true
  }

  /** Sets bits [start, end) to `value`. */
  setRange (start: number, end: number, value: boolean): void {
    checkRange(start, end)
    if (start === end) return
    const first = Math.floor(start / PAGE_BITS)
    const last = Math.floor((end - 1) / PAGE_BITS)

    if (value) {
      for (let p = first; p <= last; p++) this._fillPage(p, start, end, true)
      return
    }

    for (const p of this._keysIn(first, last)) this._fillPage(p, start, end, false)
  }

  /** First index >= start whose bit is 0. */
  firstUnset (start: number): number {
    checkIndex(start)
    let i = start
    for (;;) {
      const p = Math.floor(i / PAGE_BITS)
      const page = this._page(p, false)
      if (page === null) return i
      const r = scanUnset(page, i - p * PAGE_BITS)
      if (r !== -1) return p * PAGE_BITS + r
      i = (p + 1) * PAGE_BITS
    }
  }

  /** First index >= start whose bit is 1, -1 if none. */
  firstSet (start: number): number {
    checkIndex(start)
    const first = Math.floor(start / PAGE_BITS)
    const keys = this._keys
    for (let k = lowerBound(keys, first); k < keys.length; k++) {
      const p = keys[k]
      const page = this._pages.get(p) as Page
      const r = scanSet(page, p === first ? start - p * PAGE_BITS : 0)
      if (r !== -1) return p * PAGE_BITS + r
    }
    return -1
  }

  /** Highest index whose bit is 1, -1 if none. */
  lastSet (): number {
    const keys = this._keys
    for (let k = keys.length - 1; k >= 0; k--) {
      const page = this._pages.get(keys[k]) as Page
      const b = lastNonZeroByte(page)
      if (b !== -1) return keys[k] * PAGE_BITS + b * 8 + (31 - Math.clz32(page.bytes[b]))
    }
    return -1
  }

  /** Number of set bits in [start, end). */
  count (start: number, end: number): number {
    checkRange(start, end)
    if (start === end) return 0
    const first = Math.floor(start / PAGE_BITS)
    const last = Math.floor((end - 1) / PAGE_BITS)
    let n = 0
    for (const p of this._keysIn(first, last)) {
      const base = p * PAGE_BITS
      const s = Math.max(start, base) - base
      const e = Math.min(end, base + PAGE_BITS) - base
      n += countPage(this._pages.get(p) as Page, s, e)
    }
    return n
  }

  /** Clears every bit >= length. */
  truncate (length: number): void {
    checkIndex(length)
    const first = Math.floor(length / PAGE_BITS)
    const keys = this._keys
    const from = lowerBound(keys, first)
    if (from === keys.length) return

    for (let k = from; k < keys.length; k++) {
      const p = keys[k]
      const page = this._pages.get(p) as Page
      const lastByte = lastNonZeroByte(page)
      const base = p * PAGE_BITS
      if (p === first && length > base) {
        const r = length - base
        if (lastByte !== -1 && lastByte >= (r >>> 3)) {
          clearBits(page.bytes, r, (lastByte + 1) * 8)
          this._markDirty(p * PAGE_BYTES + (r >>> 3), p * PAGE_BYTES + lastByte + 1)
        }
        continue
      }
      if (lastByte !== -1) this._markDirty(p * PAGE_BYTES, p * PAGE_BYTES + lastByte + 1)
      this._pages.delete(p)
    }

    // Keep the page holding `length` if it survived, drop the rest.
    const keep = keys[from] === first && length > first * PAGE_BITS ? from + 1 : from
    keys.length = keep
    this._cacheIndex = -1
    this._cachePage = null
  }

  /**
   * Byte ranges changed since the last call, ascending and coalesced (ranges
   * closer than a few bytes are merged). Each `bytes` is a copy of the current
   * contents, so applying all ranges to the previously written bytes yields
   * `toBytes()` (modulo trailing zero bytes).
   */
  takeDirty (): DirtyRange[] {
    const d = this._dirty
    if (d.length === 0) return []
    const merged = mergeRanges(d)
    this._dirty = []
    const out: DirtyRange[] = []
    for (let k = 0; k < merged.length; k += 2) {
      const start = merged[k]
      const end = merged[k + 1]
      const bytes = new Uint8Array(end - start)
      this._copyOut(bytes, start)
      out.push({ offset: start, bytes })
    }
    return out
  }

  /** Number of 32 KiB pages currently allocated. */
  get allocatedPages (): number {
    return this._keys.length
  }

  /** True if changes are waiting for takeDirty(). */
  get dirty (): boolean {
    return this._dirty.length > 0
  }

  /**
   * `count32` 32-bit words of bits starting at block `startBlock` (a multiple
   * of 32): word k bit j is block startBlock + 32k + j (Hypercore's wire
   * bitfield message layout).
   */
  words (startBlock: number, count32: number): Uint32Array {
    checkIndex(startBlock)
    checkIndex(count32)
    if (startBlock % 32 !== 0) throw BAD_ARGUMENT('startBlock must be a multiple of 32')
    const out = new Uint32Array(count32)
    let k = 0
    while (k < count32) {
      const bit = startBlock + k * 32
      const p = Math.floor(bit / PAGE_BITS)
      const b = (bit - p * PAGE_BITS) >>> 3
      const inPage = Math.min(count32 - k, (PAGE_BYTES - b) >>> 2)
      const page = this._page(p, false)
      if (page !== null) {
        const bytes = page.bytes
        for (let j = 0; j < inPage; j++) {
          const o = b + j * 4
          out[k + j] = (bytes[o] | (bytes[o + 1] << 8) | (bytes[o + 2] << 16) | (bytes[o + 3] << 24)) >>> 0
        }
      }
      k += inPage
    }
    return out
  }

  /** Overwrites the bits covered by `words` (layout as in `words()`). */
  setWords (startBlock: number, words: ArrayLike<number>): void {
    checkIndex(startBlock)
    if (startBlock % 32 !== 0) throw BAD_ARGUMENT('startBlock must be a multiple of 32')
    for (let k = 0; k < words.length; k++) {
      const w = words[k] >>> 0
      const bit = startBlock + k * 32
      const p = Math.floor(bit / PAGE_BITS)
      const page = this._page(p, w !== 0)
      if (page === null) continue
      const o = (bit - p * PAGE_BITS) >>> 3
      const bytes = page.bytes
      const b0 = w & 0xff
      const b1 = (w >>> 8) & 0xff
      const b2 = (w >>> 16) & 0xff
      const b3 = w >>> 24
      if (bytes[o] === b0 && bytes[o + 1] === b1 && bytes[o + 2] === b2 && bytes[o + 3] === b3) continue
      bytes[o] = b0
      bytes[o + 1] = b1
      bytes[o + 2] = b2
      bytes[o + 3] = b3
      const at = p * PAGE_BYTES + o
      this._markDirty(at, at + 4)
    }
  }

  private _page (p: number, create: boolean): Page | null {
    let page = this._pages.get(p)
    if (page === undefined) {
      if (!create) return null
      const buf = new ArrayBuffer(PAGE_BYTES)
      page = { bytes: new Uint8Array(buf), words: new Uint32Array(buf) }
      this._pages.set(p, page)
      const keys = this._keys
      if (keys.length === 0 || keys[keys.length - 1] < p) keys.push(p)
      else keys.splice(lowerBound(keys, p), 0, p)
    }
    this._cacheIndex = p
    this._cachePage = page
    return page
  }

  /** Allocated page indices in [first, last]. */
  private _keysIn (first: number, last: number): number[] {
    const keys = this._keys
    const out: number[] = []
    for (let k = lowerBound(keys, first); k < keys.length && keys[k] <= last; k++) out.push(keys[k])
    return out
  }

  /** Sets the part of bits [start, end) that falls in page p. */
  private _fillPage (p: number, start: number, end: number, value: boolean): void {
    const page = this._page(p, value)
    if (page === null) return
    const base = p * PAGE_BITS
    const s = Math.max(start, base) - base
    const e = Math.min(end, base + PAGE_BITS) - base
    if (value) setBits(page.bytes, s, e)
    else clearBits(page.bytes, s, e)
    this._markDirty(p * PAGE_BYTES + (s >>> 3), p * PAGE_BYTES + ((e - 1) >>> 3) + 1)
  }

  private _markDirty (start: number, end: number): void {
    const d = this._dirty
    const n = d.length
    if (n > 0) {
      const ls = d[n - 2]
      const le = d[n - 1]
      if (start <= le + DIRTY_GAP && end + DIRTY_GAP >= ls) {
        if (start < ls) d[n - 2] = start
        if (end > le) d[n - 1] = end
        return
      }
    }
    d.push(start, end)
    if (d.length > DIRTY_COMPACT * 2) this._dirty = mergeRanges(d)
  }

  /** Copies bitfield bytes [start, start + out.length) into out (zeros where unallocated). */
  private _copyOut (out: Uint8Array, start: number): void {
    const end = start + out.byteLength
    const keys = this._keys
    for (let k = lowerBound(keys, Math.floor(start / PAGE_BYTES)); k < keys.length; k++) {
      const p = keys[k]
      const base = p * PAGE_BYTES
      if (base >= end) break
      const s = Math.max(start, base)
      const e = Math.min(end, base + PAGE_BYTES)
      const page = this._pages.get(p) as Page
      out.set(page.bytes.subarray(s - base, e - base), s - start)
    }
  }
}

function checkIndex (i: number): void {
  if (!(i >= 0) || !Number.isSafeInteger(i)) throw BAD_ARGUMENT('Bitfield index must be a non-negative integer')
}

function checkRange (start: number, end: number): void {
  checkIndex(start)
  checkIndex(end)
  if (end < start) throw BAD_ARGUMENT('Bitfield range end must be >= start')
}

/** Sorts and merges flat [start, end) pairs, joining ranges closer than DIRTY_GAP. */
function mergeRanges (d: number[]): number[] {
  const n = d.length / 2
  let sorted = true
  for (let k = 2; k < d.length; k += 2) {
    if (d[k] < d[k - 2]) { sorted = false; break }
  }
  let order: number[] | null = null
  if (!sorted) {
    order = new Array<number>(n)
    for (let k = 0; k < n; k++) order[k] = k
    order.sort((a, b) => d[2 * a] - d[2 * b])
  }
  const out: number[] = []
  for (let k = 0; k < n; k++) {
    const j = order === null ? k : order[k]
    const s = d[2 * j]
    const e = d[2 * j + 1]
    const m = out.length
    if (m > 0 && s <= out[m - 1] + DIRTY_GAP) {
      if (e > out[m - 1]) out[m - 1] = e
    } else {
      out.push(s, e)
    }
  }
  return out
}

/** Index of the lowest set bit of a non-zero byte. */
function lowBit (v: number): number {
  return 31 - Math.clz32(v & -v)
}

/** First 0 bit at or after bit r of the page, -1 if the rest is all ones. */
function scanUnset (page: Page, r: number): number {
  const bytes = page.bytes
  let b = r >>> 3
  const v = bytes[b] | ((1 << (r & 7)) - 1)
  if (v !== 0xff) return b * 8 + lowBit(~v & 0xff)
  b++
  while (b < PAGE_BYTES && (b & 3) !== 0) {
    if (bytes[b] !== 0xff) return b * 8 + lowBit(~bytes[b] & 0xff)
    b++
  }
  const words = page.words
  let w = b >>> 2
  while (w < PAGE_WORDS && words[w] === ALL_ONES) w++
  if (w === PAGE_WORDS) return -1
  b = w << 2
  while (bytes[b] === 0xff) b++
  return b * 8 + lowBit(~bytes[b] & 0xff)
}

/** First 1 bit at or after bit r of the page, -1 if none. */
function scanSet (page: Page, r: number): number {
  const bytes = page.bytes
  let b = r >>> 3
  const v = bytes[b] & ~((1 << (r & 7)) - 1) & 0xff
  if (v !== 0) return b * 8 + lowBit(v)
  b++
  while (b < PAGE_BYTES && (b & 3) !== 0) {
    if (bytes[b] !== 0) return b * 8 + lowBit(bytes[b])
    b++
  }
  const words = page.words
  let w = b >>> 2
  while (w < PAGE_WORDS && words[w] === 0) w++
  if (w === PAGE_WORDS) return -1
  b = w << 2
  while (bytes[b] === 0) b++
  return b * 8 + lowBit(bytes[b])
}

function lastNonZeroByte (page: Page): number {
  const words = page.words
  let w = PAGE_WORDS - 1
  while (w >= 0 && words[w] === 0) w--
  if (w < 0) return -1
  let b = w * 4 + 3
  while (page.bytes[b] === 0) b--
  return b
}

function popcount32 (x: number): number {
  x = x - ((x >>> 1) & 0x55555555)
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333)
  x = (x + (x >>> 4)) & 0x0f0f0f0f
  return Math.imul(x, 0x01010101) >>> 24
}

/** Set bits in bit range [s, e) of one page. */
function countPage (page: Page, s: number, e: number): number {
  const bytes = page.bytes
  let n = 0
  let i = s
  // Leading bits up to a byte boundary.
  while (i < e && (i & 7) !== 0) {
    if (bytes[i >>> 3] & (1 << (i & 7))) n++
    i++
  }
  // Leading bytes up to a word boundary.
  while (i + 8 <= e && (i & 31) !== 0) {
    n += popcount32(bytes[i >>> 3])
    i += 8
  }
  // Whole words.
  const words = page.words
  while (i + 32 <= e) {
    const w = words[i >>> 5]
    if (w !== 0) n += popcount32(w)
    i += 32
  }
  // Trailing bytes, then bits.
  while (i + 8 <= e) {
    n += popcount32(bytes[i >>> 3])
    i += 8
  }
  while (i < e) {
    if (bytes[i >>> 3] & (1 << (i & 7))) n++
    i++
  }
  return n
}

function setBits (bytes: Uint8Array, s: number, e: number): void {
  const sb = s >>> 3
  const eb = e >>> 3
  if (sb === eb) {
    bytes[sb] |= ((1 << (e - s)) - 1) << (s & 7)
    return
  }
  bytes[sb] |= (0xff << (s & 7)) & 0xff
  if (eb > sb + 1) bytes.fill(0xff, sb + 1, eb)
  if ((e & 7) !== 0) bytes[eb] |= (1 << (e & 7)) - 1
}

function clearBits (bytes: Uint8Array, s: number, e: number): void {
  const sb = s >>> 3
  const eb = e >>> 3
  if (sb === eb) {
    bytes[sb] &= ~(((1 << (e - s)) - 1) << (s & 7))
    return
  }
  bytes[sb] &= (1 << (s & 7)) - 1
  if (eb > sb + 1) bytes.fill(0, sb + 1, eb)
  if ((e & 7) !== 0) bytes[eb] &= ~((1 << (e & 7)) - 1)
}
