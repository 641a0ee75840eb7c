/**
 * Hashing, signing and the capability namespaces of Hypercore 11. Every
 * function here is pure and agrees byte for byte with `hypercore-crypto` and
 * Hypercore's `caps`, which the tests check.
 */
import sodium from 'sodium-universal'
import b4a from 'b4a'
import { ScratchHasher } from './blake2b'
import { equalHashAt, equalHashes, type TreeNode } from './tree-node'
import { readU32, writeU32, writeU64 } from './uint-le'

// Sizes in hash inputs are written with the one uint64 writer the formats use.
export { writeU64 }

// Domain separation against second-preimage attacks on the tree (parents are type 1, written inline).
const LEAF_TYPE = b4a.from([0])
const ROOT_TYPE = b4a.from([2])
const HYPERCORE = b4a.from('hypercore')

export interface KeyPair {
  publicKey: Uint8Array
  secretKey: Uint8Array
}

function u64 (n: number): Uint8Array {
  const b = new Uint8Array(8)
  writeU64(b, 0, n)
  return b
}

/** BLAKE2b-256 of the concatenation of `data`. */
export function hash (data: Uint8Array | Uint8Array[]): Uint8Array {
  const out = b4a.allocUnsafe(32)
  if (Array.isArray(data)) sodium.crypto_generichash_batch(out, data)
  else sodium.crypto_generichash(out, data)
  return out
}

/**
 * One input buffer for small leaves and for parents: type, size and bytes
 * copied together hash in one native call, a few times faster than a batch
 * of parts (what the audit and verified reads spend their time on).
 */
const SCRATCH_DATA = 4096
const hasher = new ScratchHasher(9 + SCRATCH_DATA)
const scratch = hasher.input
const digest = hasher.digest
const PARENT_INPUT = 9 + 32 + 32

/** Hash of a leaf: type ‖ uint64 size ‖ bytes. */
export function leafHash (data: Uint8Array): Uint8Array {
  const out = b4a.allocUnsafe(32)
  leafHashInto(out, data)
  return out
}

/** leafHash written into `out` (32 bytes). */
export function leafHashInto (out: Uint8Array, data: Uint8Array): void {
  leafDigest(data)
  copyHash(out, digest)
}

/** The leaf hash of `bytes` into `digest`. */
function leafDigest (bytes: Uint8Array): void {
  if (bytes.byteLength > SCRATCH_DATA) {
    sodium.crypto_generichash_batch(digest, [LEAF_TYPE, u64(bytes.byteLength), bytes])
    return
  }
  scratch[0] = 0
  writeU64(scratch, 1, bytes.byteLength)
  scratch.set(bytes, 9)
  hasher.hash(9 + bytes.byteLength)
}

function copyHash (out: Uint8Array, hash: Uint8Array): void {
  for (let k = 0; k < 32; k++) out[k] = hash[k]!
}

/** Whether `bytes` are the block `leaf` commits to. */
export function matchesLeaf (leaf: TreeNode, bytes: Uint8Array): boolean {
  if (bytes.byteLength !== leaf.size) return false
  leafDigest(bytes)
  return equalHashes(digest, leaf.hash)
}

/**
 * Whether the `size` bytes at `buf[at]` hash, as a leaf, to the 32 bytes at
 * `hashes[p]`. The block is hashed where it lies: the 9 bytes before it are
 * borrowed for the leaf's type and size and put back, so `buf` must be the
 * caller's own and not read meanwhile (the audit's read buffer).
 */
export function leafMatchesInPlace (buf: Uint8Array, at: number, size: number, hashes: Uint8Array, p: number): boolean {
  if (at < 9) {
    leafDigest(buf.subarray(at, at + size))
  } else {
    const s = at - 9
    const saved0 = buf[s]!
    const savedLo = readU32(buf, s + 1)
    const savedHi = readU32(buf, s + 5)
    buf[s] = 0
    writeU64(buf, s + 1, size)
    try {
      hasher.hashOf(buf, s, 9 + size)
    } finally {
      buf[s] = saved0
      writeU32(buf, s + 1, savedLo)
      writeU32(buf, s + 5, savedHi)
    }
  }
  return equalHashAt(hashes, p, digest)
}

/**
 * Whether the 32 bytes at `buf[p]` are the parent hash of the child hashes at
 * `buf[left]` and `buf[right]`, whose sizes sum to `size`.
 */
export function parentMatchesAt (buf: Uint8Array, size: number, left: number, right: number, p: number): boolean {
  scratch[0] = 1
  writeU64(scratch, 1, size)
  for (let k = 0; k < 32; k++) {
    scratch[9 + k] = buf[left + k]!
    scratch[41 + k] = buf[right + k]!
  }
  hasher.hash(PARENT_INPUT)
  return equalHashAt(buf, p, digest)
}

/**
 * Whether `node` is the parent of `left` and `right` (left before right):
 * its size their sum, its hash theirs with that size. Hashed in scratch
 * space, nothing allocated.
 */
export function isParentOf (node: TreeNode, left: TreeNode, right: TreeNode): boolean {
  const size = left.size + right.size
  if (node.size !== size) return false
  parentDigest(size, left.hash, right.hash)
  return equalHashes(digest, node.hash)
}

/** Hash of a parent over its two children, in index order. */
export function parentHash (a: TreeNode, b: TreeNode): Uint8Array {
  if (a.index > b.index) [a, b] = [b, a]
  const out = b4a.allocUnsafe(32)
  parentHashInto(out, a.size + b.size, a.hash, b.hash)
  return out
}

/** The parent hash of a left and a right child hash whose sizes sum to `size`, into `out`. */
export function parentHashInto (out: Uint8Array, size: number, left: Uint8Array, right: Uint8Array): void {
  parentDigest(size, left, right)
  copyHash(out, digest)
}

/** The parent hash of a left and a right child hash whose sizes sum to `size`, into `digest`. */
function parentDigest (size: number, left: Uint8Array, right: Uint8Array): void {
  scratch[0] = 1
  writeU64(scratch, 1, size)
  scratch.set(left, 9)
  scratch.set(right, 41)
  hasher.hash(PARENT_INPUT)
}

/** The tree hash that gets signed: all roots with their index and size. */
export function treeHash (roots: readonly TreeNode[]): Uint8Array {
  const parts: Uint8Array[] = [ROOT_TYPE]
  for (const r of roots) parts.push(r.hash, u64(r.index), u64(r.size))
  return hash(parts)
}

export function leafNode (index: number, data: Uint8Array): TreeNode {
  return { index, size: data.byteLength, hash: leafHash(data) }
}

export function parentNode (index: number, a: TreeNode, b: TreeNode): TreeNode {
  return { index, size: a.size + b.size, hash: parentHash(a, b) }
}

/** The public topic a core is found under, revealing nothing of its key. */
export function discoveryKey (key: Uint8Array): Uint8Array {
  if (key.byteLength !== 32) throw new RangeError('A key is 32 bytes')
  const out = b4a.allocUnsafeSlow(32)
  sodium.crypto_generichash(out, HYPERCORE, key)
  return out
}

export function keyPair (seed?: Uint8Array): KeyPair {
  const publicKey = b4a.allocUnsafeSlow(sodium.crypto_sign_PUBLICKEYBYTES)
  const secretKey = b4a.allocUnsafeSlow(sodium.crypto_sign_SECRETKEYBYTES)
  if (seed) sodium.crypto_sign_seed_keypair(publicKey, secretKey, seed)
  else sodium.crypto_sign_keypair(publicKey, secretKey)
  return { publicKey, secretKey }
}

export function validateKeyPair (kp: KeyPair): boolean {
  if (kp.secretKey.byteLength !== sodium.crypto_sign_SECRETKEYBYTES) return false
  if (kp.publicKey.byteLength !== sodium.crypto_sign_PUBLICKEYBYTES) return false
  const pk = b4a.allocUnsafe(32)
  sodium.crypto_sign_ed25519_sk_to_pk(pk, kp.secretKey)
  return b4a.equals(pk, kp.publicKey)
}

export function sign (message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  const signature = b4a.allocUnsafeSlow(sodium.crypto_sign_BYTES)
  sodium.crypto_sign_detached(signature, message, secretKey)
  return signature
}

export function verify (message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.byteLength !== sodium.crypto_sign_BYTES) return false
  if (publicKey.byteLength !== sodium.crypto_sign_PUBLICKEYBYTES) return false
  return sodium.crypto_sign_verify_detached(signature, message, publicKey)
}

export function randomBytes (n: number): Uint8Array {
  const buf = b4a.allocUnsafe(n)
  sodium.randombytes_buf(buf)
  return buf
}

/** `count` 32-byte ids derived from `name`, as hypercore-crypto's namespace. */
export function namespace (name: string | Uint8Array, count: number): Uint8Array[] {
  const ns = b4a.allocUnsafe(33)
  sodium.crypto_generichash(ns.subarray(0, 32), typeof name === 'string' ? b4a.from(name) : name)
  const out: Uint8Array[] = []
  for (let i = 0; i < count; i++) {
    const id = b4a.allocUnsafeSlow(32)
    ns[32] = i
    sodium.crypto_generichash(id, ns)
    out.push(id)
  }
  return out
}

const [TREE, REPLICATE_INITIATOR, REPLICATE_RESPONDER, MANIFEST, DEFAULT_NAMESPACE, DEFAULT_ENCRYPTION] =
  namespace('hypercore', 6) as [Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array]

/** Hypercore's capability namespaces. */
export const caps = { TREE, REPLICATE_INITIATOR, REPLICATE_RESPONDER, MANIFEST, DEFAULT_NAMESPACE, DEFAULT_ENCRYPTION } as const

/** What a writer signs: namespace ‖ manifest hash ‖ tree hash ‖ length ‖ fork. */
export function treeSignable (manifestHash: Uint8Array, tHash: Uint8Array, length: number, fork: number): Uint8Array {
  const out = b4a.allocUnsafe(112)
  out.set(TREE, 0)
  out.set(manifestHash, 32)
  out.set(tHash, 64)
  writeU64(out, 96, length)
  writeU64(out, 104, fork)
  return out
}

/** BLAKE2b-256 of the parts, keyed with `key` (16–64 bytes). */
export function keyedHash (parts: Uint8Array[], key: Uint8Array): Uint8Array {
  const out = b4a.allocUnsafe(32)
  sodium.crypto_generichash_batch(out, parts, key)
  return out
}

/** Proof, bound to one Noise session, that we know `key`. */
export function replicateCapability (isInitiator: boolean, key: Uint8Array, handshakeHash: Uint8Array): Uint8Array {
  const out = b4a.allocUnsafe(32)
  sodium.crypto_generichash_batch(out, [isInitiator ? REPLICATE_INITIATOR : REPLICATE_RESPONDER, key], handshakeHash)
  return out
}
