/**
 * The public face of a core, shaped like Hypercore 11: one `Hypercore` is one
 * session — a handle with its own value encoding, wait/timeout defaults,
 * writability, encryption and (for a snapshot) frozen view — over a
 * `SharedCore` that holds everything the sessions share. `session()` and
 * `snapshot()` make more handles on the same core; the core's files and peer
 * channels close when the last handle closes.
 */
import { EventEmitter } from 'node:events'
import type { Readable, Writable } from 'node:stream'
import * as fs from 'node:fs'
import * as path from 'node:path'
import b4a from 'b4a'
import Protomux from 'protomux'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import * as id from 'hypercore-id-encoding'
import type { Replicable } from './protocol-stream'
import { SharedCore, type SessionLink } from './shared-core'
import type { Core, CoreEvents } from './core'
import type { Replicator, ReplicatorEvents } from './replicator'
import type { Peer } from './peer'
import { CoreStorage, type StorageFactory } from './storage'
import type { Snapshot } from './snapshot'
import { Marks } from './marks'
import { downloadHandle } from './download'
import { createExtension, type ExtensionHost } from './extension'
import { keyOf, protocolMuxer, createProtocolStream, type KeyOptions, type ProtocolStreamCreateOptions } from './statics'
import { resolveEncoding, type Codec, type ValueEncoding } from './value-encoding'
import { createReadStream, createByteStream, createWriteStream, type ReadStreamOptions, type ByteStreamOptions } from './streams'
import * as crypto from './crypto'
import * as manifests from './manifest'
import * as m from './messages'
import {
  DefaultEncryption, assertProvider, encryptionCore, encryptionOption, resolveEncryption,
  type EncryptionCore, type EncryptionKeyOptions, type EncryptionProvider
} from './encryption'
import { BlockCodec } from './block-codec'
import { BAD_ARGUMENT, REQUEST_CANCELLED, SESSION_CLOSED, SESSION_NOT_WRITABLE, ASSERTION, missingNodeOf } from './errors'
import {
  assertIndex, isPlainOptions, parseKey,
  type AppendOptions, type DownloadHandle, type DownloadRange, type Extension, type ExtensionHandlers,
  type AuditSummary, type GetOptions, type HypercoreOptions, type Info, type SeekOptions, type TruncateOptions, type UpdateOptions, type VerifiedTree
} from './session-options'
import type { KeyPair } from './crypto'
import type { Proof, ProofRequest } from './proof'
import type { Manifest } from './messages'

export type {
  KeyPair, Proof, ProofRequest, ValueEncoding, Manifest, StorageFactory, Peer, HypercoreOptions, GetOptions, AppendOptions,
  TruncateOptions, UpdateOptions, SeekOptions, DownloadRange, DownloadHandle, Extension, ExtensionHandlers, Info, VerifiedTree, AuditSummary,
  EncryptionProvider, EncryptionCore, ReadStreamOptions, ByteStreamOptions
}

/** Options of `replicate()`. */
export type ReplicateOptions = ProtocolStreamCreateOptions

/** Hypercore 11 enforces nothing, but suggests blocks of at most 15 MiB (each goes over the wire whole). */
const MAX_SUGGESTED_BLOCK_SIZE = 15 * 1024 * 1024

type PublicEvents = Omit<CoreEvents, 'have' | 'drop'> & ReplicatorEvents & {
  ready (): void
  close (): void
}

export declare interface Hypercore {
  on<K extends keyof PublicEvents>(event: K, listener: PublicEvents[K]): this
  once<K extends keyof PublicEvents>(event: K, listener: PublicEvents[K]): this
  off<K extends keyof PublicEvents>(event: K, listener: PublicEvents[K]): this
}

/** A session made by `session()`: its parent's shared core, given without an option a caller could set. */
let makingSessionOf: Hypercore | null = null
/** A session the Store makes over a shared core it manages (or will pick once the promise resolves). */
let makingSessionOn: { shared: SharedCore | Promise<SharedCore>, family: SessionFamily | null } | null = null

/**
 * Sessions that belong together (a Store session's cores): each session
 * made from one of them joins too, and leaves when it closes.
 */
export interface SessionFamily {
  add (session: Hypercore): void
  delete (session: Hypercore): void
}

/**
 * For the Store: a new session over `shared`, or over the shared core a
 * promise resolves to (a named core whose key needs the store's primary
 * key first). Returned at once, as Corestore's `get` does.
 */
export function sessionOn (shared: SharedCore | Promise<SharedCore>, opts: HypercoreOptions = {}, family: SessionFamily | null = null): Hypercore {
  makingSessionOn = { shared, family }
  try {
    return new Hypercore(null, null, opts)
  } finally {
    makingSessionOn = null
  }
}

/** Each session's shared core, for nomadcore's own modules (Store, CLI): not reachable from the object. */
const sharedOf = new WeakMap<Hypercore, SharedCore>()

/** The shared core under a session: for nomadcore's own modules, not part of the public API. */
export function internals (session: Hypercore): { shared: SharedCore, core: Core | null, replicator: Replicator | null } {
  const shared = sharedOf.get(session)
  if (shared === undefined) throw BAD_ARGUMENT('Not a nomadcore session')
  return { shared, core: shared.core, replicator: shared.replicator }
}

/**
 * A signed append-only log. Byte-compatible with Hypercore 11: the same key
 * pair and blocks give the same key, tree hash, signatures and proofs.
 */
export class Hypercore extends EventEmitter {
  static readonly MAX_SUGGESTED_BLOCK_SIZE = MAX_SUGGESTED_BLOCK_SIZE
  /** Hypercore 11's default block encryption. */
  static readonly DefaultEncryption = DefaultEncryption

  /** The block key of `encryptionKey` for the core `key` (use it with `{ block: true }`). */
  static blockEncryptionKey (key: Uint8Array, encryptionKey: Uint8Array): Uint8Array {
    return DefaultEncryption.blockEncryptionKey(key, encryptionKey)
  }

  opened = false
  closed = false
  closing: Promise<void> | null = null
  readonly opening: Promise<void>
  /** Default of `get`'s `wait`. */
  wait: boolean
  /** Default of `get`'s `timeout` (ms, 0 = none). */
  timeout: number
  /** True for a snapshot session. */
  readonly snapshotted: boolean
  /** Whether reads check blocks against their verified leaves unless told otherwise. */
  readonly verify: boolean

  /** Null until a session the Store made over a promised core is bound to it. */
  #shared: SharedCore | null
  readonly #bound: Promise<SharedCore>
  readonly #family: SessionFamily | null
  readonly #link: SessionLink
  readonly #keyHint: Uint8Array | null
  readonly #codec: BlockCodec
  readonly #readonly: boolean
  #keyPair: KeyPair | null
  #snapshot: Snapshot | null = null
  /** What the options asked for; a key becomes a provider once the core's key is known. */
  readonly #encryptionOption: EncryptionKeyOptions | EncryptionProvider | null
  #onwait: HypercoreOptions['onwait']
  #onseq: HypercoreOptions['onseq']
  #active: boolean
  readonly #findingPeers: Array<() => void> = []
  /** findingPeers() calls made before the core was bound: counted once it is. */
  readonly #pendingFinding: Array<() => void> = []
  readonly #downloads = new Set<DownloadHandle>()
  #marks: Marks | null = null
  #exclusive = false

  /**
   * @param storage a directory (the core's files live directly in it), a
   *   function from file name to random-access storage, or the options
   * @param key the public key of an existing core (bytes, hex or z32), or the options
   * @param opts options
   */
  constructor (storage?: string | StorageFactory | HypercoreOptions | null, key?: Uint8Array | string | HypercoreOptions | null, opts: HypercoreOptions = {}) {
    super()
    if (isPlainOptions(storage)) {
      opts = storage
      storage = opts.storage ?? null
      key = opts.key ?? null
    } else if (isPlainOptions(key)) {
      opts = key
      key = opts.key ?? null
    }
    storage ??= opts.storage ?? null
    const parent = makingSessionOf
    makingSessionOf = null
    const on = makingSessionOn
    makingSessionOn = null

    this.#keyHint = parseKey((key as Uint8Array | string | null | undefined) ?? opts.key ?? null)
    this.#codec = new BlockCodec(opts.valueEncoding, opts.encodeBatch ?? null)
    this.#readonly = opts.writable === false
    this.#keyPair = opts.keyPair ?? null
    this.#onwait = opts.onwait ?? null
    this.#onseq = opts.onseq ?? null
    this.#active = opts.active !== false
    this.wait = opts.wait !== false
    this.timeout = opts.timeout ?? 0
    this.snapshotted = opts.snapshot === true
    this.verify = opts.verify ?? (parent !== null ? parent.verify : true)
    this.#encryptionOption = encryptionOption(opts)

    let shared: SharedCore | Promise<SharedCore>
    if (parent !== null) {
      shared = parent.#shared ?? parent.#bound
      this.#family = parent.#family
    } else if (on !== null || opts.core instanceof SharedCore) {
      // The Store's cores, and `new Hypercore({ core })` over a core a Store watcher was handed.
      shared = on !== null ? on.shared : opts.core as SharedCore
      this.#family = on?.family ?? null
    } else {
      let coreStorage: CoreStorage
      if (typeof storage === 'string') coreStorage = CoreStorage.fromDirectory(storage)
      else if (typeof storage === 'function') coreStorage = new CoreStorage(storage)
      else throw BAD_ARGUMENT('Storage is a directory path or a function returning random-access storage')
      shared = new SharedCore(coreStorage, {
        directory: typeof storage === 'string' ? storage : null,
        key: this.#keyHint,
        keyPair: opts.keyPair ?? null,
        manifest: opts.manifest ?? null,
        overwrite: opts.overwrite ?? false,
        createIfMissing: opts.createIfMissing ?? true,
        writable: opts.writable ?? true
      })
      this.#family = null
    }
    this.#shared = shared instanceof SharedCore ? shared : null
    this.#bound = shared instanceof SharedCore ? Promise.resolve(shared) : shared
    this.#bound.catch(noop)
    this.#family?.add(this)

    const self = this
    this.#link = {
      get snapshot () { return self.#snapshot },
      emit: (name, ...args) => {
        // Transfer sizes without encryption padding, as Hypercore 11 reports them.
        if ((name === 'upload' || name === 'download') && typeof args[1] === 'number') {
          if (this.listenerCount(name) === 0) return // one a block, mostly unheard: skip the padding arithmetic
          args = [args[0], args[1] - this.padding, ...args.slice(2)]
        }
        this.emit(name, ...args)
      },
      close: (err) => this.close({ error: err ?? null }),
      weak: opts.weak === true,
      get active () { return self.#active }
    }
    // Registered now, so a parent closing before this session is ready leaves the core open.
    if (this.#shared !== null) this.#bind(this.#shared, opts, parent)

    this.opening = this.#open(opts, parent)
    this.opening.catch(noop)
  }

  #bind (shared: SharedCore, opts: HypercoreOptions, parent: Hypercore | null): void {
    this.#shared = shared
    sharedOf.set(this, shared)
    shared.addSession(this.#link)
    // A snapshot of an open core is taken now, not when `ready()` resolves.
    if (this.snapshotted && shared.core !== null) this.#takeSnapshot(parent)
    if (opts.inflightRange) shared.setMaxInflight(opts.inflightRange[1])
  }

  /** The shared core: bound once `opening` got past its first step. */
  get #sh (): SharedCore {
    if (this.#shared === null) throw SESSION_CLOSED('The core is not open yet')
    return this.#shared
  }

  async #open (opts: HypercoreOptions, parent: Hypercore | null): Promise<void> {
    if (this.#shared === null) {
      try {
        this.#bind(await this.#bound, opts, parent)
      } catch (err) {
        this.#family?.delete(this)
        this.closed = true
        this.emit('close')
        throw err
      }
    }
    try {
      await this.#sh.opening
      for (const count of this.#pendingFinding.splice(0)) count()
      const core = this.#sh.core!
      if (opts.exclusive === true && opts.writable !== false && this.closing === null) {
        this.#exclusive = true
        await this.#sh.lockExclusive()
      }
      if (this.#keyPair === null) this.#keyPair = (parent !== null ? parent.#keyPair : null) ?? core.keyPair
      if (this.snapshotted && this.#snapshot === null) this.#takeSnapshot(parent)
      if (parent !== null && parent.#codec.encryption !== null) this.#codec.encryption = parent.#codec.encryption
      if (this.#encryptionOption !== null) this.#codec.encryption = resolveEncryption(this.#encryptionOption, encryptionCore(core))
      if (opts.userData) {
        for (const [k, v] of Object.entries(opts.userData)) await core.setUserData(k, typeof v === 'string' ? b4a.from(v) : v)
      }
    } catch (err) {
      if (this.#exclusive) this.#sh.unlockExclusive()
      this.#exclusive = false
      await this.#sh.removeSession(this.#link, null).catch(noop)
      this.#family?.delete(this)
      this.closed = true
      this.emit('close')
      throw err
    }
    this.opened = true
    this.emit('ready')
  }

  #takeSnapshot (parent: Hypercore | null): void {
    const from = parent !== null ? parent.#snapshot : null
    this.#snapshot = from !== null ? this.#sh.adoptSnapshot(from) : this.#sh.snapshot()
  }

  /** Resolves once the core is open. */
  ready (): Promise<void> {
    return this.opening
  }

  /**
   * A new handle on the same core. `wait`, `timeout`, `writable`, `onwait`
   * and `onseq` default to this session's; the value encoding does not carry
   * over (as in Hypercore 11), encryption does.
   */
  session (opts: HypercoreOptions = {}): Hypercore {
    if (this.closing !== null) throw SESSION_CLOSED('Cannot make sessions on a closing core', this.discoveryKey)
    const inherited: HypercoreOptions = {
      wait: opts.wait === false ? false : this.wait,
      timeout: opts.timeout ?? this.timeout,
      writable: opts.writable === undefined ? !this.#readonly : opts.writable,
      onwait: opts.onwait === undefined ? this.#onwait : opts.onwait,
      onseq: opts.onseq === undefined ? this.#onseq : opts.onseq,
      snapshot: opts.snapshot ?? false,
      weak: opts.weak ?? this.#link.weak
    }
    makingSessionOf = this
    try {
      return new Hypercore(null, null, { ...opts, ...inherited })
    } finally {
      makingSessionOf = null
    }
  }

  /** A session frozen at this session's length, fork and tree: later appends and truncations do not show through. */
  snapshot (opts: HypercoreOptions = {}): Hypercore {
    return this.session({ ...opts, snapshot: true })
  }

  get #core (): Core {
    const core = this.#shared?.core ?? null
    if (core === null) throw SESSION_CLOSED('The core is not open yet', this.#keyHint === null ? null : crypto.discoveryKey(this.#keyHint))
    return core
  }

  async #live (): Promise<Core> {
    if (!this.opened) await this.opening
    if (this.closing !== null) throw SESSION_CLOSED('The session is closed', this.discoveryKey)
    return this.#core
  }

  // -------------------------------------------------------------------------
  // Properties

  get key (): Uint8Array | null { return this.#shared?.key ?? this.#keyHint }
  get discoveryKey (): Uint8Array | null {
    const key = this.key
    return key === null ? null : this.#shared?.core?.discoveryKey ?? crypto.discoveryKey(key)
  }

  /** The key as 52 z32 characters. */
  get id (): string | null {
    const key = this.key
    return key === null ? null : id.encode(key)
  }

  get keyPair (): KeyPair | null { return this.#keyPair ?? this.#shared?.core?.keyPair ?? null }
  get manifest (): Manifest | null { return this.#shared?.core?.manifest ?? null }
  get valueEncoding (): Codec { return this.#codec.encoding }
  get encryption (): EncryptionProvider | null { return this.#codec.encryption }

  get length (): number {
    if (this.#snapshot !== null) return this.#snapshot.length
    return this.#shared?.core?.length ?? 0
  }

  /** The length the core's signature covers that this session can rely on (a snapshot's drops when the core is truncated below it). */
  get signedLength (): number {
    const core = this.#shared?.core ?? null
    if (core === null) return 0
    if (this.#snapshot !== null) return Math.min(this.#snapshot.compatLength, core.length)
    return core.length
  }

  /** Bytes of block data, without encryption padding. */
  get byteLength (): number {
    const raw = this.#snapshot !== null ? this.#snapshot.byteLength : this.#shared?.core?.byteLength ?? 0
    return raw - this.length * this.padding
  }

  get contiguousLength (): number { return this.#shared?.core?.contiguousLength ?? 0 }
  /** As in Hypercore 11, which does not track it: always 0. */
  get contiguousByteLength (): number { return 0 }

  /** The most blocks any connected peer holds contiguously from the start, up to our length. */
  get remoteContiguousLength (): number {
    return this.#shared?.replicator?.remoteContiguousLength ?? 0
  }

  get fork (): number {
    if (this.#snapshot !== null) return this.#snapshot.fork
    return this.#shared?.core?.fork ?? 0
  }

  get padding (): number {
    return this.#codec.padding(this.#shared?.core ?? null, this.length)
  }

  get writable (): boolean {
    if (this.#readonly || this.closing !== null || this.#snapshot !== null) return false
    const core = this.#shared?.core ?? null
    return core === null ? false : core.canSign(this.#keyPair ?? core.keyPair)
  }

  get readable (): boolean { return this.closing === null && !this.closed }
  /** True while tree roots are missing: reads that need no missing node work, commits do not. */
  get repairMode (): boolean { return this.#shared?.core?.repairMode ?? false }
  get peers (): Peer[] { return this.#shared?.replicator?.peers ?? [] }
  /** Sessions open on this core (this one included). */
  get sessionCount (): number { return this.#shared?.sessionCount ?? 0 }
  /** Hypercore 11's global block cache: nomadcore has none to share. */
  get globalCache (): null { return null }
  /** Hypercore 11's count of crash recoveries in progress: nomadcore recovers before `ready()`. */
  get recovering (): number { return 0 }

  /**
   * What clients that reach into Hypercore 11's internals (`core.core`) read:
   * Hyperbee checks `bitfield.get`, Hyperdrive `compat`. Nothing else.
   */
  get core (): { readonly compat: false, readonly bitfield: { get (index: number): boolean } } | null {
    const shared = this.#shared
    if (shared === null || shared.core === null) return null
    return { compat: false, bitfield: { get: (index: number) => shared.core?.has(index) ?? false } }
  }

  /** Hypercore 11's replicator knob that Hyperbee turns for small blocks. */
  get replicator (): { setInflightRange (min: number, max: number): void } | null {
    const shared = this.#shared
    if (shared === null || shared.replicator === null) return null
    return { setInflightRange: (_min: number, max: number) => shared.setMaxInflight(max) }
  }

  getManifest (opts: { raw?: boolean } = {}): Manifest | Uint8Array | null {
    const manifest = this.manifest
    if (manifest === null) return null
    return opts.raw === true ? m.encode(m.manifest, manifest) : manifest
  }

  setKeyPair (keyPair: KeyPair | null): void {
    this.#keyPair = keyPair
  }

  /**
   * Marks the session active or not. As in Hypercore 11, peers hear whether
   * any session of the core is active (the sync message's `downloading`),
   * and may close a channel neither side wants; the core still answers peers.
   */
  setActive (active: boolean): void {
    this.#active = active
    this.#shared?.setActive(this.#link, active)
  }

  get active (): boolean { return this.#active }

  /** Encrypts from now on with `encryption` (this session only), or stops with null. Not stored: pass it again on reopen. */
  async setEncryption (encryption: EncryptionProvider | null): Promise<void> {
    if (!this.opened) await this.opening
    assertProvider(encryption)
    this.#codec.encryption = encryption
  }

  /** `setEncryption` with Hypercore 11's default scheme for `key` (null stops encrypting). */
  async setEncryptionKey (key: Uint8Array | null, opts: { block?: boolean } = {}): Promise<void> {
    if (!this.opened) await this.opening
    if (key !== null && !(key instanceof Uint8Array)) throw BAD_ARGUMENT('An encryption key is a byte array')
    this.#codec.encryption = resolveEncryption({ key, block: opts.block === true }, encryptionCore(this.#core))
  }

  // -------------------------------------------------------------------------
  // Reading

  /**
   * Block `index`, decrypted and decoded. Waits for a block that is not here
   * yet (fetched from peers, or appended later) unless `wait` is false.
   */
  async get (index: number, opts: GetOptions = {}): Promise<any> {
    if (!this.opened) await this.opening
    assertIndex(index, 'block index', this.discoveryKey)
    if (this.closing !== null) throw SESSION_CLOSED('cannot get on a closed session', this.discoveryKey)
    const enc = opts.valueEncoding ? resolveEncoding(opts.valueEncoding) : this.#codec.encoding
    this.#onseq?.(index, this)
    this.#marks?.mark(index)

    const block = await this.#read(index, opts)
    if (block === null) return null
    if (opts.raw === true) return block
    return this.#codec.decode(this.#core, index, block, enc, opts, this.discoveryKey)
  }

  /** The stored bytes of block `index` as this session sees them, waiting for them if asked to. */
  #read (index: number, opts: GetOptions): Promise<Uint8Array | null> {
    return this.#sh.readBlock(index, {
      link: this.#link,
      verify: opts.verify ?? this.verify,
      wait: opts.wait ?? this.wait,
      timeout: opts.timeout ?? this.timeout,
      inside: index < this.length,
      closed: () => this.closing !== null,
      onwait: () => {
        opts.onwait?.(index, this)
        this.#onwait?.(index, this)
      }
    })
  }

  /** Whether block `start` (or every block in [start, end)) is stored here. */
  async has (start: number, end = start + 1): Promise<boolean> {
    if (!this.opened) await this.opening
    assertIndex(start, 'has range', this.discoveryKey)
    assertIndex(end, 'has range', this.discoveryKey)
    const core = this.#core
    const snap = this.#snapshot
    for (let i = start; i < end; i++) {
      if (snap !== null && i >= snap.compatLength) {
        if (snap.retained(i) === undefined) return false
        continue
      }
      if (!core.has(i)) return false
    }
    return true
  }

  /**
   * [block index, offset inside it] of byte `bytes`. On a replica that lacks
   * the tree nodes it needs, waits for them from peers like `get`; null when
   * it may not wait.
   */
  async seek (bytes: number, opts: SeekOptions = {}): Promise<[number, number] | null> {
    if (!this.opened) await this.opening
    assertIndex(bytes, 'seek', this.discoveryKey)
    if (this.closing !== null) throw SESSION_CLOSED('cannot seek on a closed session', this.discoveryKey)
    return this.#sh.replicator!.seek(bytes, { wait: opts.wait ?? this.wait, timeout: opts.timeout ?? this.timeout, padding: this.padding })
  }

  /** Hash of the tree at `length` (default: now), the value that gets signed. Fetches the blocks it needs on a replica. */
  async treeHash (length = -1): Promise<Uint8Array> {
    if (!this.opened) await this.opening
    if (length === -1) length = this.length
    if (this.#snapshot !== null && length === this.#snapshot.length) return crypto.treeHash(this.#snapshot.roots)
    try {
      return await this.#core.treeHash(length)
    } catch (err) {
      // A replica lacks the roots of an older length: the proof of its last block brings them.
      if (missingNodeOf(err) === null || length === 0 || await this.has(length - 1)) throw err
    }
    await this.get(length - 1, { raw: true })
    return this.#core.treeHash(length)
  }

  /** The bytes a signer signs for this core at `length` and `fork` (default: now). */
  async signable (length = -1, fork = -1): Promise<Uint8Array> {
    if (!this.opened) await this.opening
    if (length === -1) length = this.length
    if (fork === -1) fork = this.fork
    return crypto.treeSignable(this.key!, await this.treeHash(length), length, fork)
  }

  async info (opts: { storage?: boolean } = {}): Promise<Info> {
    const core = await this.#live()
    return {
      key: core.key,
      discoveryKey: core.discoveryKey,
      length: this.length,
      contiguousLength: this.contiguousLength,
      byteLength: this.byteLength,
      fork: this.fork,
      padding: this.padding,
      storage: opts.storage === true ? await this.#storageUse() : null,
      writable: this.writable,
      repairMode: core.repairMode,
      blocks: core.storageInfo().blocks
    }
  }

  async #storageUse (): Promise<Info['storage']> {
    const dir = this.#sh.directory
    if (dir === null) return null
    const used = async (name: string): Promise<number> => {
      try {
        const st = await fs.promises.stat(path.join(dir, name))
        return st.blocks * 512
      } catch {
        return 0
      }
    }
    const [oplog, tree, blocks, bitfield] = await Promise.all(['header', 'tree', 'data', 'bitfield'].map(used))
    return { oplog: oplog!, tree: tree!, blocks: blocks!, bitfield: bitfield! }
  }

  /** Blocks in [start, end) in order; `live` keeps going as blocks are appended. */
  createReadStream (opts: ReadStreamOptions = {}): Readable {
    return createReadStream(this, opts)
  }

  /** Bytes in [byteOffset, byteOffset + byteLength), block after block. */
  createByteStream (opts: ByteStreamOptions = {}): Readable {
    return createByteStream(this, opts)
  }

  /** Appends each chunk written as one block. */
  createWriteStream (): Writable {
    return createWriteStream(this)
  }

  // -------------------------------------------------------------------------
  // Writing

  /** Appends one block or many; resolves with the new length and byte length. */
  async append (blocks: unknown, opts: AppendOptions = {}): Promise<{ length: number, byteLength: number }> {
    if (!this.opened) await this.opening
    if (this.closing !== null) throw SESSION_CLOSED('Cannot append to a closed session', this.discoveryKey)
    const core = this.#core
    const keyPair = opts.keyPair ?? this.#keyPair ?? core.keyPair
    const signature = opts.signature ?? null
    const canCommit = signature !== null || core.canSign(keyPair) || opts.writable === true
    if (this.#readonly || this.#snapshot !== null || !canCommit) {
      throw SESSION_NOT_WRITABLE('cannot append to a readonly core', this.discoveryKey)
    }
    const list = Array.isArray(blocks) ? blocks : [blocks]
    const buffers = this.#codec.encode(list, this.padding)
    for (const b of buffers) {
      if (b.byteLength > MAX_SUGGESTED_BLOCK_SIZE) throw BAD_ARGUMENT('Appended block exceeds the maximum suggested block size', this.discoveryKey)
    }
    // As in Hypercore 11, the byte length returned counts the encryption padding.
    return core.append(buffers, { keyPair, signature, maxLength: opts.maxLength, preappend: this.#codec.encrypter(core) })
  }

  /** Cuts the core to `newLength` blocks and moves to a new fork (default: current + 1). */
  async truncate (newLength = 0, opts: number | TruncateOptions = {}): Promise<void> {
    if (!this.opened) await this.opening
    if (this.closing !== null) throw SESSION_CLOSED('Cannot truncate a closed session', this.discoveryKey)
    const core = this.#core
    const o = typeof opts === 'number' ? { fork: opts } : opts
    const fork = o.fork ?? core.fork + 1
    const keyPair = o.keyPair ?? this.#keyPair ?? core.keyPair
    const signature = o.signature ?? null
    const canCommit = signature !== null || core.canSign(keyPair)
    if (this.#readonly || this.#snapshot !== null || (!canCommit && (newLength > 0 || fork !== core.fork))) {
      throw SESSION_NOT_WRITABLE('cannot truncate a non-writable core', this.discoveryKey)
    }
    await core.truncate(newLength, fork, { keyPair, signature })
  }

  /**
   * Drops blocks in [start, end) from local storage; peers are told, and a
   * later `get` fetches them again. With `{ diff: true }` resolves with the
   * bytes freed (`{ blocks }`), else null, as in Hypercore 11.
   */
  async clear (start: number, end?: number | { diff?: boolean }, opts: { diff?: boolean } = {}): Promise<{ blocks: number } | null> {
    if (!this.opened) await this.opening
    if (this.closing !== null) throw SESSION_CLOSED('cannot clear on a closed session', this.discoveryKey)
    if (typeof end === 'object' && end !== null) {
      opts = end
      end = undefined
    }
    const stop = end ?? start + 1
    assertIndex(start, 'clear range', this.discoveryKey)
    assertIndex(stop, 'clear range', this.discoveryKey)
    const diff = opts.diff === true
    if (start >= stop || start >= this.length) return diff ? { blocks: 0 } : null
    const freed = await this.#core.clear(start, stop)
    return diff ? { blocks: freed ?? 0 } : null
  }

  /** Closes every session of this core and deletes its files. */
  async purge (): Promise<void> {
    if (!this.opened) await this.opening.catch(noop)
    await this.#sh.closeAllSessions()
    await this.#sh.storage.unlink().catch(noop)
    const dir = this.#sh.directory
    if (dir !== null) await fs.promises.rm(dir, { recursive: true, force: true }).catch(noop)
  }

  /**
   * Checks every stored block and tree node against the signed roots.
   * Corrupt blocks are cleared and dropped nodes forgotten; with peers
   * connected both come back from them on their own, verified like any
   * replicated data.
   */
  async audit (): Promise<AuditSummary> {
    await this.#live()
    return this.#sh.audit()
  }

  // -------------------------------------------------------------------------
  // User data: local key-value pairs, kept with the core, never replicated

  async setUserData (key: string, value: Uint8Array | string | null): Promise<void> {
    const core = await this.#live()
    const bytes = value === null ? null : typeof value === 'string' ? b4a.from(value) : value
    const existing = core.getUserData(key)
    if (existing !== null && bytes !== null && b4a.equals(existing, bytes)) return
    await core.setUserData(key, bytes)
  }

  async getUserData (key: string): Promise<Uint8Array | null> {
    if (!this.opened) await this.opening
    const value = this.#core.getUserData(key)
    return value === null ? null : b4a.from(value)
  }

  // -------------------------------------------------------------------------
  // Mark and sweep: clear every block not read or marked since startMarking()

  async startMarking (): Promise<void> {
    if (this.#marks !== null) throw ASSERTION("Hypercore cannot be gc'ed when already in gc mode", this.discoveryKey)
    if (!this.opened) await this.opening
    this.#marks = new Marks()
  }

  async markBlock (start: number, end = start + 1): Promise<void> {
    if (!this.opened) await this.opening
    this.#marks ??= new Marks()
    this.#marks.mark(start, end)
  }

  async clearMarkings (): Promise<void> {
    if (!this.opened) await this.opening
    this.#marks = null
  }

  /** Clears every held block that was not marked, then leaves marking mode. */
  async sweep (): Promise<void> {
    if (!this.opened) await this.opening
    if (this.#snapshot !== null) throw ASSERTION('Cannot sweep a snapshot', this.discoveryKey)
    for (const [from, to] of (this.#marks ?? new Marks()).unmarked(this.length)) await this.clear(from, to)
    this.#marks = null
  }

  // -------------------------------------------------------------------------
  // Replication

  /**
   * Replicates with a peer. Given a boolean, returns a new Noise-encrypted
   * stream to pipe to the other side; given a secret stream or a protomux
   * (a Hyperswarm connection, another core's stream), replicates over it so
   * many cores share one connection.
   */
  replicate (isInitiator: Replicable, opts: ReplicateOptions = {}): NoiseSecretStream | Protomux['stream'] | Protomux {
    if (Protomux.isProtomux(isInitiator)) {
      this.#attach(isInitiator)
      return isInitiator
    }
    const stream = Hypercore.createProtocolStream(isInitiator, opts)
    this.#attach(Hypercore.getProtocolMuxer(stream))
    return stream
  }

  #attach (mux: Protomux): void {
    if (this.#shared !== null) this.#sh.attach(mux)
    else void this.#bound.then(shared => shared.attach(mux), noop)
  }

  /**
   * Learns the newest length from peers. As in Hypercore 11 it waits only
   * with `{ wait: true }` or while `findingPeers()` is pending; resolves true
   * when the core grew (or moved to a new fork). Snapshots and writable
   * sessions resolve false (a writer unless `force`).
   */
  async update (opts: UpdateOptions = {}): Promise<boolean> {
    if (!this.opened) await this.opening
    if (this.closing !== null || this.#snapshot !== null) return false
    const core = this.#core
    if (this.writable && opts.force !== true) return false
    const replicator = this.#sh.replicator!
    const wait = opts.wait ?? replicator.isFindingPeers()
    if (!wait) return false
    const before = { length: core.length, fork: core.fork }
    await replicator.settled()
    return core.length !== before.length || core.fork !== before.fork
  }

  /**
   * Downloads a range (or a list of blocks) in the background. With no range
   * it keeps downloading everything, new blocks included.
   */
  download (range: DownloadRange = {}): DownloadHandle {
    const handle = downloadHandle(this.opening, () => {
      if (this.closing !== null) return null
      const r = this.#sh.replicator!
      if (range.blocks) return r.download(0, 0, range.blocks)
      const end = range.end === undefined || range.end === -1 ? Infinity : range.end
      return r.download(range.start ?? 0, end, null)
    }, h => this.#downloads.delete(h))
    this.#downloads.add(handle)
    return handle
  }

  /** Call while looking for peers; call the returned function when done. `update()` waits for it. */
  findingPeers (): () => void {
    let release: (() => void) | null = null
    let done = false
    const finish = (): void => {
      if (done) return
      done = true
      const i = this.#findingPeers.indexOf(finish)
      if (i !== -1) this.#findingPeers.splice(i, 1)
      release?.()
    }
    this.#findingPeers.push(finish)
    // Counted at once when the core is open, so an update() right after waits; else as it opens.
    const replicator = this.#shared?.replicator ?? null
    if (replicator !== null) release = replicator.findingPeers()
    else this.#pendingFinding.push(() => { if (!done) release = this.#sh.replicator!.findingPeers() })
    return finish
  }

  /**
   * Asks peers for proofs to restore missing tree roots (automatic in repair
   * mode), or, given a tree node index, that one node (a root, a subtree
   * root or an inner node).
   */
  recoverTreeNodeFromPeers (treeIndex?: number): void {
    const r = this.#sh.replicator
    if (treeIndex === undefined) r?.recoverTreeNodeFromPeers()
    else r?.onmissingnode(treeIndex, true)
  }

  /** Messages of your own to peers of this core, over the replication channel. */
  registerExtension<T = unknown> (name: string, handlers: ExtensionHandlers<T> = {}): Extension<T> {
    return createExtension(this.#extensionHost, name, handlers)
  }

  get #extensionHost (): ExtensionHost {
    const destroyed = new Set<string>()
    return {
      register: (name, onmessage) => {
        destroyed.delete(name)
        // Hyperbee registers its extension in its constructor, before a Store's named core is bound.
        if (this.#shared !== null) this.#sh.registerExtension(name, this.#link, onmessage)
        else void this.#bound.then(shared => { if (!destroyed.has(name)) shared.registerExtension(name, this.#link, onmessage) }, noop)
      },
      unregister: (name) => {
        destroyed.add(name)
        this.#shared?.unregisterExtension(name, this.#link)
      },
      peers: () => this.peers
    }
  }

  // -------------------------------------------------------------------------
  // Proofs and repair

  /** A proof in Hypercore's shape for a block, tree node, byte offset and/or upgrade; `block.value` is filled in. */
  async proof (req: ProofRequest): Promise<Proof> {
    await this.#live()
    return this.#sh.proof(req)
  }

  /** Verifies a proof that upgrades from length 0 against this core's key. */
  async verifyFullyRemote (proof: Proof): Promise<VerifiedTree> {
    const batch = (await this.#live()).verifyFullyRemote(proof)
    return { length: batch.length, fork: batch.fork, byteLength: batch.byteLength, treeHash: batch.hash(), signature: batch.signature }
  }

  /**
   * Bytes that let a peer restore tree node `treeIndex`: our discovery key
   * and a proof it can check with nothing but the key. Works with Hypercore 11.
   */
  async generateRemoteProofForTreeNode (treeIndex: number): Promise<Uint8Array> {
    await this.#live()
    return this.#sh.remoteProofForTreeNode(treeIndex)
  }

  /**
   * Restores tree nodes from a fully remote proof (ours or Hypercore 11's).
   * Resolves true when its nodes are now in our tree; false when it is for
   * another core, does not decode or verify, or contradicts our signed tree.
   * Leaves repair mode, without a reopen, once every root is back.
   */
  async recoverFromRemoteProof (bytes: Uint8Array): Promise<boolean> {
    await this.#live()
    return this.#sh.recoverFromRemoteProof(bytes)
  }

  /** How many tree nodes a proof of block `index` must carry for us (those we lack up to a node we hold). */
  async missingNodes (index: number): Promise<number> {
    if (!this.opened) await this.opening
    return this.#sh.replicator!.missingNodeCount(2 * index)
  }

  // -------------------------------------------------------------------------

  /** Closes this session; the core closes with its last session. Pending reads of this session reject. */
  close (opts: { error?: Error | null } = {}): Promise<void> {
    if (this.closing === null) this.closing = this.#close(opts.error ?? null)
    return this.closing
  }

  async #close (error: Error | null): Promise<void> {
    try {
      await this.opening
    } catch {
      return // the open failed: the session is closed already
    }
    for (const release of [...this.#findingPeers]) release()
    for (const d of [...this.#downloads]) d.destroy()
    if (this.#exclusive) this.#sh.unlockExclusive()
    this.#exclusive = false
    this.opened = false
    await this.#sh.removeSession(this.#link, error ?? REQUEST_CANCELLED())
    this.#family?.delete(this)
    this.closed = true
    this.emit('close')
  }

  // -------------------------------------------------------------------------
  // Statics, as Hypercore 11 has them

  /** The key of the core a manifest (or a signer's public key) describes. */
  static key (manifest: manifests.ManifestInput | Uint8Array, opts: KeyOptions = {}): Uint8Array {
    return keyOf(manifest, opts)
  }

  static discoveryKey (key: Uint8Array): Uint8Array {
    return crypto.discoveryKey(key)
  }

  /** The protomux a protocol stream carries (what `replicate()` attaches cores to). */
  static getProtocolMuxer (stream: NoiseSecretStream | Protomux['stream']): Protomux {
    return protocolMuxer(stream)
  }

  /**
   * A replication stream without a core: a new Noise stream for a boolean,
   * the same stream (with its protomux set up) for a secret stream.
   * `ondiscoverykey` hears each core the remote asks for.
   */
  static createProtocolStream (isInitiator: Replicable, opts: ReplicateOptions = {}): NoiseSecretStream | Protomux['stream'] {
    return createProtocolStream(isInitiator, opts)
  }
}

function noop (): void {}
