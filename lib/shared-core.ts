/**
 * One core, many sessions. Everything durable or shared lives here once —
 * storage, the tree and bitfield (in `Core`), the mutex, repair state, peers
 * and requests (in `Replicator`), readers waiting for blocks, extensions and
 * the snapshots' copies of truncated blocks — while each public `Hypercore`
 * session holds only what is its own. The core opens with its first session
 * and closes when its last session closes.
 *
 * Sessions talk to it through this class's methods and receive events through
 * the `SessionLink` they register; nothing here reaches into a session.
 */
import type Protomux from 'protomux'
import { Core, type CoreOpenOptions } from './core'
import type { CoreEvents, CoreEventSink } from './core-events'
import { Replicator, type ReplicatorEventSink } from './replicator'
import { CoreStorage } from './storage'
import { Snapshot, type SnapshotTree } from './snapshot'
import { KeyRing } from './key-ring'
import type { Peer } from './peer'
import b4a from 'b4a'
import { encodeFullyRemote, decodeFullyRemote, treeNodeProofRequest } from './fully-remote-proof'
import type { Proof, ProofRequest } from './proof'
import type { AuditSummary } from './session-options'
import { isCoded, missingNodeOf, REQUEST_CANCELLED, REQUEST_TIMEOUT, SESSION_CLOSED, SNAPSHOT_NOT_AVAILABLE, STORAGE_EMPTY } from './errors'

/** What the shared core needs of a session. */
export interface SessionLink {
  /** The session's snapshot, or null for a live session. */
  readonly snapshot: Snapshot | null
  /** Delivers an event to the session's listeners. */
  emit (name: string, ...args: unknown[]): void
  /** Delivers `upload` or `download` (one a block): for sessions that can skip it cheaply when nobody listens. */
  transfer? (name: 'upload' | 'download', index: number, byteLength: number, peer: unknown): void
  /** Closes the session (purge and a conflict close every session of the core). */
  close? (err?: Error | null): Promise<void>
  /** A weak session does not keep the core open: it closes with the last strong one. */
  readonly weak?: boolean
  /** Whether the session wants the core replicated (Hypercore 11's active sessions). */
  readonly active?: boolean
}

export interface SharedOpenOptions extends CoreOpenOptions {
  /** The directory of a directory-backed core (checked before anything is created). */
  directory: string | null
  /** Opening waits for this first (a Store reopening a core waits for its previous instance to close). */
  preopen?: Promise<unknown> | null
  /** Called once the core has closed (or failed to open). */
  onclose?: (() => void) | null
}

interface Waiter {
  index: number
  owner: SessionLink
  /** Asked for while the block was inside the session's length: a truncation past it answers SNAPSHOT_NOT_AVAILABLE. */
  inside: boolean
  resolve (): void
  reject (err: Error): void
}

/** One session's read: what it may wait for and how. */
export interface BlockRequest {
  link: SessionLink
  verify: boolean
  wait: boolean
  timeout: number
  /** The block was inside the session's length when asked for. */
  inside: boolean
  /** Whether the session is closing (then a read that finds nothing rejects). */
  closed (): boolean
  /** Called when the read starts to wait for the network. */
  onwait (): void
}

interface ExtensionEntry {
  owner: SessionLink
  onmessage (message: Uint8Array, peer: Peer): void
}

/** Old-fork blocks kept for open snapshots, at most, per core. */
const MAX_RETAINED_BYTES = 64 * 1024 * 1024

/** Events every session hears; `append` and `truncate` only reach live sessions, as in Hypercore 11. */
const LIVE_ONLY = new Set(['append', 'truncate'])

export class SharedCore implements CoreEventSink, ReplicatorEventSink {
  readonly storage: CoreStorage
  /** The directory of a directory-backed core, else null. */
  readonly directory: string | null
  readonly opening: Promise<void>
  core: Core | null = null
  replicator: Replicator | null = null
  closed = false

  readonly #sessions = new Set<SessionLink>()
  /** Listeners that hear every event without keeping the core open (the Store follows its cores' state). */
  readonly #listeners = new Set<SessionLink>()
  /** Sessions that want the core replicated. */
  readonly #active = new Set<SessionLink>()
  readonly #keyHint: Uint8Array | null
  #onclose: (() => void) | null
  /** Gets waiting for a block, by index: a key ring, as blocks asked for come and go (see KeyRing). */
  readonly #waiting = new KeyRing<Set<Waiter>>()
  readonly #pendingMuxes: Protomux[] = []
  readonly #extensions = new Map<string, ExtensionEntry>()
  readonly #snapshots = new Set<Snapshot>()
  #closing: Promise<void> | null = null
  #maxInflight: number | undefined
  /** Exclusive sessions in line: the first holds the core, the others wait for it to close. */
  readonly #exclusive: Array<() => void> = []
  #exclusiveHeld = false

  constructor (storage: CoreStorage, opts: SharedOpenOptions) {
    this.storage = storage
    this.directory = opts.directory
    this.#keyHint = opts.key ?? null
    this.#onclose = opts.onclose ?? null
    this.opening = this.#open(opts)
    this.opening.catch(noop)
  }

  /** The core's key: known before it opens when it was opened by key. */
  get key (): Uint8Array | null {
    return this.core?.key ?? this.#keyHint
  }

  async #open (opts: SharedOpenOptions): Promise<void> {
    try {
      if (opts.preopen) await opts.preopen
      // Checked before the storage is touched, which would create the files.
      if (opts.createIfMissing === false && opts.directory !== null && !(await CoreStorage.exists(opts.directory))) {
        throw STORAGE_EMPTY()
      }
      const core = await Core.open(this.storage, opts, this)
      core.onbeforetruncate = (newLength, oldLength) => this.#retainForSnapshots(newLength, oldLength)
      this.core = core
      this.replicator = new Replicator(core, this, this.#maxInflight)
      this.replicator.setDownloading(this.#active.size > 0)
      for (const name of this.#extensions.keys()) this.#bindExtension(name)
      for (const mux of this.#pendingMuxes.splice(0)) this.replicator.attach(mux)
    } catch (err) {
      await this.storage.close().catch(noop)
      this.closed = true
      this.#notifyClosed()
      throw err
    }
  }

  // -------------------------------------------------------------------------
  // Sessions

  get sessionCount (): number {
    return this.#sessions.size
  }

  addSession (link: SessionLink): void {
    if (this.#closing !== null) throw SESSION_CLOSED('Cannot make sessions on a closing core')
    this.#sessions.add(link)
    if (link.active !== false) this.setActive(link, true)
  }

  /** A session wants the core replicated, or no longer does: peers hear whether any does (sync's `downloading`). */
  setActive (link: SessionLink, active: boolean): void {
    if (active && this.#sessions.has(link)) this.#active.add(link)
    else this.#active.delete(link)
    this.replicator?.setDownloading(this.#active.size > 0)
  }

  /**
   * Hears every event of the core, as a session would, without keeping it
   * open. Returns the function that stops listening.
   */
  listen (link: SessionLink): () => void {
    this.#listeners.add(link)
    return () => { this.#listeners.delete(link) }
  }

  /** Drops a session and everything it asked for; the last one out closes the core. */
  async removeSession (link: SessionLink, err: Error | null): Promise<void> {
    if (!this.#sessions.delete(link)) return
    if (this.#active.delete(link)) this.replicator?.setDownloading(this.#active.size > 0)
    // One error for all of the session's waiters, made only if it has any (it captures a stack).
    let reason = err
    for (const set of [...this.#waiting.values()]) {
      for (const w of [...set]) if (w.owner === link) w.reject(reason ??= REQUEST_CANCELLED())
    }
    for (const [name, ext] of [...this.#extensions]) if (ext.owner === link) this.unregisterExtension(name, link)
    if (link.snapshot !== null && --link.snapshot.refs === 0) this.#snapshots.delete(link.snapshot)
    if (this.#sessions.size === 0) await this.close()
    else if (![...this.#sessions].some(s => s.weak !== true)) await this.closeAllSessions()
  }

  /** Resolves when this session may hold the core exclusively (after those before it close). */
  lockExclusive (): Promise<void> {
    if (!this.#exclusiveHeld) {
      this.#exclusiveHeld = true
      return Promise.resolve()
    }
    return new Promise(resolve => this.#exclusive.push(resolve))
  }

  unlockExclusive (): void {
    const next = this.#exclusive.shift()
    if (next !== undefined) next()
    else this.#exclusiveHeld = false
  }

  /** Closes every session (with `err` for their pending reads); the last one out closes the core. */
  async closeAllSessions (err: Error | null = null): Promise<void> {
    await Promise.all([...this.#sessions].map(s => s.close?.(err)))
    await this.close()
  }

  /** Closes the core under every session (purge, or the last session leaving). */
  close (): Promise<void> {
    if (this.#closing === null) this.#closing = this.#close()
    return this.#closing
  }

  async #close (): Promise<void> {
    await this.opening.catch(noop)
    this.replicator?.destroy()
    for (const set of [...this.#waiting.values()]) for (const w of [...set]) w.reject(REQUEST_CANCELLED())
    try {
      if (this.core !== null) await this.core.close()
    } finally {
      this.closed = true
      this.#notifyClosed()
    }
  }

  #notifyClosed (): void {
    const onclose = this.#onclose
    this.#onclose = null
    onclose?.()
  }

  get closing (): boolean {
    return this.#closing !== null
  }

  // -------------------------------------------------------------------------
  // Events

  /** The replicator's events (`ReplicatorEventSink`): every session hears them. */
  onreplicatorevent (name: string, args: unknown[]): void {
    this.#broadcast(name, args)
  }

  /** The core's events (`CoreEventSink`). */
  oncoreevent (name: keyof CoreEvents, args: unknown[]): void {
    const r = this.replicator
    if (name === 'have') {
      const [start, length] = args as [number, number]
      for (const snap of this.#snapshots) snap.onstored(start, length)
      this.#wakeWaiters(start, length)
      r?.onlocalhave(start, length)
      return
    }
    if (name === 'drop') {
      r?.onlocaldrop(args[0] as number, args[1] as number, args[2] as boolean)
      return
    }
    if (name === 'truncate') {
      this.#ontruncate(args[0] as number)
      r?.ontruncate(args[0] as number)
    }
    if (name === 'append' || name === 'truncate' || name === 'repaired') {
      this.#wakeWaiters()
      r?.onupgrade()
    }
    this.#broadcast(name, args)
  }

  #broadcast (name: string, args: unknown[]): void {
    if (name === 'upload' || name === 'download') {
      // One a block, mostly unheard: no copy of the sessions, no spread per session.
      this.#transfer(name, args[0] as number, args[1] as number, args[2])
      return
    }
    if (name === 'conflict') {
      // As Hypercore 11: every session hears it, then closes with the error.
      const err = new Error('Two conflicting signatures exist for length ' + String(args[0]))
      queueMicrotask(() => { void this.closeAllSessions(err).catch(noop) })
    }
    const liveOnly = LIVE_ONLY.has(name)
    for (const s of [...this.#sessions, ...this.#listeners]) {
      if (liveOnly && s.snapshot !== null) continue
      s.emit(name, ...args)
    }
  }

  #transfer (name: 'upload' | 'download', index: number, byteLength: number, peer: unknown): void {
    transferTo(this.#sessions, name, index, byteLength, peer)
    transferTo(this.#listeners, name, index, byteLength, peer)
  }

  /** The core lost every block from `length` on. */
  #ontruncate (length: number): void {
    for (const snap of this.#snapshots) snap.truncated(length)
    for (const [index, set] of [...this.#waiting.entries()]) {
      if (index < length) continue
      for (const w of [...set]) if (w.inside) w.reject(SNAPSHOT_NOT_AVAILABLE('Block ' + index + ' was truncated away', this.core?.discoveryKey ?? null))
    }
  }

  /** Before a truncation: open snapshots copy out the blocks they held and still read. */
  async #retainForSnapshots (newLength: number, oldLength: number): Promise<void> {
    const core = this.core!
    let budget = MAX_RETAINED_BYTES
    for (const snap of this.#snapshots) budget -= snap.retainedBytes
    for (const snap of this.#snapshots) {
      const end = Math.min(snap.compatLength, oldLength)
      const wanted: number[] = []
      for (let i = newLength; i < end; i = i + 1) {
        i = core.bitfield.firstSet(i)
        if (i === -1 || i >= end) break
        if (snap.wants(i)) wanted.push(i)
      }
      if (wanted.length > 0) {
        const blocks = await core.getBlocks(wanted).catch(() => wanted.map(() => null))
        wanted.forEach((index, k) => {
          const block = blocks[k]
          if (block === null || block === undefined || budget < block.byteLength) return
          budget -= block.byteLength
          // A copy of its own: the bytes read may be shared (a run read at once, or the block cache's).
          snap.retain(index, b4a.from(block))
        })
      }
      snap.truncated(newLength)
    }
  }

  // -------------------------------------------------------------------------
  // Snapshots

  /** A new snapshot of the core as it is now. */
  snapshot (): Snapshot {
    const core = this.core!
    const tree: SnapshotTree = { length: core.length, byteLength: core.byteLength, fork: core.fork, roots: core.tree.roots }
    return this.adoptSnapshot(new Snapshot(tree))
  }

  /** Counts one more session on `snap`. */
  adoptSnapshot (snap: Snapshot): Snapshot {
    snap.refs++
    this.#snapshots.add(snap)
    return snap
  }

  // -------------------------------------------------------------------------
  // Waiting for blocks

  /**
   * Resolves when block `index` may be held (the caller reads again), rejects
   * on timeout, on the session closing, or when a truncation removes a block
   * that was asked for inside the session's length.
   */
  #waitForBlock (index: number, owner: SessionLink, inside: boolean, timeout: number): Promise<void> {
    const release = this.replicator?.want(index) ?? noop
    return new Promise<void>((resolve, reject) => {
      let set = this.#waiting.get(index)
      if (set === undefined) this.#waiting.set(index, set = new Set())
      let timer: ReturnType<typeof setTimeout> | null = null
      const done = (): void => {
        if (timer !== null) clearTimeout(timer)
        release()
        set!.delete(waiter)
        if (set!.size === 0 && this.#waiting.get(index) === set) this.#waiting.delete(index)
      }
      const waiter: Waiter = {
        index,
        owner,
        inside,
        resolve: () => { done(); resolve() },
        reject: (err) => { done(); reject(err) }
      }
      if (timeout > 0) timer = setTimeout(() => waiter.reject(REQUEST_TIMEOUT()), timeout)
      set.add(waiter)
      // It may have landed between the caller's read and now: no wake would come.
      if (this.core?.has(index) === true) waiter.resolve()
    })
  }

  #wakeWaiters (start = 0, length = Infinity): void {
    const core = this.core
    if (core === null || this.#waiting.size === 0) return
    if (length < this.#waiting.size) {
      // A few blocks landed while many are waited for: look those up, not every waiter.
      for (let index = start; index < start + length; index++) {
        const set = this.#waiting.get(index)
        if (set !== undefined && core.has(index)) for (const w of [...set]) w.resolve()
      }
      return
    }
    for (const [index, set] of [...this.#waiting.entries()]) {
      if (!core.has(index)) continue
      for (const w of [...set]) w.resolve()
    }
  }

  // -------------------------------------------------------------------------
  // Reading

  /**
   * Block `index` as a session sees it: through its snapshot, read again if
   * a truncation ran meanwhile, a lost tree node fetched once from peers,
   * and (if it may wait) waited for until it is here.
   */
  async readBlock (index: number, req: BlockRequest): Promise<Uint8Array | null> {
    const core = this.core!
    const snap = req.link.snapshot
    let healed = false
    for (;;) {
      if (snap !== null && index >= snap.compatLength) {
        const kept = snap.retained(index)
        // Each read its own copy, as a read from disk is: what a caller does to it changes no later read.
        if (kept !== undefined) return b4a.from(kept)
        throw SNAPSHOT_NOT_AVAILABLE(`snapshot at index ${index} not available (max compat length ${snap.compatLength})`, core.discoveryKey)
      }
      const epoch = core.epoch
      let block: Uint8Array | null
      try {
        block = await core.getBlock(index, { verify: req.verify })
      } catch (err) {
        const missing = missingNodeOf(err)
        if (missing === null || healed || this.replicator === null || this.replicator.peers.length === 0) throw err
        healed = true
        await this.#healNode(missing, req.timeout)
        continue
      }
      // A truncation or reorg ran while we read: what we read may be of the old fork.
      if (core.epoch !== epoch) continue
      if (block !== null) return block
      if (req.closed()) throw SESSION_CLOSED('cannot get on a closed session', core.discoveryKey)
      if (!req.wait) return null
      req.onwait()
      await this.#waitForBlock(index, req.link, req.inside, req.timeout)
    }
  }

  /** Resolves once a repair of node `index` from peers succeeded or failed (or `timeout` ms passed). */
  #healNode (index: number, timeout: number): Promise<void> {
    return new Promise(resolve => {
      let stop: () => void = noop
      const done = (): void => {
        stop()
        if (timer !== null) clearTimeout(timer)
        resolve()
      }
      const timer = timeout > 0 ? setTimeout(done, timeout) : null
      stop = this.listen({ snapshot: null, emit: (name) => { if (name === 'repaired' || name === 'repair-failed') done() } })
      this.replicator!.onmissingnode(index)
    })
  }

  // -------------------------------------------------------------------------
  // Proofs, repair and audit

  /** A proof in Hypercore's shape, with `block.value` filled in as Hypercore 11 does. */
  async proof (req: ProofRequest): Promise<Proof> {
    const core = this.core!
    const proof = await core.proof(req)
    if (proof.block !== null && req.block) {
      const value = await core.getBlock(req.block.index)
      if (value !== null) (proof.block as { value?: Uint8Array }).value = value
    }
    return proof
  }

  /** Our discovery key and a proof of tree node `index` that a peer can check with nothing but the key. */
  async remoteProofForTreeNode (index: number): Promise<Uint8Array> {
    const core = this.core!
    const proof = await core.proof(treeNodeProofRequest(index, core.length))
    proof.manifest = core.manifest
    return encodeFullyRemote(core.discoveryKey, proof)
  }

  /** Restores tree nodes from a fully remote proof; false when it is not ours or does not hold. */
  async recoverFromRemoteProof (bytes: Uint8Array): Promise<boolean> {
    const core = this.core!
    let decoded
    try {
      decoded = decodeFullyRemote(bytes)
    } catch (err) {
      if (isCoded(err)) return false
      throw err
    }
    if (!b4a.equals(decoded.discoveryKey, core.discoveryKey)) return false
    return core.repair(decoded.proof as Proof)
  }

  /** Audits the core; what it dropped or cleared is asked of peers at once. */
  async audit (): Promise<AuditSummary> {
    const core = this.core!
    const wasRepairing = core.repairMode
    const report = await core.audit()
    const r = this.replicator
    if (r !== null) {
      if (report.droppedRoots.length > 0) r.recoverTreeNodeFromPeers()
      if (wasRepairing && !core.repairMode) r.onupgrade()
      for (const n of report.droppedNodes) if (!report.droppedRoots.includes(n)) r.onmissingnode(n, true)
      const fetch = [...report.corruptBlocks, ...report.unverifiedBlocks]
      if (fetch.length > 0) r.download(0, 0, fetch)
    }
    return {
      blocks: report.blocks,
      verifiedBlocks: report.verifiedBlocks,
      corruptBlocks: report.corruptBlocks.length,
      unverifiedBlocks: report.unverifiedBlocks.length,
      droppedNodes: report.droppedNodes.length,
      restoredNodes: report.restoredNodes.length
    }
  }

  // -------------------------------------------------------------------------
  // Replication

  attach (mux: Protomux): void {
    if (this.replicator !== null) this.replicator.attach(mux)
    else this.#pendingMuxes.push(mux)
  }

  /** Requests in flight per peer (Hyperbee raises it for small blocks). */
  setMaxInflight (n: number): void {
    // Checked here, before the replicator exists too: a core asked for 0 (or NaN) would never request a block.
    if (!Number.isSafeInteger(n) || n <= 0) return
    this.#maxInflight = n
    this.replicator?.setMaxInflight(n)
  }

  /**
   * Registers extension `name` for the whole core, owned by one session: a
   * second registration of the same name takes it over, as in Hypercore 11.
   */
  registerExtension (name: string, owner: SessionLink, onmessage: ExtensionEntry['onmessage']): void {
    this.#extensions.set(name, { owner, onmessage })
    this.#bindExtension(name)
  }

  #bindExtension (name: string): void {
    this.replicator?.registerExtension(name, { onmessage: (message, peer) => this.#extensions.get(name)?.onmessage(message, peer) })
  }

  unregisterExtension (name: string, owner: SessionLink): void {
    if (this.#extensions.get(name)?.owner !== owner) return
    this.#extensions.delete(name)
    this.replicator?.unregisterExtension(name)
  }

}

function noop (): void {}

/** `upload` or `download` to each link of `links` (one a block: no array made per call). */
function transferTo (links: Iterable<SessionLink>, name: 'upload' | 'download', index: number, byteLength: number, peer: unknown): void {
  for (const s of links) {
    if (s.transfer !== undefined) s.transfer(name, index, byteLength, peer)
    else s.emit(name, index, byteLength, peer)
  }
}
