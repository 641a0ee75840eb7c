/**
 * Bytes on the wire: a growable writer and a reader of hostile bytes that
 * turns every failure into INVALID_MESSAGE. Numbers are unsigned LEB128
 * varints (a million takes 3 bytes), fingerprints two little-endian words.
 */
import { INVALID_MESSAGE } from '../errors'

export class Writer {
  #buf: Uint8Array
  #len = 0

  constructor (size = 256) {
    this.#buf = new Uint8Array(Math.max(16, size))
  }

  get length (): number {
    return this.#len
  }

  #reserve (n: number): void {
    if (this.#len + n <= this.#buf.byteLength) return
    const grown = new Uint8Array(Math.max(this.#buf.byteLength * 2, this.#len + n))
    grown.set(this.#buf.subarray(0, this.#len))
    this.#buf = grown
  }

  u8 (v: number): void {
    this.#reserve(1)
    this.#buf[this.#len++] = v
  }

  u16 (v: number): void {
    this.#reserve(2)
    this.#buf[this.#len++] = v & 0xff
    this.#buf[this.#len++] = v >>> 8
  }

  u32 (v: number): void {
    this.#reserve(4)
    const b = this.#buf
    b[this.#len++] = v & 0xff
    b[this.#len++] = (v >>> 8) & 0xff
    b[this.#len++] = (v >>> 16) & 0xff
    b[this.#len++] = v >>> 24
  }

  /** An unsigned integer up to 2^53, 7 bits a byte. */
  uint (v: number): void {
    this.#reserve(8)
    while (v >= 0x80) {
      this.#buf[this.#len++] = (v % 0x80) | 0x80
      v = Math.floor(v / 0x80)
    }
    this.#buf[this.#len++] = v
  }

  fp (lo: number, hi: number): void {
    this.u32(lo)
    this.u32(hi)
  }

  fixed (b: Uint8Array): void {
    this.#reserve(b.byteLength)
    this.#buf.set(b, this.#len)
    this.#len += b.byteLength
  }

  finish (): Uint8Array {
    return this.#buf.slice(0, this.#len)
  }
}

export class Reader {
  readonly #buf: Uint8Array
  #at = 0

  constructor (msg: Uint8Array) {
    this.#buf = msg
  }

  get remaining (): number {
    return this.#buf.byteLength - this.#at
  }

  #need (n: number): void {
    if (this.#buf.byteLength - this.#at < n) throw INVALID_MESSAGE('Message too short')
  }

  u8 (): number {
    this.#need(1)
    return this.#buf[this.#at++]!
  }

  u16 (): number {
    this.#need(2)
    const v = this.#buf[this.#at]! | (this.#buf[this.#at + 1]! << 8)
    this.#at += 2
    return v
  }

  u32 (): number {
    this.#need(4)
    const b = this.#buf
    const a = this.#at
    this.#at += 4
    return (b[a]! | (b[a + 1]! << 8) | (b[a + 2]! << 16) | (b[a + 3]! << 24)) >>> 0
  }

  uint (max = Number.MAX_SAFE_INTEGER): number {
    let v = 0
    let scale = 1
    for (let i = 0; ; i++) {
      if (i >= 8) throw INVALID_MESSAGE('Number too long')
      const b = this.u8()
      v += (b & 0x7f) * scale
      if ((b & 0x80) === 0) break
      scale *= 0x80
    }
    if (v > max) throw INVALID_MESSAGE('Number out of range')
    return v
  }

  fp (out: Uint32Array | number[], o = 0): void {
    out[o] = this.u32()
    out[o + 1] = this.u32()
  }

  /** The next `n` bytes (a view of the message). */
  fixed (n: number): Uint8Array {
    this.#need(n)
    const b = this.#buf.subarray(this.#at, this.#at + n)
    this.#at += n
    return b
  }

  end (): void {
    if (this.#at !== this.#buf.byteLength) throw INVALID_MESSAGE('Trailing bytes after message')
  }
}
