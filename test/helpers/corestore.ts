/**
 * Typed access to Corestore 7 (corestore@7.12.5, over its own Hypercore 11)
 * and to hypercore-storage's write side, for building the stores that
 * `importStore` reads and for damaging them the way a disk would. Only what
 * the import tests use.
 */
import * as fs from 'fs'
import * as path from 'path'
import b4a from 'b4a'
import CorestoreStorage from 'hypercore-storage'

export interface StoreCore {
  readonly key: Buffer
  readonly discoveryKey: Buffer
  readonly length: number
  readonly fork: number
  readonly writable: boolean
  ready (): Promise<void>
  close (): Promise<void>
  append (blocks: Uint8Array | Uint8Array[]): Promise<{ length: number }>
  get (index: number, opts?: { wait?: boolean }): Promise<Buffer | null>
  has (index: number): Promise<boolean>
  truncate (length: number): Promise<void>
  treeHash (length?: number): Promise<Buffer>
  update (opts?: { wait?: boolean }): Promise<boolean>
  download (range: { start?: number, end?: number, blocks?: number[] }): { done (): Promise<void> }
  setUserData (key: string, value: Uint8Array): Promise<void>
}

export interface ManifestInput {
  version?: number
  signers: Array<{ publicKey: Uint8Array }>
  userData?: Uint8Array
}

export interface Corestore {
  readonly primaryKey: Buffer
  ready (): Promise<void>
  close (): Promise<void>
  get (opts: { name?: string, key?: Uint8Array, keyPair?: { publicKey: Uint8Array, secretKey: Uint8Array }, manifest?: ManifestInput }): StoreCore
  namespace (name: string): Corestore
  replicate (isInitiator: boolean): { pipe (s: unknown): unknown, on (e: string, fn: () => void): unknown, destroy (): void }
}

export const Corestore = require('corestore') as new (dir: string, opts?: { primaryKey?: Uint8Array, unsafe?: boolean }) => Corestore

/** Pipes two Corestores together until `done` resolves, then disconnects them. */
export async function withReplication (a: Corestore, b: Corestore, done: () => Promise<void>): Promise<void> {
  const s1 = a.replicate(true)
  const s2 = b.replicate(false)
  s1.on('error', () => {})
  s2.on('error', () => {})
  s1.pipe(s2)
  s2.pipe(s1)
  try {
    await done()
  } finally {
    s1.destroy()
    s2.destroy()
  }
}

// ---------------------------------------------------------------------------
// Damage, written straight into the RocksDB store (the store must be closed)

interface CoreWrite {
  putBlock (index: number, data: Uint8Array): void
  deleteBlock (index: number): void
  deleteTreeNode (index: number): void
  putTreeNode (node: { index: number, size: number, hash: Uint8Array }): void
  setHead (head: { fork: number, length: number, rootHash: Uint8Array, signature: Uint8Array | null }): void
  flush (): Promise<void>
}

interface WritableCore {
  write (): CoreWrite
  read (): CorestoreStorage.ReadBatch
  close (): Promise<void>
}

/** Runs `fn` with write access to one core of the (closed) store at `dir`. */
export async function damage (dir: string, discoveryKey: Uint8Array, fn: (tx: CoreWrite, core: WritableCore) => Promise<void> | void): Promise<void> {
  const storage = new CorestoreStorage(dir)
  await storage.ready()
  try {
    const core = await storage.resumeCore(discoveryKey) as unknown as WritableCore | null
    if (core === null) throw new Error('no such core')
    const tx = core.write()
    await fn(tx, core)
    await tx.flush()
    await core.close()
  } finally {
    await storage.close()
  }
}

/** Reads the head of one core of the (closed) store at `dir`. */
export async function readHead (core: WritableCore): Promise<CorestoreStorage.Head> {
  const rx = core.read()
  const p = rx.getHead()
  rx.tryFlush()
  const head = await p
  if (head === null) throw new Error('no head')
  return head
}

// ---------------------------------------------------------------------------
// Snapshots of a directory tree, to show it was not touched

export interface FileSnapshot {
  size: number
  mtimeMs: number
  sha: string
}

/** Every file under `dir` with its size, mtime and content hash; directories with their mtime. */
export function snapshotDir (dir: string): Map<string, FileSnapshot | { dir: true, mtimeMs: number }> {
  const out = new Map<string, FileSnapshot | { dir: true, mtimeMs: number }>()
  const walk = (d: string): void => {
    for (const name of fs.readdirSync(d).sort()) {
      const p = path.join(d, name)
      const st = fs.statSync(p)
      const rel = path.relative(dir, p)
      if (st.isDirectory()) {
        out.set(rel, { dir: true, mtimeMs: st.mtimeMs })
        walk(p)
      } else {
        const sha = require('crypto').createHash('sha256').update(fs.readFileSync(p)).digest('hex') as string
        out.set(rel, { size: st.size, mtimeMs: st.mtimeMs, sha })
      }
    }
  }
  walk(dir)
  return out
}

export function hex (b: Uint8Array): string {
  return b4a.toString(b, 'hex')
}
