/**
 * Typed access to the reference implementation our tests compare against:
 * `flat-tree`, `hypercore-crypto`, Hypercore's `caps` and the `hypercore@11`
 * class itself. The packages are plain JavaScript, so they are loaded with
 * `require` and cast to the local interfaces below — only what the tests use,
 * but typed precisely so no `any` leaks into test code.
 */
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'

// ---------------------------------------------------------------------------
// flat-tree
// ---------------------------------------------------------------------------

/** flat-tree's stateful cursor. NB: its leftSpan()/rightSpan() MOVE the cursor. */
export interface FlatTreeIterator {
  index: number
  offset: number
  factor: number
  /** Returns nothing (unlike ours, which returns the index). */
  seek (index: number): void
  isLeft (): boolean
  isRight (): boolean
  isRoot (length: number): boolean
  contains (index: number): boolean
  prev (): number
  next (): number
  count (): number
  countLeaves (): number
  sibling (): number
  parent (): number
  leftChild (): number
  rightChild (): number
  /** Moves to the leftmost leaf below the current node and returns it. */
  leftSpan (): number
  /** Moves to the rightmost leaf below the current node and returns it. */
  rightSpan (): number
  peekLeftSpan (): number
  peekRightSpan (): number
  nextTree (): number
  prevTree (): number
  fullRoot (head: number): boolean
}

export interface FlatTree {
  fullRoots (index: number, result?: number[]): number[]
  futureRoots (index: number, result?: number[]): number[]
  patch (from: number, to: number): number[]
  depth (index: number): number
  offset (index: number, depth?: number): number
  index (depth: number, offset: number): number
  parent (index: number, depth?: number): number
  sibling (index: number, depth?: number): number
  leftChild (index: number, depth?: number): number
  rightChild (index: number, depth?: number): number
  children (index: number, depth?: number): [number, number] | null
  leftSpan (index: number, depth?: number): number
  rightSpan (index: number, depth?: number): number
  spans (index: number, depth?: number): [number, number]
  nextLeaf (index: number): number
  count (index: number, depth?: number): number
  countLeaves (index: number): number
  iterator (index?: number): FlatTreeIterator
}

export const flatTree = require('flat-tree') as FlatTree

// ---------------------------------------------------------------------------
// hypercore-crypto and caps
// ---------------------------------------------------------------------------

/** A Merkle tree node as hypercore-crypto and Hypercore see it. */
export interface OracleTreeNode {
  index: number
  size: number
  hash: Uint8Array
}

export interface OracleKeyPair {
  publicKey: Buffer
  secretKey: Buffer
}

export interface KeyPairLike {
  publicKey: Uint8Array
  secretKey: Uint8Array | null
}

export interface HypercoreCrypto {
  keyPair (seed?: Uint8Array): OracleKeyPair
  validateKeyPair (keyPair: { publicKey: Uint8Array, secretKey: Uint8Array }): boolean
  sign (message: Uint8Array, secretKey: Uint8Array): Buffer
  verify (message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean
  /** Leaf hash of a block. */
  data (data: Uint8Array): Buffer
  /** Parent hash of two nodes (ordered by index internally). */
  parent (a: OracleTreeNode, b: OracleTreeNode): Buffer
  /** Tree hash of the roots. */
  tree (roots: readonly OracleTreeNode[], out?: Uint8Array): Buffer
  hash (data: Uint8Array | readonly Uint8Array[], out?: Uint8Array): Buffer
  randomBytes (n: number): Buffer
  discoveryKey (key: Uint8Array): Buffer
  namespace (name: string | Uint8Array, count: number | readonly number[]): Buffer[]
}

export const hcCrypto = require('hypercore-crypto') as HypercoreCrypto

/** node_modules/hypercore/lib/caps.js */
export interface HypercoreCaps {
  MANIFEST: Buffer
  DEFAULT_NAMESPACE: Buffer
  DEFAULT_ENCRYPTION: Buffer
  replicate (isInitiator: boolean, key: Uint8Array, handshakeHash: Uint8Array): Buffer
  treeSignable (manifestHash: Uint8Array, treeHash: Uint8Array, length: number, fork: number): Buffer
  treeSignableCompat (hash: Uint8Array, length: number, fork: number, noHeader?: boolean): Buffer
}

export const hcCaps = require('hypercore/lib/caps.js') as HypercoreCaps

/**
 * node_modules/hypercore/lib/multisig.js. A v1 core with one signer stores its
 * signature assembled in this format (`01 00 <64-byte sig> 00 00`, 68 bytes), not raw.
 */
export interface MultiSignature {
  proofs: Array<{ signer: number, signature: Buffer, patch: number }>
  patch: OracleTreeNode[]
}
export interface HypercoreMultisig {
  inflate (data: Uint8Array): MultiSignature
  assemble (inputs: Array<{ signer: number, signature: Uint8Array, patch: number, nodes: OracleTreeNode[] | null }>): Buffer
}

export const hcMultisig = require('hypercore/lib/multisig.js') as HypercoreMultisig

// ---------------------------------------------------------------------------
// Hypercore 11
// ---------------------------------------------------------------------------

export type ValueEncoding = 'binary' | 'utf-8' | 'utf8' | 'json' | 'ascii' | 'hex' | 'base64'

export interface HypercoreOptions {
  keyPair?: KeyPairLike
  valueEncoding?: ValueEncoding
  overwrite?: boolean
  createIfMissing?: boolean
  writable?: boolean
  key?: Uint8Array
  manifest?: HypercoreManifestInput
  compat?: boolean
}

export interface HypercoreManifestInput {
  version?: number
  quorum?: number
  allowPatch?: boolean
  signers?: Array<{ publicKey: Uint8Array, namespace?: Uint8Array, signature?: 'ed25519' }>
}

export interface HypercoreManifest {
  version: number
  hash: 'blake2b'
  allowPatch: boolean
  quorum: number
  signers: Array<{ signature: 'ed25519', namespace: Buffer, publicKey: Buffer }>
  prologue: { hash: Buffer, length: number } | null
  linked: Buffer[] | null
  userData: Buffer | null
}

export interface GetOptions {
  wait?: boolean
  timeout?: number
  valueEncoding?: ValueEncoding
  raw?: boolean
}

/** The request half of `core.proof(opts)` (Hypercore's wire request shape). */
export interface ProofRequest {
  block?: { index: number, nodes: number } | null
  hash?: { index: number, nodes: number } | null
  seek?: { bytes: number, padding: number } | null
  upgrade?: { start: number, length: number } | null
}

/** A settled proof as returned by `core.proof()`. */
export interface HypercoreProof {
  fork: number
  block: { index: number, value: Buffer | null, nodes: OracleTreeNode[] } | null
  hash: { index: number, nodes: OracleTreeNode[] } | null
  seek: { bytes: number, nodes: OracleTreeNode[] } | null
  upgrade: {
    start: number
    length: number
    nodes: OracleTreeNode[]
    additionalNodes: OracleTreeNode[]
    signature: Buffer | null
  } | null
  manifest: HypercoreManifest | null
}

/** What `verifyFullyRemote` resolves to (a MerkleTreeBatch; these fields only). */
export interface VerifiedBatch {
  fork: number
  length: number
  byteLength: number
  roots: OracleTreeNode[]
  signature: Buffer | null
}

/** A replication stream (NoiseSecretStream wrapper, a streamx Duplex). */
export interface ReplicationStream {
  pipe (dest: ReplicationStream): ReplicationStream
  destroy (err?: Error): void
  on (event: string, fn: (...args: unknown[]) => void): this
  once (event: string, fn: (...args: unknown[]) => void): this
  readonly destroyed: boolean
}

export interface DownloadRange {
  start?: number
  end?: number
  length?: number
  blocks?: number[]
  linear?: boolean
}

export interface HypercoreDownload {
  ready (): Promise<void>
  done (): Promise<void>
  destroy (): void
}

/** Opaque handle to Hypercore's internal Core (`hypercore.core`). */
export interface OpaqueCore {
  readonly __opaqueHypercoreCore: never
}

export interface HypercoreEvents {
  append: () => void
  truncate: (ancestors: number, forkId: number) => void
  repairing: (proof: HypercoreProof) => void
  repaired: (proof: HypercoreProof) => void
  'repair-failed': () => void
  'peer-add': (peer: unknown) => void
  'peer-remove': (peer: unknown) => void
  ready: () => void
  close: () => void
  download: (index: number, byteLength: number, from: unknown) => void
  upload: (index: number, byteLength: number, from: unknown) => void
  'verification-error': (err: Error) => void
}

export interface Hypercore {
  readonly key: Buffer | null
  readonly discoveryKey: Buffer | null
  readonly keyPair: OracleKeyPair | null
  readonly length: number
  readonly byteLength: number
  readonly contiguousLength: number
  readonly fork: number
  readonly writable: boolean
  readonly readable: boolean
  readonly opened: boolean
  readonly closed: boolean
  readonly manifest: HypercoreManifest | null
  readonly core: OpaqueCore
  readonly peers: unknown[]

  ready (): Promise<void>
  close (opts?: { error?: Error }): Promise<void>
  append (blocks: Uint8Array | string | Array<Uint8Array | string>): Promise<{ length: number, byteLength: number }>
  /** A Buffer unless a valueEncoding says otherwise (then pass the decoded type as T). */
  get<T = Buffer> (index: number, opts?: GetOptions): Promise<T | null>
  has (start: number, end?: number): Promise<boolean>
  seek (bytes: number, opts?: { wait?: boolean, timeout?: number }): Promise<[number, number] | null>
  truncate (newLength?: number, fork?: number | { fork?: number, keyPair?: KeyPairLike, signature?: Uint8Array }): Promise<void>
  treeHash (length?: number): Promise<Buffer>
  signable (length?: number, fork?: number): Promise<Buffer>
  proof (opts: ProofRequest): Promise<HypercoreProof>
  verifyFullyRemote (proof: HypercoreProof): Promise<VerifiedBatch>
  generateRemoteProofForTreeNode (treeNodeIndex: number): Promise<Buffer>
  recoverFromRemoteProof (remoteProof: Uint8Array): Promise<boolean>
  recoverTreeNodeFromPeers (): void
  replicate (isInitiator: boolean | ReplicationStream, opts?: { keepAlive?: boolean, ondiscoverykey?: (discoveryKey: Buffer) => unknown }): ReplicationStream
  update (opts?: { wait?: boolean, force?: boolean }): Promise<boolean>
  download (range?: DownloadRange): HypercoreDownload
  findingPeers (): () => void
  createReadStream (opts?: { start?: number, end?: number, live?: boolean }): AsyncIterable<Buffer>

  on<E extends keyof HypercoreEvents> (event: E, listener: HypercoreEvents[E]): this
  once<E extends keyof HypercoreEvents> (event: E, listener: HypercoreEvents[E]): this
  off<E extends keyof HypercoreEvents> (event: E, listener: HypercoreEvents[E]): this
}

export interface HypercoreConstructor {
  new (storage: string | unknown, key?: Uint8Array | null, opts?: HypercoreOptions): Hypercore
  new (storage: string | unknown, opts?: HypercoreOptions): Hypercore
  discoveryKey (key: Uint8Array): Buffer
  key (manifest: HypercoreManifestInput | Uint8Array, opts?: { compat?: boolean, version?: number, namespace?: Uint8Array }): Buffer
}

export const Hypercore = require('hypercore') as HypercoreConstructor

// The internals we reach into; kept private to this file.
interface CoreTx {
  deleteTreeNode (index: number): void
  putTreeNode (node: OracleTreeNode): void
  flush (): Promise<void>
}
interface CoreRx {
  getTreeNode (index: number): Promise<OracleTreeNode | null>
  tryFlush (): void
}
interface CoreInternals {
  _repairMode: boolean
  storage: { write (): CoreTx, read (): CoreRx }
}

function internals (core: Hypercore): CoreInternals {
  return core.core as unknown as CoreInternals
}

/** Whether the core is in Hypercore's repair mode (`core.core._repairMode`). */
export function repairMode (core: Hypercore): boolean {
  return !!internals(core)._repairMode
}

/** Deletes one Merkle tree node from a Hypercore 11 core's storage. */
export async function deleteHypercoreTreeNode (core: Hypercore, index: number): Promise<void> {
  await core.ready()
  const tx = internals(core).storage.write()
  tx.deleteTreeNode(index)
  await tx.flush()
}

/** Reads one Merkle tree node straight from a Hypercore 11 core's storage. */
export async function getHypercoreTreeNode (core: Hypercore, index: number): Promise<OracleTreeNode | null> {
  await core.ready()
  const rx = internals(core).storage.read()
  const p = rx.getTreeNode(index)
  rx.tryFlush()
  return p
}

// ---------------------------------------------------------------------------
// Temp dirs and core creation
// ---------------------------------------------------------------------------

/** Anything with brittle's `teardown` (a brittle test). */
export interface Teardownable {
  teardown (fn: () => unknown, opts?: { order?: number }): void
}

const orphanDirs: string[] = []
let exitHook = false

function freshDir (): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'nomadcore-test-'))
}

/**
 * Removing a Hypercore 11 store's directory: RocksDB may still be writing a
 * file into it for a moment after the core closed, which makes the last
 * rmdir fail with ENOTEMPTY; the removal tries again then.
 */
export const RM_STORE = { recursive: true, force: true, maxRetries: 10, retryDelay: 50 } as const

/** A fresh temp dir, removed at the test's teardown (after everything else). */
export async function tmpDir (t: Teardownable): Promise<string> {
  const dir = freshDir()
  t.teardown(() => fs.promises.rm(dir, RM_STORE), { order: Number.MAX_SAFE_INTEGER })
  return dir
}

/**
 * A ready Hypercore stored in `dir` (a fresh temp dir, removed at process exit,
 * when omitted). Hypercore 11 turns the path into a RocksDB-backed store.
 */
export async function makeHypercore (dir?: string, key?: Uint8Array | null, opts?: HypercoreOptions): Promise<Hypercore> {
  if (dir === undefined) {
    dir = freshDir()
    orphanDirs.push(dir)
    if (!exitHook) {
      exitHook = true
      process.once('exit', () => {
        for (const d of orphanDirs) fs.rmSync(d, RM_STORE)
      })
    }
  }
  const core = new Hypercore(dir, key ?? null, opts)
  await core.ready()
  return core
}
