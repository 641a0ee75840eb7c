import test from 'brittle'
import fc from 'fast-check'
import * as crypto from '../lib/crypto'
import { ScratchHasher, directHashing } from '../lib/blake2b'
import * as flat from '../lib/flat-tree'
import type { TreeNode } from '../lib/tree-node'
import { hcCrypto, hcCaps, hcMultisig, tmpDir, makeHypercore, type OracleTreeNode } from './helpers/oracle'

// Our lib/crypto.ts against hypercore-crypto and Hypercore 11's lib/caps.js,
// byte for byte, over random inputs.

interface CompactState { start: number, end: number, buffer: Uint8Array }
interface CompactEncoding {
  uint64: { encode (state: CompactState, n: number): void }
}
const cenc = require('compact-encoding') as CompactEncoding

const RUNS = 500

interface Asserts {
  pass (message?: string): void
  fail (message?: string): void
}

function property (t: Asserts, name: string, prop: fc.IProperty<any>, numRuns = RUNS): void {
  try {
    fc.assert(prop as fc.IProperty<unknown>, { numRuns })
    t.pass(name)
  } catch (err) {
    t.fail(`${name}\n${(err as Error).message}`)
  }
}

function same (a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
}

function hex (a: Uint8Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex')
}

const bytes = fc.uint8Array({ maxLength: 300 })
const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 })
const seed = bytes32

// Safe integers biased towards the 2^32 boundary and the top of the range.
const u64 = fc.oneof(
  fc.integer({ min: 0, max: 0xffffffff }),
  fc.integer({ min: 0xffffffff - 1000, max: 0x100000000 + 1000 }),
  fc.maxSafeNat(),
  fc.integer({ min: Number.MAX_SAFE_INTEGER - 1000, max: Number.MAX_SAFE_INTEGER }),
  fc.constantFrom(0, 1, 255, 256, 0xffffffff, 0x100000000, 2 ** 40, 2 ** 52, Number.MAX_SAFE_INTEGER)
)

const node: fc.Arbitrary<TreeNode> = fc.record({
  index: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 2 ** 52 })),
  size: fc.oneof(fc.integer({ min: 0, max: 2 ** 20 }), fc.integer({ min: 0, max: 2 ** 52 })),
  hash: bytes32
})

function cUint64 (n: number): Uint8Array {
  const state = { start: 0, end: 8, buffer: Buffer.alloc(8) }
  cenc.uint64.encode(state, n)
  return state.buffer
}

test('writeU64 writes the same bytes as compact-encoding uint64 for any safe integer, including above 2^32', (t) => {
  property(t, 'vs compact-encoding', fc.property(u64, n => {
    const b = new Uint8Array(8)
    crypto.writeU64(b, 0, n)
    return same(b, cUint64(n))
  }), 2000)
  property(t, 'vs DataView.setBigUint64 little endian', fc.property(u64, n => {
    const b = new Uint8Array(8)
    crypto.writeU64(b, 0, n)
    const ref = new Uint8Array(8)
    new DataView(ref.buffer).setBigUint64(0, BigInt(n), true)
    return same(b, ref)
  }), 2000)
})

test('writeU64 writes exactly 8 bytes at the given offset and nothing else', (t) => {
  property(t, 'offset', fc.property(u64, fc.integer({ min: 0, max: 40 }), fc.uint8Array({ minLength: 48, maxLength: 48 }), (n, at, orig) => {
    const b = Uint8Array.from(orig)
    crypto.writeU64(b, at, n)
    return same(b.subarray(at, at + 8), cUint64(n)) &&
      same(b.subarray(0, at), orig.subarray(0, at)) &&
      same(b.subarray(at + 8), orig.subarray(at + 8))
  }))
})

test('hashes agree with hypercore-crypto for any bytes and any list of byte strings', (t) => {
  property(t, 'single', fc.property(bytes, d => same(crypto.hash(d), hcCrypto.hash(d))))
  property(t, 'batch', fc.property(fc.array(bytes, { maxLength: 8 }), ds => same(crypto.hash(ds), hcCrypto.hash(ds))))
  property(t, 'batch equals hash of the concatenation', fc.property(fc.array(bytes, { maxLength: 8 }), ds =>
    same(crypto.hash(ds), hcCrypto.hash(Buffer.concat(ds)))))
  t.is(crypto.hash(new Uint8Array(0)).byteLength, 32)
})

test('leaf hashes agree with hypercore-crypto for any bytes', (t) => {
  property(t, 'leafHash', fc.property(bytes, d => same(crypto.leafHash(d), hcCrypto.data(d))))
  property(t, 'leafHash (large blocks)', fc.property(fc.uint8Array({ minLength: 1000, maxLength: 70000 }), d =>
    same(crypto.leafHash(d), hcCrypto.data(d))), 30)
  t.ok(same(crypto.leafHash(new Uint8Array(0)), hcCrypto.data(Buffer.alloc(0))), 'empty block')
})

test('leafNode carries the index, the byte size and the hypercore-crypto leaf hash', (t) => {
  property(t, 'leafNode', fc.property(fc.nat({ max: 2 ** 40 }).map(n => 2 * n), bytes, (index, d) => {
    const n = crypto.leafNode(index, d)
    return n.index === index && n.size === d.byteLength && same(n.hash, hcCrypto.data(d))
  }))
})

test('parent hashes agree with hypercore-crypto for any two children in either order, including sizes above 2^32', (t) => {
  property(t, 'parentHash', fc.property(node, node, (a, b) =>
    same(crypto.parentHash(a, b), hcCrypto.parent(a, b)) &&
    same(crypto.parentHash(b, a), hcCrypto.parent(b, a)) &&
    // children are ordered by index, so argument order is irrelevant (siblings never share an index)
    (a.index === b.index || same(crypto.parentHash(a, b), crypto.parentHash(b, a)))), 1000)
  // total size straddling 2^32 and near 2^53
  const sizes = fc.oneof(
    fc.tuple(fc.integer({ min: 2 ** 31, max: 2 ** 32 }), fc.integer({ min: 2 ** 31, max: 2 ** 32 })),
    fc.tuple(fc.integer({ min: 0, max: 2 ** 52 }), fc.integer({ min: 0, max: 2 ** 52 - 1 })))
  property(t, 'parentHash big sizes', fc.property(sizes, bytes32, bytes32, ([sa, sb], ha, hb) => {
    const a = { index: 4, size: sa, hash: ha }
    const b = { index: 6, size: sb, hash: hb }
    return same(crypto.parentHash(a, b), hcCrypto.parent(a, b))
  }), 1000)
})

test('the direct BLAKE2b path is taken under Node and hashes any range exactly as sodium does', (t) => {
  t.ok(directHashing, 'sodium-native\'s binding passed its known-answer check')
  const hasher = new ScratchHasher(4096)
  property(t, 'input prefix', fc.property(fc.uint8Array({ maxLength: 4096 }), d => {
    hasher.input.set(d)
    hasher.hash(d.byteLength)
    return same(hasher.digest, hcCrypto.hash(d))
  }))
  property(t, 'range of another buffer', fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat(), fc.nat(), (d, x, y) => {
    const at = d.byteLength === 0 ? 0 : x % d.byteLength
    const length = (d.byteLength - at) === 0 ? 0 : y % (d.byteLength - at + 1)
    hasher.hashOf(d, at, length)
    return same(hasher.digest, hcCrypto.hash(d.subarray(at, at + length)))
  }))
})

test('a hash range outside its buffer throws a RangeError instead of reaching native code', (t) => {
  const hasher = new ScratchHasher(64)
  t.exception.all(() => hasher.hash(65), /out of bounds/)
  t.exception.all(() => hasher.hash(-1), /out of bounds/)
  t.exception.all(() => hasher.hashOf(new Uint8Array(10), 4, 7), /out of bounds/)
  t.exception.all(() => hasher.hashOf(new Uint8Array(10), -1, 2), /out of bounds/)
  hasher.hashOf(new Uint8Array(10), 4, 6)
  t.ok(same(hasher.digest, hcCrypto.hash(Buffer.alloc(6))), 'the last byte of the buffer is in range')
})

test('a leaf checked in place matches exactly its block and leaves the buffer as it was', (t) => {
  property(t, 'leafMatchesInPlace', fc.property(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ maxLength: 5000 }), fc.boolean(), (before, block, flip) => {
    const buf = Buffer.concat([before, block, Buffer.from([1, 2, 3])])
    const copy = Buffer.from(buf)
    const hashes = Buffer.alloc(50)
    hashes.set(hcCrypto.data(Buffer.from(block)), 11)
    if (flip && block.byteLength > 0) buf[before.byteLength] ^= 1
    const matches = crypto.leafMatchesInPlace(buf, before.byteLength, block.byteLength, hashes, 11)
    if (flip && block.byteLength > 0) buf[before.byteLength] ^= 1
    return matches === !(flip && block.byteLength > 0) && buf.equals(copy)
  }))
})

test('a parent checked in place matches exactly the hash of its two stored children', (t) => {
  property(t, 'parentMatchesAt', fc.property(node, node, fc.boolean(), (a, b, flip) => {
    const buf = Buffer.alloc(3 * 40)
    buf.set(a.hash, 8)
    buf.set(b.hash, 88)
    buf.set(hcCrypto.parent({ ...a, index: 0 }, { ...b, index: 2 }), 48)
    if (flip) buf[60] ^= 0x80
    return crypto.parentMatchesAt(buf, a.size + b.size, 8, 88, 48) === !flip
  }))
})

test('parentNode sums the sizes and hashes like hypercore-crypto', (t) => {
  property(t, 'parentNode', fc.property(fc.integer({ min: 0, max: 2 ** 40 }).map(n => 2 * n + 1), node, node, (index, a, b) => {
    const p = crypto.parentNode(index, a, b)
    return p.index === index && p.size === a.size + b.size && same(p.hash, hcCrypto.parent(a, b))
  }))
})

test('tree hashes agree with hypercore-crypto for any list of roots, with indices and sizes above 2^32', (t) => {
  property(t, 'treeHash', fc.property(fc.array(node, { maxLength: 12 }), roots =>
    same(crypto.treeHash(roots), hcCrypto.tree(roots))))
  t.ok(same(crypto.treeHash([]), hcCrypto.tree([])), 'empty tree')
})

test('discovery keys agree with hypercore-crypto for any 32-byte key', async (t) => {
  property(t, 'discoveryKey', fc.property(bytes32, k => same(crypto.discoveryKey(k), hcCrypto.discoveryKey(k))))
  for (const len of [0, 31, 33, 64]) {
    await t.exception.all(() => crypto.discoveryKey(new Uint8Array(len)), undefined, `ours rejects a ${len}-byte key`)
    await t.exception.all(() => hcCrypto.discoveryKey(new Uint8Array(len)), undefined, `hypercore-crypto rejects a ${len}-byte key`)
  }
})

test('seeded key pairs are identical to hypercore-crypto\'s', (t) => {
  property(t, 'keyPair(seed)', fc.property(seed, s => {
    const ours = crypto.keyPair(s)
    const theirs = hcCrypto.keyPair(s)
    return same(ours.publicKey, theirs.publicKey) && same(ours.secretKey, theirs.secretKey)
  }), 200)
})

test('fresh key pairs validate under both implementations and mismatched pairs fail under both', (t) => {
  for (let i = 0; i < 20; i++) {
    const kp = crypto.keyPair()
    const other = hcCrypto.keyPair()
    if (kp.publicKey.byteLength !== 32 || kp.secretKey.byteLength !== 64) t.fail('key sizes')
    if (!crypto.validateKeyPair(kp) || !hcCrypto.validateKeyPair(kp)) t.fail('fresh pair invalid')
    if (!crypto.validateKeyPair(other)) t.fail('hypercore-crypto pair invalid for ours')
    const mixed = { publicKey: other.publicKey, secretKey: kp.secretKey }
    if (crypto.validateKeyPair(mixed) || hcCrypto.validateKeyPair(mixed)) t.fail('mismatched pair accepted')
  }
  t.pass('20 fresh pairs')
  const kp = crypto.keyPair()
  // hypercore-crypto would throw inside sodium here; ours answers false
  t.is(crypto.validateKeyPair({ publicKey: kp.publicKey, secretKey: kp.secretKey.subarray(0, 32) }), false, 'short secret key')
  t.is(crypto.validateKeyPair({ publicKey: kp.publicKey.subarray(0, 31), secretKey: kp.secretKey }), false, 'short public key')
})

test('signatures are byte-identical to hypercore-crypto\'s and verify under both', (t) => {
  property(t, 'sign', fc.property(seed, bytes, (s, msg) => {
    const kp = crypto.keyPair(s)
    const sig = crypto.sign(msg, kp.secretKey)
    return sig.byteLength === 64 &&
      same(sig, hcCrypto.sign(msg, kp.secretKey)) &&
      crypto.verify(msg, sig, kp.publicKey) &&
      hcCrypto.verify(msg, sig, kp.publicKey)
  }), 200)
})

test('verify rejects a tampered message, signature or key exactly when hypercore-crypto does', (t) => {
  const what = fc.constantFrom('message', 'signature', 'publicKey')
  property(t, 'tamper', fc.property(seed, fc.uint8Array({ minLength: 1, maxLength: 200 }), what, fc.nat(), fc.integer({ min: 0, max: 7 }), (s, msg, part, pos, bit) => {
    const kp = crypto.keyPair(s)
    let m = Uint8Array.from(msg)
    let sig = Uint8Array.from(crypto.sign(msg, kp.secretKey))
    let pk = Uint8Array.from(kp.publicKey)
    const target = part === 'message' ? m : part === 'signature' ? sig : pk
    target[pos % target.byteLength]! ^= 1 << bit
    const ours = crypto.verify(m, sig, pk)
    return ours === false && ours === hcCrypto.verify(m, sig, pk)
  }), 300)
  const kp = crypto.keyPair()
  const msg = Buffer.from('hello')
  const sig = crypto.sign(msg, kp.secretKey)
  for (const [name, s, pk] of [
    ['short signature', sig.subarray(0, 63), kp.publicKey],
    ['long signature', Buffer.concat([sig, Buffer.alloc(1)]), kp.publicKey],
    ['short public key', sig, kp.publicKey.subarray(0, 31)],
    ['empty signature', new Uint8Array(0), kp.publicKey]
  ] as Array<[string, Uint8Array, Uint8Array]>) {
    t.is(crypto.verify(msg, s, pk), false, name)
    t.is(hcCrypto.verify(msg, s, pk), false, `${name} (hypercore-crypto)`)
  }
})

test('namespace ids agree with hypercore-crypto for any name and count', (t) => {
  const name = fc.oneof(fc.string({ maxLength: 40 }), fc.uint8Array({ maxLength: 64 }))
  property(t, 'namespace', fc.property(name, fc.integer({ min: 0, max: 12 }), (n, count) => {
    const ours = crypto.namespace(n, count)
    const theirs = hcCrypto.namespace(n, count)
    return ours.length === count && theirs.length === count && ours.every((id, i) => id.byteLength === 32 && same(id, theirs[i]!))
  }))
  const many = crypto.namespace('hypercore', 300)
  const ref = hcCrypto.namespace('hypercore', 300)
  t.ok(many.every((id, i) => same(id, ref[i]!)), '300 ids (the id byte wraps at 256 in both)')
})

test('caps constants equal Hypercore 11\'s caps', (t) => {
  const ns = hcCrypto.namespace('hypercore', 6)
  t.is(hex(crypto.caps.TREE), hex(ns[0]!), 'TREE')
  t.is(hex(crypto.caps.REPLICATE_INITIATOR), hex(ns[1]!), 'REPLICATE_INITIATOR')
  t.is(hex(crypto.caps.REPLICATE_RESPONDER), hex(ns[2]!), 'REPLICATE_RESPONDER')
  t.is(hex(crypto.caps.MANIFEST), hex(hcCaps.MANIFEST), 'MANIFEST')
  t.is(hex(crypto.caps.DEFAULT_NAMESPACE), hex(hcCaps.DEFAULT_NAMESPACE), 'DEFAULT_NAMESPACE')
  t.is(hex(crypto.caps.DEFAULT_ENCRYPTION), hex(hcCaps.DEFAULT_ENCRYPTION), 'DEFAULT_ENCRYPTION')
  // the TREE namespace is what caps.treeSignable writes first
  t.is(hex(hcCaps.treeSignable(new Uint8Array(32), new Uint8Array(32), 0, 0).subarray(0, 32)), hex(crypto.caps.TREE), 'TREE heads every signable')
})

test('treeSignable agrees with Hypercore caps for any hashes, lengths and forks, including above 2^32', (t) => {
  property(t, 'treeSignable', fc.property(bytes32, bytes32, u64, u64, (mh, th, length, fork) => {
    const ours = crypto.treeSignable(mh, th, length, fork)
    return ours.byteLength === 112 && same(ours, hcCaps.treeSignable(mh, th, length, fork))
  }), 1000)
})

test('replication capabilities agree with Hypercore caps.replicate for both roles', (t) => {
  property(t, 'replicateCapability', fc.property(fc.boolean(), bytes32, fc.uint8Array({ minLength: 32, maxLength: 64 }), (init, key, hh) =>
    same(crypto.replicateCapability(init, key, hh), hcCaps.replicate(init, key, hh))))
  const key = new Uint8Array(32).fill(7)
  const hh = new Uint8Array(64).fill(9)
  t.not(hex(crypto.replicateCapability(true, key, hh)), hex(crypto.replicateCapability(false, key, hh)), 'roles differ')
})

test('randomBytes returns the requested number of bytes', (t) => {
  for (const n of [0, 1, 32, 1000]) t.is(crypto.randomBytes(n).byteLength, n)
  t.not(hex(crypto.randomBytes(32)), hex(crypto.randomBytes(32)))
})

// End to end: the tree Hypercore 11 builds from real appends.
test('a Hypercore 11 core\'s roots, tree hashes and signature match ours computed from the same blocks', async (t) => {
  const kp = crypto.keyPair(new Uint8Array(32).fill(3))
  const core = await makeHypercore(await tmpDir(t), null, { keyPair: { publicKey: kp.publicKey, secretKey: kp.secretKey } })
  t.teardown(() => core.close())

  const blocks: Uint8Array[] = []
  for (let i = 0; i < 45; i++) blocks.push(Buffer.from('block-' + i + '-' + 'x'.repeat((i * 37) % 101)))
  blocks[5] = new Uint8Array(0) // an empty block
  await core.append(blocks.slice(0, 20))
  for (const b of blocks.slice(20)) await core.append(b)
  t.is(core.length, blocks.length)

  const memo = new Map<number, TreeNode>()
  function ourNode (i: number): TreeNode {
    let n = memo.get(i)
    if (n === undefined) {
      n = (i & 1) === 0
        ? crypto.leafNode(i, blocks[i / 2]!)
        : crypto.parentNode(i, ourNode(flat.leftChild(i)), ourNode(flat.rightChild(i)))
      memo.set(i, n)
    }
    return n
  }
  const ourRoots = (length: number): TreeNode[] => flat.fullRoots(2 * length).map(ourNode)

  const bad: string[] = []
  for (let length = 0; length <= blocks.length; length++) {
    const theirs = await core.treeHash(length)
    if (!same(crypto.treeHash(ourRoots(length)), theirs)) bad.push(`treeHash(${length})`)
  }
  t.alike(bad, [], 'tree hash at every length 0..45')

  t.is(hex(crypto.discoveryKey(core.key!)), hex(core.discoveryKey!), 'discovery key of the core key')

  const proof = await core.proof({ upgrade: { start: 0, length: core.length } })
  const upgrade = proof.upgrade!
  const asNode = (n: OracleTreeNode): string => `${n.index}:${n.size}:${hex(n.hash)}`
  t.alike(upgrade.nodes.map(asNode), ourRoots(core.length).map(asNode), 'proof roots are our roots')

  const signable = crypto.treeSignable(core.key!, crypto.treeHash(ourRoots(core.length)), core.length, core.fork)
  t.is(hex(signable), hex(await core.signable()), 'signable matches core.signable()')
  // A v1 single-signer core stores its Ed25519 signature wrapped as a multisig.
  const stored = upgrade.signature!
  const inflated = hcMultisig.inflate(stored)
  t.is(inflated.proofs.length, 1, 'one signer proof in the stored multisig')
  const raw = inflated.proofs[0]!.signature
  t.ok(crypto.verify(signable, raw, kp.publicKey), 'Hypercore\'s signature verifies over our signable')
  const ours = crypto.sign(signable, kp.secretKey)
  t.is(hex(ours), hex(raw), 'and equals our signature (Ed25519 is deterministic)')
  t.is(hex(stored), '0100' + hex(ours) + '0000', 'stored form is 01 00 <signature> 00 00 (count, signer, sig, patch, no patch nodes)')
  t.is(hex(hcMultisig.assemble([{ signer: 0, signature: ours, patch: 0, nodes: null }])), hex(stored), 'assembling ours gives the stored bytes')
})
