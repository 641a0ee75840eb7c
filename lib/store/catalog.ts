/**
 * The store's list of the cores it holds, on disk and in memory, so that a
 * store knows every core's key and state without opening it:
 *
 *  - `keys`: 32-byte core keys back to back; a core's slot is its index.
 *  - `state`: one 40-byte record per slot — fork, length, blocks held,
 *    change sequence (all uint64 LE), flags (uint32 LE) and a CRC-32 over
 *    them and the slot. A record whose CRC fails says nothing.
 *  - `aliases`: which name in which namespace made which core (for
 *    `get({ name })` of a core created with a custom manifest, and for
 *    `list(namespace)`), appended as length-prefixed, CRC-checked entries.
 *  - `sync-points`: per remote store, our change sequence (and how many
 *    slots we had) at the last time both stores' states were found equal.
 *
 * A core open for use is marked dirty on disk before it opens and clean
 * with its final state after it closes: a store that crashed reopens the
 * cores still marked dirty to learn their true state. Every state change
 * takes the next change sequence number, so "what changed since" is the
 * records with a larger one.
 */
import b4a from 'b4a'
import * as zlib from 'node:zlib'
import type { RandomAccessStorage } from 'random-access-storage'
import { discoveryKey } from '../crypto'
import { readU32, readU64, writeU32, writeU64 } from '../uint-le'
import { EMPTY_STATE, PREFIX_BYTES, prefixOf, sameState, type CoreState } from './core-state'
import { pClose, pWrite, readAll } from '../storage/file-io'

const KEY_BYTES = 32
const STATE_BYTES = 40
const SYNC_POINT_BYTES = 48
const ALIAS_HEADER = 2 + 4 + 32
const MAX_NAME_BYTES = 4096

const FLAG_DIRTY = 0x80000000
/** How long changes wait to be written in one batch (ms). */
const FLUSH_DELAY = 200

export type FileFactory = (name: string) => RandomAccessStorage

/** Where a store was when it last agreed with another: its change sequence and how many slots it had. */
export interface SyncPoint {
  seq: number
  slots: number
}

/** One core the store holds. */
export class CoreRecord {
  readonly slot: number
  readonly key: Uint8Array
  readonly discoveryKey: Uint8Array
  /** The discovery key in hex: the core's name in maps and on disk. */
  readonly id: string
  state: CoreState = EMPTY_STATE
  /** Change sequence number of the last state change. */
  seq = 0
  /** Marked dirty on disk: open, its state may be ahead of the record. */
  dirty = false

  constructor (slot: number, key: Uint8Array) {
    this.slot = slot
    this.key = key
    this.discoveryKey = discoveryKey(key)
    this.id = b4a.toString(this.discoveryKey as Buffer, 'hex')
  }
}

interface CatalogFiles {
  keys: RandomAccessStorage
  state: RandomAccessStorage
  aliases: RandomAccessStorage
  syncPoints: RandomAccessStorage
}

export class Catalog {
  readonly #files: CatalogFiles
  readonly #byId = new Map<string, CoreRecord>()
  readonly #byPrefix = new Map<string, CoreRecord>()
  readonly #bySlot: Array<CoreRecord | null> = []
  readonly #aliases = new Map<string, CoreRecord>()
  /** Namespace (hex) of each alias, for list(namespace). */
  readonly #aliasNamespace = new Map<CoreRecord, Set<string>>()
  readonly #syncPoints = new Map<string, { slot: number, point: SyncPoint }>()
  #aliasesLength = 0
  /** The largest change sequence number given out. */
  seq = 0

  readonly #pendingKeys = new Set<CoreRecord>()
  readonly #pendingStates = new Set<CoreRecord>()
  readonly #pendingAliases: Uint8Array[] = []
  readonly #pendingSyncPoints = new Set<string>()
  #flushing: Promise<void> | null = null
  #timer: ReturnType<typeof setTimeout> | null = null
  #closed = false

  private constructor (files: CatalogFiles) {
    this.#files = files
  }

  static async open (file: FileFactory): Promise<Catalog> {
    const catalog = new Catalog({ keys: file('keys'), state: file('state'), aliases: file('aliases'), syncPoints: file('sync-points') })
    await catalog.#load()
    return catalog
  }

  async #load (): Promise<void> {
    const [keys, states, aliases, points] = await Promise.all([
      readAll(this.#files.keys), readAll(this.#files.state), readAll(this.#files.aliases), readAll(this.#files.syncPoints)
    ])
    // A torn append leaves a partial last key: ignored. A hole (zeros) is a key whose write never landed.
    const slots = Math.floor(keys.byteLength / KEY_BYTES)
    for (let slot = 0; slot < slots; slot++) {
      // Views of the one buffer read: no object per key beyond the view.
      const key = keys.subarray(slot * KEY_BYTES, (slot + 1) * KEY_BYTES)
      if (isZero(key)) {
        this.#bySlot.push(null)
        continue
      }
      const record = new CoreRecord(slot, key)
      if (this.#byId.has(record.id)) {
        this.#bySlot.push(null)
        continue
      }
      this.#index(record)
      const at = slot * STATE_BYTES
      // No state recorded (a store from before the state file, or a crash before it was written): look at the core.
      if (at + STATE_BYTES <= states.byteLength) decodeState(record, states.subarray(at, at + STATE_BYTES))
      else record.dirty = true
      if (record.seq > this.seq) this.seq = record.seq
    }
    this.#loadAliases(aliases)
    for (let at = 0; at + SYNC_POINT_BYTES <= points.byteLength; at += SYNC_POINT_BYTES) {
      const bytes = points.subarray(at, at + SYNC_POINT_BYTES)
      if (zlib.crc32(bytes.subarray(0, 44)) !== readU32(bytes, 44)) continue
      const seq = readU64(bytes, 32)
      this.#syncPoints.set(b4a.toString(bytes.subarray(0, 32) as Buffer, 'hex'), { slot: at / SYNC_POINT_BYTES, point: { seq, slots: readU32(bytes, 40) } })
      // A sync point is a sequence number we gave out: never give it out again.
      if (seq > this.seq) this.seq = seq
    }
  }

  #loadAliases (bytes: Uint8Array): void {
    let at = 0
    while (at + ALIAS_HEADER + 4 <= bytes.byteLength) {
      const length = bytes[at]! | (bytes[at + 1]! << 8)
      if (length < ALIAS_HEADER - 2 + 4 || at + 2 + length > bytes.byteLength) break // torn tail
      const body = bytes.subarray(at + 2, at + 2 + length - 4)
      if (zlib.crc32(body) !== readU32(bytes, at + 2 + length - 4)) break
      const slot = readU32(body, 0)
      const record = this.#bySlot[slot] ?? null
      if (record !== null) this.#setAlias(record, body.subarray(4, 36), body.subarray(36))
      at += 2 + length
    }
    this.#aliasesLength = at
  }

  #index (record: CoreRecord): void {
    this.#bySlot[record.slot] = record
    this.#byId.set(record.id, record)
    this.#byPrefix.set(prefixOf(record.discoveryKey), record)
  }

  get size (): number {
    return this.#byId.size
  }

  /** The record of the core with this discovery key (bytes or hex). */
  get (discoveryKey: Uint8Array | string): CoreRecord | null {
    const id = typeof discoveryKey === 'string' ? discoveryKey : b4a.toString(discoveryKey as Buffer, 'hex')
    return this.#byId.get(id) ?? null
  }

  /** The record whose discovery key starts with the first 16 bytes of `id`. */
  byPrefix (id: Uint8Array): CoreRecord | null {
    return this.#byPrefix.get(prefixOf(id)) ?? null
  }

  records (): IterableIterator<CoreRecord> {
    return this.#byId.values()
  }

  /** The core created as `name` in `namespace`, if any. */
  alias (namespace: Uint8Array, name: Uint8Array): CoreRecord | null {
    return this.#aliases.get(aliasKey(namespace, name)) ?? null
  }

  /** Whether `record` was created by name in `namespace` (hex). */
  inNamespace (record: CoreRecord, namespaceHex: string): boolean {
    return this.#aliasNamespace.get(record)?.has(namespaceHex) ?? false
  }

  /** Adds a core (written with the next flush); an existing one is returned as is. */
  add (key: Uint8Array): CoreRecord {
    const existing = this.get(discoveryKey(key))
    if (existing !== null) return existing
    const record = new CoreRecord(this.#bySlot.length, b4a.from(key))
    this.#index(record)
    record.seq = ++this.seq
    this.#pendingKeys.add(record)
    this.#pendingStates.add(record)
    this.#schedule()
    return record
  }

  /** Remembers that `name` in `namespace` made `record`. */
  setAlias (record: CoreRecord, namespace: Uint8Array, name: Uint8Array): void {
    if (name.byteLength > MAX_NAME_BYTES || this.alias(namespace, name) === record) return
    this.#setAlias(record, namespace, name)
    const body = b4a.allocUnsafe(4 + 32 + name.byteLength)
    writeU32(body, 0, record.slot)
    body.set(namespace, 4)
    body.set(name, 36)
    const entry = b4a.allocUnsafe(2 + body.byteLength + 4)
    const length = body.byteLength + 4
    entry[0] = length & 0xff
    entry[1] = length >>> 8
    entry.set(body, 2)
    writeU32(entry, 2 + body.byteLength, zlib.crc32(body))
    this.#pendingAliases.push(entry)
    this.#schedule()
  }

  #setAlias (record: CoreRecord, namespace: Uint8Array, name: Uint8Array): void {
    this.#aliases.set(aliasKey(namespace, name), record)
    const ns = b4a.toString(namespace as Buffer, 'hex')
    let set = this.#aliasNamespace.get(record)
    if (set === undefined) this.#aliasNamespace.set(record, set = new Set())
    set.add(ns)
  }

  /** Records a new state; true (and a new change sequence number) if it differs. */
  setState (record: CoreRecord, state: CoreState): boolean {
    if (sameState(record.state, state)) return false
    record.state = { fork: state.fork, length: state.length, held: state.held, flags: state.flags }
    record.seq = ++this.seq
    this.#pendingStates.add(record)
    this.#schedule()
    return true
  }

  /**
   * Marks `record` dirty (it is about to open) or clean (it closed and its
   * state is final). Marking dirty is on disk when this resolves.
   */
  async setDirty (record: CoreRecord, dirty: boolean): Promise<void> {
    if (record.dirty === dirty) return
    record.dirty = dirty
    this.#pendingStates.add(record)
    if (dirty) await this.#flushSoon()
    else this.#schedule()
  }

  /** A flush that cores opening in the same turn of the event loop share. */
  #flushSoon (): Promise<void> {
    if (this.#soon === null) {
      this.#soon = new Promise<void>(resolve => setImmediate(resolve)).then(() => {
        this.#soon = null
        return this.flush()
      })
    }
    return this.#soon
  }

  #soon: Promise<void> | null = null

  /** Where we were the last time our states equalled those of `remote` (hex identity). */
  syncPoint (remote: string): SyncPoint | null {
    return this.#syncPoints.get(remote)?.point ?? null
  }

  /** Slots given out so far: a core in a lower slot existed then. */
  get slots (): number {
    return this.#bySlot.length
  }

  setSyncPoint (remote: string, point: SyncPoint): void {
    const known = this.#syncPoints.get(remote)
    if (known !== undefined && known.point.seq === point.seq && known.point.slots === point.slots) return
    this.#syncPoints.set(remote, { slot: known?.slot ?? this.#syncPoints.size, point })
    this.#pendingSyncPoints.add(remote)
    this.#schedule()
  }

  #schedule (): void {
    if (this.#timer !== null || this.#closed) return
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.flush().catch(noop)
    }, FLUSH_DELAY)
    this.#timer.unref?.()
  }

  /** Writes every pending change. */
  flush (): Promise<void> {
    const run = async (): Promise<void> => {
      if (this.#flushing !== null) await this.#flushing.catch(noop)
      await this.#write()
    }
    const flushing = run()
    this.#flushing = flushing
    void flushing.finally(() => { if (this.#flushing === flushing) this.#flushing = null }).catch(noop)
    return flushing
  }

  async #write (): Promise<void> {
    const writes: Array<Promise<void>> = []
    for (const record of this.#pendingKeys) writes.push(pWrite(this.#files.keys, record.slot * KEY_BYTES, record.key))
    this.#pendingKeys.clear()
    for (const record of this.#pendingStates) writes.push(pWrite(this.#files.state, record.slot * STATE_BYTES, encodeState(record)))
    this.#pendingStates.clear()
    if (this.#pendingAliases.length > 0) {
      const all = b4a.concat(this.#pendingAliases.splice(0))
      writes.push(pWrite(this.#files.aliases, this.#aliasesLength, all))
      this.#aliasesLength += all.byteLength
    }
    for (const remote of this.#pendingSyncPoints) {
      const { slot, point } = this.#syncPoints.get(remote)!
      const bytes = b4a.alloc(SYNC_POINT_BYTES)
      bytes.set(b4a.from(remote, 'hex'), 0)
      writeU64(bytes, 32, point.seq)
      writeU32(bytes, 40, point.slots)
      writeU32(bytes, 44, zlib.crc32(bytes.subarray(0, 44)))
      writes.push(pWrite(this.#files.syncPoints, slot * SYNC_POINT_BYTES, bytes))
    }
    this.#pendingSyncPoints.clear()
    await Promise.all(writes)
  }

  async close (): Promise<void> {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    await this.flush().catch(noop)
    this.#closed = true
    await Promise.all(Object.values(this.#files).map(f => pClose(f).catch(noop)))
  }
}

function aliasKey (namespace: Uint8Array, name: Uint8Array): string {
  return b4a.toString(namespace as Buffer, 'hex') + ':' + b4a.toString(name as Buffer, 'hex')
}

function encodeState (record: CoreRecord): Uint8Array {
  const out = b4a.alloc(STATE_BYTES)
  writeU64(out, 0, record.state.fork)
  writeU64(out, 8, record.state.length)
  writeU64(out, 16, record.state.held)
  writeU64(out, 24, record.seq)
  writeU32(out, 32, (record.state.flags & ~FLAG_DIRTY) | (record.dirty ? FLAG_DIRTY : 0))
  writeU32(out, 36, checksum(out, record.slot))
  return out
}

function decodeState (record: CoreRecord, bytes: Uint8Array): void {
  if (readU32(bytes, 36) !== checksum(bytes, record.slot)) {
    // Unreadable: treat the core as possibly changed, so the store looks at it.
    record.dirty = true
    return
  }
  const flags = readU32(bytes, 32)
  record.state = { fork: readU64(bytes, 0), length: readU64(bytes, 8), held: readU64(bytes, 16), flags: flags & ~FLAG_DIRTY }
  record.seq = readU64(bytes, 24)
  record.dirty = (flags & FLAG_DIRTY) !== 0
}

/** CRC-32 of a state record's fields and its slot: a record written to the wrong place does not check out. */
function checksum (bytes: Uint8Array, slot: number): number {
  const s = b4a.allocUnsafe(4)
  writeU32(s, 0, slot)
  return zlib.crc32(s, zlib.crc32(bytes.subarray(0, 36)))
}

function isZero (b: Uint8Array): boolean {
  for (let i = 0; i < b.byteLength; i++) if (b[i] !== 0) return false
  return true
}

function noop (): void {}

export { PREFIX_BYTES }
