/**
 * Many cores under one directory, as Corestore 7 holds them: `get` returns
 * a session at once (every call a new one; the core closes with its last
 * session), named cores get Corestore's key pairs from the primary key and
 * namespace, `namespace()` and `session()` make views that share everything,
 * and `replicate()` carries every core over one stream.
 *
 * Stores sharing a group key also keep each other informed of the cores
 * they hold and of their states, and replicate exactly the cores whose
 * states differ (lib/store/group-sync.ts): a reconnect costs what changed
 * while apart, not what is held. Cores are sparse unless the store is made
 * with `replicas: 'full'`.
 *
 * Each core lives in `cores/<discovery key>/` with the core log's layout;
 * the catalog of cores held is described in lib/store/catalog.ts.
 */
import { EventEmitter } from 'node:events'
import { Readable } from 'node:stream'
import b4a from 'b4a'
import type Protomux from 'protomux'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import { Hypercore, sessionOn, type HypercoreOptions, type SessionFamily } from './hypercore'
import type { SharedCore } from './shared-core'
import { protocolStream, type Replicable, type ProtocolStreamOptions } from './protocol-stream'
import { parseKey } from './session-options'
import * as crypto from './crypto'
import { ASSERTION, BAD_ARGUMENT, SESSION_CLOSED, STORAGE_EMPTY } from './errors'
import { StoreRoot, type OpenOptions, type Storage, type StoreStats } from './store/root'
import { DEFAULT_NAMESPACE, childNamespace, createKeyPair } from './store/key-derivation'
import type { ManifestInput } from './manifest'
import type { ReconcileStats } from './store/group-sync'
import { importStore, type ImportOptions, type ImportSummary } from './import'

export type { StoreStats, ReconcileStats }

const HOUR = 60 * 60 * 1000

export interface StoreOptions {
  /** Seed of named cores' key pairs; Corestore's rule: needs `unsafe: true`. Kept on first use; made at random when absent. */
  primaryKey?: Uint8Array | null
  /** Acknowledges that passing a primary key is unsafe (as Corestore requires). */
  unsafe?: boolean
  /** Set false for a store whose cores are opened read-only by default. */
  writable?: boolean
  readOnly?: boolean
  /** Set false: cores are not replicated to peers unless a peer asks for them. */
  active?: boolean
  /** Manifest version of new named cores (default 1, as Corestore's). */
  manifestVersion?: number
  /** 32-byte key shared by the stores that keep each other's cores. */
  group?: Uint8Array | null
  /** `'full'`: keep every block of every core held (the group's full-replica policy). Default `'sparse'`, as Corestore. */
  replicas?: 'full' | 'sparse'
  /** How often to audit every core (ms; default one hour, 0 = never). */
  repairInterval?: number
  /** Files open at once, opens in flight included (default 512). */
  maxOpenFiles?: number
  /** Cores the store replicates with group members at once (default 32). */
  maxSyncs?: number
  /** Namespace of this view (32 bytes; usually made with `namespace()`). */
  namespace?: Uint8Array
}

/** `store.get()` options: Hypercore's, plus how to find the core. */
export interface StoreGetOptions extends HypercoreOptions {
  /** A writable core of ours: its key pair derived from the primary key, this store's namespace and the name. */
  name?: string
  /** A core held here, by discovery key. */
  discoveryKey?: Uint8Array | string
  /** Options that resolve later (merged in before the core opens). */
  preload?: Promise<StoreGetOptions> | null
}

/** Totals of one audit pass over the store. */
export interface RepairSummary {
  cores: number
  blocks: number
  corruptBlocks: number
  droppedNodes: number
  repairMode: number
}

/** A watcher of cores opening: gets the core, on which `new Hypercore({ core, weak: true })` makes a session. */
export type CoreWatcher = (core: SharedCore) => void

/** Set while `session()` makes a view of a store. */
let makingViewOf: Store | null = null

export class Store extends EventEmitter {
  /**
   * Brings a Hypercore 11 / Corestore 7 storage directory over into a Store
   * directory at `dst` (see `importStore`): every core verified before it
   * counts, the source never written, resumable. Open `dst` as a Store after.
   */
  static import (src: string, dst: string, opts: ImportOptions = {}): Promise<ImportSummary> {
    return importStore(src, dst, opts)
  }

  /** This view's namespace. */
  readonly ns: Uint8Array
  readonly manifestVersion: number
  readonly readOnly: boolean
  readonly active: boolean
  closed = false
  watchers: Set<CoreWatcher> | null = null

  readonly #root: StoreRoot
  /** The store made with `new Store` (null for that one). */
  readonly #parent: Store | null
  /** Views made from the store (only the first store keeps them). */
  readonly #views = new Set<Store>()
  readonly #watching: Set<Store>
  readonly #sessions = new Set<Hypercore>()
  readonly #family: SessionFamily
  readonly #finding = { count: 0, pending: [] as Array<() => void> }
  #closing: Promise<void> | null = null
  #timer: ReturnType<typeof setInterval> | null = null

  /**
   * @param storage a directory, or a function from file name to
   *   random-access storage (every file of every core goes through it)
   */
  constructor (storage: Storage | null, opts: StoreOptions = {}) {
    super()
    const parent = makingViewOf
    makingViewOf = null
    this.#family = { add: s => this.#sessions.add(s), delete: s => this.#sessions.delete(s) }
    if (parent !== null) {
      const top = parent.#parent ?? parent
      this.#parent = top
      this.#root = top.#root
      this.#watching = top.#watching
      this.ns = opts.namespace ?? parent.ns
      this.manifestVersion = opts.manifestVersion ?? parent.manifestVersion
      this.readOnly = opts.writable === false || opts.readOnly === true || (opts.writable === undefined && parent.readOnly)
      this.active = opts.active ?? parent.active
      top.#views.add(this)
      return
    }
    if (typeof storage !== 'string' && typeof storage !== 'function') throw BAD_ARGUMENT('Storage is a directory path or a function returning random-access storage')
    if (opts.primaryKey !== undefined && opts.primaryKey !== null) {
      if (opts.unsafe !== true) throw ASSERTION('Passing the primary key is unsafe unless you know what you are doing. Set unsafe: true to acknowledge that')
      if (!(opts.primaryKey instanceof Uint8Array) || opts.primaryKey.byteLength !== 32) throw BAD_ARGUMENT('A primary key is 32 bytes')
    }
    const group = opts.group ?? null
    if (group !== null && !(group instanceof Uint8Array && group.byteLength === 32)) throw BAD_ARGUMENT('A group key is 32 bytes')
    if (opts.replicas !== undefined && opts.replicas !== 'full' && opts.replicas !== 'sparse') throw BAD_ARGUMENT("replicas is 'full' or 'sparse'")
    this.#parent = null
    this.#watching = new Set()
    this.ns = opts.namespace ?? DEFAULT_NAMESPACE
    this.manifestVersion = opts.manifestVersion ?? 1
    this.readOnly = opts.writable === false || opts.readOnly === true
    this.active = opts.active !== false
    this.#root = new StoreRoot(storage, {
      primaryKey: opts.primaryKey ?? null,
      group,
      full: opts.replicas === 'full',
      readOnly: this.readOnly,
      maxOpenFiles: opts.maxOpenFiles,
      maxSyncs: opts.maxSyncs,
      emit: (event, ...args) => this.emit(event, ...args)
    })
    this.#root.onopencore = shared => {
      for (const store of this.#watching) for (const fn of store.watchers ?? []) fn(shared)
    }
    const interval = opts.repairInterval ?? HOUR
    if (interval > 0) {
      this.#timer = setInterval(() => { void this.repair().catch(noop) }, interval)
      this.#timer.unref?.()
    }
  }

  ready (): Promise<void> {
    return this.#root.opening
  }

  get opened (): boolean {
    return this.#root.opened
  }

  get closing (): boolean {
    return this.#closing !== null
  }

  /** The primary key (null until the store is ready). */
  get primaryKey (): Uint8Array | null {
    return this.#root.primaryKey
  }

  /** The group key, or null. */
  get group (): Uint8Array | null {
    return this.#root.group.byteLength === 32 ? this.#root.group : null
  }

  /** The store's identity: what group members know it by. */
  get identity (): Uint8Array | null {
    return this.#root.opened ? this.#root.identity.publicKey : null
  }

  #assertOpen (): void {
    if (this.#closing !== null || this.#root.closing !== null) throw SESSION_CLOSED('The store is closed')
  }

  // -------------------------------------------------------------------------
  // Cores

  /**
   * A new session on a core: `get(key)`, `get({ key })`, `get({ name })`
   * (writable, its key pair derived as Corestore derives it),
   * `get({ keyPair })`, `get({ manifest })` or `get({ discoveryKey })`.
   * Returned at once; `await core.ready()` before reading its properties.
   */
  get (opts: StoreGetOptions | Uint8Array | string): Hypercore {
    this.#assertOpen()
    if (opts instanceof Uint8Array || typeof opts === 'string') opts = { key: opts }
    if (opts === null || typeof opts !== 'object') throw BAD_ARGUMENT('get() takes a key or options')
    const root = this.#root
    // What only finds or creates the core stays out of the session's options.
    const { name, preload, discoveryKey: _d, manifest: _m, overwrite: _o, createIfMissing: _c2, storage: _s, core: _c, ...session } = opts
    if (session.writable === undefined && this.readOnly) session.writable = false
    const active = session.active !== false && this.active

    let shared: SharedCore | Promise<SharedCore>
    if (name !== undefined || preload || byDiscoveryKey(opts)) {
      // A name needs the primary key, a discovery key the catalog: both are on disk.
      shared = this.#resolve(opts)
    } else {
      const key = this.#keyOf(opts)
      session.key = key
      const open = openOptions(opts)
      shared = root.opened ? root.core(key, open) : root.opening.then(() => root.core(key, open))
    }
    const made = sessionOn(shared, session, this.#family)
    if (shared instanceof Promise) void shared.then(s => root.track(s, made, active), noop)
    else root.track(shared, made, active)
    if (this.#finding.count > 0) this.#finding.pending.push(made.findingPeers())
    return made
  }

  /** The key `opts` names: a key, or the key of a manifest or key pair. */
  #keyOf (opts: StoreGetOptions): Uint8Array {
    const key = parseKey(opts.key)
    if (key !== null) return key
    if (opts.manifest) return Hypercore.key(opts.manifest)
    if (opts.keyPair) return Hypercore.key(this.#manifestFor(opts.keyPair.publicKey))
    throw BAD_ARGUMENT('Could not derive a key from get() options: give a key, name, keyPair, manifest or discoveryKey')
  }

  #manifestFor (publicKey: Uint8Array): ManifestInput {
    return { version: this.manifestVersion, signers: [{ publicKey }] } as ManifestInput
  }

  async #resolve (opts: StoreGetOptions): Promise<SharedCore> {
    if (opts.preload) opts = { ...opts, ...(await opts.preload), preload: null }
    const root = this.#root
    await root.opening
    this.#assertOpen()
    const open = openOptions(opts)
    if (opts.name !== undefined && opts.name !== null) {
      const name = b4a.from(opts.name)
      open.keyPair = createKeyPair(root.primaryKey!, this.ns, name)
      const known = root.catalog.alias(this.ns, name)
      let key: Uint8Array
      if (known !== null && !opts.manifest) {
        // Created before, perhaps with another manifest: the same core again.
        key = known.key
      } else {
        open.manifest ??= this.#manifestFor(open.keyPair.publicKey)
        key = parseKey(opts.key) ?? Hypercore.key(open.manifest)
      }
      const shared = root.core(key, open)
      const record = root.catalog.get(crypto.discoveryKey(key))
      if (record !== null) root.catalog.setAlias(record, this.ns, name)
      return shared
    }
    if (byDiscoveryKey(opts)) {
      const dk = typeof opts.discoveryKey === 'string' ? parseKey(opts.discoveryKey)! : opts.discoveryKey
      const record = root.catalog.get(dk)
      if (record === null) throw STORAGE_EMPTY('No Hypercore is stored here')
      return root.core(record.key, open)
    }
    return root.core(this.#keyOf(opts), open)
  }

  /** Corestore's `createKeyPair(name, [ns])`: the key pair named cores of `ns` get. */
  async createKeyPair (name: string, ns: Uint8Array = this.ns): Promise<crypto.KeyPair> {
    await this.#root.opening
    return createKeyPair(this.#root.primaryKey!, ns, name)
  }

  /**
   * The discovery keys of every core held, or of those made by name in
   * namespace `namespace` (a view's `ns`), as a readable stream.
   */
  list (namespace?: Uint8Array | null): Readable {
    const root = this.#root
    const ns = namespace ? b4a.toString(namespace as Buffer, 'hex') : null
    return Readable.from((async function * () {
      await root.opening
      for (const record of [...root.catalog.records()]) {
        if (ns === null || root.catalog.inNamespace(record, ns)) yield record.discoveryKey
      }
    })())
  }

  // -------------------------------------------------------------------------
  // Views

  /** A view of the store: closing it closes the sessions made from it, nothing else. */
  session (opts: StoreOptions = {}): Store {
    this.#assertOpen()
    makingViewOf = this
    try {
      return new Store(null, opts)
    } finally {
      makingViewOf = null
    }
  }

  /** A view whose named cores live in namespace `name` under this one's. */
  namespace (name: string | Uint8Array, opts: StoreOptions = {}): Store {
    return this.session({ ...opts, namespace: childNamespace(this.ns, name) })
  }

  /** Calls `fn` with every core the store opens from now on. */
  watch (fn: CoreWatcher): void {
    if (this.watchers === null) {
      this.watchers = new Set()
      this.#watching.add(this)
    }
    this.watchers.add(fn)
  }

  unwatch (fn: CoreWatcher): void {
    if (this.watchers === null) return
    this.watchers.delete(fn)
    if (this.watchers.size === 0) {
      this.watchers = null
      this.#watching.delete(this)
    }
  }

  /** While looking for peers: sessions of this view wait in `update()` until the returned function is called. */
  findingPeers (): () => void {
    const finding = this.#finding
    if (++finding.count === 1) for (const s of this.#sessions) finding.pending.push(s.findingPeers())
    let done = false
    return () => {
      if (done) return
      done = true
      if (--finding.count === 0) for (const release of finding.pending.splice(0)) release()
    }
  }

  // -------------------------------------------------------------------------
  // Replication

  /**
   * Replicates every core over one stream: a boolean makes a new Noise
   * stream to pipe; a secret stream (a Hyperswarm connection) or a protomux
   * is shared. Cores with active sessions replicate at once, others when the
   * remote asks for them; with a group key, members reconcile what they hold.
   */
  replicate (isInitiator: Replicable, opts: ProtocolStreamOptions = {}): NoiseSecretStream | Protomux['stream'] {
    this.#assertOpen()
    const { mux, stream } = protocolStream(isInitiator, opts)
    this.#root.replicate(mux, stream as unknown as { destroy (): void }, typeof isInitiator !== 'boolean')
    return stream
  }

  /**
   * One audit pass: a reconciliation with a group member picked at random,
   * then every core audited (corrupt blocks cleared, rotten nodes dropped);
   * what changed, members send back. Emits `repair-start` and `repair`.
   */
  async repair (): Promise<RepairSummary> {
    const root = this.#root
    await root.opening
    const members = root.members()
    const member = members[Math.floor(Math.random() * members.length)] ?? null
    member?.reconcile()
    this.emit('repair-start', member?.peer ?? null)
    const summary = await root.audit()
    this.emit('repair', summary)
    return summary
  }

  /** Counters: cores held and open, channels opened, files open. */
  stats (): StoreStats {
    return this.#root.stats()
  }

  // -------------------------------------------------------------------------

  /** Closes this view's sessions; the store itself (and every view) when called on the store. */
  close (): Promise<void> {
    if (this.#closing === null) this.#closing = this.#close()
    return this.#closing
  }

  async #close (): Promise<void> {
    this.closed = true
    if (this.#timer !== null) clearInterval(this.#timer)
    for (const release of this.#finding.pending.splice(0)) release()
    this.#finding.count = 0
    if (this.watchers !== null) this.#watching.delete(this)
    this.watchers = null
    const closing = [...this.#sessions].map(s => s.close().catch(noop))
    if (this.#parent !== null) {
      await Promise.all(closing)
      this.#parent.#views.delete(this)
      return
    }
    for (const view of this.#views) closing.push(view.close())
    await Promise.all(closing)
    await this.#root.close()
  }
}

/** How `get` opens the core `opts` names. */
function openOptions (opts: StoreGetOptions): OpenOptions {
  return { keyPair: opts.keyPair ?? null, manifest: opts.manifest ?? null, overwrite: opts.overwrite, createIfMissing: opts.createIfMissing }
}

/** `opts` names a held core by its discovery key alone (no key or manifest to open it by). */
function byDiscoveryKey (opts: StoreGetOptions): opts is StoreGetOptions & { discoveryKey: NonNullable<StoreGetOptions['discoveryKey']> } {
  return opts.discoveryKey !== undefined && (opts.key === undefined || opts.key === null) && !opts.manifest
}

function noop (): void {}
