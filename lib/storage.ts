/**
 * On-disk layout of ONE core, over four random-access-storage files:
 *
 *   tree      node i at byte 40·i: uint64 LE size, then the 32-byte hash.
 *             40 zero bytes = node missing. (A fixed contract.)
 *   data      raw block bytes, at the byte offsets the tree implies.
 *   bitfield  one bit per block, byte i>>3 bit i&7 (see Bitfield).
 *   header    two crash-safe slots.
 *
 * CoreStorage opens, gates and closes the four files and owns the data and
 * bitfield files; the header and tree files are each a class of their own
 * under storage/, which this module holds one of each and re-exports from:
 *   storage/header-slot.ts  the Header codec and slot format (pure)
 *   storage/header-file.ts  the two slots on disk, writes coalesced
 *   storage/tree-file.ts    the node byte format and runs of nodes
 *   storage/file-io.ts      the storage callbacks as promises, argument checks
 * (little-endian integers of both formats are lib/uint-le.ts)
 */
import path from 'path'
import fs from 'fs'
import { SyncFile } from './sync-file'
import type { RandomAccessStorage } from 'random-access-storage'
import { Bitfield, type DirtyRange } from './bitfield'
import { BAD_ARGUMENT, SESSION_CLOSED, STORAGE_CORRUPT, isCoded } from './errors'
import type { TreeNode } from './tree-node'
import type { Header } from './storage/header-slot'
import { HeaderFile } from './storage/header-file'
import { TreeFile } from './storage/tree-file'
import { EMPTY, isBytes, isUint, pClose, pDel, pSize, pTruncate, pUnlink, pWrite, pWritePartsSoon, pWriteSoon, readUpTo, type CallsNow } from './storage/file-io'

export type { RandomAccessStorage } from 'random-access-storage'
export type { DirtyRange } from './bitfield'
export type { Header, HeaderKeyPair, HeaderTree, HeaderHints, UserDataEntry, DecodedSlot } from './storage/header-slot'
export {
  HEADER_SLOT_SIZE, HEADER_VERSION, HEADER_MAGIC, HEADER_MAX_PAYLOAD,
  encodeHeader, decodeHeader, encodeHeaderSlot, decodeHeaderSlot
} from './storage/header-slot'
export { TREE_NODE_SIZE, storedNodeState, decodeNode, type StoredNodeState } from './storage/tree-file'

/** Creates the storage for one file of a core: 'header', 'tree', 'data' or 'bitfield'. */
export type StorageFactory = (name: string) => RandomAccessStorage

const FILES = ['header', 'tree', 'data', 'bitfield'] as const

/** Reads above this size are checked against the file size first. */
const LARGE_READ = 16 * 1024 * 1024

function noop (): void {}

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

  /** The header and tree files, each holding its own layout (and the header its write state). */
  readonly #headers: HeaderFile
  readonly #nodes: TreeFile

  constructor (factory: StorageFactory) {
    if (typeof factory !== 'function') throw BAD_ARGUMENT('CoreStorage needs a storage factory')
    this.header = factory('header')
    this.tree = factory('tree')
    this.data = factory('data')
    this.bitfield = factory('bitfield')
    const ready = (): Promise<void> | null => this._ready()
    this.#headers = new HeaderFile(this.header, ready, () => this._closing !== null)
    this.#nodes = new TreeFile(this.tree, ready)
  }

  /** Files under `dir` (random-access-file), the header file locked unless `lock: false`. */
  static fromDirectory (dir: string, opts: FromDirectoryOptions = {}): CoreStorage {
    const lock = opts.lock !== false
    // Synchronous reads and writes: see sync-file.ts for why and what it costs.
    return new CoreStorage((name) => new SyncFile(path.join(dir, name), { lock: lock && name === 'header' }) as unknown as RandomAccessStorage)
  }

  /** Bytes on disk (allocated blocks) of each of a core's files in `dir`; 0 for a file not there. */
  static async diskUse (dir: string): Promise<Record<typeof FILES[number], number>> {
    const used = await Promise.all(FILES.map(async name => {
      try {
        return (await fs.promises.stat(path.join(dir, name))).blocks * 512
      } catch {
        return 0
      }
    }))
    return { header: used[0]!, tree: used[1]!, data: used[2]!, bitfield: used[3]! }
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
   * The newest valid header, null if none was ever written; STORAGE_CORRUPT
   * if the file has been written to but neither slot is valid.
   */
  readHeader (): Promise<Header | null> {
    return this.#headers.readHeader()
  }

  /** Every valid header, newest first (at most two: the slots). */
  readHeaders (): Promise<Header[]> {
    return this.#headers.readHeaders()
  }

  /** Treats the newest slot as invalid from now on (the older one stays intact). */
  discardNewestHeader (): Promise<void> {
    return this.#headers.discardNewestHeader()
  }

  /** Writes `h` to the slot not holding the newest valid header; writes are coalesced. */
  writeHeader (h: Header): Promise<void> {
    return this.#headers.writeHeader(h)
  }

  /** Resolves once no header write is queued or in flight. */
  flushHeader (): Promise<void> {
    return this.#headers.flushHeader()
  }

  // -------------------------------------------------------------------- tree

  /** Node `index`, null when past the end of the file or all zero. */
  getNode (index: number): Promise<TreeNode | null> {
    return this.#nodes.getNode(index)
  }

  /** Nodes for `indices` (in that order), null where missing. */
  getNodes (indices: number[]): Promise<Array<TreeNode | null>> {
    return this.#nodes.getNodes(indices)
  }

  /** Writes nodes, one write per run of contiguous indices. */
  putNodes (nodes: TreeNode[]): Promise<void> {
    return this.#nodes.putNodes(nodes)
  }

  /** Zeroes the given nodes. */
  deleteNodes (indices: number[]): Promise<void> {
    return this.#nodes.deleteNodes(indices)
  }

  /** Zeroes nodes [start, end); truncates the file instead when the range reaches its end. */
  deleteNodeRange (start: number, end: number): Promise<void> {
    return this.#nodes.deleteNodeRange(start, end)
  }

  /** The raw bytes of nodes [start, end), in one read; decode with `decodeNode`. */
  readTreeBytes (start: number, end: number): Promise<Uint8Array> {
    return this.#nodes.readTreeBytes(start, end)
  }

  /** Tree file size / 40 (whole nodes). */
  treeNodeCount (): Promise<number> {
    return this.#nodes.treeNodeCount()
  }

  // -------------------------------------------------------------------- data

  /**
   * `readData` without waiting, when the data file can be read at once (see
   * SyncFile.readNow); null when it takes `readData`.
   */
  readDataNow (offset: number, size: number): Uint8Array | null {
    const data = this.data as unknown as CallsNow
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
    await pWriteSoon(this.data, offset, bytes)
  }

  /** `parts` written one after another from `offset` (see pWritePartsSoon). */
  async writeDataParts (offset: number, parts: readonly Uint8Array[]): Promise<void> {
    if (parts.length === 1) return await this.writeData(offset, parts[0]!)
    if (!isUint(offset) || !parts.every(p => isBytes(p))) throw BAD_ARGUMENT('writeDataParts needs an offset and bytes')
    const ready = this._ready()
    if (ready !== null) await ready
    await pWritePartsSoon(this.data, offset, parts)
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
    await Promise.all(ranges.map((r) => pWriteSoon(this.bitfield, r.offset, r.bytes)))
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
    if (this.#headers.writing) await this.flushHeader().catch(noop)
    if (this._opening !== null) await this._opening.catch(noop)
    if (unlink) return // unlink closes each file first
    await Promise.all(this._files().map((s) => pClose(s)))
  }

  private _files (): RandomAccessStorage[] {
    return FILES.map((name) => this[name])
  }
}
