import test from 'brittle'
import fc from 'fast-check'
import c from 'compact-encoding'
import type { State } from 'compact-encoding'
import b4a from 'b4a'
import { isDeepStrictEqual } from 'node:util'
import * as m from '../lib/messages'
import type { Codec, Manifest, ManifestSigner, MultiSignature, MultiSignatureV0, DataMessage } from '../lib/messages'
import type { TreeNode } from '../lib/tree-node'
import { isCoded } from '../lib/errors'

// ---------------------------------------------------------------------------
// The oracle: Hypercore 11's own codecs.

interface OracleCodec {
  preencode (state: State, value: unknown): void
  encode (state: State, value: unknown): void
  decode (state: State): unknown
}

type WireName =
  | 'handshake' | 'request' | 'cancel' | 'data' | 'noData' | 'want' | 'unwant'
  | 'range' | 'bitfield' | 'sync' | 'reorgHint' | 'extension'

const hc = require('hypercore/lib/messages.js') as {
  manifest: OracleCodec
  wire: Record<WireName, OracleCodec>
  multiSignature: OracleCodec
  multiSignaturev0: OracleCodec
}

function hcEncode (codec: OracleCodec, value: unknown): Uint8Array {
  const state: State = { start: 0, end: 0, buffer: null }
  codec.preencode(state, value)
  state.buffer = b4a.allocUnsafe(state.end)
  codec.encode(state, value)
  return state.buffer
}

function hcDecode (codec: OracleCodec, bytes: Uint8Array): unknown {
  return codec.decode({ start: 0, end: bytes.byteLength, buffer: bytes })
}

// Hypercore does not export its node codec; this is the same layout.
const hcNode: OracleCodec = {
  preencode (state, v) {
    const n = v as TreeNode
    c.uint.preencode(state, n.index)
    c.uint.preencode(state, n.size)
    c.fixed32.preencode(state, n.hash)
  },
  encode (state, v) {
    const n = v as TreeNode
    c.uint.encode(state, n.index)
    c.uint.encode(state, n.size)
    c.fixed32.encode(state, n.hash)
  },
  decode (state) {
    return { index: c.uint.decode(state), size: c.uint.decode(state), hash: c.fixed32.decode(state) }
  }
}
const hcNodeArray: OracleCodec = c.array(hcNode)

// ---------------------------------------------------------------------------
// Generators (buffers are Node Buffers, as both implementations decode to).

const buf = (min: number, max: number): fc.Arbitrary<Uint8Array> =>
  fc.uint8Array({ minLength: min, maxLength: max }).map(a => b4a.from(a))
const fixed = (n: number): fc.Arbitrary<Uint8Array> => buf(n, n)

// Uints of every varint width, weighted towards the boundaries.
const uint: fc.Arbitrary<number> = fc.oneof(
  fc.integer({ min: 0, max: 0xfc }),
  fc.constantFrom(0xfc, 0xfd, 0xffff, 0x10000, 0xffffffff, 0x100000000, Number.MAX_SAFE_INTEGER),
  fc.integer({ min: 0, max: 0xffff }),
  fc.integer({ min: 0, max: 0xffffffff }),
  fc.maxSafeNat()
)

const treeNode: fc.Arbitrary<TreeNode> = fc.record({ index: uint, size: uint, hash: fixed(32) })
const nodes = fc.array(treeNode, { maxLength: 6 })

const signerArb: fc.Arbitrary<ManifestSigner> = fc.record({
  signature: fc.constant('ed25519' as const),
  namespace: fixed(32),
  publicKey: fixed(32)
})

const manifestArb: fc.Arbitrary<Manifest> = fc.record({
  version: fc.constantFrom(0, 1, 2),
  hash: fc.constant('blake2b' as const),
  allowPatch: fc.boolean(),
  quorum: fc.oneof(fc.integer({ min: 0, max: 4 }), uint),
  signers: fc.array(signerArb, { maxLength: 4 }),
  prologue: fc.option(fc.record({ hash: fixed(32), length: uint }), { nil: null }),
  linked: fc.option(fc.array(fixed(32), { maxLength: 3 }), { nil: null }),
  userData: fc.option(buf(0, 40), { nil: null })
})

const optional = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | null> => fc.option(arb, { nil: null })

const dataArb: fc.Arbitrary<DataMessage> = fc.record({
  request: uint,
  fork: uint,
  block: optional(fc.record({ index: uint, value: buf(0, 200), nodes })),
  hash: optional(fc.record({ index: uint, nodes })),
  seek: optional(fc.record({ bytes: uint, nodes })),
  upgrade: optional(fc.record({
    start: uint,
    length: uint,
    nodes,
    additionalNodes: nodes,
    signature: optional(buf(0, 100))
  })),
  manifest: optional(manifestArb)
})

const multiSignatureArb: fc.Arbitrary<MultiSignature> = fc.record({
  proofs: fc.array(fc.record({ signer: uint, signature: fixed(64), patch: uint }), { maxLength: 4 }),
  patch: nodes
})

const multiSignatureV0Arb: fc.Arbitrary<MultiSignatureV0> = fc.record({
  proofs: fc.array(fc.record({
    signer: uint,
    signature: fixed(64),
    patch: optional(fc.record({ start: uint, length: uint, nodes: fc.array(uint, { maxLength: 5 }) }))
  }), { maxLength: 4 }),
  patch: nodes
})

const wantArb = fc.record({ start: uint, length: uint, any: fc.boolean() })

interface Case {
  name: string
  ours: Codec<never>
  theirs: OracleCodec
  arb: fc.Arbitrary<unknown>
  /** Every strict prefix of an encoding is malformed (no optional tail). */
  prefixesFail: boolean
}

function kase<T> (name: string, ours: Codec<T>, theirs: OracleCodec, arb: fc.Arbitrary<T>, prefixesFail = true): Case {
  return { name, ours: ours as Codec<never>, theirs, arb, prefixesFail }
}

const cases: Case[] = [
  kase('manifest', m.manifest, hc.manifest, manifestArb),
  kase('node array', m.nodeArray, hcNodeArray, nodes),
  kase('wire.handshake', m.wire.handshake, hc.wire.handshake, fc.record({ seeks: fc.boolean(), capability: fixed(32) })),
  kase('wire.request', m.wire.request, hc.wire.request, fc.record({
    id: uint,
    fork: uint,
    block: optional(fc.record({ index: uint, nodes: uint })),
    hash: optional(fc.record({ index: uint, nodes: uint })),
    seek: optional(fc.record({ bytes: uint, padding: uint })),
    upgrade: optional(fc.record({ start: uint, length: uint })),
    manifest: fc.boolean(),
    priority: fc.oneof(fc.constant(0), uint)
  })),
  kase('wire.cancel', m.wire.cancel, hc.wire.cancel, fc.record({ request: uint })),
  kase('wire.data', m.wire.data, hc.wire.data, dataArb),
  kase('wire.noData', m.wire.noData, hc.wire.noData, fc.record({ request: uint, reason: fc.oneof(fc.constant(0), uint) }), false),
  kase('wire.want', m.wire.want, hc.wire.want, wantArb, false),
  kase('wire.unwant', m.wire.unwant, hc.wire.unwant, wantArb, false),
  kase('wire.range', m.wire.range, hc.wire.range, fc.record({ drop: fc.boolean(), start: uint, length: fc.oneof(fc.constant(1), uint) })),
  kase('wire.bitfield', m.wire.bitfield, hc.wire.bitfield, fc.record({ start: uint, bitfield: fc.uint32Array({ maxLength: 16 }) })),
  kase('wire.sync', m.wire.sync, hc.wire.sync, fc.record({
    fork: uint,
    length: uint,
    remoteLength: uint,
    canUpgrade: fc.boolean(),
    uploading: fc.boolean(),
    downloading: fc.boolean(),
    hasManifest: fc.boolean(),
    allowPush: fc.boolean()
  })),
  kase('wire.reorgHint', m.wire.reorgHint, hc.wire.reorgHint, fc.record({ from: uint, to: uint, ancestors: uint })),
  kase('wire.extension', m.wire.extension, hc.wire.extension,
    fc.record({ name: fc.string({ unit: 'binary', maxLength: 20 }), message: buf(0, 50) }), false),
  kase('multiSignature', m.multiSignature, hc.multiSignature, multiSignatureArb),
  kase('multiSignaturev0', m.multiSignaturev0, hc.multiSignaturev0, multiSignatureV0Arb)
]

const RUNS = 300

function hex (b: Uint8Array): string {
  return b4a.toString(b, 'hex')
}

/** Decodes with ours; returns the value, or undefined if it threw INVALID_MESSAGE; rethrows anything else. */
function tryDecode (codec: Codec<never>, bytes: Uint8Array): { value: unknown } | undefined {
  try {
    return { value: m.decode<unknown>(codec, bytes) }
  } catch (err) {
    if (isCoded(err, 'INVALID_MESSAGE')) return undefined
    throw new Error('decode threw something other than INVALID_MESSAGE: ' + String(err))
  }
}

function throwsInvalid (codec: Codec<never>, bytes: Uint8Array): boolean {
  return tryDecode(codec, bytes) === undefined
}

// ---------------------------------------------------------------------------
// Agreement with Hypercore

for (const k of cases) {
  test(`${k.name} encodes byte-identically to Hypercore and decodes Hypercore's bytes to equal objects`, async t => {
    await t.execution(() => fc.assert(fc.property(k.arb, value => {
      const ours = m.encode<unknown>(k.ours, value)
      const theirs = hcEncode(k.theirs, value)
      if (!b4a.equals(ours, theirs)) throw new Error(`bytes differ: ${hex(ours)} vs ${hex(theirs)}`)

      const decodedOurs = m.decode<unknown>(k.ours, theirs)
      const decodedTheirs = hcDecode(k.theirs, theirs)
      if (!isDeepStrictEqual(decodedOurs, decodedTheirs)) throw new Error('decoded objects differ')

      // Re-encoding what we decoded gives the same bytes back.
      if (!b4a.equals(m.encode<unknown>(k.ours, decodedOurs), theirs)) throw new Error('re-encoding differs')
      // And decodeExact accepts a whole message.
      if (!isDeepStrictEqual(m.decodeExact<unknown>(k.ours, theirs), decodedTheirs)) throw new Error('decodeExact differs')
    }), { numRuns: RUNS }))
  })
}

test('node codec round-trips a tree node and matches the node layout Hypercore uses in proofs', async t => {
  await t.execution(() => fc.assert(fc.property(treeNode, n => {
    const ours = m.encode(m.node, n)
    if (!b4a.equals(ours, hcEncode(hcNode, n))) throw new Error('bytes differ')
    if (!isDeepStrictEqual(m.decode(m.node, ours), { ...n })) throw new Error('round trip differs')
  }), { numRuns: RUNS }))
})

test('manifests decoded by both implementations agree for every version and v0 type', t => {
  const ns = b4a.alloc(32, 1)
  const pk = b4a.alloc(32, 2)
  const h = b4a.alloc(32, 3)
  const s: ManifestSigner = { signature: 'ed25519', namespace: ns, publicKey: pk }
  const base = { hash: 'blake2b' as const, prologue: null, linked: null, userData: null }
  const all: Manifest[] = [
    { ...base, version: 0, allowPatch: false, quorum: 0, signers: [], prologue: { hash: h, length: 0 } },
    { ...base, version: 0, allowPatch: false, quorum: 1, signers: [s] },
    { ...base, version: 0, allowPatch: true, quorum: 1, signers: [s] },
    { ...base, version: 0, allowPatch: false, quorum: 2, signers: [s, s] },
    { ...base, version: 1, allowPatch: false, quorum: 1, signers: [s] },
    { ...base, version: 1, allowPatch: true, quorum: 1, signers: [s], prologue: { hash: h, length: 7 } },
    { ...base, version: 2, allowPatch: false, quorum: 1, signers: [s], linked: [h, pk], userData: b4a.from('hello') },
    { ...base, version: 2, allowPatch: false, quorum: 0, signers: [], linked: [], userData: b4a.alloc(0) }
  ]
  for (const man of all) {
    const bytes = m.encode(m.manifest, man)
    t.alike(bytes, hcEncode(hc.manifest, man), `v${man.version} encodes like Hypercore`)
    t.alike(m.decode(m.manifest, bytes), hcDecode(hc.manifest, bytes), `v${man.version} decodes like Hypercore`)
    t.alike(m.decode(m.manifest, bytes), man, `v${man.version} round-trips`)
  }
})

test('a 64 KiB block travels in a data message unchanged', t => {
  const value = b4a.alloc(65536, 7)
  const msg: DataMessage = {
    request: 1, fork: 0, block: { index: 3, value, nodes: [] }, hash: null, seek: null, upgrade: null, manifest: null
  }
  const bytes = m.encode(m.wire.data, msg)
  t.alike(bytes, hcEncode(hc.wire.data, msg))
  t.alike(m.decode(m.wire.data, bytes).block!.value, value)
})

test('the handshake capability is copied out of the frame', t => {
  const cap = b4a.alloc(32, 9)
  const frame = m.encode(m.wire.handshake, { seeks: true, capability: cap })
  const decoded = m.decode(m.wire.handshake, frame)
  frame.fill(0)
  t.alike(decoded.capability, cap)
  t.is(decoded.seeks, true)
})

test('encoding values that cannot be encoded throws BAD_ARGUMENT', async t => {
  const man: Manifest = {
    version: 3, hash: 'blake2b', allowPatch: false, quorum: 0, signers: [], prologue: null, linked: null, userData: null
  }
  await t.exception(() => m.encode(m.manifest, man), /BAD_ARGUMENT/, 'unknown version')
  await t.exception(() => m.encode(m.manifest, { ...man, version: 1, hash: 'sha256' as 'blake2b' }), /BAD_ARGUMENT/, 'unknown hash')
  await t.exception(() => m.encode(m.wire.cancel, { request: -1 }), /BAD_ARGUMENT/, 'negative integer')
  await t.exception(() => m.encode(m.wire.cancel, { request: 2 ** 53 }), /BAD_ARGUMENT/, 'unsafe integer')
  await t.exception(() => m.encode(m.wire.handshake, { seeks: false, capability: b4a.alloc(31) }), /BAD_ARGUMENT/, 'short capability')
  const tooMany = new Array<TreeNode>(1025).fill({ index: 0, size: 0, hash: b4a.alloc(32) })
  await t.exception(() => m.encode(m.nodeArray, tooMany), /BAD_ARGUMENT/, 'more nodes than a peer accepts')
})

// ---------------------------------------------------------------------------
// Hostile input

test('every codec rejects empty input with INVALID_MESSAGE', t => {
  for (const k of cases) t.ok(throwsInvalid(k.ours, b4a.alloc(0)), k.name)
  t.ok(throwsInvalid(m.node as Codec<never>, b4a.alloc(0)), 'node')
})

test('decode of something that is not bytes throws INVALID_MESSAGE', t => {
  t.ok(throwsInvalid(m.manifest as Codec<never>, null as unknown as Uint8Array))
  t.ok(throwsInvalid(m.wire.data as Codec<never>, 'abc' as unknown as Uint8Array))
})

for (const k of cases) {
  test(`${k.name}: truncated encodings throw INVALID_MESSAGE and nothing else`, async t => {
    await t.execution(() => fc.assert(fc.property(k.arb, value => {
      const bytes = m.encode<unknown>(k.ours, value)
      for (let i = 0; i < bytes.byteLength; i++) {
        const failed = throwsInvalid(k.ours, bytes.subarray(0, i))
        if (k.prefixesFail && !failed) throw new Error(`prefix of ${i}/${bytes.byteLength} bytes decoded`)
      }
    }), { numRuns: 100 }))
  })

  test(`${k.name}: random bytes throw INVALID_MESSAGE or decode to what Hypercore decodes`, async t => {
    const bytes = fc.oneof(
      buf(0, 64),
      buf(0, 400),
      // Mutations of valid encodings reach deeper into the decoder.
      fc.tuple(k.arb, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([v, at, byte]) => {
        const b = b4a.from(m.encode<unknown>(k.ours, v))
        if (b.byteLength > 0) b[at % b.byteLength] = byte
        return b
      })
    )
    await t.execution(() => fc.assert(fc.property(bytes, b => {
      const ours = tryDecode(k.ours, b)
      if (ours === undefined) return
      const theirs = hcDecode(k.theirs, b)
      if (!isDeepStrictEqual(ours.value, theirs)) throw new Error('decoded differently from Hypercore: ' + hex(b))
    }), { numRuns: 500 }))
  })
}

const U64_UNSAFE = b4a.from([0xff, 0, 0, 0, 0, 0, 0, 0x20, 0]) // 2^53
const U64_MAX = b4a.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
const U64_MAX_SAFE = b4a.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0])

function cat (...parts: Array<Uint8Array | number[]>): Uint8Array {
  return b4a.concat(parts.map(p => (p instanceof Uint8Array ? p : b4a.from(p))))
}

test('integers beyond Number.MAX_SAFE_INTEGER are rejected', t => {
  t.is(m.decode(m.wire.cancel, U64_MAX_SAFE).request, Number.MAX_SAFE_INTEGER, 'largest safe integer decodes')
  t.ok(throwsInvalid(m.wire.cancel as Codec<never>, U64_UNSAFE), 'cancel request 2^53')
  t.ok(throwsInvalid(m.wire.cancel as Codec<never>, U64_MAX), 'cancel request 2^64-1')
  t.ok(throwsInvalid(m.wire.sync as Codec<never>, cat([0], [0], U64_UNSAFE, [0])), 'sync length')
  t.ok(throwsInvalid(m.wire.want as Codec<never>, cat(U64_UNSAFE, [1])), 'want start')
  t.ok(throwsInvalid(m.wire.range as Codec<never>, cat([2], U64_MAX)), 'range start')
  t.ok(throwsInvalid(m.node as Codec<never>, cat(U64_UNSAFE, [0], b4a.alloc(32))), 'node index')
  t.ok(throwsInvalid(m.node as Codec<never>, cat([0], U64_UNSAFE, b4a.alloc(32))), 'node size')
  t.ok(throwsInvalid(m.wire.request as Codec<never>, cat([8], [1], [0], [0], U64_UNSAFE)), 'request upgrade length')
  t.ok(throwsInvalid(m.wire.data as Codec<never>, cat([1], [1], [0], U64_UNSAFE, [0], [0])), 'data block index')
})

test('huge declared lengths are rejected before anything is allocated', t => {
  const huge = b4a.from([0xfe, 0xff, 0xff, 0xff, 0x7f]) // ~2^31
  t.ok(throwsInvalid(m.nodeArray as Codec<never>, huge), 'node array count')
  t.ok(throwsInvalid(m.nodeArray as Codec<never>, U64_MAX_SAFE), 'node array count 2^53-1')
  t.ok(throwsInvalid(m.wire.data as Codec<never>, cat([1], [1], [0], [0], U64_MAX_SAFE)), 'block value length')
  t.ok(throwsInvalid(m.wire.bitfield as Codec<never>, cat([0], huge)), 'bitfield words')
  t.ok(throwsInvalid(m.wire.extension as Codec<never>, cat(huge, [1, 2, 3])), 'extension name length')
  t.ok(throwsInvalid(m.multiSignature as Codec<never>, huge), 'multisig proof count')
  t.ok(throwsInvalid(m.manifest as Codec<never>, cat([1], [0], [0], [1], huge)), 'manifest signer count')
})

test('node arrays over 1024 nodes are rejected even when the bytes are there', t => {
  const one = m.encode(m.node, { index: 1, size: 2, hash: b4a.alloc(32) })
  const body = (n: number): Uint8Array => cat(m.encode(m.wire.cancel, { request: n }), ...new Array<Uint8Array>(n).fill(one))
  t.is(m.decode(m.nodeArray, body(1024)).length, 1024, '1024 nodes decode')
  t.ok(throwsInvalid(m.nodeArray as Codec<never>, body(1025)), '1025 nodes do not')
})

test('upgrade signatures over 64 KiB are rejected', t => {
  const upgrade = (sigLen: number): Uint8Array => m.encode(m.wire.data, {
    request: 0,
    fork: 0,
    block: null,
    hash: null,
    seek: null,
    upgrade: { start: 0, length: 1, nodes: [], additionalNodes: [], signature: b4a.alloc(sigLen, 1) },
    manifest: null
  })
  t.is(m.decode(m.wire.data, upgrade(65536)).upgrade!.signature!.byteLength, 65536, '64 KiB accepted')
  t.ok(throwsInvalid(m.wire.data as Codec<never>, upgrade(65537)), '64 KiB + 1 rejected')
})

test('unknown manifest versions, types, hash and signature ids are rejected', t => {
  const key = b4a.alloc(32, 1)
  t.ok(throwsInvalid(m.manifest as Codec<never>, cat([3], [0], [0], [0], [0])), 'version 3')
  t.ok(throwsInvalid(m.manifest as Codec<never>, cat([0], [0], [3], key)), 'v0 type 3')
  t.ok(throwsInvalid(m.manifest as Codec<never>, cat([1], [0], [1], [0], [0])), 'hash id 1')
  t.ok(throwsInvalid(m.manifest as Codec<never>, cat([0], [1], [0], key)), 'v0 hash id 1')
  t.ok(throwsInvalid(m.manifest as Codec<never>, cat([1], [0], [0], [1], [1], [1], key, key)), 'signature id 1')
  t.ok(!throwsInvalid(m.manifest as Codec<never>, cat([1], [0], [0], [1], [1], [0], key, key)), 'signature id 0 decodes')
})

test('decode tolerates trailing bytes, decodeExact does not', async t => {
  const bytes = cat(m.encode(m.wire.sync, {
    fork: 1, length: 2, remoteLength: 3, canUpgrade: true, uploading: false, downloading: true, hasManifest: false, allowPush: false
  }), [0xaa])
  t.is(m.decode(m.wire.sync, bytes).length, 2)
  await t.exception(() => m.decodeExact(m.wire.sync, bytes), /INVALID_MESSAGE/)
})

test('optional trailing flags of noData and want may be absent, as older peers send them', t => {
  t.alike(m.decode(m.wire.noData, b4a.from([5])), { request: 5, reason: 0 })
  t.alike(m.decode(m.wire.want, b4a.from([1, 2])), { start: 1, length: 2, any: false })
  t.alike(m.decode(m.wire.unwant, b4a.from([1, 2, 1])), { start: 1, length: 2, any: true })
})
