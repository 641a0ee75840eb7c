/**
 * Bringing a Hypercore 11 / Corestore 7 store over: `importStore(src, dst)`
 * reads every core of the RocksDB store at `src` (through hypercore-storage,
 * never writing to it) and writes it, verified, into a nomadcore Store
 * directory at `dst`. See lib/import/ for the parts: the source store
 * (source.ts), checking a tree from its signed roots down (verify.ts), copying
 * one core (copy-core.ts), the destination layout (destination.ts) and what to
 * do with cores the destination already holds (compare.ts).
 */
import * as fs from 'fs'
import * as path from 'path'
import b4a from 'b4a'
import { Source, sourceLayout, type SourceCore, type SourceEntry, type SourceMode } from './import/source'
import { Destination, fsyncCore, type ExistingCore, type PrimaryKeyResult } from './import/destination'
import { copyCore, type CopyResult } from './import/copy-core'
import { decide, type Decision } from './import/compare'
import { CoreStorage } from './storage'
import { discoveryKey } from './crypto'
import { fullRoots } from './flat-tree'
import { BAD_ARGUMENT, STORAGE_CORRUPT, isCoded, plainMessage, type ErrorCode } from './errors'
import { copyNode, sameNode, type TreeNode } from './tree-node'

export type { SourceMode, PrimaryKeyResult }

/** Cores imported at once. */
const CONCURRENCY = 4

export interface ImportOptions {
  /** Called as the import advances (after each core, and every few hundred blocks). */
  onprogress?: (progress: ImportProgress) => void
  /** Stops the import; what is done stays done, the core in progress is redone next time. */
  signal?: AbortSignal
  /** Read from a temporary copy of `src` even when it can be opened read-only. */
  copySource?: boolean
}

export interface ImportProgress {
  /** Cores dealt with so far (imported, unchanged or failed). */
  cores: number
  /** Cores in the source store. */
  totalCores: number
  /** Blocks written so far (of cores in progress too). */
  blocks: number
  /** Bytes of blocks written so far. */
  bytes: number
  /** Discovery key (hex) of the core being imported, null between cores. */
  current: string | null
}

/** Which core an entry of the summary is about. */
export interface CoreRef {
  /** Hex key; null when the source could not even tell it. */
  key: string | null
  discoveryKey: string
  /** For named cores of a Corestore: the name and namespace (hex) their key pair was derived from. */
  name: string | null
  namespace: string | null
}

export interface ImportedCore extends CoreRef {
  /** 'updated' when an older copy in the destination was replaced. */
  status: 'imported' | 'updated'
  length: number
  fork: number
  byteLength: number
  /** Blocks held (all of them for a full copy, some for a sparse one) and their bytes. */
  blocks: number
  bytes: number
  /** Whether the key pair came along (the core can be appended to). */
  writable: boolean
  userData: number
  /** What was left out, and why (nothing is lost that the core's signature covers). */
  notes: string[]
}

export interface FailedCore extends CoreRef {
  /** STORAGE_CORRUPT or INVALID_SIGNATURE: the source core is damaged. INVALID_OPERATION: nomadcore cannot hold it. STORAGE_CONFLICT: the destination holds a copy it would overwrite. */
  code: ErrorCode
  reason: string
}

export interface ImportSummary {
  src: string
  dst: string
  /** How the source was read: opened read-only, or from a temporary copy (a store that needed migrating). */
  source: SourceMode
  /** The Corestore primary key: adopted by the destination, already the same, different there (kept), or none in the source. */
  primaryKey: PrimaryKeyResult
  /** Cores in the source store. */
  total: number
  imported: ImportedCore[]
  /** Cores the destination already held in full (nothing new). */
  unchanged: CoreRef[]
  failed: FailedCore[]
  /** Blocks (and their bytes) of the cores imported by this run. */
  blocks: number
  bytes: number
  ms: number
  /** The signal stopped the import before every core was dealt with. */
  interrupted: boolean
}

/**
 * Imports every core of the Hypercore 11 / Corestore 7 storage directory
 * `src` into the nomadcore Store directory `dst` (created if missing).
 *
 * Each core is verified before it counts: its tree against its signature,
 * every block against its leaf. A damaged core is reported in `failed` with
 * the reason and nothing of it is written. `src` is never modified. Running
 * it again imports only what changed (an interrupted run resumes); a core the
 * destination holds more of than the source is left as it is.
 *
 * Rejects only when the import cannot go on at all (an unreadable `src`, a
 * destination that cannot be written or is locked by another import).
 */
export async function importStore (src: string, dst: string, opts: ImportOptions = {}): Promise<ImportSummary> {
  const started = Date.now()
  // A wrong SRC or DST fails before anything is created at DST.
  sourceLayout(src)
  const rel = path.relative(path.resolve(src), path.resolve(dst))
  if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))) {
    throw BAD_ARGUMENT(`The destination ${dst} is inside the source ${src}, which is never written to`)
  }
  const destination = await Destination.open(dst)
  let source: Source | null = null
  try {
    source = await Source.open(src, { copy: opts.copySource === true, scratch: destination.scratch('source') })
    const summary: ImportSummary = {
      src,
      dst,
      source: source.mode,
      primaryKey: await destination.adoptPrimaryKey(await source.primaryKey()),
      total: source.entries.length,
      imported: [],
      unchanged: [],
      failed: [],
      blocks: 0,
      bytes: 0,
      ms: 0,
      interrupted: false
    }
    // Blocks written so far, those of cores still in flight included (progress only).
    const written = { blocks: 0, bytes: 0 }
    const progress = (current: string | null): void => opts.onprogress?.({
      cores: summary.imported.length + summary.unchanged.length + summary.failed.length,
      totalCores: summary.total,
      blocks: written.blocks,
      bytes: written.bytes,
      current
    })
    progress(null)
    // A few cores at once: reading RocksDB and writing files both wait on
    // the thread pool, and one core at a time leaves the CPU idle half the time.
    const stop = new AbortController()
    const onabort = (): void => stop.abort()
    opts.signal?.addEventListener('abort', onabort)
    if (opts.signal?.aborted === true) stop.abort()
    try {
      await concurrently(source.entries, CONCURRENCY, stop, async (entry) => {
        const id = hex(entry.discoveryKey)
        const outcome = await importOne(source!, destination, entry, {
          signal: stop.signal,
          onblocks: (blocks, bytes) => {
            written.blocks += blocks
            written.bytes += bytes
            progress(id)
          }
        })
        if (outcome.kind === 'interrupted') return
        if (outcome.kind === 'imported') summary.imported.push(outcome.core)
        else if (outcome.kind === 'unchanged') summary.unchanged.push(outcome.ref)
        else summary.failed.push(outcome.core)
        progress(null)
      })
    } finally {
      opts.signal?.removeEventListener('abort', onabort)
    }
    for (const c of summary.imported) {
      summary.blocks += c.blocks
      summary.bytes += c.bytes
    }
    summary.interrupted = summary.imported.length + summary.unchanged.length + summary.failed.length < summary.total
    // In the source's order, whichever finished first.
    const order = new Map(source.entries.map((e, i) => [hex(e.discoveryKey), i]))
    const bySource = (a: CoreRef, b: CoreRef): number => order.get(a.discoveryKey)! - order.get(b.discoveryKey)!
    summary.imported.sort(bySource)
    summary.unchanged.sort(bySource)
    summary.failed.sort(bySource)
    summary.ms = Date.now() - started
    return summary
  } finally {
    await source?.close().catch(noop)
    await destination.close()
  }
}

/**
 * Calls `fn` on each item, `limit` at a time, until `stop` aborts. The first
 * error aborts `stop` (the calls running see it and end) and is rethrown once
 * they all have.
 */
async function concurrently<T> (items: readonly T[], limit: number, stop: AbortController, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  let failure: { err: unknown } | null = null
  const worker = async (): Promise<void> => {
    while (next < items.length && !stop.signal.aborted) {
      try {
        await fn(items[next++]!)
      } catch (err) {
        failure ??= { err }
        stop.abort()
      }
    }
  }
  await Promise.all(Array.from({ length: limit }, worker))
  if (failure !== null) throw (failure as { err: unknown }).err
}

type Outcome =
  | { kind: 'imported', core: ImportedCore }
  | { kind: 'unchanged', ref: CoreRef }
  | { kind: 'failed', core: FailedCore }
  | { kind: 'interrupted' }

interface OneOptions {
  signal: AbortSignal | null
  onblocks: (blocks: number, bytes: number) => void
}

async function importOne (source: Source, dst: Destination, entry: SourceEntry, opts: OneOptions): Promise<Outcome> {
  const id = hex(entry.discoveryKey)
  const ref: CoreRef = {
    key: null,
    discoveryKey: id,
    name: entry.alias?.name ?? null,
    namespace: entry.alias === null ? null : hex(entry.alias.namespace)
  }
  const failed = (code: ErrorCode, reason: string): Outcome => ({ kind: 'failed', core: { ...ref, code, reason } })
  const scratch = dst.scratch(id)
  let core: SourceCore | null = null
  try {
    core = await source.openCore(entry)
    if (core === null) return failed('STORAGE_CORRUPT', 'The source lists this core but holds no record of it')
    const meta = core.meta
    ref.key = hex(meta.key)
    if (!b4a.equals(discoveryKey(meta.key), entry.discoveryKey)) {
      throw STORAGE_CORRUPT('The core\'s key does not match the discovery key it is stored under')
    }
    const held = await core.held()
    const userData = await core.userData()

    const plan = await planFor(dst, core, id, { fork: meta.fork, length: meta.length, held, userData })
    if (plan.kind === 'conflict') return failed('STORAGE_CONFLICT', plan.why)
    if (plan.kind === 'keep') {
      await dst.addKey(meta.key)
      return { kind: 'unchanged', ref }
    }

    await fs.promises.rm(scratch, { recursive: true, force: true })
    await fs.promises.mkdir(scratch, { recursive: true })
    const result = await copyCore(core, scratch, { held, userData, signal: opts.signal, onblocks: opts.onblocks })
    if (plan.kind === 'replace' && plan.dstRoots.length > 0 && !(await holdsNodes(scratch, plan.dstRoots))) {
      await fs.promises.rm(scratch, { recursive: true, force: true })
      return failed('STORAGE_CONFLICT', `The destination holds a different tree at length ${plan.dstLength}`)
    }
    await fsyncCore(scratch)
    await dst.install(scratch, id, plan.kind === 'replace')
    await dst.addKey(meta.key)
    return {
      kind: 'imported',
      core: {
        ...ref,
        status: plan.kind === 'replace' ? 'updated' : 'imported',
        length: meta.length,
        fork: meta.fork,
        byteLength: result.byteLength,
        blocks: result.blocks,
        bytes: result.bytes,
        writable: result.writable,
        userData: userData.length,
        notes: notesOf(result, meta.sessions)
      }
    }
  } catch (err) {
    await fs.promises.rm(scratch, { recursive: true, force: true }).catch(noop)
    if (isCoded(err, 'REQUEST_CANCELLED')) return { kind: 'interrupted' }
    // A coded error is about this core (the source's damage, something
    // nomadcore cannot hold); anything else (the destination's disk) stops it all.
    if (isCoded(err)) return failed(err.code, plainMessage(err))
    throw err
  } finally {
    await core?.close().catch(noop)
  }
}

type Plan =
  | { kind: 'new' }
  | { kind: 'keep' }
  | { kind: 'conflict', why: string }
  /** Replace the destination copy; `dstRoots` (its roots at `dstLength`) must be nodes of the new tree. */
  | { kind: 'replace', dstRoots: TreeNode[], dstLength: number }

/** What to do given what the destination already holds of this core. */
async function planFor (dst: Destination, core: SourceCore, id: string, src: Parameters<typeof decide>[0]): Promise<Plan> {
  let existing: ExistingCore | null
  try {
    existing = await dst.existing(id)
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ELOCKED') return { kind: 'conflict', why: 'The destination copy of this core is open in another process' }
    if (isCoded(err, 'STORAGE_CORRUPT')) return { kind: 'conflict', why: 'The destination copy of this core does not open: ' + plainMessage(err) }
    throw err
  }
  if (existing === null) return { kind: 'new' }
  try {
    const { header } = existing
    if (!b4a.equals(header.key, core.meta.key)) return { kind: 'conflict', why: 'The destination holds a different core under this discovery key' }
    const sameTree = header.tree.length !== core.meta.length
      ? null
      : core.meta.length === 0 || (existing.treeHash !== null && core.meta.rootHash !== null && b4a.equals(existing.treeHash, core.meta.rootHash))
    const decision: Decision = decide(src, { fork: header.tree.fork, length: header.tree.length, held: existing.held, userData: header.userData ?? [] }, sameTree)
    switch (decision.action) {
      case 'keep':
        return { kind: 'keep' }
      case 'conflict':
        return { kind: 'conflict', why: capitalise(decision.why) }
      case 'keep-if-prefix': {
        const indices = fullRoots(2 * decision.prefix)
        const [ours, theirs] = await Promise.all([existing.nodes(indices), core.nodes(indices)])
        const same = indices.every((_, k) => presentAndSame(ours[k] ?? null, theirs[k] ?? null))
        return same ? { kind: 'keep' } : { kind: 'conflict', why: `The destination holds a different tree at length ${decision.prefix}` }
      }
      case 'replace': {
        const length = decision.prefix ?? 0
        const roots = length === 0 ? [] : await existing.nodes(fullRoots(2 * length))
        if (roots.some(r => r === null)) return { kind: 'conflict', why: 'The destination copy misses tree roots, so it cannot be compared: not replaced' }
        return { kind: 'replace', dstRoots: (roots as TreeNode[]).map(copyNode), dstLength: length }
      }
    }
  } finally {
    await existing.close()
  }
}

/** Whether the core in `dir` holds exactly these nodes. */
async function holdsNodes (dir: string, nodes: TreeNode[]): Promise<boolean> {
  const storage = CoreStorage.fromDirectory(dir)
  try {
    const found = await storage.getNodes(nodes.map(n => n.index))
    return nodes.every((n, k) => presentAndSame(n, found[k] ?? null))
  } finally {
    await storage.close()
  }
}

function presentAndSame (a: TreeNode | null, b: TreeNode | null): boolean {
  return a !== null && b !== null && sameNode(a, b)
}

function notesOf (result: CopyResult, sessions: string[]): string[] {
  const notes: string[] = []
  if (result.droppedNodes > 0) notes.push(`${result.droppedNodes} tree node${plural(result.droppedNodes)} left out: no chain of hashes links ${result.droppedNodes === 1 ? 'it' : 'them'} to the signed roots`)
  if (result.droppedKeyPair) notes.push('the secret key was left out: it does not match the public key')
  if (sessions.length > 0) notes.push(`named session${plural(sessions.length)} not imported (only the core itself is): ${sessions.join(', ')}`)
  return notes
}

function capitalise (s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1)
}

function plural (n: number): string {
  return n === 1 ? '' : 's'
}

function hex (b: Uint8Array): string {
  return b4a.toString(b, 'hex')
}

function noop (): void {}
