/**
 * The option and result shapes of the public `Hypercore` class, as
 * Hypercore 11 names them, plus the pure helpers that read them.
 */
import * as id from 'hypercore-id-encoding'
import type { KeyPair } from './crypto'
import type { ManifestInput } from './manifest'
import type { ValueEncoding } from './value-encoding'
import type { StorageFactory } from './storage'
import type { Peer } from './peer'
import type { EncryptionOptions } from './encryption'
import { ASSERTION, BAD_ARGUMENT } from './errors'

/** Options of `new Hypercore(storage, [key], [opts])` and of `session(opts)`. */
export interface HypercoreOptions extends EncryptionOptions {
  /** Where the core lives, as an alternative to the first argument. */
  storage?: string | StorageFactory | null
  /** The core's public key (32 bytes, 64 hex or 52 z32 characters); omit to create a new writable core. */
  key?: Uint8Array | string | null
  /** Signing key pair; a new core gets a fresh one. */
  keyPair?: KeyPair | null
  /** Manifest for cores with other signers than the default single key. */
  manifest?: ManifestInput | null
  /** How blocks are encoded: any name `codecs` knows, an abstract-encoding or a compact-encoding. */
  valueEncoding?: ValueEncoding
  /** Encodes a whole batch of appended values at once (instead of `valueEncoding`). */
  encodeBatch?: ((values: unknown[]) => Uint8Array[]) | null
  /** Set false for a session that cannot append or truncate. */
  writable?: boolean
  /** Wipe whatever core is stored and start a new one. */
  overwrite?: boolean
  /** Set false to fail with STORAGE_EMPTY instead of creating a core. */
  createIfMissing?: boolean
  /** Default for `get`'s `wait` (true). */
  wait?: boolean
  /** Default for `get`'s `timeout` in ms (0 = none). */
  timeout?: number
  /** Called when a `get` has to wait for the network. */
  onwait?: ((index: number, session: unknown) => void) | null
  /** Called on every `get(index)`. */
  onseq?: ((index: number, session: unknown) => void) | null
  /** A session frozen at the length, fork and tree it was made at. */
  snapshot?: boolean
  /** Entries written to the core's user data when it opens. */
  userData?: Record<string, Uint8Array | string> | null
  /** [min, max] requests in flight per peer. */
  inflightRange?: [number, number] | null
  /** Whether this session wants the core replicated (default true): peers hear it as Hypercore 11's `downloading`. */
  active?: boolean
  /**
   * Check every block read against its leaf, tied by hashes to the signed
   * roots (default true); false reads the stored bytes as they are.
   */
  verify?: boolean
  /** A weak session does not keep the core open: it closes when the last other session does. */
  weak?: boolean
  /** Ready only once no earlier exclusive session of the core is open (Hyperdrive opens its database so). */
  exclusive?: boolean
  /** The internal core a Store watcher is handed (`store.watch(core => new Hypercore({ core, weak: true }))`). */
  core?: unknown
}

export interface GetOptions {
  /** Wait for a block that is not here yet (default: the session's `wait`). */
  wait?: boolean
  /** Give up waiting after this many milliseconds (0 = never). */
  timeout?: number
  valueEncoding?: ValueEncoding
  /** Decrypt an encrypted block (default true). */
  decrypt?: boolean
  /** The stored bytes, neither decrypted nor decoded. */
  raw?: boolean
  /** Called if this get has to wait for the network. */
  onwait?: ((index: number, session: unknown) => void) | null
  /** Check the block against its verified leaf (default: the session's `verify`). */
  verify?: boolean
}

export interface AppendOptions {
  keyPair?: KeyPair | null
  signature?: Uint8Array | null
  /** Append nothing if the core would grow past this length. */
  maxLength?: number
  /** Skip the session's own writability check (a signature or key pair still has to sign). */
  writable?: boolean
}

export interface TruncateOptions {
  fork?: number
  keyPair?: KeyPair | null
  signature?: Uint8Array | null
}

export interface UpdateOptions {
  /** Wait for peers to tell their length (default: only while `findingPeers()` is pending). */
  wait?: boolean
  /** Update even a writable core. */
  force?: boolean
}

export interface SeekOptions {
  wait?: boolean
  timeout?: number
}

/** `download()` ranges, as in Hypercore: a range or a list of blocks. */
export interface DownloadRange {
  start?: number
  /** Exclusive; -1 (the default with no range) keeps downloading new blocks. */
  end?: number
  blocks?: number[]
  linear?: boolean
}

/** What `download()` returns. */
export interface DownloadHandle {
  /** Resolves once the open has happened. */
  ready (): Promise<void>
  /** Resolves true when every block of the range is stored locally, false if it was destroyed first. */
  done (): Promise<boolean>
  /** Deprecated spelling of `done()`. */
  downloaded (): Promise<boolean>
  /** Stops downloading; `done()` resolves false. */
  destroy (): void
}

/** A registered extension: messages of your own over the replication channel. */
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

/** `info()`: Hypercore 11's fields, plus nomadcore's own. */
export interface Info {
  key: Uint8Array
  discoveryKey: Uint8Array
  length: number
  contiguousLength: number
  byteLength: number
  fork: number
  padding: number
  /** Bytes used on disk per file, with `{ storage: true }`; null otherwise (as in Hypercore 11). */
  storage: { oplog: number, tree: number, blocks: number, bitfield: number } | null
  writable: boolean
  /** True while tree roots are missing. */
  repairMode: boolean
  /** Blocks held locally. */
  blocks: number
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

/** A key given as bytes, hex or z32, as bytes; null stays null. */
export function parseKey (key: Uint8Array | string | null | undefined): Uint8Array | null {
  if (key === null || key === undefined) return null
  if (typeof key === 'string') {
    try {
      return id.decode(key)
    } catch {
      throw BAD_ARGUMENT('A key is 32 bytes, 64 hex characters or 52 z32 characters')
    }
  }
  if (!(key instanceof Uint8Array) || key.byteLength !== 32) throw BAD_ARGUMENT('A key is 32 bytes')
  return key
}

/** Hypercore 11's index check: an ASSERTION for anything but a non-negative number. */
export function assertIndex (index: unknown, what: string, discoveryKey: Uint8Array | null): asserts index is number {
  // Stricter than Hypercore 11, which lets 1.5 through to its storage: a block index is an integer.
  if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0) {
    throw ASSERTION(what + ' is invalid', discoveryKey)
  }
}

export function isPlainOptions (x: unknown): x is HypercoreOptions {
  return typeof x === 'object' && x !== null && !(x instanceof Uint8Array) && !Array.isArray(x)
}
