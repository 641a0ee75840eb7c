/**
 * The header of a core and its crash-safe slot format, as pure functions:
 * the Header payload codec and the slot framing (magic, version, sequence
 * number, length, BLAKE2b checksum) around it.
 *
 * A header file holds two slots: slot 0 at byte 0, slot 1 at
 * HEADER_SLOT_SIZE (64 KiB). A slot is
 *
 *   0   magic 'NMCH'           4 bytes
 *   4   format version         uint32 LE (1)
 *   8   sequence number        uint64 LE, +1 on every write
 *   16  payload length n       uint32 LE
 *   20  payload                n bytes, compact-encoded Header
 *   20+n checksum              32 bytes, BLAKE2b-256 of bytes [0, 20+n)
 *
 * Apart from the file that holds the slots (header-file.ts) so the format can
 * be checked byte for byte without any I/O, and every decoder here is fed
 * hostile bytes: they throw STORAGE_CORRUPT or return null, nothing else.
 */
import b4a from 'b4a'
import c from 'compact-encoding'
import sodium from 'sodium-universal'
import { BAD_ARGUMENT, STORAGE_CORRUPT, isCoded } from '../errors'
import { uint } from '../codec-primitives'
import { isBytes, isUint } from './file-io'
import { readU32, readU64, writeU32, writeU64 } from '../uint-le'

export interface HeaderKeyPair {
  publicKey: Uint8Array
  secretKey: Uint8Array
}

export interface HeaderTree {
  fork: number
  length: number
  byteLength: number
  signature: Uint8Array | null
}

export interface HeaderHints {
  contiguousLength: number
  /**
   * Blocks [appendedFrom, tree.length) were written together with this
   * header, so a crash may have cut them short: a reopen checks them, and
   * falls back to the other slot's header if they do not hold.
   */
  appendedFrom: number
}

export interface Header {
  key: Uint8Array
  /** Already-encoded manifest, opaque here. */
  manifest: Uint8Array | null
  keyPair: HeaderKeyPair | null
  tree: HeaderTree
  hints?: HeaderHints
  /** `setUserData` entries, kept with the header so they are as crash-safe as it is. */
  userData?: UserDataEntry[]
}

/** One `setUserData(key, value)` entry. */
export interface UserDataEntry {
  key: string
  value: Uint8Array
}
export const HEADER_SLOT_SIZE = 65536
export const HEADER_VERSION = 1
export const HEADER_MAGIC: Uint8Array = b4a.from('NMCH')
const SLOT_PREFIX = 20
const CHECKSUM_BYTES = 32
/** Largest encoded Header that fits a slot. */
export const HEADER_MAX_PAYLOAD = HEADER_SLOT_SIZE - SLOT_PREFIX - CHECKSUM_BYTES

// ---------------------------------------------------------------------------
// Header encoding

const FLAG_MANIFEST = 1
const FLAG_KEYPAIR = 2
const FLAG_SIGNATURE = 4
const FLAG_HINTS = 8
const FLAG_USER_DATA = 16
const KNOWN_FLAGS = FLAG_MANIFEST | FLAG_KEYPAIR | FLAG_SIGNATURE | FLAG_HINTS | FLAG_USER_DATA

function checkHeader (h: Header): void {
  if (typeof h !== 'object' || h === null) throw BAD_ARGUMENT('Header must be an object')
  if (!isBytes(h.key, 32)) throw BAD_ARGUMENT('Header key must be 32 bytes')
  if (h.manifest !== null && !isBytes(h.manifest)) throw BAD_ARGUMENT('Header manifest must be bytes or null')
  if (h.keyPair !== null) {
    if (typeof h.keyPair !== 'object' || !isBytes(h.keyPair.publicKey, 32) || !isBytes(h.keyPair.secretKey, 64)) {
      throw BAD_ARGUMENT('Header keyPair must be { publicKey: 32 bytes, secretKey: 64 bytes } or null')
    }
  }
  const t = h.tree
  if (typeof t !== 'object' || t === null) throw BAD_ARGUMENT('Header tree must be an object')
  if (!isUint(t.fork) || !isUint(t.length) || !isUint(t.byteLength)) {
    throw BAD_ARGUMENT('Header tree fork/length/byteLength must be non-negative integers')
  }
  if (t.signature !== null && !isBytes(t.signature)) throw BAD_ARGUMENT('Header tree signature must be bytes or null')
  if (h.hints !== undefined && (typeof h.hints !== 'object' || h.hints === null || !isUint(h.hints.contiguousLength) || !isUint(h.hints.appendedFrom))) {
    throw BAD_ARGUMENT('Header hints.contiguousLength and hints.appendedFrom must be non-negative integers')
  }
  if (h.userData !== undefined) {
    if (!Array.isArray(h.userData)) throw BAD_ARGUMENT('Header userData must be an array')
    for (const e of h.userData) {
      if (typeof e !== 'object' || e === null || typeof e.key !== 'string' || !isBytes(e.value)) {
        throw BAD_ARGUMENT('Header userData entries are { key: string, value: bytes }')
      }
    }
  }
}

const headerEncoding = {
  preencode (state: c.State, h: Header): void {
    state.end += 1 // flags
    c.fixed32.preencode(state, h.key)
    if (h.manifest !== null) c.buffer.preencode(state, h.manifest)
    if (h.keyPair !== null) {
      c.fixed32.preencode(state, h.keyPair.publicKey)
      c.fixed64.preencode(state, h.keyPair.secretKey)
    }
    c.uint.preencode(state, h.tree.fork)
    c.uint.preencode(state, h.tree.length)
    c.uint.preencode(state, h.tree.byteLength)
    if (h.tree.signature !== null) c.buffer.preencode(state, h.tree.signature)
    if (h.hints !== undefined) {
      c.uint.preencode(state, h.hints.contiguousLength)
      c.uint.preencode(state, h.hints.appendedFrom)
    }
    if (h.userData !== undefined) {
      c.uint.preencode(state, h.userData.length)
      for (const e of h.userData) {
        c.string.preencode(state, e.key)
        c.buffer.preencode(state, e.value)
      }
    }
  },
  encode (state: c.State, h: Header): void {
    const flags = (h.manifest !== null ? FLAG_MANIFEST : 0) |
      (h.keyPair !== null ? FLAG_KEYPAIR : 0) |
      (h.tree.signature !== null ? FLAG_SIGNATURE : 0) |
      (h.hints !== undefined ? FLAG_HINTS : 0) |
      (h.userData !== undefined ? FLAG_USER_DATA : 0)
    c.uint8.encode(state, flags)
    c.fixed32.encode(state, h.key)
    if (h.manifest !== null) c.buffer.encode(state, h.manifest)
    if (h.keyPair !== null) {
      c.fixed32.encode(state, h.keyPair.publicKey)
      c.fixed64.encode(state, h.keyPair.secretKey)
    }
    c.uint.encode(state, h.tree.fork)
    c.uint.encode(state, h.tree.length)
    c.uint.encode(state, h.tree.byteLength)
    if (h.tree.signature !== null) c.buffer.encode(state, h.tree.signature)
    if (h.hints !== undefined) {
      c.uint.encode(state, h.hints.contiguousLength)
      c.uint.encode(state, h.hints.appendedFrom)
    }
    if (h.userData !== undefined) {
      c.uint.encode(state, h.userData.length)
      for (const e of h.userData) {
        c.string.encode(state, e.key)
        c.buffer.encode(state, e.value)
      }
    }
  },
  /** Throws anything on bad input; decodeHeader() turns that into STORAGE_CORRUPT. */
  decode (state: c.State): Header {
    const flags = c.uint8.decode(state)
    if ((flags & ~KNOWN_FLAGS) !== 0) throw new Error('unknown header flags')
    const key = copy(c.fixed32.decode(state))
    const manifest = (flags & FLAG_MANIFEST) !== 0 ? copy(c.buffer.decode(state)) : null
    let keyPair: HeaderKeyPair | null = null
    if ((flags & FLAG_KEYPAIR) !== 0) {
      const publicKey = copy(c.fixed32.decode(state))
      const secretKey = copy(c.fixed64.decode(state))
      keyPair = { publicKey, secretKey }
    }
    const fork = uint.decode(state)
    const length = uint.decode(state)
    const byteLength = uint.decode(state)
    const signature = (flags & FLAG_SIGNATURE) !== 0 ? copy(c.buffer.decode(state)) : null
    const header: Header = { key, manifest, keyPair, tree: { fork, length, byteLength, signature } }
    if ((flags & FLAG_HINTS) !== 0) header.hints = { contiguousLength: uint.decode(state), appendedFrom: uint.decode(state) }
    if ((flags & FLAG_USER_DATA) !== 0) {
      const n = uint.decode(state)
      // Each entry takes at least two bytes: a count beyond that is garbage.
      if (n > (state.end - state.start) / 2) throw new Error('user data count out of range')
      header.userData = []
      for (let i = 0; i < n; i++) {
        const key = c.string.decode(state)
        const value = c.buffer.decode(state) // null for an empty value
        header.userData.push({ key, value: value === null ? new Uint8Array(0) : copy(value) })
      }
    }
    return header
  }
}

function copy (b: Uint8Array): Uint8Array {
  return b4a.from(b) // detach from the (large) read buffer
}

/** The compact encoding of a header (the slot payload). Throws BAD_ARGUMENT on a malformed header. */
export function encodeHeader (h: Header): Uint8Array {
  checkHeader(h)
  const state = c.state()
  headerEncoding.preencode(state, h)
  state.buffer = b4a.allocUnsafe(state.end)
  headerEncoding.encode(state, h)
  return state.buffer
}

/** Decodes a header payload; hostile input only ever throws STORAGE_CORRUPT. */
export function decodeHeader (bytes: Uint8Array): Header {
  try {
    const state = c.state(0, bytes.byteLength, bytes)
    const h = headerEncoding.decode(state)
    if (state.start !== state.end) throw new Error('trailing bytes')
    return h
  } catch (err) {
    if (isCoded(err, 'STORAGE_CORRUPT')) throw err
    throw STORAGE_CORRUPT('Header does not decode: ' + (err instanceof Error ? err.message : String(err)))
  }
}

/** A full header slot (prefix, payload, checksum) carrying `seq`. Throws BAD_ARGUMENT if it does not fit. */
export function encodeHeaderSlot (h: Header, seq: number): Uint8Array {
  if (!isUint(seq)) throw BAD_ARGUMENT('Header sequence must be a non-negative integer')
  const slot = encodeUnsealedSlot(h)
  sealSlot(slot, seq)
  return slot
}

/** A slot with its sequence number and checksum still to be filled in by sealSlot(). */
export function encodeUnsealedSlot (h: Header): Uint8Array {
  checkHeader(h)
  const state = c.state()
  headerEncoding.preencode(state, h)
  const n = state.end
  if (n > HEADER_MAX_PAYLOAD) throw BAD_ARGUMENT(`Header is ${n} bytes, at most ${HEADER_MAX_PAYLOAD} fit a slot`)
  const buf = b4a.allocUnsafe(SLOT_PREFIX + n + CHECKSUM_BYTES)
  buf.set(HEADER_MAGIC, 0)
  writeU32(buf, 4, HEADER_VERSION)
  writeU64(buf, 8, 0)
  writeU32(buf, 16, n)
  state.buffer = buf
  state.start = SLOT_PREFIX
  state.end = SLOT_PREFIX + n
  headerEncoding.encode(state, h)
  return buf
}

/** Stamps `seq` into an encoded slot and (re)computes its checksum. */
export function sealSlot (slot: Uint8Array, seq: number): void {
  writeU64(slot, 8, seq)
  const n = slot.byteLength - CHECKSUM_BYTES
  sodium.crypto_generichash(slot.subarray(n), slot.subarray(0, n))
}

export interface DecodedSlot {
  seq: number
  header: Header
}

/** Decodes hostile slot bytes; null when the slot is not a valid header. Never throws. */
export function decodeHeaderSlot (bytes: Uint8Array): DecodedSlot | null {
  try {
    if (bytes.byteLength < SLOT_PREFIX + CHECKSUM_BYTES) return null
    for (let i = 0; i < 4; i++) if (bytes[i] !== HEADER_MAGIC[i]) return null
    if (readU32(bytes, 4) !== HEADER_VERSION) return null
    const n = readU32(bytes, 16)
    if (n > HEADER_MAX_PAYLOAD || SLOT_PREFIX + n + CHECKSUM_BYTES > bytes.byteLength) return null
    const seq = readU64(bytes, 8)
    if (seq === -1) return null
    const sum = new Uint8Array(CHECKSUM_BYTES)
    sodium.crypto_generichash(sum, bytes.subarray(0, SLOT_PREFIX + n))
    if (!b4a.equals(sum, bytes.subarray(SLOT_PREFIX + n, SLOT_PREFIX + n + CHECKSUM_BYTES))) return null
    return { seq, header: decodeHeader(bytes.subarray(SLOT_PREFIX, SLOT_PREFIX + n)) }
  } catch {
    return null
  }
}

/** True if `bytes` could be a first slot write that never completed: all zero, or starting like a slot. */
export function looksLikeTornFirstWrite (bytes: Uint8Array): boolean {
  const m = Math.min(4, bytes.byteLength)
  let magic = true
  for (let i = 0; i < m; i++) if (bytes[i] !== HEADER_MAGIC[i]) magic = false
  if (magic) return true
  for (let i = 0; i < bytes.byteLength; i++) if (bytes[i] !== 0) return false
  return true
}
