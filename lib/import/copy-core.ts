/**
 * Copies one source core into a fresh directory in nomadcore's core layout,
 * checking everything on the way: tree nodes are written first, the roots
 * are checked against the signature, the tree is walked down from them, and
 * each block is checked against its verified leaf before it is written at
 * the offset the verified sizes give. The header is written last. Any
 * mismatch throws, and the caller throws the directory away: a core is
 * imported whole and verified, or not at all.
 *
 * Which blocks are held follows the source's bitfield: a block it marks but
 * does not store is damage; a stored block it does not mark (left over) is
 * not read.
 */
import b4a from 'b4a'
import { CoreStorage, HEADER_MAX_PAYLOAD, type DirtyRange, type Header, type UserDataEntry } from '../storage'
import { Bitfield } from '../bitfield'
import { inTree } from '../flat-tree'
import { leafHash, validateKeyPair } from '../crypto'
import * as manifests from '../manifest'
import * as m from '../messages'
import { INVALID_OPERATION, REQUEST_CANCELLED, STORAGE_CORRUPT, isCoded } from '../errors'
import { LeafWalk, signedRoots } from './verify'
import type { SourceCore } from './source'
import type { TreeNode } from '../tree-node'

/** Contiguous blocks are gathered into writes of up to this many bytes. */
const WRITE_BYTES = 1024 * 1024

export interface CopyOptions {
  /** Blocks held below the length (from `source.held()`). */
  held: Bitfield
  userData: UserDataEntry[]
  signal?: AbortSignal | null
  /** Called as blocks are written, with the blocks and bytes since the last call (every batch of reads). */
  onblocks?: (blocks: number, bytes: number) => void
}

export interface CopyResult {
  blocks: number
  bytes: number
  byteLength: number
  /** Tree nodes left out because nothing links them to a signed root. */
  droppedNodes: number
  /** The secret key was left out (it does not match the public key). */
  droppedKeyPair: boolean
  /** The key pair came along and signs for the core: it can be appended to. */
  writable: boolean
}

/**
 * Writes `source` into `dir` (which must be empty or missing) and returns
 * what was written. Throws STORAGE_CORRUPT or INVALID_SIGNATURE for a damaged
 * source, INVALID_OPERATION for one nomadcore cannot hold, REQUEST_CANCELLED
 * when `signal` aborts.
 */
export async function copyCore (source: SourceCore, dir: string, opts: CopyOptions): Promise<CopyResult> {
  const meta = source.meta
  const manifest = checkManifest(meta.key, meta.manifest, meta.length)
  if (meta.encrypted) throw INVALID_OPERATION('The core is encrypted, and nomadcore does not support block encryption')

  const storage = CoreStorage.fromDirectory(dir)
  try {
    await storage.open()
    const { length } = meta

    // Nodes go to the tree file as they come; only those inside the signed tree.
    const stored = new Bitfield()
    let outside = 0
    const heldCount = opts.held.count(0, length)
    await source.treeNodes(2 * heldCount >= length, async (batch) => {
      const inside: TreeNode[] = []
      for (const node of batch) {
        if (!inTree(node.index, length)) {
          outside++
          continue
        }
        inside.push(node)
        stored.set(node.index, true)
      }
      await storage.putNodes(inside)
      checkAbort(opts.signal)
    })

    const roots = await signedRoots(storage, { ...meta, manifest })
    const walk = new LeafWalk(storage, roots, stored)
    const writer = new DataWriter(storage)
    let bytes = 0
    await source.blocks(opts.held, async (indices, values) => {
      let batchBytes = 0
      for (let k = 0; k < indices.length; k++) {
        const index = indices[k]!
        const value = values[k]
        if (value === null || value === undefined) throw STORAGE_CORRUPT(`Block ${index} is marked as held but is not stored`)
        const leaf = await walk.leaf(index)
        if (leaf === null) throw STORAGE_CORRUPT(`Block ${index} has no verified tree node to check it against`)
        if (leaf.size !== value.byteLength || !b4a.equals(leafHash(value), leaf.hash)) {
          throw STORAGE_CORRUPT(`Block ${index} does not match its tree node`)
        }
        await writer.write(leaf.offset, value)
        batchBytes += value.byteLength
      }
      bytes += batchBytes
      opts.onblocks?.(indices.length, batchBytes)
      checkAbort(opts.signal)
    })
    await writer.flush()
    await walk.finish()
    // Exactly the held blocks were written, each checked: the bitfield is the source's.
    await storage.writeBitfield(bitfieldOf(opts.held))

    const keyPair = meta.keyPair !== null && meta.keyPair.secretKey !== null &&
      meta.keyPair.publicKey.byteLength === 32 && meta.keyPair.secretKey.byteLength === 64 &&
      validateKeyPair({ publicKey: meta.keyPair.publicKey, secretKey: meta.keyPair.secretKey })
      ? { publicKey: b4a.from(meta.keyPair.publicKey), secretKey: b4a.from(meta.keyPair.secretKey) }
      : null
    const byteLength = roots.reduce((sum, r) => sum + r.size, 0)
    const header: Header = {
      key: meta.key,
      manifest: manifest === null ? null : m.encode(m.manifest, manifest),
      keyPair,
      tree: { fork: meta.fork, length, byteLength, signature: meta.signature },
      ...(opts.userData.length > 0 ? { userData: opts.userData } : {})
    }
    try {
      await storage.writeHeader(header)
    } catch (err) {
      if (isCoded(err, 'BAD_ARGUMENT') && opts.userData.length > 0) {
        throw INVALID_OPERATION(`The core's user data does not fit a nomadcore header (at most ${HEADER_MAX_PAYLOAD} bytes with the rest of the header)`)
      }
      throw err
    }
    await storage.close()
    return {
      blocks: heldCount,
      bytes,
      byteLength,
      droppedNodes: outside + walk.dropped,
      droppedKeyPair: meta.keyPair !== null && meta.keyPair.secretKey !== null && keyPair === null,
      writable: keyPair !== null && manifest !== null && manifest.signers.some(s => b4a.equals(s.publicKey, keyPair.publicKey))
    }
  } finally {
    await storage.close().catch(noop)
  }
}

/**
 * The manifest a nomadcore header can carry: it must hash to the key. A core
 * never synced (length 0) may have none yet.
 */
function checkManifest (key: Uint8Array, manifest: m.Manifest | null, length: number): m.Manifest | null {
  if (manifest === null) {
    if (length > 0) throw STORAGE_CORRUPT('The source holds blocks of this core but no manifest, so its signature cannot be checked')
    return null
  }
  let encodable = true
  try {
    m.encode(m.manifest, manifest)
  } catch {
    encodable = false
  }
  if (encodable && manifests.isValidManifest(key, manifest)) return manifest
  if (manifests.isCompat(key, manifest)) {
    throw INVALID_OPERATION('A compat core (its key is the signer\'s public key, as in Hypercore 10): nomadcore stores only manifest-keyed cores')
  }
  throw STORAGE_CORRUPT('The source manifest does not hash to the core\'s key')
}

function checkAbort (signal: AbortSignal | null | undefined): void {
  if (signal?.aborted === true) throw REQUEST_CANCELLED('The import was interrupted')
}

/** The write that puts `held` into an empty bitfield file. */
function bitfieldOf (held: Bitfield): DirtyRange[] {
  const bytes = held.toBytes()
  return bytes.byteLength === 0 ? [] : [{ offset: 0, bytes }]
}

/** Gathers blocks that follow each other in the data file into larger writes. */
class DataWriter {
  readonly #storage: CoreStorage
  readonly #buffer = b4a.allocUnsafe(WRITE_BYTES)
  #start = 0
  #used = 0

  constructor (storage: CoreStorage) {
    this.#storage = storage
  }

  async write (offset: number, value: Uint8Array): Promise<void> {
    if (this.#used > 0 && (offset !== this.#start + this.#used || this.#used + value.byteLength > WRITE_BYTES)) await this.flush()
    if (value.byteLength > WRITE_BYTES) {
      await this.#storage.writeData(offset, value)
      return
    }
    if (this.#used === 0) this.#start = offset
    // A copy: the buffer is reused once written, the source's value is not kept.
    this.#buffer.set(value, this.#used)
    this.#used += value.byteLength
  }

  async flush (): Promise<void> {
    if (this.#used === 0) return
    const used = this.#used
    this.#used = 0
    await this.#storage.writeData(this.#start, this.#buffer.subarray(0, used))
  }
}

function noop (): void {}
