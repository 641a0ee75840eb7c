/**
 * The public face of a core, shaped like Hypercore 11: one `Hypercore` is one
 * session — a handle with its own value encoding, wait/timeout defaults,
 * writability, encryption and (for a snapshot) frozen view — over a
 * `SharedCore` that holds everything the sessions share. `session()` and
 * `snapshot()` make more handles on the same core; the core's files and peer
 * channels close when the last handle closes. What a session holds lives in
 * a few parts this class delegates to: its binding to the shared core
 * (session-binding.ts), its reads (session-reader.ts), its right to write
 * (session-writer.ts) and its part in replication (session-replication.ts).
 */
import { EventEmitter } from 'node:events'
import type { Readable, Writable } from 'node:stream'
import b4a from 'b4a'
import Protomux from 'protomux'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import * as id from 'hypercore-id-encoding'
import type { Replicable } from './protocol-stream'
import { SharedCore } from './shared-core'
import type { CoreEvents } from './core-events'
import type { ReplicatorEvents } from './replicator'
import type { Peer } from './peer'
import type { StorageFactory } from './storage'
import { createExtension } from './extension'
import { setBlockCacheSize } from './block-cache'
import { keyOf, protocolMuxer, createProtocolStream, type KeyOptions, type ProtocolStreamCreateOptions } from './statics'
import type { Codec, ValueEncoding } from './value-encoding'
import { createReadStream, createByteStream, createWriteStream, type ReadStreamOptions, type ByteStreamOptions } from './streams'
import * as crypto from './crypto'
import * as manifests from './manifest'
import * as m from './messages'
import {
  DefaultEncryption, assertProvider, encryptionCore, encryptionOption, resolveEncryption,
  type EncryptionCore, type EncryptionKeyOptions, type EncryptionProvider
} from './encryption'
import { BlockCodec } from './block-codec'
import { BAD_ARGUMENT, SESSION_CLOSED } from './errors'
import {
  parseKey,
  type AppendOptions, type DownloadHandle, type DownloadRange, type Extension, type ExtensionHandlers,
  type AuditSummary, type GetOptions, type HypercoreOptions, type Info, type SeekOptions, type TruncateOptions, type UpdateOptions, type VerifiedTree
} from './session-options'
import {
  SessionBinding, makeSession, sessionArguments, takeSessionSource,
  type HypercoreCoreView, type HypercoreReplicatorView, type SessionFamily
} from './session-binding'
import { SessionReader } from './session-reader'
import { SessionWriter, MAX_SUGGESTED_BLOCK_SIZE } from './session-writer'
import { SessionReplication } from './session-replication'
import type { KeyPair } from './crypto'
import type { Proof, ProofRequest } from './proof'
import type { Manifest } from './messages'

export { internals } from './session-binding'
export type {
  KeyPair, Proof, ProofRequest, ValueEncoding, Manifest, StorageFactory, Peer, HypercoreOptions, GetOptions, AppendOptions,
  TruncateOptions, UpdateOptions, SeekOptions, DownloadRange, DownloadHandle, Extension, ExtensionHandlers, Info, VerifiedTree, AuditSummary,
  EncryptionProvider, EncryptionCore, ReadStreamOptions, ByteStreamOptions, SessionFamily
}

/** Options of `replicate()`. */
export type ReplicateOptions = ProtocolStreamCreateOptions

type PublicEvents = Omit<CoreEvents, 'have' | 'drop'> & ReplicatorEvents & {
  ready (): void
  close (): void
}

export declare interface Hypercore {
  on<K extends keyof PublicEvents>(event: K, listener: PublicEvents[K]): this
  once<K extends keyof PublicEvents>(event: K, listener: PublicEvents[K]): this
  off<K extends keyof PublicEvents>(event: K, listener: PublicEvents[K]): this
}

/**
 * For the Store: a new session over `shared`, or over the shared core a
 * promise resolves to (a named core whose key needs the store's primary
 * key first). Returned at once, as Corestore's `get` does.
 */
export function sessionOn (shared: SharedCore | Promise<SharedCore>, opts: HypercoreOptions = {}, family: SessionFamily | null = null): Hypercore {
  return makeSession({ parent: null, store: { shared, family } }, () => new Hypercore(null, null, opts))
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

  readonly #binding: SessionBinding
  readonly #codec: BlockCodec
  readonly #reader: SessionReader
  readonly #writer: SessionWriter
  readonly #replication: SessionReplication
  /** What the options asked for; a key becomes a provider once the core's key is known. */
  readonly #encryptionOption: EncryptionKeyOptions | EncryptionProvider | null

  /**
   * @param storage a directory (the core's files live directly in it), a
   *   function from file name to random-access storage, or the options
   * @param key the public key of an existing core (bytes, hex or z32), or the options
   * @param opts options
   */
  constructor (storage?: string | StorageFactory | HypercoreOptions | null, key?: Uint8Array | string | HypercoreOptions | null, opts: HypercoreOptions = {}) {
    super()
    const args = sessionArguments(storage, key, opts)
    opts = args.opts
    const { parent, store } = takeSessionSource<Hypercore>()

    const keyHint = parseKey(args.key)
    this.#codec = new BlockCodec(opts.valueEncoding, opts.encodeBatch ?? null)
    this.wait = opts.wait !== false
    this.timeout = opts.timeout ?? 0
    this.snapshotted = opts.snapshot === true
    this.verify = opts.verify ?? (parent !== null ? parent.verify : true)
    this.#encryptionOption = encryptionOption(opts)

    const from = parent !== null ? parent.#binding : null
    this.#binding = new SessionBinding(this, keyHint, args.storage, opts, from, store)
    this.#reader = new SessionReader(this, this.#binding, this.#codec, opts)
    this.#writer = new SessionWriter(this, this.#binding, this.#codec, opts.writable === false, opts.keyPair ?? null)
    this.#replication = new SessionReplication(this, this.#binding)
    // Registered now, so a parent closing before this session is ready leaves the core open.
    this.#binding.register(from)

    this.opening = this.#open(opts, parent)
    this.opening.catch(noop)
  }

  async #open (opts: HypercoreOptions, parent: Hypercore | null): Promise<void> {
    if (this.#binding.shared === null) {
      try {
        this.#binding.join(await this.#binding.bound, parent !== null ? parent.#binding : null)
      } catch (err) {
        this.#binding.abandon()
        this.closed = true
        this.emit('close')
        throw err
      }
    }
    try {
      await this.#binding.openShared.opening
      this.#replication.opened()
      const core = this.#binding.core
      if (opts.exclusive === true && opts.writable !== false && this.closing === null) await this.#binding.lockExclusive()
      this.#writer.inherit(parent !== null ? parent.#writer : null, core)
      this.#binding.pinSnapshot(parent !== null ? parent.#binding : null)
      if (parent !== null && parent.#codec.encryption !== null) this.#codec.encryption = parent.#codec.encryption
      if (this.#encryptionOption !== null) this.#codec.encryption = resolveEncryption(this.#encryptionOption, encryptionCore(core))
      if (opts.userData) {
        for (const [k, v] of Object.entries(opts.userData)) await core.setUserData(k, typeof v === 'string' ? b4a.from(v) : v)
      }
    } catch (err) {
      this.#binding.unlockExclusive()
      await this.#binding.leave(null, { quiet: true })
      this.closed = true
      this.emit('close')
      throw err
    }
    this.opened = true
    this.emit('ready')
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
      writable: opts.writable === undefined ? !this.#writer.readonly : opts.writable,
      onwait: opts.onwait === undefined ? this.#reader.onwait : opts.onwait,
      onseq: opts.onseq === undefined ? this.#reader.onseq : opts.onseq,
      snapshot: opts.snapshot ?? false,
      weak: opts.weak ?? this.#binding.link.weak
    }
    return makeSession({ parent: this, store: null }, () => new Hypercore(null, null, { ...opts, ...inherited }))
  }

  /** A session frozen at this session's length, fork and tree: later appends and truncations do not show through. */
  snapshot (opts: HypercoreOptions = {}): Hypercore {
    return this.session({ ...opts, snapshot: true })
  }

  // -------------------------------------------------------------------------
  // Properties

  get key (): Uint8Array | null { return this.#binding.key }
  get discoveryKey (): Uint8Array | null {
    const key = this.key
    return key === null ? null : this.#binding.shared?.core?.discoveryKey ?? crypto.discoveryKey(key)
  }

  /** The key as 52 z32 characters. */
  get id (): string | null {
    const key = this.key
    return key === null ? null : id.encode(key)
  }

  get keyPair (): KeyPair | null { return this.#writer.keyPair ?? this.#binding.shared?.core?.keyPair ?? null }
  get manifest (): Manifest | null { return this.#binding.shared?.core?.manifest ?? null }
  get valueEncoding (): Codec { return this.#codec.encoding }
  get encryption (): EncryptionProvider | null { return this.#codec.encryption }

  get length (): number { return this.#binding.length }

  /** The length the core's signature covers that this session can rely on (a snapshot's drops when the core is truncated below it). */
  get signedLength (): number { return this.#binding.signedLength }

  /** Bytes of block data, without encryption padding. */
  get byteLength (): number {
    return this.#binding.byteLength - this.length * this.padding
  }

  get contiguousLength (): number { return this.#binding.shared?.core?.contiguousLength ?? 0 }
  /** As in Hypercore 11, which does not track it: always 0. */
  get contiguousByteLength (): number { return 0 }

  /** The most blocks any connected peer holds contiguously from the start, up to our length. */
  get remoteContiguousLength (): number {
    return this.#binding.shared?.replicator?.remoteContiguousLength ?? 0
  }

  get fork (): number { return this.#binding.fork }

  get padding (): number {
    return this.#codec.padding(this.#binding.shared?.core ?? null, this.length)
  }

  get writable (): boolean {
    return this.closing === null && this.#writer.canWrite
  }

  get readable (): boolean { return this.closing === null && !this.closed }
  /** True while tree roots are missing: reads that need no missing node work, commits do not. */
  get repairMode (): boolean { return this.#binding.shared?.core?.repairMode ?? false }
  get peers (): Peer[] { return this.#binding.shared?.replicator?.peers ?? [] }
  /** Sessions open on this core (this one included). */
  get sessionCount (): number { return this.#binding.shared?.sessionCount ?? 0 }
  /** Hypercore 11's global block cache: nomadcore has none to share. */
  get globalCache (): null { return null }
  /** Hypercore 11's count of crash recoveries in progress: nomadcore recovers before `ready()`. */
  get recovering (): number { return 0 }

  /**
   * What clients that reach into Hypercore 11's internals (`core.core`) read:
   * Hyperbee checks `bitfield.get`, Hyperdrive `compat`. Nothing else.
   */
  get core (): HypercoreCoreView | null { return this.#binding.coreView }

  /** Hypercore 11's replicator knob that Hyperbee turns for small blocks. */
  get replicator (): HypercoreReplicatorView | null { return this.#binding.replicatorView }

  getManifest (opts: { raw?: boolean } = {}): Manifest | Uint8Array | null {
    const manifest = this.manifest
    if (manifest === null) return null
    return opts.raw === true ? m.encode(m.manifest, manifest) : manifest
  }

  setKeyPair (keyPair: KeyPair | null): void {
    this.#writer.keyPair = keyPair
  }

  /**
   * Marks the session active or not. As in Hypercore 11, peers hear whether
   * any session of the core is active (the sync message's `downloading`),
   * and may close a channel neither side wants; the core still answers peers.
   */
  setActive (active: boolean): void {
    this.#binding.active = active
  }

  get active (): boolean { return this.#binding.active }

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
    this.#codec.encryption = resolveEncryption({ key, block: opts.block === true }, encryptionCore(this.#binding.core))
  }

  // -------------------------------------------------------------------------
  // Reading (session-reader.ts)

  /**
   * Block `index`, decrypted and decoded. Waits for a block that is not here
   * yet (fetched from peers, or appended later) unless `wait` is false.
   */
  get (index: number, opts: GetOptions = {}): Promise<any> {
    return this.#reader.get(index, opts)
  }

  /** Whether block `start` (or every block in [start, end)) is stored here. */
  has (start: number, end = start + 1): Promise<boolean> {
    return this.#reader.has(start, end)
  }

  /**
   * [block index, offset inside it] of byte `bytes`. On a replica that lacks
   * the tree nodes it needs, waits for them from peers like `get`; null when
   * it may not wait.
   */
  seek (bytes: number, opts: SeekOptions = {}): Promise<[number, number] | null> {
    return this.#reader.seek(bytes, opts)
  }

  /** Hash of the tree at `length` (default: now), the value that gets signed. Fetches the blocks it needs on a replica. */
  treeHash (length = -1): Promise<Uint8Array> {
    return this.#reader.treeHash(length)
  }

  /** The bytes a signer signs for this core at `length` and `fork` (default: now). */
  signable (length = -1, fork = -1): Promise<Uint8Array> {
    return this.#reader.signable(length, fork)
  }

  info (opts: { storage?: boolean } = {}): Promise<Info> {
    return this.#reader.info(opts)
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
  // Writing (session-writer.ts)

  /** Appends one block or many; resolves with the new length and byte length. */
  append (blocks: unknown, opts: AppendOptions = {}): Promise<{ length: number, byteLength: number }> {
    return this.#writer.append(blocks, opts)
  }

  /** Cuts the core to `newLength` blocks and moves to a new fork (default: current + 1). */
  truncate (newLength = 0, opts: number | TruncateOptions = {}): Promise<void> {
    return this.#writer.truncate(newLength, opts)
  }

  /**
   * Drops blocks in [start, end) from local storage; peers are told, and a
   * later `get` fetches them again. With `{ diff: true }` resolves with the
   * bytes freed (`{ blocks }`), else null, as in Hypercore 11.
   */
  clear (start: number, end?: number | { diff?: boolean }, opts: { diff?: boolean } = {}): Promise<{ blocks: number } | null> {
    return this.#writer.clear(start, end, opts)
  }

  /** Closes every session of this core and deletes its files. */
  purge (): Promise<void> {
    return this.#writer.purge()
  }

  /**
   * Checks every stored block and tree node against the signed roots.
   * Corrupt blocks are cleared and dropped nodes forgotten; with peers
   * connected both come back from them on their own, verified like any
   * replicated data.
   */
  async audit (): Promise<AuditSummary> {
    await this.#binding.live()
    return this.#binding.openShared.audit()
  }

  // -------------------------------------------------------------------------
  // User data: local key-value pairs, kept with the core, never replicated

  setUserData (key: string, value: Uint8Array | string | null): Promise<void> {
    return this.#writer.setUserData(key, value)
  }

  getUserData (key: string): Promise<Uint8Array | null> {
    return this.#writer.getUserData(key)
  }

  // -------------------------------------------------------------------------
  // Mark and sweep: clear every block not read or marked since startMarking() (session-reader.ts)

  startMarking (): Promise<void> {
    return this.#reader.startMarking()
  }

  markBlock (start: number, end = start + 1): Promise<void> {
    return this.#reader.markBlock(start, end)
  }

  clearMarkings (): Promise<void> {
    return this.#reader.clearMarkings()
  }

  /** Clears every held block that was not marked, then leaves marking mode. */
  sweep (): Promise<void> {
    return this.#reader.sweep()
  }

  // -------------------------------------------------------------------------
  // Replication (session-replication.ts)

  /**
   * Replicates with a peer. Given a boolean, returns a new Noise-encrypted
   * stream to pipe to the other side; given a secret stream or a protomux
   * (a Hyperswarm connection, another core's stream), replicates over it so
   * many cores share one connection.
   */
  replicate (isInitiator: Replicable, opts: ReplicateOptions = {}): NoiseSecretStream | Protomux['stream'] | Protomux {
    if (Protomux.isProtomux(isInitiator)) {
      this.#replication.attach(isInitiator)
      return isInitiator
    }
    const stream = Hypercore.createProtocolStream(isInitiator, opts)
    this.#replication.attach(Hypercore.getProtocolMuxer(stream))
    return stream
  }

  /**
   * Learns the newest length from peers. As in Hypercore 11 it waits only
   * with `{ wait: true }` or while `findingPeers()` is pending; resolves true
   * when the core grew (or moved to a new fork). Snapshots and writable
   * sessions resolve false (a writer unless `force`).
   */
  update (opts: UpdateOptions = {}): Promise<boolean> {
    return this.#replication.update(opts)
  }

  /**
   * Downloads a range (or a list of blocks) in the background. With no range
   * it keeps downloading everything, new blocks included.
   */
  download (range: DownloadRange = {}): DownloadHandle {
    return this.#replication.download(range)
  }

  /** Call while looking for peers; call the returned function when done. `update()` waits for it. */
  findingPeers (): () => void {
    return this.#replication.findingPeers()
  }

  /**
   * Asks peers for proofs to restore missing tree roots (automatic in repair
   * mode), or, given a tree node index, that one node (a root, a subtree
   * root or an inner node).
   */
  recoverTreeNodeFromPeers (treeIndex?: number): void {
    this.#replication.recoverTreeNodeFromPeers(treeIndex)
  }

  /** Messages of your own to peers of this core, over the replication channel. */
  registerExtension<T = unknown> (name: string, handlers: ExtensionHandlers<T> = {}): Extension<T> {
    return createExtension(this.#replication.extensionHost(), name, handlers)
  }

  // -------------------------------------------------------------------------
  // Proofs and repair

  /** A proof in Hypercore's shape for a block, tree node, byte offset and/or upgrade; `block.value` is filled in. */
  async proof (req: ProofRequest): Promise<Proof> {
    await this.#binding.live()
    return this.#binding.openShared.proof(req)
  }

  /** Verifies a proof that upgrades from length 0 against this core's key. */
  async verifyFullyRemote (proof: Proof): Promise<VerifiedTree> {
    const batch = (await this.#binding.live()).verifyFullyRemote(m.shapedAsDecoded(proof))
    return { length: batch.length, fork: batch.fork, byteLength: batch.byteLength, treeHash: batch.hash(), signature: batch.signature }
  }

  /**
   * Bytes that let a peer restore tree node `treeIndex`: our discovery key
   * and a proof it can check with nothing but the key. Works with Hypercore 11.
   */
  async generateRemoteProofForTreeNode (treeIndex: number): Promise<Uint8Array> {
    await this.#binding.live()
    return this.#binding.openShared.remoteProofForTreeNode(treeIndex)
  }

  /**
   * Restores tree nodes from a fully remote proof (ours or Hypercore 11's).
   * Resolves true when its nodes are now in our tree; false when it is for
   * another core, does not decode or verify, or contradicts our signed tree.
   * Leaves repair mode, without a reopen, once every root is back.
   */
  async recoverFromRemoteProof (bytes: Uint8Array): Promise<boolean> {
    await this.#binding.live()
    return this.#binding.openShared.recoverFromRemoteProof(bytes)
  }

  /** How many tree nodes a proof of block `index` must carry for us (those we lack up to a node we hold). */
  missingNodes (index: number): Promise<number> {
    return this.#replication.missingNodes(index)
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
    this.#replication.release()
    this.#binding.unlockExclusive()
    this.opened = false
    // Pending reads get `error`, or REQUEST_CANCELLED made for them (only if there are any).
    await this.#binding.leave(error)
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

  /** Bytes of verified blocks all cores of the process may keep in memory (16 MiB at first; 0: none). */
  static setBlockCacheSize (bytes: number): void {
    setBlockCacheSize(bytes)
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
