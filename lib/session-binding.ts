/**
 * Which shared core a session sits on, and its hold there: the link the
 * shared core knows it by, its membership (Store family, exclusive lock,
 * whether it is active), and the snapshot it pins, with the length, fork
 * and byte length it sees through it. A session is bound at once to its
 * parent's core, a Store's core or one it makes over its own storage; or,
 * for a Store's named core whose key is not known yet, once the promised
 * core resolves. Apart from the public class because this is the one place
 * that knows a session may exist before its core does, and the session's
 * side of the boundary with the shared core.
 */
import { SharedCore, type SessionLink } from './shared-core'
import { CoreStorage, type StorageFactory } from './storage'
import type { Core } from './core'
import type { Snapshot } from './snapshot'
import { discoveryKey } from './crypto'
import { BAD_ARGUMENT, SESSION_CLOSED } from './errors'
import { isPlainOptions, type HypercoreOptions } from './session-options'
import type { Replicator } from './replicator'
import type { Hypercore } from './hypercore'

/**
 * Sessions that belong together (a Store session's cores): each session
 * made from one of them joins too, and leaves when it closes.
 */
export interface SessionFamily {
  add (session: Hypercore): void
  delete (session: Hypercore): void
}

/** A shared core the Store hands a new session (or will, once the promise resolves), with the family it joins. */
export interface StoreSource {
  shared: SharedCore | Promise<SharedCore>
  family: SessionFamily | null
}

/** Where a new session comes from: the session it is made from, or a core the Store hands it; else its own storage. */
export interface SessionSource<S> {
  parent: S | null
  store: StoreSource | null
}

/** The source of the session being constructed: set only around `new Hypercore`, so no option a caller could set carries it. */
let making: SessionSource<unknown> | null = null

/** Constructs a session (`make`) with `source` as where it comes from. */
export function makeSession<T> (source: SessionSource<T>, make: () => T): T {
  making = source
  try {
    return make()
  } finally {
    making = null
  }
}

/** For the constructor: where the session being constructed comes from (nowhere special unless `makeSession` made it). */
export function takeSessionSource<S> (): SessionSource<S> {
  const source = (making ?? { parent: null, store: null }) as SessionSource<S>
  making = null
  return source
}

/** Each session's binding, for nomadcore's own modules (Store, CLI): not reachable from the object. */
const bindingOf = new WeakMap<Hypercore, SessionBinding>()

/** The shared core under a session: for nomadcore's own modules, not part of the public API. */
export function internals (session: Hypercore): { shared: SharedCore, core: Core | null, replicator: Replicator | null } {
  const shared = bindingOf.get(session)?.shared ?? null
  if (shared === null) throw BAD_ARGUMENT('Not a nomadcore session')
  return { shared, core: shared.core, replicator: shared.replicator }
}

/** What clients that reach into Hypercore 11's internals (`core.core`) read: Hyperbee checks `bitfield.get`, Hyperdrive `compat`. */
export interface HypercoreCoreView {
  readonly compat: false
  readonly bitfield: { get (index: number): boolean }
}

/** Hypercore 11's replicator knob that Hyperbee turns for small blocks. */
export interface HypercoreReplicatorView {
  setInflightRange (min: number, max: number): void
}

type StorageArgument = string | StorageFactory | HypercoreOptions | null | undefined
type KeyArgument = Uint8Array | string | HypercoreOptions | null | undefined

/** `new Hypercore(storage, key, opts)` with the options given in place of the storage or the key sorted out. */
export function sessionArguments (storage: StorageArgument, key: KeyArgument, opts: HypercoreOptions): { storage: string | StorageFactory | null, key: Uint8Array | string | null, opts: HypercoreOptions } {
  if (isPlainOptions(storage)) {
    opts = storage
    storage = opts.storage ?? null
    key = opts.key ?? null
  } else if (isPlainOptions(key)) {
    opts = key
    key = opts.key ?? null
  }
  storage ??= opts.storage ?? null
  key ??= opts.key ?? null
  return { storage: storage as string | StorageFactory | null, key: (key as Uint8Array | string | null | undefined) ?? null, opts }
}

/** A new shared core over a session's own storage: a directory, or a function from file name to random-access storage. */
function ownSharedCore (storage: string | StorageFactory | null, key: Uint8Array | null, opts: HypercoreOptions): SharedCore {
  let coreStorage: CoreStorage
  if (typeof storage === 'string') coreStorage = CoreStorage.fromDirectory(storage)
  else if (typeof storage === 'function') coreStorage = new CoreStorage(storage)
  else throw BAD_ARGUMENT('Storage is a directory path or a function returning random-access storage')
  return new SharedCore(coreStorage, {
    directory: typeof storage === 'string' ? storage : null,
    key,
    keyPair: opts.keyPair ?? null,
    manifest: opts.manifest ?? null,
    overwrite: opts.overwrite ?? false,
    createIfMissing: opts.createIfMissing ?? true,
    writable: opts.writable ?? true
  })
}

/** One session's hold on its shared core. */
export class SessionBinding {
  /** Null until a session the Store made over a promised core is bound to it. */
  #shared: SharedCore | null
  readonly #bound: Promise<SharedCore>
  readonly #family: SessionFamily | null
  readonly #session: Hypercore
  readonly #link: SessionLink
  /** The key the session was opened with, if any: what errors name before the core is open. */
  readonly #keyHint: Uint8Array | null
  /** A snapshot session: it pins the core's tree once the core is open. */
  readonly #snapshotted: boolean
  /** Requests in flight per peer that the session asked for, if it did. */
  readonly #maxInflight: number | null
  #active: boolean
  #exclusive = false
  #snapshot: Snapshot | null = null

  /** The hold of a new session: on its parent's core, on a core the Store hands it, or on a new one over `storage`. Joins the family at once. */
  constructor (session: Hypercore, keyHint: Uint8Array | null, storage: string | StorageFactory | null, opts: HypercoreOptions, parent: SessionBinding | null, store: StoreSource | null) {
    let shared: SharedCore | Promise<SharedCore>
    if (parent !== null) {
      shared = parent.#shared ?? parent.#bound
      this.#family = parent.#family
    } else if (store !== null || opts.core instanceof SharedCore) {
      // The Store's cores, and `new Hypercore({ core })` over a core a Store watcher was handed.
      shared = store !== null ? store.shared : opts.core as SharedCore
      this.#family = store?.family ?? null
    } else {
      shared = ownSharedCore(storage, keyHint, opts)
      this.#family = null
    }
    this.#session = session
    this.#keyHint = keyHint
    this.#snapshotted = opts.snapshot === true
    this.#maxInflight = opts.inflightRange ? opts.inflightRange[1] : null
    this.#active = opts.active !== false
    this.#shared = shared instanceof SharedCore ? shared : null
    this.#bound = shared instanceof SharedCore ? Promise.resolve(shared) : shared
    this.#bound.catch(noop)
    this.#family?.add(session)
    bindingOf.set(session, this)

    const self = this
    this.#link = {
      get snapshot () { return self.#snapshot },
      emit: (name, ...args) => { session.emit(name, ...args) },
      transfer: (name, index, byteLength, peer) => {
        // Sizes without encryption padding, as Hypercore 11 reports them.
        if (session.listenerCount(name) > 0) session.emit(name, index, byteLength - session.padding, peer)
      },
      close: (err) => session.close({ error: err ?? null }),
      weak: opts.weak === true,
      get active () { return self.#active }
    }
  }

  /** The session as the shared core knows it. */
  get link (): SessionLink { return this.#link }

  /** The core's key: the shared core's, else the one the session was opened with (null for a new core before it opens). */
  get key (): Uint8Array | null { return this.#shared?.key ?? this.#keyHint }

  /** The shared core, or null before it is bound. */
  get shared (): SharedCore | null { return this.#shared }

  /** The shared core: bound once the session's opening got past its first step. */
  get openShared (): SharedCore {
    if (this.#shared === null) throw SESSION_CLOSED('The core is not open yet')
    return this.#shared
  }

  /** The open core. */
  get core (): Core {
    const core = this.#shared?.core ?? null
    if (core === null) throw SESSION_CLOSED('The core is not open yet', this.#keyHint === null ? null : discoveryKey(this.#keyHint))
    return core
  }

  /** The open core once the session has opened; SESSION_CLOSED with `message` when it is closing. */
  async live (message = 'The session is closed'): Promise<Core> {
    const s = this.#session
    if (!s.opened) await s.opening
    if (s.closing !== null) throw SESSION_CLOSED(message, s.discoveryKey)
    return this.core
  }

  /** Registers with `shared`; `parent` is the binding of the session this one was made from, if any. */
  #join (shared: SharedCore, parent: SessionBinding | null): void {
    this.#shared = shared
    shared.addSession(this.#link)
    // A snapshot of an open core is taken now, not when `ready()` resolves.
    if (this.#snapshotted && shared.core !== null) this.#takeSnapshot(parent)
    if (this.#maxInflight !== null) shared.setMaxInflight(this.#maxInflight)
  }

  /** Pins the snapshot the parent pins (a snapshot of a snapshot is the same one), else a new one of the core as it is now. */
  #takeSnapshot (parent: SessionBinding | null): void {
    const from = parent !== null ? parent.#snapshot : null
    const shared = this.openShared
    this.#snapshot = from !== null ? shared.adoptSnapshot(from) : shared.snapshot()
  }

  /** Registers with a core that is there already (so a parent closing before this session is ready leaves the core open). */
  register (parent: SessionBinding | null): void {
    if (this.#shared !== null) this.#join(this.#shared, parent)
  }

  /** Resolves with the shared core once there is one (a Store's named core may wait for its key). */
  get bound (): Promise<SharedCore> { return this.#bound }

  /** Registers with the core a promised one turned out to be. */
  join (shared: SharedCore, parent: SessionBinding | null): void {
    this.#join(shared, parent)
  }

  /** Leaves the family of a session whose core never came. */
  abandon (): void {
    this.#family?.delete(this.#session)
  }

  /** Waits until no earlier exclusive session of the core is open. */
  async lockExclusive (): Promise<void> {
    this.#exclusive = true
    await this.openShared.lockExclusive()
  }

  /** As the session opens: pins the snapshot it asked for if the core was not open to take it from at once. */
  pinSnapshot (parent: SessionBinding | null): void {
    if (this.#snapshotted && this.#snapshot === null) this.#takeSnapshot(parent)
  }

  /** Runs `fn` with the shared core: now if bound, else once it is (never if that fails). */
  whenBound (fn: (shared: SharedCore) => void): void {
    if (this.#shared !== null) fn(this.#shared)
    else void this.#bound.then(fn, noop)
  }

  /** Lets the next exclusive session in, if this one held the lock. */
  unlockExclusive (): void {
    if (this.#exclusive) this.openShared.unlockExclusive()
    this.#exclusive = false
  }

  /** Unregisters the session (its pending reads reject with `err`, REQUEST_CANCELLED if null; the last session out closes the core) and leaves the family. */
  async leave (err: Error | null, opts: { quiet?: boolean } = {}): Promise<void> {
    const removed = this.openShared.removeSession(this.#link, err)
    await (opts.quiet === true ? removed.catch(noop) : removed)
    this.#family?.delete(this.#session)
  }

  /** Whether the session wants the core replicated: peers hear whether any session of the core does. */
  get active (): boolean { return this.#active }
  set active (active: boolean) {
    this.#active = active
    this.#shared?.setActive(this.#link, active)
  }

  /** The core as Hypercore 11's `core.core` shows it to clients that reach into it, once open. */
  get coreView (): HypercoreCoreView | null {
    const shared = this.#shared
    if (shared === null || shared.core === null) return null
    return { compat: false, bitfield: { get: (index: number) => shared.core?.has(index) ?? false } }
  }

  /** Hypercore 11's `core.replicator`, as far as clients turn it, once replicating. */
  get replicatorView (): HypercoreReplicatorView | null {
    const shared = this.#shared
    if (shared === null || shared.replicator === null) return null
    return { setInflightRange: (_min: number, max: number) => shared.setMaxInflight(max) }
  }

  // -------------------------------------------------------------------------
  // What the session sees: its snapshot, else the live core

  /** The snapshot this session pins (the shared core keeps its truncated blocks), or null for a live session. */
  get snapshot (): Snapshot | null { return this.#snapshot }

  get length (): number {
    const snap = this.#snapshot
    if (snap !== null) return snap.length
    return this.#shared?.core?.length ?? 0
  }

  get fork (): number {
    const snap = this.#snapshot
    if (snap !== null) return snap.fork
    return this.#shared?.core?.fork ?? 0
  }

  /** Bytes of block data, encryption padding included. */
  get byteLength (): number {
    const snap = this.#snapshot
    return snap !== null ? snap.byteLength : this.#shared?.core?.byteLength ?? 0
  }

  /** The length the core's signature covers that the session can rely on (a snapshot's drops when the core is truncated below it). */
  get signedLength (): number {
    const core = this.#shared?.core ?? null
    if (core === null) return 0
    const snap = this.#snapshot
    if (snap !== null) return Math.min(snap.compatLength, core.length)
    return core.length
  }
}

function noop (): void {}
