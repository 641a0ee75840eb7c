/**
 * The store being imported: a Hypercore 11 / Corestore 7 storage directory
 * (RocksDB), read through `hypercore-storage`, the package Hypercore 11 uses.
 *
 * SRC is never written. RocksDB opened read-only writes nothing to its
 * directory (no LOCK, LOG or MANIFEST update), so that is the first choice.
 * A store that needs a format migration before it can be read (cores written
 * by older hypercore-storage, or the pre-`db/` layout) cannot be read that
 * way: it is copied to a scratch directory and the copy is opened instead.
 *
 * Anything the source store fails to read is turned into STORAGE_CORRUPT: it
 * is the source core that is damaged, not the import.
 */
import * as fs from 'fs'
import * as path from 'path'
import type CorestoreStorage from 'hypercore-storage'
import { Bitfield } from '../bitfield'
import { inTree, rightSpan } from '../flat-tree'
import { BAD_ARGUMENT, STORAGE_CORRUPT, isCoded } from '../errors'
import type { Manifest } from '../messages'
import type { TreeNode } from '../tree-node'
import type { UserDataEntry } from '../storage'

/** The storage format hypercore-storage 3 reads without migrating (a migration is a write). */
const CURRENT_VERSION = 2
/** Blocks per bitfield page of Hypercore 11 (4096 bytes). */
const SOURCE_PAGE_BITS = 32768
/** Keys asked for in one read batch (one round trip to RocksDB's threads). */
const READ_BATCH = 1024

export type SourceMode = 'read-only' | 'copy'

/** One core listed in the source store. */
export interface SourceEntry {
  discoveryKey: Uint8Array
  /** Storage format version of the core (2 = current). */
  version: number
  /** Named cores of a Corestore: the name and namespace their key pair came from. */
  alias: { name: string, namespace: Uint8Array } | null
}

/** What the source holds about a core, decoded but not yet verified. */
export interface SourceMeta {
  key: Uint8Array
  manifest: Manifest | null
  keyPair: { publicKey: Uint8Array, secretKey: Uint8Array | null } | null
  encrypted: boolean
  fork: number
  length: number
  /** Tree hash the source recorded with its head; null for a core never appended to. */
  rootHash: Uint8Array | null
  signature: Uint8Array | null
  /** Names of named sessions (branches); only the default session is imported. */
  sessions: string[]
}

export interface OpenSourceOptions {
  /** Always read from a copy in `scratch`, even when SRC opens read-only. */
  copy?: boolean
  /** Where a copy goes (created; the caller removes it). */
  scratch: string
}

export class Source {
  readonly mode: SourceMode
  readonly entries: SourceEntry[]
  readonly #storage: CorestoreStorage

  private constructor (storage: CorestoreStorage, mode: SourceMode, entries: SourceEntry[]) {
    this.#storage = storage
    this.mode = mode
    this.entries = entries
  }

  /** Opens SRC read-only, or a copy of it when it must be migrated first (or `copy` is set). */
  static async open (dir: string, opts: OpenSourceOptions): Promise<Source> {
    const layout = sourceLayout(dir)
    let firstError: unknown = null
    if (layout === 'current' && opts.copy !== true) {
      try {
        const storage = new (hypercoreStorage())(dir, { readOnly: true })
        const opened = await openAndList(storage)
        if (opened !== null) return new Source(storage, 'read-only', opened)
      } catch (err) {
        firstError = err
      }
    }
    await fs.promises.rm(opts.scratch, { recursive: true, force: true })
    await fs.promises.cp(dir, opts.scratch, { recursive: true })
    try {
      // The copy lives elsewhere on disk: its device file would refuse it.
      const storage = new (hypercoreStorage())(opts.scratch, { allowBackup: true })
      const entries = await openAndList(storage, true)
      return new Source(storage, 'copy', entries as SourceEntry[])
    } catch (err) {
      const why = describe(firstError ?? err)
      throw STORAGE_CORRUPT(`${dir} does not open as a Hypercore 11 / Corestore 7 store: ${why}`)
    }
  }

  /** The Corestore primary key, null if the store has none. */
  async primaryKey (): Promise<Uint8Array | null> {
    const seed = await sourceRead(() => this.#storage.getSeed())
    return seed !== null && seed.byteLength === 32 ? seed : null
  }

  /** Opens one listed core; null when its entry points at nothing. */
  async openCore (entry: SourceEntry): Promise<SourceCore | null> {
    const storage = await sourceRead(() => this.#storage.resumeCore(entry.discoveryKey))
    if (storage === null) return null
    try {
      const meta = await readMeta(storage)
      return meta === null ? (await storage.close(), null) : new SourceCore(storage, meta)
    } catch (err) {
      await storage.close().catch(noop)
      throw err
    }
  }

  close (): Promise<void> {
    return this.#storage.close()
  }
}

/** One core of the source store, read in the order an import needs. */
export class SourceCore {
  readonly meta: SourceMeta
  readonly #storage: CorestoreStorage.Core

  constructor (storage: CorestoreStorage.Core, meta: SourceMeta) {
    this.#storage = storage
    this.meta = meta
  }

  /** Blocks held below the length, from the source's bitfield. */
  async held (): Promise<Bitfield> {
    const held = new Bitfield()
    const { length } = this.meta
    const pages = range(0, Math.ceil(length / SOURCE_PAGE_BITS))
    await this.#fetch(batches(pages, READ_BATCH), (rx, p) => rx.getBitfieldPage(p), async (indices, values) => {
      values.forEach((page, k) => { if (page !== null) held.setWords(indices[k]! * SOURCE_PAGE_BITS, wordsOf(page)) })
    })
    held.truncate(length)
    held.takeDirty()
    return held
  }

  /** User data (`setUserData`), sorted by key. */
  async userData (): Promise<UserDataEntry[]> {
    const out: UserDataEntry[] = []
    await sourceIterate(this.#storage.createUserDataStream(), ({ key, value }) => {
      out.push({ key, value: Uint8Array.from(value) })
    })
    return out
  }

  /** Nodes at `indices` as the source holds them (unverified). */
  async nodes (indices: number[]): Promise<Array<TreeNode | null>> {
    const out: Array<TreeNode | null> = []
    await this.#fetch(batches(indices, READ_BATCH), (rx, i) => rx.getTreeNode(i), async (_, nodes) => {
      for (const n of nodes) out.push(n === null ? null : checkNode(n))
    })
    return out
  }

  /**
   * Every stored node of the tree at the core's length (unverified), in
   * batches. For a core that holds most of its blocks (`dense`) nearly every
   * node is there, and asking for each is fastest; otherwise the stored ones
   * are listed.
   */
  async treeNodes (dense: boolean, onbatch: (nodes: TreeNode[]) => Promise<void>): Promise<void> {
    const { length } = this.meta
    if (dense) {
      await this.#fetch(batches(treeIndices(length), READ_BATCH), (rx, i) => rx.getTreeNode(i), async (_, nodes) => {
        const found: TreeNode[] = []
        for (const n of nodes) if (n !== null) found.push(checkNode(n))
        if (found.length > 0) await onbatch(found)
      })
      return
    }
    // Nodes of a tree shared with a named session live in that session's
    // data; only single reads find them there (as Hypercore reads them).
    const deps = this.#storage.dependencies
    const shared = deps.length === 0 ? 0 : Math.min(2 * length, 2 * Math.max(...deps.map(d => d.length)))
    if (shared > 0) {
      const inDeps = [...treeIndices(length)].filter(i => i < shared && inDependency(deps, i))
      const nodes = (await this.nodes(inDeps)).filter((n): n is TreeNode => n !== null)
      if (nodes.length > 0) await onbatch(nodes)
    }
    let batch: TreeNode[] = []
    await sourceIterate(this.#storage.createTreeNodeStream({ lt: 2 * length }), async (node) => {
      if (shared > 0 && inDependency(deps, node.index)) return
      batch.push(checkNode(node))
      if (batch.length >= READ_BATCH) {
        const full = batch
        batch = []
        await onbatch(full)
      }
    })
    if (batch.length > 0) await onbatch(batch)
  }

  /** The held blocks, in index order; a value is null when the source does not have the block after all. */
  blocks (held: Bitfield, onbatch: (indices: number[], values: Array<Uint8Array | null>) => Promise<void>): Promise<void> {
    return this.#fetch(batches(setBits(held), READ_BATCH), (rx, i) => rx.getBlock(i), onbatch)
  }

  close (): Promise<void> {
    return this.#storage.close()
  }

  /**
   * Reads `get(index)` for each batch of indices in one read batch (one
   * round trip to RocksDB), the next batch already in flight while `each`
   * handles the current one.
   */
  async #fetch<T> (
    list: Iterable<number[]>,
    get: (rx: CorestoreStorage.ReadBatch, index: number) => Promise<T | null>,
    each: (indices: number[], values: Array<T | null>) => Promise<void>
  ): Promise<void> {
    const read = (indices: number[]): Promise<Array<T | null>> => sourceRead(() => {
      const rx = this.#storage.read()
      const all = Promise.all(indices.map(i => get(rx, i)))
      rx.tryFlush()
      return all
    })
    const it = list[Symbol.iterator]()
    let current = it.next()
    let pending = current.done === true ? null : read(current.value)
    try {
      while (pending !== null) {
        const indices = current.value as number[]
        const values = await pending
        current = it.next()
        pending = current.done === true ? null : read(current.value)
        await each(indices, values)
      }
    } finally {
      pending?.catch(noop) // abandoned by an error in `each`
    }
  }
}

// ---------------------------------------------------------------------------

/** Loaded on first use: it brings RocksDB's native module, which only an import needs. */
function hypercoreStorage (): typeof CorestoreStorage {
  return require('hypercore-storage') as typeof CorestoreStorage
}

type Layout = 'current' | 'legacy'

/**
 * 'current': RocksDB in SRC/db; 'legacy': RocksDB files right in SRC (early
 * Corestore 7). Throws BAD_ARGUMENT for anything else.
 */
export function sourceLayout (dir: string): Layout {
  let st: fs.Stats
  try {
    st = fs.statSync(dir)
  } catch (err) {
    throw BAD_ARGUMENT(`${dir}: ${describe(err)}`)
  }
  if (!st.isDirectory()) throw BAD_ARGUMENT(`${dir} is not a directory`)
  if (fs.existsSync(path.join(dir, 'db', 'CURRENT'))) return 'current'
  if (fs.existsSync(path.join(dir, 'CURRENT'))) return 'legacy'
  throw BAD_ARGUMENT(`${dir} is not a Hypercore 11 / Corestore 7 storage directory (it has no db/ in it)`)
}

/**
 * Opens the store and lists its cores. With `migrate` false (read-only),
 * null when something would need a migration, which is a write.
 */
async function openAndList (storage: CorestoreStorage, migrate = false): Promise<SourceEntry[] | null> {
  try {
    await storage.ready()
    const entries: SourceEntry[] = []
    for await (const { discoveryKey, core } of storage.createCoreStream()) {
      if (core.version !== CURRENT_VERSION && !migrate) {
        await storage.close()
        return null
      }
      entries.push({ discoveryKey: Uint8Array.from(discoveryKey), version: core.version, alias: core.alias ?? null })
    }
    return entries
  } catch (err) {
    await storage.close().catch(noop)
    throw err
  }
}

async function readMeta (storage: CorestoreStorage.Core): Promise<SourceMeta | null> {
  const rx = storage.read()
  const reads = Promise.all([rx.getAuth(), rx.getHead(), rx.getSessions()])
  rx.tryFlush()
  const [auth, head, sessions] = await sourceRead(() => reads)
  if (auth === null) return null
  if (!isBytes(auth.key, 32)) throw STORAGE_CORRUPT('The source core has no valid key')
  const length = head === null ? 0 : head.length
  const fork = head === null ? 0 : head.fork
  if (!isUint(length) || !isUint(fork)) throw STORAGE_CORRUPT('The source core\'s head has an impossible length or fork')
  return {
    key: Uint8Array.from(auth.key),
    manifest: auth.manifest === null ? null : toManifest(auth.manifest),
    keyPair: auth.keyPair,
    encrypted: auth.encryptionKey !== null && auth.encryptionKey !== undefined,
    fork,
    length,
    rootHash: head === null ? null : head.rootHash,
    signature: head === null ? null : head.signature,
    sessions: (sessions ?? []).map(s => s.name)
  }
}

/** hypercore-storage's manifest record in nomadcore's shape (same fields, same meaning). */
function toManifest (m: CorestoreStorage.Manifest): Manifest {
  if (m.hash !== 'blake2b') throw STORAGE_CORRUPT(`The source manifest uses hash ${m.hash}`)
  return {
    version: m.version,
    hash: 'blake2b',
    allowPatch: m.allowPatch === true,
    quorum: m.quorum,
    signers: m.signers.map(s => {
      if (s.signature !== 'ed25519') throw STORAGE_CORRUPT(`The source manifest uses signature ${s.signature}`)
      return { signature: 'ed25519', namespace: s.namespace, publicKey: s.publicKey }
    }),
    prologue: m.prologue ?? null,
    linked: m.linked ?? null,
    userData: m.userData ?? null
  }
}

/** Whether Hypercore reads node `index` from a dependency (as hypercore-storage's findTreeDependency). */
function inDependency (deps: ReadonlyArray<{ length: number }>, index: number): boolean {
  for (const d of deps) if (rightSpan(index) <= (d.length - 1) * 2) return true
  return false
}

/** Every node index of the tree at `length`, ascending. */
function * treeIndices (length: number): Generator<number> {
  for (let i = 0; i < 2 * length - 1; i++) if (inTree(i, length)) yield i
}

function * setBits (bits: Bitfield): Generator<number> {
  for (let i = bits.firstSet(0); i !== -1; i = bits.firstSet(i + 1)) yield i
}

function * range (start: number, end: number): Generator<number> {
  for (let i = start; i < end; i++) yield i
}

function * batches (items: Iterable<number>, size: number): Generator<number[]> {
  let batch: number[] = []
  for (const item of items) {
    batch.push(item)
    if (batch.length === size) {
      yield batch
      batch = []
    }
  }
  if (batch.length > 0) yield batch
}

function checkNode (n: CorestoreStorage.TreeNode): TreeNode {
  if (!isUint(n.index) || !isUint(n.size) || !isBytes(n.hash, 32)) throw STORAGE_CORRUPT('A source tree node does not decode')
  return { index: n.index, size: n.size, hash: n.hash }
}

/** A bitfield page as 32-bit words, little endian as Hypercore writes them on every platform it runs on. */
function wordsOf (page: Uint8Array): Uint32Array {
  const n = page.byteLength >>> 2
  const view = new DataView(page.buffer, page.byteOffset, page.byteLength)
  const words = new Uint32Array(n)
  for (let k = 0; k < n; k++) words[k] = view.getUint32(4 * k, true)
  return words
}

async function sourceRead<T> (fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    throw asSourceError(err)
  }
}

async function sourceIterate<T> (it: AsyncIterable<T>, fn: (value: T) => Promise<void> | void): Promise<void> {
  let reading = true
  try {
    for await (const value of it) {
      reading = false
      await fn(value)
      reading = true
    }
  } catch (err) {
    // Only what the source failed to read is the source's fault.
    throw reading ? asSourceError(err) : err
  }
}

function asSourceError (err: unknown): Error {
  if (isCoded(err)) return err
  return STORAGE_CORRUPT('The source store failed to read: ' + describe(err))
}

function describe (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function isBytes (b: unknown, len: number): b is Uint8Array {
  return b instanceof Uint8Array && b.byteLength === len
}

function isUint (n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0
}

function noop (): void {}
