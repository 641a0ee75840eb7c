/**
 * The two implementations under test, behind the common `BenchCore` shape
 * (local rows) and the `PeerDriver` shape (rows that replicate). Both are
 * given a directory: nomadcore stores its files there with
 * random-access-file, Hypercore 11 opens its RocksDB storage there.
 */
import * as path from 'path'
import * as fs from 'fs'
import { Hypercore as NomadCore, internals, type Proof } from '../lib/hypercore'
import {
  Hypercore as HypercoreClass, deleteHypercoreTreeNode, getHypercoreTreeNode, repairMode as hypercoreRepairMode,
  type Hypercore as HypercoreCore, type HypercoreProof
} from '../test/helpers/oracle'
import type { BenchCore, BenchKeyPair, BenchProofRequest, Contender } from './harness'

function packageVersion (file: string): string {
  try {
    const pkg: unknown = JSON.parse(fs.readFileSync(file, 'utf8'))
    if (typeof pkg === 'object' && pkg !== null && 'version' in pkg && typeof pkg.version === 'string') return pkg.version
  } catch {}
  return 'unknown'
}

function asBuffer (b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)
}

/** A proof of block `index` with an upgrade from 0 to `length`. */
export function blockRequest (index: number, length: number): BenchProofRequest & { block: { index: number, nodes: number } } {
  return { block: { index, nodes: 0 }, upgrade: { start: 0, length } }
}

export const nomadcore: Contender = {
  name: 'nomadcore',
  version: packageVersion(path.join(__dirname, '..', '..', 'package.json')),
  async open (dir: string, keyPair: BenchKeyPair): Promise<BenchCore> {
    const core = new NomadCore(dir, { keyPair })
    await core.ready()
    const bench: BenchCore<Proof> = {
      get length () { return core.length },
      async append (blocks) { await core.append(blocks) },
      async get (index, opts) {
        const value = await core.get(index, { wait: false, verify: opts?.verify })
        if (!(value instanceof Uint8Array)) throw new Error(`nomadcore: block ${index} is not stored`)
        return value
      },
      proof: req => core.proof(req),
      async blockProofWithValue (index, length) {
        // Our proof() leaves block.value null: read the block alongside, as a server would.
        const [proof, value] = await Promise.all([core.proof(blockRequest(index, length)), bench.get(index)])
        bench.setBlockValue(proof, value)
        return proof
      },
      setBlockValue (proof, value) {
        if (proof.block === null) throw new Error('nomadcore: not a block proof')
        proof.block.value = value
      },
      async verifyFullyRemote (proof) { await core.verifyFullyRemote(proof) },
      treeHash: length => core.treeHash(length),
      readStream: () => countStream(core.createReadStream()),
      async audit () {
        const report = await core.audit()
        if (report.verifiedBlocks !== report.blocks || report.droppedNodes > 0 || report.restoredNodes > 0) {
          throw new Error(`nomadcore: audit found damage: ${JSON.stringify(report)}`)
        }
      },
      close: () => core.close()
    }
    return bench
  }
}

export const hypercore: Contender = {
  name: 'hypercore',
  version: packageVersion(path.join(path.dirname(require.resolve('hypercore')), 'package.json')),
  async open (dir: string, keyPair: BenchKeyPair): Promise<BenchCore> {
    const core = new HypercoreClass(dir, { keyPair })
    await core.ready()
    const bench: BenchCore<HypercoreProof> = {
      get length () { return core.length },
      async append (blocks) { await core.append(blocks) },
      async get (index) {
        const value = await core.get(index, { wait: false })
        if (value === null) throw new Error(`hypercore: block ${index} is not stored`)
        return value
      },
      proof: req => core.proof(req),
      async blockProofWithValue (index, length) {
        // Hypercore's proof() reads the block into block.value itself.
        const proof = await core.proof(blockRequest(index, length))
        if (proof.block === null || proof.block.value === null) throw new Error(`hypercore: no block ${index} in its proof`)
        return proof
      },
      setBlockValue (proof, value) {
        if (proof.block === null) throw new Error('hypercore: not a block proof')
        proof.block.value = asBuffer(value)
      },
      async verifyFullyRemote (proof) { await core.verifyFullyRemote(proof) },
      treeHash: length => core.treeHash(length),
      readStream: () => countStream(core.createReadStream()),
      async audit () {
        // Hypercore 11 has no public audit(); its internal core has one (tree, blocks, bitfield).
        const stats = await hypercoreAudit(core)
        if (stats === null || stats.corrupt || stats.droppedTreeNodes > 0 || stats.droppedBlocks > 0 || stats.droppedBits > 0) {
          throw new Error(`hypercore: audit found damage: ${JSON.stringify(stats)}`)
        }
      },
      close: () => core.close()
    }
    return bench
  }
}

/** Consumes a read stream of blocks; the count. */
async function countStream (stream: AsyncIterable<unknown>): Promise<number> {
  let n = 0
  for await (const block of stream) if (block !== null) n++
  return n
}

/** What Hypercore 11's lib/audit.js returns (null when it deleted a core it found rootless). */
interface HypercoreAuditStats {
  treeNodes: number
  blocks: number
  bits: number
  droppedTreeNodes: number
  droppedBlocks: number
  droppedBits: number
  corrupt: boolean
}

function hypercoreAudit (core: HypercoreCore): Promise<HypercoreAuditStats | null> {
  const inner = core.core as unknown as { audit (): Promise<HypercoreAuditStats | null> }
  return inner.audit()
}


// ---------------------------------------------------------------------------
// Replication: whole cores, as two peers use them

/** One end of a replication stream, as `replicate(isInitiator)` returns it. */
export interface BenchStream {
  pipe (dest: BenchStream): BenchStream
  /** What this end sends, chunk by chunk (for counting bytes on the wire). */
  on (event: 'data', fn: (chunk: Uint8Array) => void): unknown
  destroy (): void
}

/** A stored tree node as both implementations store it: its size and hash. */
export interface StoredNode {
  size: number
  hash: Uint8Array
}

/** An open core that can replicate, whichever implementation is behind it. */
export interface PeerCore {
  readonly key: Uint8Array
  readonly length: number
  /**
   * True while roots are missing. Hypercore 11 leaves its flag set after a
   * repair until the core is reopened; nomadcore clears it on the repair.
   */
  readonly repairMode: boolean
  append (blocks: Uint8Array[]): Promise<void>
  replicate (isInitiator: boolean): BenchStream
  /**
   * From a fresh reader with a peer piped: learns the length and fetches
   * blocks [0, n); resolves when every one of them is stored here.
   */
  downloadAll (n: number): Promise<void>
  /** Learns the peer's length (waits for it). */
  update (): Promise<void>
  /** Block `index`, from a peer if it is not here. */
  get (index: number): Promise<Uint8Array>
  generateRemoteProofForTreeNode (index: number): Promise<Uint8Array>
  /** Node `index` as it is in storage (no cache), null when missing. */
  storedTreeNode (index: number): Promise<StoredNode | null>
  once (event: 'repaired' | 'peer-add', fn: () => void): void
  off (event: 'repaired' | 'peer-add', fn: () => void): void
  close (): Promise<void>
}

export interface PeerOpenOptions {
  /** Create a writable core with this key pair (dir must be empty). */
  keyPair?: BenchKeyPair
  /** Create a reader of this key (dir must be empty). */
  key?: Uint8Array
}

export interface PeerDriver {
  /** With neither option, opens the core already stored in `dir`. */
  open (dir: string, opts?: PeerOpenOptions): Promise<PeerCore>
  /** Copies a closed core to an empty directory; null when its storage cannot be copied (build twice). */
  readonly copy: ((from: string, to: string) => Promise<void>) | null
  /** Deletes tree nodes of the closed core stored in `dir`, as lost storage would. */
  deleteTreeNodes (dir: string, indices: readonly number[]): Promise<void>
}

/** nomadcore's tree file: node i at byte 40·i, all zero = missing. */
const NOMAD_NODE_SIZE = 40

const nomadPeer: PeerDriver = {
  async open (dir, opts = {}) {
    const core = opts.key !== undefined
      ? new NomadCore(dir, opts.key)
      : new NomadCore(dir, opts.keyPair !== undefined ? { keyPair: opts.keyPair } : {})
    await core.ready()
    const peer: PeerCore = {
      get key () { return core.key! },
      get length () { return core.length },
      get repairMode () { return core.repairMode },
      async append (blocks) { await core.append(blocks) },
      replicate: isInitiator => core.replicate(isInitiator) as unknown as BenchStream,
      async downloadAll (n) {
        // Our download() waits for the upgrade itself: no update() round trip first.
        await core.download({ start: 0, end: n }).done()
      },
      async update () { await core.update({ wait: true }) },
      async get (index) {
        const value: unknown = await core.get(index)
        if (!(value instanceof Uint8Array)) throw new Error(`nomadcore: no block ${index}`)
        return value
      },
      generateRemoteProofForTreeNode: i => core.generateRemoteProofForTreeNode(i),
      async storedTreeNode (i) {
        const node = await internals(core).core!.storage.getNode(i)
        return node === null || isZeroNode(node) ? null : { size: node.size, hash: node.hash }
      },
      once (event, fn) { core.once(event, fn) },
      off (event, fn) { core.off(event, fn) },
      close: () => core.close()
    }
    return peer
  },
  async copy (from, to) {
    await fs.promises.cp(from, to, { recursive: true })
  },
  async deleteTreeNodes (dir, indices) {
    const fd = await fs.promises.open(path.join(dir, 'tree'), 'r+')
    try {
      const zero = new Uint8Array(NOMAD_NODE_SIZE)
      for (const i of indices) await fd.write(zero, 0, NOMAD_NODE_SIZE, NOMAD_NODE_SIZE * i)
    } finally {
      await fd.close()
    }
  }
}

function isZeroNode (node: StoredNode): boolean {
  return node.size === 0 && node.hash.every(b => b === 0)
}

const hypercorePeer: PeerDriver = {
  async open (dir, opts = {}) {
    const core: HypercoreCore = opts.key !== undefined
      ? new HypercoreClass(dir, opts.key)
      : new HypercoreClass(dir, opts.keyPair !== undefined ? { keyPair: opts.keyPair } : {})
    await core.ready()
    const peer: PeerCore = {
      get key () { return core.key! },
      get length () { return core.length },
      get repairMode () { return hypercoreRepairMode(core) },
      async append (blocks) { await core.append(blocks) },
      replicate: isInitiator => core.replicate(isInitiator) as unknown as BenchStream,
      async downloadAll (n) {
        await core.update({ wait: true })
        await core.download({ start: 0, end: n }).done()
      },
      async update () { await core.update({ wait: true }) },
      async get (index) {
        const value = await core.get(index)
        if (value === null) throw new Error(`hypercore: no block ${index}`)
        return value
      },
      generateRemoteProofForTreeNode: i => core.generateRemoteProofForTreeNode(i),
      async storedTreeNode (i) {
        const node = await getHypercoreTreeNode(core, i)
        return node === null ? null : { size: node.size, hash: node.hash }
      },
      once (event, fn) { core.once(event, fn) },
      off (event, fn) { core.off(event, fn) },
      close: () => core.close()
    }
    return peer
  },
  // RocksDB's device file refuses a copied directory ("Invalid device file, was moved unsafely").
  copy: null,
  async deleteTreeNodes (dir, indices) {
    const core = new HypercoreClass(dir)
    try {
      for (const i of indices) await deleteHypercoreTreeNode(core, i)
    } finally {
      await core.close()
    }
  }
}

const peerDrivers = new Map<string, PeerDriver>([[nomadcore.name, nomadPeer], [hypercore.name, hypercorePeer]])

/** The replication side of a contender. */
export function peerDriver (contender: Contender): PeerDriver {
  const driver = peerDrivers.get(contender.name)
  if (driver === undefined) throw new Error(`No peer driver for ${contender.name}`)
  return driver
}

export const contenders: readonly Contender[] = [nomadcore, hypercore]
