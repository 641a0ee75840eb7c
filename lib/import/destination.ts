/**
 * The store being imported into, in the Store's on-disk layout:
 *
 *   DST/cores/<hex discovery key>/{header,tree,data,bitfield}   one core each
 *   DST/keys          the 32-byte keys of the cores held, concatenated
 *   DST/primary-key   32 bytes, the seed of named cores' key pairs
 *
 * A core is built in DST/.import-tmp/<hex discovery key> and renamed into
 * cores/ once it is complete and verified, so cores/ never holds half a core:
 * whatever a killed import leaves in .import-tmp is thrown away by the next
 * run and redone. A destination copy being replaced is moved to
 * .import-tmp/old-<hex discovery key> first, and moved back by the next run
 * if the process died before the new copy took its place.
 *
 * The import holds the lock on primary-key for its whole run (the Store takes
 * the same lock while it opens), so two imports, or an import and a Store
 * opening, do not write the same destination at once.
 */
import * as fs from 'fs'
import * as path from 'path'
import b4a from 'b4a'
import RandomAccessFile from 'random-access-file'
import { CoreStorage, type Header } from '../storage'
import { Bitfield } from '../bitfield'
import { fullRoots } from '../flat-tree'
import { treeHash } from '../crypto'
import { pClose, pRead, pSize, pWrite } from '../storage/file-io'
import type { TreeNode } from '../tree-node'

const SCRATCH = '.import-tmp'
const OLD_PREFIX = 'old-'
const KEY_BYTES = 32

export type PrimaryKeyResult = 'imported' | 'unchanged' | 'different' | 'none'

/** A core the destination already holds. */
export interface ExistingCore {
  header: Header
  held: Bitfield
  /** Tree hash of its roots at its length, null if a root is missing. */
  treeHash: Uint8Array | null
  /** Nodes of its tree at `indices` (null where missing). */
  nodes (indices: number[]): Promise<Array<TreeNode | null>>
  close (): Promise<void>
}

export class Destination {
  readonly dir: string
  readonly #lock: RandomAccessFile
  readonly #keys: fs.promises.FileHandle
  readonly #known: Set<string>
  #keysLength: number

  private constructor (dir: string, lock: RandomAccessFile, keys: fs.promises.FileHandle, known: Set<string>, keysLength: number) {
    this.dir = dir
    this.#lock = lock
    this.#keys = keys
    this.#known = known
    this.#keysLength = keysLength
  }

  /** Creates the layout if needed, takes the lock and clears what an interrupted run left. */
  static async open (dir: string): Promise<Destination> {
    await fs.promises.mkdir(path.join(dir, 'cores'), { recursive: true })
    const lock = new RandomAccessFile(path.join(dir, 'primary-key'), { lock: true })
    // A zero-length write opens (creating) the file, which is what takes the lock.
    await pWrite(lock, 0, new Uint8Array(0))
    let keys: fs.promises.FileHandle | null = null
    try {
      await recoverScratch(dir)
      keys = await fs.promises.open(path.join(dir, 'keys'), fs.constants.O_RDWR | fs.constants.O_CREAT)
      const list = await keys.readFile()
      // A torn append leaves a partial last key: it is overwritten, as the Store does.
      const length = list.byteLength - (list.byteLength % KEY_BYTES)
      const known = new Set<string>()
      for (let at = 0; at < length; at += KEY_BYTES) known.add(b4a.toString(list.subarray(at, at + KEY_BYTES), 'hex'))
      return new Destination(dir, lock, keys, known, length)
    } catch (err) {
      await keys?.close().catch(noop)
      await pClose(lock).catch(noop)
      throw err
    }
  }

  /** Where a scratch file or directory of this run goes. */
  scratch (name: string): string {
    return path.join(this.dir, SCRATCH, name)
  }

  coreDir (hexDiscoveryKey: string): string {
    return path.join(this.dir, 'cores', hexDiscoveryKey)
  }

  /**
   * Adopts the source's primary key when the destination has none; reports
   * whether the two agree otherwise (a different one is left as it is).
   */
  async adoptPrimaryKey (seed: Uint8Array | null): Promise<PrimaryKeyResult> {
    const size = await pSize(this.#lock)
    if (size === KEY_BYTES) {
      const current = await pRead(this.#lock, 0, KEY_BYTES)
      if (seed === null) return 'none'
      return b4a.equals(current, seed) ? 'unchanged' : 'different'
    }
    if (seed === null) return 'none'
    if (size !== 0) return 'different' // not a primary key we understand: not ours to overwrite
    await pWrite(this.#lock, 0, seed)
    await fsyncFile(path.join(this.dir, 'primary-key'))
    return 'imported'
  }

  /** The core stored under this discovery key, null if there is none. Throws ELOCKED if it is open elsewhere. */
  async existing (hexDiscoveryKey: string): Promise<ExistingCore | null> {
    const dir = this.coreDir(hexDiscoveryKey)
    if (!(await CoreStorage.exists(dir))) {
      // An empty directory (a core whose first header was never written) holds nothing.
      await fs.promises.rm(dir, { recursive: true, force: true })
      return null
    }
    const storage = CoreStorage.fromDirectory(dir)
    try {
      const header = await storage.readHeader()
      if (header === null) {
        await storage.close()
        await fs.promises.rm(dir, { recursive: true, force: true })
        return null
      }
      const held = await storage.readBitfield()
      held.truncate(header.tree.length)
      held.takeDirty()
      const roots = await storage.getNodes(fullRoots(2 * header.tree.length))
      const hash = roots.some(r => r === null) ? null : treeHash(roots as TreeNode[])
      return {
        header,
        held,
        treeHash: hash,
        nodes: (indices) => storage.getNodes(indices),
        close: () => storage.close()
      }
    } catch (err) {
      await storage.close().catch(noop)
      throw err
    }
  }

  /**
   * Moves a complete core from `from` (a scratch directory) into cores/,
   * replacing the destination copy when `replace` is set.
   */
  async install (from: string, hexDiscoveryKey: string, replace: boolean): Promise<void> {
    const to = this.coreDir(hexDiscoveryKey)
    if (!replace) {
      await fs.promises.rename(from, to)
    } else {
      const old = this.scratch(OLD_PREFIX + hexDiscoveryKey)
      await fs.promises.rename(to, old)
      await fs.promises.rename(from, to)
      await fs.promises.rm(old, { recursive: true, force: true })
    }
    await fsyncDir(path.dirname(to))
  }

  /** Adds `key` to the list of cores held, unless it is there. */
  async addKey (key: Uint8Array): Promise<void> {
    const id = b4a.toString(key, 'hex')
    if (this.#known.has(id)) return
    // Reserved before the write: cores finishing together append in turn.
    const at = this.#keysLength
    this.#keysLength += KEY_BYTES
    this.#known.add(id)
    try {
      await this.#keys.write(key, 0, KEY_BYTES, at)
    } catch (err) {
      this.#known.delete(id)
      throw err
    }
  }

  hasKey (key: Uint8Array): boolean {
    return this.#known.has(b4a.toString(key, 'hex'))
  }

  /** Syncs the key list, drops scratch space and releases the lock. */
  async close (): Promise<void> {
    try {
      await this.#keys.datasync().catch(noop)
      await this.#keys.close()
      await fs.promises.rm(path.join(this.dir, SCRATCH), { recursive: true, force: true })
      // An empty primary-key (we created it to take the lock) would read as a broken one.
      if (await pSize(this.#lock) === 0) await fs.promises.rm(path.join(this.dir, 'primary-key'), { force: true })
    } finally {
      await pClose(this.#lock)
    }
  }
}

/**
 * Puts back a destination copy whose replacement never landed, and removes
 * everything else a killed run left (partial cores, a source copy).
 */
async function recoverScratch (dir: string): Promise<void> {
  const scratch = path.join(dir, SCRATCH)
  let names: string[]
  try {
    names = await fs.promises.readdir(scratch)
  } catch {
    return
  }
  for (const name of names) {
    if (!name.startsWith(OLD_PREFIX)) continue
    const core = path.join(dir, 'cores', name.slice(OLD_PREFIX.length))
    if (!fs.existsSync(core)) await fs.promises.rename(path.join(scratch, name), core)
  }
  await fs.promises.rm(scratch, { recursive: true, force: true })
}

/** Flushes the files of a finished core to disk, so the rename publishes whole files. */
export async function fsyncCore (dir: string): Promise<void> {
  await Promise.all(['header', 'tree', 'data', 'bitfield'].map(name => fsyncFile(path.join(dir, name))))
}

async function fsyncFile (file: string): Promise<void> {
  const fh = await fs.promises.open(file, 'r+')
  try {
    await fh.datasync()
  } finally {
    await fh.close()
  }
}

async function fsyncDir (dir: string): Promise<void> {
  // Not every platform can fsync a directory; the rename is still atomic.
  const fh = await fs.promises.open(dir, 'r').catch(() => null)
  if (fh === null) return
  try {
    await fh.sync().catch(noop)
  } finally {
    await fh.close()
  }
}

function noop (): void {}
