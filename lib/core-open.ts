/**
 * Opening a core from its storage: which header to trust (a torn last append
 * falls back to the header before it), the bitfield trimmed to what that
 * header signs, the roots loaded, and whether the tree opens in repair mode.
 * Also the header a new core starts with. Apart from the core because all of
 * it runs once, before there is a core, and needs none of its state.
 */
import b4a from 'b4a'
import * as crypto from './crypto'
import * as manifests from './manifest'
import * as m from './messages'
import { MerkleTree } from './merkle-tree'
import { checkTail, hasOpenTail } from './crash-recovery'
import { sumSizes } from './tree-lookups'
import { BAD_ARGUMENT, STORAGE_CONFLICT, STORAGE_CORRUPT, STORAGE_EMPTY } from './errors'
import type { Bitfield } from './bitfield'
import type { CoreStorage, Header } from './storage'
import type { TreeState } from './tree-batch'
import type { Manifest } from './messages'

export interface CoreOpenOptions {
  key?: Uint8Array | null
  keyPair?: crypto.KeyPair | null
  manifest?: manifests.ManifestInput | null
  overwrite?: boolean
  createIfMissing?: boolean
  writable?: boolean
}

/** What a core starts from: the header in force and what it promises, loaded. */
export interface OpenedCore {
  header: Header
  manifest: Manifest | null
  tree: MerkleTree
  bitfield: Bitfield
  repairMode: boolean
  writable: boolean
}

export async function openCore (storage: CoreStorage, opts: CoreOpenOptions): Promise<OpenedCore> {
  const headers = opts.overwrite ? [] : await storage.readHeaders()
  let header = headers[0] ?? null
  let tailIsWhole = false

  if (header === null) {
    if (opts.createIfMissing === false && !opts.overwrite) throw STORAGE_EMPTY()
    if (opts.overwrite) await wipe(storage)
    header = newHeader(opts)
    await storage.writeHeader(header)
  } else {
    if (hasOpenTail(header)) {
      const manifest = header.manifest === null ? null : decodeStoredManifest(header.manifest, header.key)
      const verdict = await checkTail(storage, header, manifest)
      if (verdict === 'torn' && headers[1] !== undefined) {
        // The last append did not fully land: go back to the state before it,
        // and make its slot the next one written so the good one survives.
        await storage.discardNewestHeader()
        header = settled(headers[1])
        await storage.writeHeader(header)
      } else {
        tailIsWhole = verdict === 'whole'
      }
    }
    header = adoptOptions(header, opts)
  }

  const length = header.tree.length
  const bitfield = await storage.readBitfield()
  // Bits past the signed length come from an append that never committed;
  // bits of a tail that checked out may have been the write that was lost.
  bitfield.truncate(length)
  if (tailIsWhole) bitfield.setRange(header.hints!.appendedFrom, length, true)
  const dirty = bitfield.takeDirty()
  if (dirty.length > 0) await storage.writeBitfield(dirty)

  const { roots, missing } = await MerkleTree.loadRoots(storage, length)
  let repairMode = length > 0 && missing.length > 0
  const state: TreeState = {
    roots,
    length,
    byteLength: header.tree.byteLength,
    fork: header.tree.fork,
    signature: header.tree.signature
  }

  const manifest = header.manifest === null ? null : decodeStoredManifest(header.manifest, header.key)
  if (!repairMode && length > 0 && manifest !== null) {
    // Roots that do not hash to what we signed are rotten: repair them.
    if (!manifests.verify(manifest, header.key, crypto.treeHash(roots), length, state.fork, state.signature)) repairMode = true
  }
  if (!repairMode) state.byteLength = sumSizes(roots)

  const keyPair = header.keyPair
  const writable = keyPair !== null && opts.writable !== false && manifest !== null &&
    manifest.signers.some(s => b4a.equals(s.publicKey, keyPair.publicKey))

  return { header, manifest, tree: new MerkleTree(storage, state), bitfield, repairMode, writable }
}

/** `h` as a header with nothing left to check on the next open. */
function settled (h: Header): Header {
  return { ...h, hints: { contiguousLength: h.hints?.contiguousLength ?? 0, appendedFrom: h.tree.length } }
}

function decodeStoredManifest (bytes: Uint8Array, key: Uint8Array): Manifest {
  let manifest: Manifest
  try {
    manifest = m.decodeExact(m.manifest, bytes)
  } catch {
    throw STORAGE_CORRUPT('Stored manifest does not decode')
  }
  if (!manifests.isValidManifest(key, manifest)) throw STORAGE_CORRUPT('Stored manifest does not hash to the key')
  return manifest
}

function newHeader (opts: CoreOpenOptions): Header {
  let keyPair = opts.keyPair ?? null
  let manifest = opts.manifest ? manifests.createManifest(opts.manifest) : null
  const key = opts.key ?? null

  if (keyPair === null && manifest === null && key === null) keyPair = crypto.keyPair()
  if (keyPair !== null && !crypto.validateKeyPair(keyPair)) throw BAD_ARGUMENT('Key pair does not match')
  if (manifest === null && keyPair !== null) {
    manifest = manifests.defaultManifest(keyPair.publicKey)
    // A key pair whose default key is not the key asked for is not ours to use.
    if (key !== null && !b4a.equals(manifests.manifestHash(manifest), key)) {
      manifest = null
      keyPair = null
    }
  }
  const resolvedKey = key ?? manifests.manifestHash(manifest!)
  if (manifest !== null && !b4a.equals(manifests.manifestHash(manifest), resolvedKey)) {
    throw BAD_ARGUMENT('Manifest does not match the key')
  }
  return {
    key: resolvedKey,
    manifest: manifest === null ? null : m.encode(m.manifest, manifest),
    keyPair: keyPair === null ? null : { publicKey: keyPair.publicKey, secretKey: keyPair.secretKey },
    tree: { fork: 0, length: 0, byteLength: 0, signature: null }
  }
}

function adoptOptions (header: Header, opts: CoreOpenOptions): Header {
  if (opts.key && !b4a.equals(opts.key, header.key)) throw STORAGE_CONFLICT('Another Hypercore is stored here')
  if (opts.keyPair && header.keyPair === null && header.manifest !== null) {
    return { ...header, keyPair: { publicKey: opts.keyPair.publicKey, secretKey: opts.keyPair.secretKey } }
  }
  return header
}

async function wipe (storage: CoreStorage): Promise<void> {
  await Promise.all([
    storage.deleteNodeRange(0, Infinity),
    storage.truncateData(0),
    storage.truncateBitfield(0)
  ])
}
