/**
 * Hashing for set reconciliation.
 *
 * Two kinds, for two jobs:
 *
 *  - `mix64`: an unkeyed 64-bit mix of an id, summed into the per-node
 *    summaries the tree keeps up to date on every insert and delete. It only
 *    ever describes the local set to itself (the "since" bookkeeping, tests);
 *    it never goes on the wire and nothing a peer says is checked against it.
 *
 *  - `KeyedHash`: the PRF whose sums are the fingerprints peers compare.
 *    The key is a secret the two sides already share (their connection's
 *    handshake hash), or else derived from a nonce each side contributes,
 *    so nobody who planted ids in either set knows it, and no set pair can
 *    be made to collide on purpose: for
 *    any two different sets fixed before the key, their 64-bit sums agree
 *    with probability 2^-64. The PRF is AES-128 CBC-MAC over the two 16-byte
 *    halves of the id (a fixed-length CBC-MAC is a PRF), truncated to 64
 *    bits. AES runs natively (node:crypto, AES-NI), in batches, so hashing a
 *    whole set of a million ids costs tens of milliseconds.
 */
import { createCipheriv, type Cipheriv } from 'crypto'
import sodium from 'sodium-universal'
import b4a from 'b4a'

export const NONCE_BYTES = 16
const KEY_CONTEXT = b4a.from('nomadcore/reconcile/v1')
const SHARED_CONTEXT = b4a.from('nomadcore/reconcile/v2/shared')

/** Ids hashed per native call. */
const CHUNK = 8192

/** The 32-bit finalizer of MurmurHash3: every input bit flips about half the output bits. */
export function fmix32 (h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** Unkeyed 64-bit mix of the 8 words of an id: low half. */
export function mixLo (w: Int32Array | Uint32Array, o: number): number {
  return fmix32((w[o]! ^ Math.imul(w[o + 2]!, 0x9e3779b1) ^ Math.imul(w[o + 4]!, 0x7feb352d) ^ Math.imul(w[o + 6]!, 0x846ca68b)) >>> 0)
}

/** Unkeyed 64-bit mix of the 8 words of an id: high half. */
export function mixHi (w: Int32Array | Uint32Array, o: number): number {
  return fmix32((w[o + 1]! ^ Math.imul(w[o + 3]!, 0x9e3779b1) ^ Math.imul(w[o + 5]!, 0x7feb352d) ^ Math.imul(w[o + 7]!, 0x846ca68b) ^ w[o]!) >>> 0)
}

/**
 * The key of a session whose two sides already share a secret (e.g. the
 * Noise handshake hash of their connection): known to both before the
 * first message, so the fingerprint can travel in the hello, and the same
 * for every session on the connection, so a set can keep it up to date.
 */
export function deriveSharedKey (secret: Uint8Array): Uint8Array {
  const out = b4a.alloc(16)
  sodium.crypto_generichash_batch(out, [SHARED_CONTEXT, secret])
  return out
}

/** The key of a session without a shared secret: both nonces (in a fixed order, so both sides agree) and an optional secret. */
export function deriveSessionKey (a: Uint8Array, b: Uint8Array, secret: Uint8Array | null): Uint8Array {
  const [lo, hi] = b4a.compare(a, b) <= 0 ? [a, b] : [b, a]
  const out = b4a.alloc(16)
  const parts = [KEY_CONTEXT, lo, hi]
  if (secret !== null) parts.push(secret)
  sodium.crypto_generichash_batch(out, parts)
  return out
}

function aligned32 (buf: Uint8Array): Uint32Array {
  if ((buf.byteOffset & 3) === 0) return new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2)
  const copy = new Uint8Array(buf.byteLength)
  copy.set(buf)
  return new Uint32Array(copy.buffer, 0, buf.byteLength >>> 2)
}

/**
 * The keyed 64-bit PRF of ids, h(id) = AES_k(AES_k(id[0..16]) ⊕ id[16..32])
 * truncated to its first 8 bytes, read little endian as (lo, hi).
 */
export class KeyedHash {
  private readonly cipher: Cipheriv
  private readonly block: Uint8Array
  private readonly block32: Uint32Array

  constructor (key: Uint8Array) {
    this.cipher = createCipheriv('aes-128-ecb', key, null)
    this.cipher.setAutoPadding(false)
    this.block = b4a.alloc(CHUNK * 16)
    this.block32 = new Uint32Array(this.block.buffer, this.block.byteOffset, CHUNK * 4)
  }

  /** h(id) into out[o] (low 32 bits) and out[o + 1] (high 32 bits). */
  one (id: Uint8Array, at: number, out: Uint32Array, o: number): void {
    const b = this.block
    for (let i = 0; i < 16; i++) b[i] = id[at + i]!
    const e1 = this.cipher.update(b.subarray(0, 16))
    for (let i = 0; i < 16; i++) e1[i] = e1[i]! ^ id[at + 16 + i]!
    const e2 = this.cipher.update(e1)
    out[o] = (e2[0]! | (e2[1]! << 8) | (e2[2]! << 16) | (e2[3]! << 24)) >>> 0
    out[o + 1] = (e2[4]! | (e2[5]! << 8) | (e2[6]! << 16) | (e2[7]! << 24)) >>> 0
  }

  /**
   * Hashes `m` ids stored as words in `src` (8 words each, from word `w`)
   * into `out` (2 words each, from index `o`). `src` must be a view of the
   * ids' own memory, so word order is byte order.
   */
  many (src: Uint32Array, w: number, m: number, out: Uint32Array, o: number): void {
    const b32 = this.block32
    while (m > 0) {
      const k = Math.min(m, CHUNK)
      for (let j = 0, s = w, p = 0; j < k; j++, s += 8, p += 4) {
        b32[p] = src[s]!
        b32[p + 1] = src[s + 1]!
        b32[p + 2] = src[s + 2]!
        b32[p + 3] = src[s + 3]!
      }
      const e1 = this.cipher.update(this.block.subarray(0, k * 16))
      const e132 = aligned32(e1)
      for (let j = 0, s = w + 4, p = 0; j < k; j++, s += 8, p += 4) {
        e132[p] = e132[p]! ^ src[s]!
        e132[p + 1] = e132[p + 1]! ^ src[s + 1]!
        e132[p + 2] = e132[p + 2]! ^ src[s + 2]!
        e132[p + 3] = e132[p + 3]! ^ src[s + 3]!
      }
      const e2 = this.cipher.update(new Uint8Array(e132.buffer, e132.byteOffset, k * 16))
      for (let j = 0, p = 0, q = o; j < k; j++, p += 16, q += 2) {
        out[q] = (e2[p]! | (e2[p + 1]! << 8) | (e2[p + 2]! << 16) | (e2[p + 3]! << 24)) >>> 0
        out[q + 1] = (e2[p + 4]! | (e2[p + 5]! << 8) | (e2[p + 6]! << 16) | (e2[p + 7]! << 24)) >>> 0
      }
      m -= k
      w += k * 8
      o += k * 2
    }
  }
}
