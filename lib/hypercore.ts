/**
 * The public face of a core, shaped like Hypercore 11: same constructor, same
 * names, same events. Opening, value encodings, waiting readers and streams
 * live here; everything that touches the tree or the disk is in `Core`.
 */
import { EventEmitter } from 'node:events'
import { Readable } from 'node:stream'
import b4a from 'b4a'
import type Protomux from 'protomux'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import { protocolStream, type Replicable, type ProtocolStreamOptions } from './protocol-stream'
import { Core, type CoreEvents } from './core'
import { Replicator, type Download, type ReplicatorEvents } from './replicator'
import type { Peer } from './peer'
import { CoreStorage, type StorageFactory } from './storage'
import { resolveEncoding, type Codec, type ValueEncoding } from './value-encoding'
import { encodeFullyRemote, decodeFullyRemote, treeNodeProofRequest } from './fully-remote-proof'
import { BAD_ARGUMENT, REQUEST_TIMEOUT, SESSION_CLOSED, STORAGE_EMPTY, isCoded, missingNodeOf } from './errors'
import type { KeyPair } from './crypto'
import type { Proof, ProofRequest } from './proof'
import type { Manifest } from './messages'
import type { ManifestInput } from './manifest'

export type { KeyPair, Proof, ProofRequest, ValueEncoding, Manifest, StorageFactory, Peer, Download }

/** Options of `replicate()`. */
export type ReplicateOptions = ProtocolStreamOptions

/** What `download()` returns. */
export interface DownloadHandle {
  /** Resolves when every block of the range is stored locally. */
  done (): Promise<void>
  /** Stops downloading; `done()` rejects with REQUEST_CANCELLED. */
  destroy (): void
}

/** `download()` ranges, as in Hypercore: a range or a list of blocks. */
export interface DownloadRange {
  start?: number
  /** Exclusive; -1 (default with no range) keeps downloading new blocks. */
  end?: number
  blocks?: number[]
  linear?: boolean
}

/** A registered extension: messages of your own over the same channel. */
export interface Extension<T = unknown> {
  readonly name: string
  send (message: T, peer: Peer): void
  broadcast (message: T): void
  destroy (): void
}

export interface ExtensionHandlers<T = unknown> {
  encoding?: ValueEncoding
  onmessage?: (message: T, peer: Peer) => void
}

/** Options of `new Hypercore(storage, [key], [opts])`. */
export interface HypercoreOptions {
  /** The core's public key; omit to create a new writable core. */
  key?: Uint8Array | string | null
  /** Signing key pair; a new core gets a fresh one. */
  keyPair?: KeyPair | null
  /** Manifest for cores with other signers than the default single key. */
  manifest?: ManifestInput | null
  /** How blocks are encoded: 'binary' (default), 'utf-8', 'json' or a codec. */
  valueEncoding?: ValueEncoding
  /** Set false to open a core read-only even with its secret key. */
  writable?: boolean
  /** Wipe whatever core is stored and start a new one. */
  overwrite?: boolean
  /** Set false to fail with STORAGE_EMPTY instead of creating a core. */
  createIfMissing?: boolean
  /**
   * Check every block read against its leaf, tied by hashes to the signed
   * roots (default true); false reads the stored bytes as they are.
   */
  verify?: boolean
}

export interface GetOptions {
  /** Wait for a block that is not here yet (default true). */
  wait?: boolean
  /** Give up waiting after this many milliseconds (0 = never). */
  timeout?: number
  valueEncoding?: ValueEncoding
  /** Check the block against its verified leaf (default: the core's `verify`). */
  verify?: boolean
}

export interface ReadStreamOptions {
  start?: number
  end?: number
  /** Keep reading blocks as they are appended. */
  live?: boolean
  valueEncoding?: ValueEncoding
}

export interface Info {
  key: Uint8Array
  discoveryKey: Uint8Array
  length: number
  contiguousLength: number
  byteLength: number
  fork: number
  padding: number
  writable: boolean
  repairMode: boolean
  storage: { blocks: number, treeNodes: number }
}

/** What `audit()` found. */
export interface AuditSummary {
  /** Held blocks checked: verified + corrupt + unverified. */
  blocks: number
  /** Blocks that match a leaf tied to the signed roots. */
  verifiedBlocks: number
  /** Blocks whose bytes were wrong: cleared (fetched again from peers). */
  corruptBlocks: number
  /** Blocks kept but not verifiable for a lost tree node: not read or served until they are, fetched again. */
  unverifiedBlocks: number
  /** Rotten tree nodes dropped (fetched again from peers). */
  droppedNodes: number
  /** Rotten or lost tree nodes rewritten with their true value, recomputed from below them. */
  restoredNodes: number
}

/** What a verified fully remote proof proves. */
export interface VerifiedTree {
  length: number
  fork: number
  byteLength: number
  treeHash: Uint8Array
  signature: Uint8Array | null
}

interface Waiter {
  resolve (): void
  reject (err: Error): void
  timer: ReturnType<typeof setTimeout> | null
}

type PublicEvents = Omit<CoreEvents, 'have' | 'drop'> & ReplicatorEvents & { ready (): void, close (): void }

export declare interface Hypercore {
  on<K extends keyof PublicEvents>(event: K, listener: PublicEvents[K]): this
  once<K extends keyof PublicEvents>(event: K, listener: PublicEvents[K]): this
  off<K extends keyof PublicEvents>(event: K, listener: PublicEvents[K]): this
}

/**
 * A signed append-only log. Byte-compatible with Hypercore 11: the same key
 * pair and blocks give the same key, tree hash, signatures and proofs.
 */
export class Hypercore extends EventEmitter {
  /** Set when the core is open; null before `ready()`. */
  core: Core | null = null
  /** Replication state; null before `ready()`. */
  replicator: Replicator | null = null
  opened = false
  closed = false
  closing: Promise<void> | null = null
  readonly opening: Promise<void>
  readonly valueEncoding: Codec
  /** Whether reads check blocks against their verified leaves unless told otherwise. */
  readonly verify: boolean

  private readonly waiting = new Map<number, Set<Waiter>>()
  /** Streams handed to replicate() before the core was open. */
  private readonly pendingMuxes: Protomux[] = []
  private readonly registered = new Map<string, Extension<unknown>>()
  private readonly storage: CoreStorage
  private readonly directory: string | null

  /**
   * @param storage a directory (the core's files live directly in it) or a
   *   function from file name to random-access storage
   * @param key the public key of an existing core, or the options
   * @param opts options
   */
  constructor (storage: string | StorageFactory, key?: Uint8Array | string | HypercoreOptions | null, opts: HypercoreOptions = {}) {
    super()
    if (key !== null && key !== undefined && typeof key === 'object' && !(key instanceof Uint8Array)) {
      opts = key
      key = opts.key ?? null
    }
    const keyBytes = parseKey(key ?? opts.key ?? null)
    this.directory = typeof storage === 'string' ? storage : null
    if (typeof storage === 'string') this.storage = CoreStorage.fromDirectory(storage)
    else if (typeof storage === 'function') this.storage = new CoreStorage(storage)
    else throw BAD_ARGUMENT('Storage is a directory path or a function returning random-access storage')

    this.valueEncoding = resolveEncoding(opts.valueEncoding)
    this.verify = opts.verify !== false
    this.opening = this.open({ ...opts, key: keyBytes })
    this.opening.catch(noop)
  }

  private async open (opts: HypercoreOptions & { key: Uint8Array | null }): Promise<void> {
    try {
      // Checked before the storage is touched, which would create the files.
      if (opts.createIfMissing === false && this.directory !== null && !(await CoreStorage.exists(this.directory))) {
        throw STORAGE_EMPTY()
      }
      this.core = await Core.open(this.storage, {
        key: opts.key,
        keyPair: opts.keyPair ?? null,
        manifest: opts.manifest ?? null,
        overwrite: opts.overwrite ?? false,
        createIfMissing: opts.createIfMissing ?? true,
        writable: opts.writable ?? true
      }, (name, ...args) => this.oncore(name, args))
      this.replicator = new Replicator(this.core, (name, ...args) => { this.emit(name, ...args) })
      for (const mux of this.pendingMuxes.splice(0)) this.replicator.attach(mux)
    } catch (err) {
      await this.storage.close().catch(noop)
      this.closed = true
      throw err
    }
    this.opened = true
    this.emit('ready')
  }

  private oncore (name: keyof CoreEvents, args: unknown[]): void {
    const r = this.replicator
    if (name === 'have') {
      this.wakeWaiters()
      r?.onlocalhave(args[0] as number, args[1] as number)
      return
    }
    if (name === 'drop') {
      r?.onlocaldrop(args[0] as number, args[1] as number, args[2] as boolean)
      return
    }
    if (name === 'append' || name === 'truncate' || name === 'repaired') {
      this.wakeWaiters()
      r?.onupgrade()
    }
    this.emit(name, ...args)
  }

  /** Resolves once the core is open. */
  ready (): Promise<void> {
    return this.opening
  }

  private get c (): Core {
    if (this.core === null) throw SESSION_CLOSED('The core is not open yet')
    return this.core
  }

  private async live (): Promise<Core> {
    if (!this.opened) await this.opening
    if (this.closing !== null) throw SESSION_CLOSED()
    return this.c
  }

  get key (): Uint8Array | null { return this.core?.key ?? null }
  get discoveryKey (): Uint8Array | null { return this.core?.discoveryKey ?? null }
  get keyPair (): KeyPair | null { return this.core?.keyPair ?? null }
  get manifest (): Manifest | null { return this.core?.manifest ?? null }
  get length (): number { return this.core?.length ?? 0 }
  get byteLength (): number { return this.core?.byteLength ?? 0 }
  get contiguousLength (): number { return this.core?.contiguousLength ?? 0 }
  get fork (): number { return this.core?.fork ?? 0 }
  get writable (): boolean { return this.core !== null && this.core.writable && this.closing === null }
  get readable (): boolean { return this.core !== null && this.closing === null }
  /** True while tree roots are missing: reads that need no missing node work, commits do not. */
  get repairMode (): boolean { return this.core?.repairMode ?? false }
  get padding (): number { return 0 }

  /** Appends one block or many; resolves with the new length and byte length. */
  async append (blocks: unknown): Promise<{ length: number, byteLength: number }> {
    const core = await this.live()
    const list = Array.isArray(blocks) ? blocks : [blocks]
    return core.append(list.map(b => this.valueEncoding.encode(b)))
  }

  /**
   * Block `index`, decoded. Waits for a block that is not here yet unless
   * `wait` is false (then resolves null).
   */
  async get (index: number, opts: GetOptions = {}): Promise<unknown> {
    assertIndex(index)
    const core = await this.live()
    const enc = opts.valueEncoding ? resolveEncoding(opts.valueEncoding) : this.valueEncoding
    const read = { verify: opts.verify ?? this.verify }
    let healed = false
    for (;;) {
      let block: Uint8Array | null
      try {
        block = await core.getBlock(index, read)
      } catch (err) {
        // A tree node this read needs is gone: fetch it from a peer, then retry once.
        const missing = missingNodeOf(err)
        if (missing === null || healed || this.peers.length === 0) throw err
        healed = true
        await this.healNode(missing, opts.timeout ?? 0)
        continue
      }
      if (block !== null) return enc.decode(block)
      if (opts.wait === false) return null
      const release = this.replicator?.want(index) ?? noop
      try {
        await this.waitFor(index, opts.timeout ?? 0)
      } finally {
        release()
      }
    }
  }

  private healNode (index: number, timeout: number): Promise<void> {
    return new Promise(resolve => {
      const done = (): void => {
        this.off('repaired', done)
        this.off('repair-failed', done)
        if (timer !== null) clearTimeout(timer)
        resolve()
      }
      const timer = timeout > 0 ? setTimeout(done, timeout) : null
      this.on('repaired', done)
      this.on('repair-failed', done)
      this.replicator!.onmissingnode(index)
    })
  }

  /** Whether block `start` (or every block in [start, end)) is stored here. */
  async has (start: number, end = start + 1): Promise<boolean> {
    const core = await this.live()
    if (end > core.length) return false
    for (let i = start; i < end; i++) if (!core.has(i)) return false
    return true
  }

  /** [block index, offset inside it] of byte offset `bytes`. */
  async seek (bytes: number): Promise<[number, number]> {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw BAD_ARGUMENT('Byte offset must be a non-negative integer')
    return (await this.live()).seek(bytes)
  }

  /** Cuts the core to `newLength` blocks and moves to a new fork (default: current + 1). */
  async truncate (newLength = 0, fork?: number | { fork?: number }): Promise<void> {
    const core = await this.live()
    const f = typeof fork === 'number' ? fork : fork?.fork ?? core.fork + 1
    await core.truncate(newLength, f)
  }

  /** Hash of the tree at `length` (default: now), the value that gets signed. */
  async treeHash (length?: number): Promise<Uint8Array> {
    return (await this.live()).treeHash(length)
  }

  /**
   * Checks every stored block and tree node against the signed roots.
   * Rotten nodes are rewritten where their true value can be recomputed,
   * dropped where not; corrupt blocks are cleared, and blocks that cannot be
   * verified for a lost node are not read or served until they can be. With
   * peers connected, what is gone comes back on its own, verified like any
   * replicated data.
   */
  async audit (): Promise<AuditSummary> {
    const core = await this.live()
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

  /** Drops blocks in [start, end) from local storage. */
  async clear (start: number, end = start + 1): Promise<void> {
    assertIndex(start)
    await (await this.live()).clear(start, end)
  }

  /**
   * Learns the newest length from peers, as Hypercore 11 does: waits for the
   * peers being connected (and for `findingPeers()` to be done), asks those
   * with a longer tree for it, and resolves true when the core grew. A
   * writable core resolves false unless `force`.
   */
  async update (opts: { wait?: boolean, force?: boolean } = {}): Promise<boolean> {
    const core = await this.live()
    if (core.writable && opts.force !== true) return false
    const before = core.length
    await this.replicator!.settled()
    return core.length > before
  }

  // -------------------------------------------------------------------------
  // Replication

  /**
   * Replicates with a peer. Given a boolean, returns a new Noise-encrypted
   * stream to pipe to the other side; given a secret stream or a protomux
   * (a Hyperswarm connection, another core's stream), replicates over it so
   * many cores share one connection.
   */
  replicate (isInitiator: Replicable, opts: ReplicateOptions = {}): NoiseSecretStream | Protomux['stream'] {
    const { mux, stream } = protocolStream(isInitiator, opts)
    if (this.replicator !== null) this.replicator.attach(mux)
    else this.pendingMuxes.push(mux)
    return stream
  }

  /** Peers currently replicating this core. */
  get peers (): Peer[] {
    return this.replicator?.peers ?? []
  }

  /**
   * Downloads a range (or a list of blocks) in the background. With no range
   * it keeps downloading everything, new blocks included.
   */
  download (range: DownloadRange = {}): DownloadHandle {
    const start = (r: Replicator): Download => {
      if (range.blocks) return r.download(0, 0, range.blocks)
      const end = range.end === undefined || range.end === -1 ? Infinity : range.end
      return r.download(range.start ?? 0, end, null)
    }
    if (this.replicator !== null) return start(this.replicator)
    // Before ready(): the download starts once the core is open, as in Hypercore 11.
    const later = this.opening.then(() => start(this.replicator!))
    later.catch(noop)
    return {
      done: () => later.then(d => d.done()),
      destroy: () => { void later.then(d => d.destroy(), noop) }
    }
  }

  /** Call while looking for peers; call the returned function when done. `update()` waits for it. */
  findingPeers (): () => void {
    if (this.replicator === null) {
      let done: (() => void) | null = null
      let finished = false
      void this.opening.then(() => { if (!finished) done = this.replicator!.findingPeers() }, noop)
      return () => { finished = true; done?.() }
    }
    return this.replicator.findingPeers()
  }

  /**
   * Asks peers for proofs to restore missing tree roots (automatic in repair
   * mode), or, given a tree node index, that one node (a root, a subtree
   * root or an inner node).
   */
  recoverTreeNodeFromPeers (treeIndex?: number): void {
    if (treeIndex === undefined) this.replicator?.recoverTreeNodeFromPeers()
    else this.replicator?.onmissingnode(treeIndex, true)
  }

  /** Messages of your own to peers of this core, over the replication channel. */
  registerExtension<T = unknown> (name: string, handlers: ExtensionHandlers<T> = {}): Extension<T> {
    const enc = resolveEncoding(handlers.encoding ?? 'binary')
    const register = (): void => {
      this.replicator?.registerExtension(name, {
        onmessage: (bytes, peer) => {
          let value: T
          try {
            value = enc.decode(bytes) as T
          } catch {
            return // a message that does not decode is the peer's problem, not ours
          }
          handlers.onmessage?.(value, peer)
        }
      })
    }
    if (this.replicator !== null) register()
    else void this.opening.then(register, noop)
    const ext: Extension<T> = {
      name,
      send: (message, peer) => peer.sendExtension(name, enc.encode(message)),
      broadcast: (message) => {
        const bytes = enc.encode(message)
        for (const peer of this.peers) peer.sendExtension(name, bytes)
      },
      destroy: () => {
        this.registered.delete(name)
        this.replicator?.unregisterExtension(name)
      }
    }
    this.registered.set(name, ext as Extension<unknown>)
    return ext
  }

  async info (): Promise<Info> {
    const core = await this.live()
    return {
      key: core.key,
      discoveryKey: core.discoveryKey,
      length: core.length,
      contiguousLength: core.contiguousLength,
      byteLength: core.byteLength,
      fork: core.fork,
      padding: 0,
      writable: this.writable,
      repairMode: core.repairMode,
      storage: core.storageInfo()
    }
  }

  /** Blocks in [start, end) in order; with `live`, keeps going as blocks are appended. */
  createReadStream (opts: ReadStreamOptions = {}): Readable {
    const live = opts.live === true
    let next = opts.start ?? 0
    let end = opts.end ?? -1
    const getOpts: GetOptions = opts.valueEncoding ? { valueEncoding: opts.valueEncoding } : {}
    const stream: Readable = new Readable({
      objectMode: true,
      read: () => {
        this.opening
          .then(() => {
            if (end === -1) end = live ? Infinity : this.length
            return next >= end ? null : this.get(next++, getOpts)
          })
          .then(value => stream.push(value), err => stream.destroy(err))
      }
    })
    return stream
  }

  // -------------------------------------------------------------------------
  // Proofs and repair

  /** A proof in Hypercore's shape for a block, tree node, byte offset and/or upgrade. */
  async proof (req: ProofRequest): Promise<Proof> {
    return (await this.live()).proof(req)
  }

  /** Verifies a proof that upgrades from length 0 against this core's key. */
  async verifyFullyRemote (proof: Proof): Promise<VerifiedTree> {
    const batch = (await this.live()).verifyFullyRemote(proof)
    return { length: batch.length, fork: batch.fork, byteLength: batch.byteLength, treeHash: batch.hash(), signature: batch.signature }
  }

  /**
   * Bytes that let a peer restore tree node `treeIndex`: our discovery key
   * and a proof it can check with nothing but the key. Works with Hypercore 11.
   */
  async generateRemoteProofForTreeNode (treeIndex: number): Promise<Uint8Array> {
    const core = await this.live()
    const proof = await core.proof(treeNodeProofRequest(treeIndex, core.length))
    proof.manifest = core.manifest
    return encodeFullyRemote(core.discoveryKey, proof)
  }

  /**
   * Restores tree nodes from a fully remote proof (ours or Hypercore 11's).
   * Resolves true when its nodes are now in our tree; false when it is for
   * another core, does not decode or verify, or contradicts our signed tree.
   * Leaves repair mode, without a reopen, once every root is back.
   */
  async recoverFromRemoteProof (bytes: Uint8Array): Promise<boolean> {
    const core = await this.live()
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

  // -------------------------------------------------------------------------

  private waitFor (index: number, timeout: number): Promise<void> {
    return new Promise((resolve, reject) => {
      let set = this.waiting.get(index)
      if (set === undefined) this.waiting.set(index, set = new Set())
      const waiter: Waiter = { resolve, reject, timer: null }
      const done = (): void => {
        if (waiter.timer !== null) clearTimeout(waiter.timer)
        set!.delete(waiter)
        if (set!.size === 0) this.waiting.delete(index)
      }
      waiter.resolve = () => { done(); resolve() }
      waiter.reject = (err) => { done(); reject(err) }
      if (timeout > 0) waiter.timer = setTimeout(() => waiter.reject(REQUEST_TIMEOUT()), timeout)
      set.add(waiter)
    })
  }

  private wakeWaiters (): void {
    const core = this.core
    if (core === null) return
    for (const [index, set] of this.waiting) {
      if (!core.has(index)) continue
      for (const w of [...set]) w.resolve()
    }
  }

  /** Closes the core; pending reads reject with SESSION_CLOSED. */
  close (): Promise<void> {
    if (this.closing === null) this.closing = this.doClose()
    return this.closing
  }

  private async doClose (): Promise<void> {
    await this.opening.catch(noop)
    this.replicator?.destroy()
    for (const set of this.waiting.values()) for (const w of [...set]) w.reject(SESSION_CLOSED())
    if (this.core !== null) await this.core.close()
    this.closed = true
    this.emit('close')
  }
}

function noop (): void {}

function parseKey (key: Uint8Array | string | null): Uint8Array | null {
  if (key === null) return null
  if (typeof key === 'string') {
    if (!/^[0-9a-fA-F]{64}$/.test(key)) throw BAD_ARGUMENT('A key is 32 bytes, or 64 hex characters')
    return b4a.from(key, 'hex')
  }
  if (!(key instanceof Uint8Array) || key.byteLength !== 32) throw BAD_ARGUMENT('A key is 32 bytes')
  return key
}

function assertIndex (index: number): void {
  if (!Number.isSafeInteger(index) || index < 0) throw BAD_ARGUMENT('Block index must be a non-negative integer')
}
