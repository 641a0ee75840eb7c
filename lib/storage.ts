/**
 * On-disk layout of ONE core, over four random-access-storage files:
 *
 *   tree      node i at byte 40·i: uint64 LE size, then the 32-byte hash.
 *             40 zero bytes = node missing. (A fixed contract.)
 *   data      raw block bytes, at the byte offsets the tree implies.
 *   bitfield  one bit per block, byte i>>3 bit i&7 (see Bitfield).
 *   header    two crash-safe slots, see below.
 *
 * Header slots: slot 0 at byte 0, slot 1 at HEADER_SLOT_SIZE (64 KiB). A slot is
 *
 *   0   magic 'NMCH'           4 bytes
 *   4   format version         uint32 LE (1)
 *   8   sequence number        uint64 LE, +1 on every write
 *   16  payload length n       uint32 LE
 *   20  payload                n bytes, compact-encoded Header
 *   20+n checksum              32 bytes, BLAKE2b-256 of bytes [0, 20+n)
 *
 * writeHeader() always writes the slot that does NOT hold the newest valid
 * header, so a torn write can only damage that slot; readHeader() takes the
 * valid slot with the highest sequence number.
 */
import path from 'path'
import fs from 'fs'
import b4a from 'b4a'
import c from 'compact-encoding'
import sodium from 'sodium-universal'
import { SyncFile } from './sync-file'
import type { RandomAccessStorage } from 'random-access-storage'
import { Bitfield, type DirtyRange } from './bitfield'
import { BAD_ARGUMENT, SESSION_CLOSED, STORAGE_CORRUPT, isCoded } from './errors'
import type { TreeNode } from './tree-node'

export type { RandomAccessStorage } from 'random-access-storage'
export type { DirtyRange } from './bitfield'

/** Creates the storage for one file of a core: 'header', 'tree', 'data' or 'bitfield'. */
export type StorageFactory = (name: string) => RandomAccessStorage

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

export const TREE_NODE_SIZE = 40
export const HEADER_SLOT_SIZE = 65536
export const HEADER_VERSION = 1
export const HEADER_MAGIC: Uint8Array = b4a.from('NMCH')
const SLOT_PREFIX = 20
const CHECKSUM_BYTES = 32
/** Largest encoded Header that fits a slot. */
export const HEADER_MAX_PAYLOAD = HEADER_SLOT_SIZE - SLOT_PREFIX - CHECKSUM_BYTES

const FILES = ['header', 'tree', 'data', 'bitfield'] as const

const EMPTY = new Uint8Array(0)
/** Reads above this size are checked against the file size first. */
const LARGE_READ = 16 * 1024 * 1024
/** Largest single zero-fill write when clearing tree nodes. */
const MAX_ZERO_WRITE = 1024 * 1024

// ---------------------------------------------------------------------------
// Header encoding

const FLAG_MANIFEST = 1
const FLAG_KEYPAIR = 2
const FLAG_SIGNATURE = 4
const FLAG_HINTS = 8
const FLAG_USER_DATA = 16
const KNOWN_FLAGS = FLAG_MANIFEST | FLAG_KEYPAIR | FLAG_SIGNATURE | FLAG_HINTS | FLAG_USER_DATA

function isBytes (b: unknown, len?: number): b is Uint8Array {
  return b instanceof Uint8Array && (len === undefined || b.byteLength === len)
}

function isUint (n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0
}

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
    const fork = decodeUint(state)
    const length = decodeUint(state)
    const byteLength = decodeUint(state)
    const signature = (flags & FLAG_SIGNATURE) !== 0 ? copy(c.buffer.decode(state)) : null
    const header: Header = { key, manifest, keyPair, tree: { fork, length, byteLength, signature } }
    if ((flags & FLAG_HINTS) !== 0) header.hints = { contiguousLength: decodeUint(state), appendedFrom: decodeUint(state) }
    if ((flags & FLAG_USER_DATA) !== 0) {
      const n = decodeUint(state)
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

function decodeUint (state: c.State): number {
  const n = c.uint.decode(state)
  if (!Number.isSafeInteger(n) || n < 0) throw new Error('integer out of range')
  return n
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
function encodeUnsealedSlot (h: Header): Uint8Array {
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
function sealSlot (slot: Uint8Array, seq: number): void {
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
function looksLikeTornFirstWrite (bytes: Uint8Array): boolean {
  const m = Math.min(4, bytes.byteLength)
  let magic = true
  for (let i = 0; i < m; i++) if (bytes[i] !== HEADER_MAGIC[i]) magic = false
  if (magic) return true
  for (let i = 0; i < bytes.byteLength; i++) if (bytes[i] !== 0) return false
  return true
}

// ---------------------------------------------------------------------------
// Tree node encoding

function writeU32 (buf: Uint8Array, at: number, n: number): void {
  buf[at] = n
  buf[at + 1] = n >>> 8
  buf[at + 2] = n >>> 16
  buf[at + 3] = n >>> 24
}

function readU32 (buf: Uint8Array, at: number): number {
  return (buf[at] | (buf[at + 1] << 8) | (buf[at + 2] << 16) | (buf[at + 3] << 24)) >>> 0
}

function writeU64 (buf: Uint8Array, at: number, n: number): void {
  const lo = n >>> 0
  writeU32(buf, at, lo)
  writeU32(buf, at + 4, (n - lo) / 0x100000000)
}

/** uint64 LE, or -1 when it does not fit a safe integer. */
function readU64 (buf: Uint8Array, at: number): number {
  const hi = readU32(buf, at + 4)
  if (hi > 0x1fffff) return -1
  return hi * 0x100000000 + readU32(buf, at)
}

function checkNode (node: TreeNode): void {
  if (typeof node !== 'object' || node === null || !isUint(node.index) || !isUint(node.size) || !isBytes(node.hash, 32)) {
    throw BAD_ARGUMENT('Tree node must be { index, size: non-negative integers, hash: 32 bytes }')
  }
}

function encodeNode (buf: Uint8Array, at: number, node: TreeNode): void {
  writeU64(buf, at, node.size)
  buf.set(node.hash, at + 8)
}

/** What 40 stored bytes hold: a node, nothing (all zero), or rot that cannot be a node. */
export type StoredNodeState = 'node' | 'missing' | 'rotten'

/**
 * Reads the 40 bytes at `at`. A size no core can have (2^53 or more) is rot
 * like a flipped hash bit, only easier to spot: such bytes never decode.
 */
export function storedNodeState (buf: Uint8Array, at: number): StoredNodeState {
  let zero = true
  for (let i = at; i < at + TREE_NODE_SIZE; i++) {
    if (buf[i] !== 0) { zero = false; break }
  }
  if (zero) return 'missing'
  return readU64(buf, at) === -1 ? 'rotten' : 'node'
}

/**
 * Decodes the node in the 40 bytes at `at`: null when all zero, and null when
 * its size is impossible (rotten bytes are no node; the audit drops them).
 */
export function decodeNode (buf: Uint8Array, at: number, index: number): TreeNode | null {
  if (storedNodeState(buf, at) !== 'node') return null
  return { index, size: readU64(buf, at), hash: buf.subarray(at + 8, at + TREE_NODE_SIZE) }
}

// ---------------------------------------------------------------------------
// Promise wrappers over the callback API

function pRead (s: RandomAccessStorage, offset: number, size: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    s.read(offset, size, (err, data) => {
      if (err) reject(err)
      else resolve(data as Uint8Array)
    })
  })
}

function pWrite (s: RandomAccessStorage, offset: number, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    s.write(offset, data, (err) => {
      if (err) reject(err)
      else resolve()
    })
  })
}

function pDel (s: RandomAccessStorage, offset: number, size: number): Promise<void> {
  return new Promise((resolve, reject) => {
    s.del(offset, size, (err) => {
      if (err) reject(err)
      else resolve()
    })
  })
}

function pTruncate (s: RandomAccessStorage, offset: number): Promise<void> {
  return new Promise((resolve, reject) => {
    s.truncate(offset, (err) => {
      if (err) reject(err)
      else resolve()
    })
  })
}

function pSize (s: RandomAccessStorage): Promise<number> {
  return new Promise((resolve, reject) => {
    s.stat((err, st) => {
      if (err) reject(err)
      else resolve(st === undefined ? 0 : st.size)
    })
  })
}

function pClose (s: RandomAccessStorage): Promise<void> {
  return new Promise((resolve, reject) => {
    s.close((err) => {
      if (err) reject(err)
      else resolve()
    })
  })
}

function pUnlink (s: RandomAccessStorage): Promise<void> {
  return new Promise((resolve, reject) => {
    s.unlink((err) => {
      if (err) reject(err)
      else resolve()
    })
  })
}

/**
 * Reads [offset, offset + size), or less when the file ends first (both
 * random-access-file and random-access-memory error on short reads).
 */
async function readUpTo (s: RandomAccessStorage, offset: number, size: number): Promise<Uint8Array> {
  if (size === 0) return EMPTY
  try {
    return await pRead(s, offset, size)
  } catch (err) {
    const fileSize = await pSize(s)
    // The file holds the range after all (it grew meanwhile): read again once.
    if (fileSize >= offset + size) return await pRead(s, offset, size)
    if (fileSize <= offset) return EMPTY
    return await pRead(s, offset, fileSize - offset)
  }
}

interface Deferred {
  promise: Promise<void>
  resolve: () => void
  reject: (err: unknown) => void
}

function deferred (): Deferred {
  let resolve: () => void = noop
  let reject: (err: unknown) => void = noop
  const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}

function noop (): void {}

// ---------------------------------------------------------------------------

export interface FromDirectoryOptions {
  /** Lock the header file so a second process (or open) fails with code ELOCKED. Default true. */
  lock?: boolean
}

export class CoreStorage {
  readonly header: RandomAccessStorage
  readonly tree: RandomAccessStorage
  readonly data: RandomAccessStorage
  readonly bitfield: RandomAccessStorage

  private _opening: Promise<void> | null = null
  private _opened = false
  private _closing: Promise<void> | null = null

  /** Sequence numbers of the valid header in slot 0 / 1, -1 when invalid; null until read. */
  private _slotSeq: [number, number] | null = null
  private _headerWriting: Promise<void> | null = null
  private _pendingSlot: Uint8Array | null = null
  private _pendingWrite: Deferred | null = null

  constructor (factory: StorageFactory) {
    if (typeof factory !== 'function') throw BAD_ARGUMENT('CoreStorage needs a storage factory')
    this.header = factory('header')
    this.tree = factory('tree')
    this.data = factory('data')
    this.bitfield = factory('bitfield')
  }

  /** Files under `dir` (random-access-file), the header file locked unless `lock: false`. */
  static fromDirectory (dir: string, opts: FromDirectoryOptions = {}): CoreStorage {
    const lock = opts.lock !== false
    // Synchronous reads and writes: see sync-file.ts for why and what it costs.
    return new CoreStorage((name) => new SyncFile(path.join(dir, name), { lock: lock && name === 'header' }) as unknown as RandomAccessStorage)
  }

  /** True if `dir` holds a core with a non-empty header file. */
  static async exists (dir: string): Promise<boolean> {
    try {
      const st = await fs.promises.stat(path.join(dir, 'header'))
      return st.size > 0
    } catch {
      return false
    }
  }

  get opened (): boolean {
    return this._opened
  }

  get closed (): boolean {
    return this._closing !== null
  }

  /**
   * Opens (creating if needed) all four files and takes the header lock.
   * Every method calls it; calling it first surfaces lock errors early.
   */
  open (): Promise<void> {
    if (this._opening === null) this._opening = this._open()
    return this._opening
  }

  private async _open (): Promise<void> {
    // A zero-length write opens the file in create mode (random-access-storage
    // opens read-only, failing on a missing file, until the first write).
    const all = [this.header, this.tree, this.data, this.bitfield]
    const results = await Promise.allSettled(all.map((s) => pWrite(s, 0, EMPTY)))
    for (const r of results) {
      if (r.status === 'rejected') {
        await Promise.allSettled(all.map((s) => pClose(s)))
        throw r.reason
      }
    }
    this._opened = true
  }

  private _ready (): Promise<void> | null {
    if (this._closing !== null) return Promise.reject(SESSION_CLOSED('Storage is closed'))
    return this._opened ? null : this.open()
  }

  // ------------------------------------------------------------------ header

  /**
   * The newest valid header, null if none was ever written (empty file, or a
   * first write that never completed). Throws STORAGE_CORRUPT if the file has
   * been written to but neither slot is valid.
   */
  async readHeader (): Promise<Header | null> {
    const ready = this._ready()
    if (ready !== null) await ready
    while (this._headerWriting !== null) await this._headerWriting

    const { bytes, slot0, slot1 } = await this._readSlots()
    if (bytes.byteLength === 0) return null
    if (slot0 !== null && (slot1 === null || slot0.seq >= slot1.seq)) return slot0.header
    if (slot1 !== null) return slot1.header

    // Slot 1 is only written after slot 0 held a valid header, so with nothing
    // past slot 0 the only write ever attempted was the first one.
    if (bytes.byteLength <= HEADER_SLOT_SIZE && looksLikeTornFirstWrite(bytes)) return null
    throw STORAGE_CORRUPT('Neither header slot holds a valid header')
  }

  /**
   * Every valid header, newest first (at most two: the slots). The older one
   * is what a crash during the newer one's write falls back to.
   */
  async readHeaders (): Promise<Header[]> {
    const newest = await this.readHeader()
    if (newest === null) return []
    const { slot0, slot1 } = await this._readSlots()
    const slots = [slot0, slot1].filter((s): s is DecodedSlot => s !== null).sort((a, b) => b.seq - a.seq)
    return slots.map(s => s.header)
  }

  /**
   * Treats the newest slot as invalid from now on, so the next write lands on
   * it and the older slot (the header we fell back to) stays intact.
   */
  async discardNewestHeader (): Promise<void> {
    await this.flushHeader()
    if (this._slotSeq === null) await this._readSlots()
    const seqs = this._slotSeq as [number, number]
    const newest = seqs[0] >= seqs[1] ? 0 : 1
    seqs[newest] = -1
  }

  /**
   * Writes `h` to the slot not holding the newest valid header. Writes are
   * serialised; a write requested while another is in flight is coalesced with
   * later ones (only the latest is written, all their promises resolve then).
   * `h` is validated and encoded before this returns, so it may be reused.
   */
  writeHeader (h: Header): Promise<void> {
    if (this._closing !== null) return Promise.reject(SESSION_CLOSED('Storage is closed'))
    let slot: Uint8Array
    try {
      slot = encodeUnsealedSlot(h) // sealed with its sequence number when written
    } catch (err) {
      return Promise.reject(err)
    }
    this._pendingSlot = slot
    if (this._pendingWrite === null) this._pendingWrite = deferred()
    const p = this._pendingWrite.promise
    if (this._headerWriting === null) this._headerWriting = this._drainHeader()
    return p
  }

  /** Resolves once no header write is queued or in flight. */
  async flushHeader (): Promise<void> {
    while (this._headerWriting !== null) await this._headerWriting
  }

  private async _drainHeader (): Promise<void> {
    try {
      while (this._pendingSlot !== null) {
        const slot = this._pendingSlot
        const d = this._pendingWrite as Deferred
        this._pendingSlot = null
        this._pendingWrite = null
        try {
          await this._writeSlot(slot)
          d.resolve()
        } catch (err) {
          d.reject(err)
        }
      }
    } finally {
      this._headerWriting = null
    }
  }

  private async _writeSlot (slot: Uint8Array): Promise<void> {
    const ready = this._ready()
    if (ready !== null) await ready
    if (this._slotSeq === null) await this._readSlots()
    const seqs = this._slotSeq as [number, number]
    const target = seqs[0] <= seqs[1] ? 0 : 1
    const seq = Math.max(seqs[0], seqs[1], 0) + 1
    sealSlot(slot, seq)
    seqs[target] = -1 // unknown until the write lands
    await pWrite(this.header, target * HEADER_SLOT_SIZE, slot)
    seqs[target] = seq
  }

  /**
   * Reads and decodes both slots. Their sequence numbers are remembered only
   * the first time: after that the in-memory state (we hold the lock) is
   * authoritative, and a read racing a write must not roll it back.
   */
  private async _readSlots (): Promise<{ bytes: Uint8Array, slot0: DecodedSlot | null, slot1: DecodedSlot | null }> {
    const fileSize = await pSize(this.header)
    const bytes = await readUpTo(this.header, 0, Math.min(fileSize, 2 * HEADER_SLOT_SIZE))
    const slot0 = decodeHeaderSlot(bytes.subarray(0, Math.min(bytes.byteLength, HEADER_SLOT_SIZE)))
    const slot1 = bytes.byteLength > HEADER_SLOT_SIZE ? decodeHeaderSlot(bytes.subarray(HEADER_SLOT_SIZE)) : null
    if (this._slotSeq === null) this._slotSeq = [slot0 === null ? -1 : slot0.seq, slot1 === null ? -1 : slot1.seq]
    return { bytes, slot0, slot1 }
  }

  // -------------------------------------------------------------------- tree

  /** Node `index`, null when past the end of the file or all zero. */
  async getNode (index: number): Promise<TreeNode | null> {
    if (!isUint(index)) throw BAD_ARGUMENT('Tree node index must be a non-negative integer')
    const ready = this._ready()
    if (ready !== null) await ready
    const buf = await readUpTo(this.tree, index * TREE_NODE_SIZE, TREE_NODE_SIZE)
    if (buf.byteLength < TREE_NODE_SIZE) return null
    return decodeNode(buf, 0, index)
  }

  /** Nodes for `indices` (in that order); runs of adjacent indices are read with one read each. */
  async getNodes (indices: number[]): Promise<Array<TreeNode | null>> {
    const out = new Array<TreeNode | null>(indices.length).fill(null)
    if (indices.length === 0) return out
    for (const i of indices) if (!isUint(i)) throw BAD_ARGUMENT('Tree node index must be a non-negative integer')
    const ready = this._ready()
    if (ready !== null) await ready

    const order = indices.map((_, k) => k).sort((a, b) => indices[a] - indices[b])
    const reads: Array<Promise<void>> = []
    let k = 0
    while (k < order.length) {
      const first = indices[order[k]]
      let last = first
      let j = k + 1
      while (j < order.length && indices[order[j]] <= last + 1) last = indices[order[j++]]
      const slice = order.slice(k, j)
      reads.push(readUpTo(this.tree, first * TREE_NODE_SIZE, (last - first + 1) * TREE_NODE_SIZE).then((buf) => {
        for (const pos of slice) {
          const at = (indices[pos] - first) * TREE_NODE_SIZE
          out[pos] = at + TREE_NODE_SIZE <= buf.byteLength ? decodeNode(buf, at, indices[pos]) : null
        }
      }))
      k = j
    }
    await Promise.all(reads)
    return out
  }

  /** Writes nodes, one write (one buffer) per run of contiguous indices. */
  async putNodes (nodes: TreeNode[]): Promise<void> {
    if (nodes.length === 0) return
    let sorted = true
    for (let k = 0; k < nodes.length; k++) {
      checkNode(nodes[k])
      if (k > 0 && nodes[k].index <= nodes[k - 1].index) sorted = false
    }
    const list = sorted ? nodes : nodes.slice().sort((a, b) => a.index - b.index)
    const ready = this._ready()
    if (ready !== null) await ready

    const writes: Array<Promise<void>> = []
    let k = 0
    while (k < list.length) {
      const first = list[k].index
      let j = k + 1
      while (j < list.length && list[j].index <= list[j - 1].index + 1) j++
      const count = list[j - 1].index - first + 1
      const buf = b4a.allocUnsafe(count * TREE_NODE_SIZE)
      // Duplicated indices: the later one in the (stable-sorted) list wins.
      for (let m = k; m < j; m++) encodeNode(buf, (list[m].index - first) * TREE_NODE_SIZE, list[m])
      writes.push(pWrite(this.tree, first * TREE_NODE_SIZE, buf))
      k = j
    }
    await Promise.all(writes)
  }

  /** Zeroes the given nodes (those past the end of the file are already missing). */
  async deleteNodes (indices: number[]): Promise<void> {
    if (indices.length === 0) return
    for (const i of indices) if (!isUint(i)) throw BAD_ARGUMENT('Tree node index must be a non-negative integer')
    const ready = this._ready()
    if (ready !== null) await ready
    const count = Math.ceil((await pSize(this.tree)) / TREE_NODE_SIZE)
    const list = indices.filter((i) => i < count).sort((a, b) => a - b)
    const writes: Array<Promise<void>> = []
    let k = 0
    while (k < list.length) {
      const first = list[k]
      let j = k + 1
      while (j < list.length && list[j] <= list[j - 1] + 1) j++
      writes.push(this._zeroNodes(first, list[j - 1] + 1))
      k = j
    }
    await Promise.all(writes)
  }

  /** Zeroes nodes [start, end); truncates the file instead when the range reaches its end. */
  async deleteNodeRange (start: number, end: number): Promise<void> {
    if (!isUint(start) || !(end === Infinity || isUint(end)) || end < start) {
      throw BAD_ARGUMENT('Tree node range must be non-negative integers with start <= end')
    }
    const ready = this._ready()
    if (ready !== null) await ready
    const size = await pSize(this.tree)
    if (start * TREE_NODE_SIZE >= size || start === end) return
    if (end === Infinity || end * TREE_NODE_SIZE >= size) {
      await pTruncate(this.tree, start * TREE_NODE_SIZE)
      return
    }
    await this._zeroNodes(start, end)
  }

  private async _zeroNodes (start: number, end: number): Promise<void> {
    const bytes = (end - start) * TREE_NODE_SIZE
    const zeros = b4a.alloc(Math.min(bytes, MAX_ZERO_WRITE - (MAX_ZERO_WRITE % TREE_NODE_SIZE)))
    const writes: Array<Promise<void>> = []
    for (let at = 0; at < bytes; at += zeros.byteLength) {
      const n = Math.min(zeros.byteLength, bytes - at)
      writes.push(pWrite(this.tree, start * TREE_NODE_SIZE + at, n === zeros.byteLength ? zeros : zeros.subarray(0, n)))
    }
    await Promise.all(writes)
  }

  /**
   * The raw bytes of nodes [start, end), in one read; shorter when the file
   * ends first. For scans (the audit); decode with `decodeNode`.
   */
  async readTreeBytes (start: number, end: number): Promise<Uint8Array> {
    if (!isUint(start) || !isUint(end) || end < start) throw BAD_ARGUMENT('Tree node range must be non-negative integers with start <= end')
    const ready = this._ready()
    if (ready !== null) await ready
    const size = Math.min((end - start) * TREE_NODE_SIZE, Math.max(0, (await pSize(this.tree)) - start * TREE_NODE_SIZE))
    return readUpTo(this.tree, start * TREE_NODE_SIZE, size)
  }

  /** Tree file size / 40 (whole nodes). */
  async treeNodeCount (): Promise<number> {
    const ready = this._ready()
    if (ready !== null) await ready
    return Math.floor((await pSize(this.tree)) / TREE_NODE_SIZE)
  }

  // -------------------------------------------------------------------- data

  /**
   * `readData` without waiting, when the data file can be read at once (see
   * SyncFile.readNow); null when it takes `readData`.
   */
  readDataNow (offset: number, size: number): Uint8Array | null {
    const data = this.data as unknown as { readNow?: (offset: number, size: number) => Uint8Array | null }
    if (data.readNow === undefined || !this._opened || this._closing !== null || size > LARGE_READ) return null
    return size === 0 ? EMPTY : data.readNow(offset, size)
  }

  /** `size` bytes at `offset`; STORAGE_CORRUPT if the data file ends before them. */
  async readData (offset: number, size: number): Promise<Uint8Array> {
    if (!isUint(offset) || !isUint(size)) throw BAD_ARGUMENT('Data range must be non-negative integers')
    if (size === 0) return EMPTY
    const ready = this._ready()
    if (ready !== null) await ready
    // A size from a rotten tree node can be absurd: never try to allocate
    // more than the file holds (random-access-file would never call back).
    if (size > LARGE_READ && offset + size > await pSize(this.data)) {
      throw STORAGE_CORRUPT(`Data file ends before byte ${offset + size}`)
    }
    const buf = await readUpTo(this.data, offset, size)
    if (buf.byteLength < size) throw STORAGE_CORRUPT(`Data file ends before byte ${offset + size}`)
    return buf
  }

  /** Up to `size` bytes at `offset`: fewer (maybe none) where the data file ends first. */
  async readDataUpTo (offset: number, size: number): Promise<Uint8Array> {
    if (!isUint(offset) || !isUint(size)) throw BAD_ARGUMENT('Data range must be non-negative integers')
    const ready = this._ready()
    if (ready !== null) await ready
    // A short read finds out the file size itself; only an absurd size is checked against it first.
    if (size <= LARGE_READ) return readUpTo(this.data, offset, size)
    const fileSize = await pSize(this.data)
    return readUpTo(this.data, offset, Math.max(0, Math.min(size, fileSize - offset)))
  }

  async writeData (offset: number, bytes: Uint8Array): Promise<void> {
    if (!isUint(offset) || !isBytes(bytes)) throw BAD_ARGUMENT('writeData needs an offset and bytes')
    if (bytes.byteLength === 0) return
    const ready = this._ready()
    if (ready !== null) await ready
    await pWrite(this.data, offset, bytes)
  }

  /**
   * Releases [offset, offset + size) of the data file (hole punch via del; a
   * no-op where unsupported, and random-access-memory only drops whole pages).
   * Presence is decided by the bitfield, not by these bytes.
   */
  async clearData (offset: number, size: number): Promise<void> {
    if (!isUint(offset) || !isUint(size)) throw BAD_ARGUMENT('Data range must be non-negative integers')
    if (size === 0) return
    const ready = this._ready()
    if (ready !== null) await ready
    // Nothing past the end of the file to clear (and no absurd ranges from rotten sizes).
    const end = Math.min(offset + size, await pSize(this.data))
    if (end > offset) await pDel(this.data, offset, end - offset)
  }

  async truncateData (byteLength: number): Promise<void> {
    if (!isUint(byteLength)) throw BAD_ARGUMENT('Data length must be a non-negative integer')
    const ready = this._ready()
    if (ready !== null) await ready
    await pTruncate(this.data, byteLength)
  }

  /** Size of the data file in bytes. */
  async dataByteLength (): Promise<number> {
    const ready = this._ready()
    if (ready !== null) await ready
    return pSize(this.data)
  }

  // ---------------------------------------------------------------- bitfield

  /** The stored bitfield, empty when there is none. */
  async readBitfield (): Promise<Bitfield> {
    const ready = this._ready()
    if (ready !== null) await ready
    const size = await pSize(this.bitfield)
    return Bitfield.fromBytes(await readUpTo(this.bitfield, 0, size))
  }

  /** Writes the ranges from Bitfield.takeDirty(), in parallel. */
  async writeBitfield (ranges: DirtyRange[]): Promise<void> {
    if (ranges.length === 0) return
    const ready = this._ready()
    if (ready !== null) await ready
    await Promise.all(ranges.map((r) => pWrite(this.bitfield, r.offset, r.bytes)))
  }

  /** Truncates the bitfield file to `byteLength` bytes. */
  async truncateBitfield (byteLength: number): Promise<void> {
    if (!isUint(byteLength)) throw BAD_ARGUMENT('Bitfield length must be a non-negative integer')
    const ready = this._ready()
    if (ready !== null) await ready
    await pTruncate(this.bitfield, byteLength)
  }

  // --------------------------------------------------------------- lifecycle

  /** True when no header was ever written. */
  async isEmpty (): Promise<boolean> {
    try {
      return (await this.readHeader()) === null
    } catch (err) {
      if (isCoded(err, 'STORAGE_CORRUPT')) return false
      throw err
    }
  }

  /** Waits for queued header writes, then closes all files. Idempotent. */
  close (): Promise<void> {
    if (this._closing === null) this._closing = this._close(false)
    return this._closing
  }

  /** Closes and deletes all four files. */
  async unlink (): Promise<void> {
    if (this._closing === null) this._closing = this._close(true)
    await this._closing.catch(noop)
    await Promise.all(this._files().map((s) => pUnlink(s)))
  }

  private async _close (unlink: boolean): Promise<void> {
    if (this._headerWriting !== null) await this.flushHeader().catch(noop)
    if (this._opening !== null) await this._opening.catch(noop)
    if (unlink) return // unlink closes each file first
    await Promise.all(this._files().map((s) => pClose(s)))
  }

  private _files (): RandomAccessStorage[] {
    return FILES.map((name) => this[name])
  }
}
