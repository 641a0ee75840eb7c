/**
 * Byte-for-byte agreement with hypercore@11.35.1 for the same key pair and
 * the same blocks: keys, tree hashes, signatures and every proof shape.
 */
import test from 'brittle'
import fc from 'fast-check'
import b4a from 'b4a'
import c from 'compact-encoding'
import { freshDir, openCore, blocks, Hypercore } from './helpers/core'
import { makeHypercore, tmpDir, hcCrypto, type Hypercore as Hypercore11, type Teardownable, type ProofRequest } from './helpers/oracle'
import { wire } from '../lib/messages'
import type { Proof } from '../lib/proof'

// eslint-disable-next-line @typescript-eslint/no-require-imports
const hcMessages = require('hypercore/lib/messages.js') as { wire: { data: c.Encoder<unknown> } }

interface Twins { ours: Hypercore, theirs: Hypercore11 }

async function twins (t: Teardownable, n: number): Promise<Twins> {
  const keyPair = hcCrypto.keyPair()
  const ours = await openCore(t, freshDir(t), { keyPair })
  const theirs = await makeHypercore(await tmpDir(t), null, { keyPair })
  t.teardown(() => theirs.close())
  if (n > 0) {
    await ours.append(blocks(n))
    await theirs.append(blocks(n))
  }
  return { ours, theirs }
}

/** Encodes a proof as the wire data message Hypercore would send. */
function ourBytes (p: Proof): Uint8Array {
  return c.encode(wire.data, { request: 1, ...p, block: p.block && { ...p.block, value: b4a.alloc(1) } })
}

function theirBytes (p: Awaited<ReturnType<Hypercore11['proof']>>): Uint8Array {
  return c.encode(hcMessages.wire.data, { request: 1, ...p, block: p.block && { ...p.block, value: b4a.alloc(1) } })
}

test('same key pair gives the same key and discovery key as Hypercore 11', async t => {
  const { ours, theirs } = await twins(t, 0)
  t.alike(ours.key, theirs.key)
  t.alike(ours.discoveryKey, theirs.discoveryKey)
})

test('tree hashes agree with Hypercore 11 at every length, through truncate and new appends', async t => {
  const { ours, theirs } = await twins(t, 0)
  for (const b of blocks(40)) {
    await ours.append(b)
    await theirs.append(b)
    t.alike(await ours.treeHash(), await theirs.treeHash())
  }
  await ours.truncate(17)
  await theirs.truncate(17)
  t.is(ours.fork, theirs.fork)
  t.alike(await ours.treeHash(), await theirs.treeHash())
  await ours.append(blocks(9, 500))
  await theirs.append(blocks(9, 500))
  t.is(ours.byteLength, theirs.byteLength)
  t.alike(await ours.treeHash(), await theirs.treeHash())
  for (const len of [1, 5, 16, 17, 20]) t.alike(await ours.treeHash(len), await theirs.treeHash(len), 'length ' + len)
})

test('signatures agree with Hypercore 11 (carried in upgrade proofs), also after a truncate', async t => {
  const { ours, theirs } = await twins(t, 13)
  const upgrade = { start: 0, length: 13 }
  t.alike((await ours.proof({ upgrade })).upgrade?.signature, (await theirs.proof({ upgrade })).upgrade?.signature)
  await ours.truncate(6)
  await theirs.truncate(6)
  await ours.append(blocks(2, 77))
  await theirs.append(blocks(2, 77))
  const up2 = { start: 0, length: 8 }
  const sig = (await ours.proof({ upgrade: up2 })).upgrade?.signature
  t.is(sig?.byteLength, 68)
  t.alike(sig, (await theirs.proof({ upgrade: up2 })).upgrade?.signature)
})

test('every proof shape encodes byte for byte as Hypercore 11 encodes it', async t => {
  const { ours, theirs } = await twins(t, 37)
  const requests: ProofRequest[] = [
    { block: { index: 0, nodes: 0 } },
    { block: { index: 36, nodes: 0 } },
    { block: { index: 10, nodes: 2 } },
    { block: { index: 5, nodes: 0 }, upgrade: { start: 0, length: 37 } },
    { block: { index: 20, nodes: 0 }, upgrade: { start: 10, length: 20 } },
    { block: { index: 3, nodes: 0 }, upgrade: { start: 10, length: 27 } },
    { hash: { index: 9, nodes: 0 }, upgrade: { start: 0, length: 20 } },
    { hash: { index: 11, nodes: 0 } },
    { upgrade: { start: 0, length: 37 } },
    { upgrade: { start: 16, length: 5 } },
    { upgrade: { start: 33, length: 4 } },
    { seek: { bytes: 100, padding: 0 } },
    { seek: { bytes: 0, padding: 0 } },
    { seek: { bytes: 333, padding: 0 } }
  ]
  // Hypercore 11 itself crashes generating seek + upgrade proofs (its read
  // batch is flushed before the seek reads), so that shape is not compared.
  for (const req of requests) {
    t.alike(ourBytes(await ours.proof(req)), theirBytes(await theirs.proof(req)), JSON.stringify(req))
  }
})

test('random block and upgrade proofs agree with Hypercore 11 (property)', async t => {
  const { ours, theirs } = await twins(t, 100)
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 0, max: 99 }), fc.integer({ min: 0, max: 99 }), fc.integer({ min: 1, max: 100 }), fc.boolean(),
    async (index, start, length, withUpgrade) => {
      const upgrade = withUpgrade ? { start: Math.min(start, 99), length: Math.max(1, Math.min(length, 100 - Math.min(start, 99))) } : null
      const req: ProofRequest = { block: { index, nodes: 0 }, upgrade }
      const a = await ours.proof(req).then(ourBytes, (err: { code: string }) => err.code)
      const b = await theirs.proof(req).then(theirBytes, (err: { code: string }) => err.code)
      // Both refuse the same impossible requests (a block past the upgrade), with the same code.
      return typeof a === 'string' ? a === b : typeof b !== 'string' && b4a.equals(a, b)
    }
  ), { numRuns: 200 })
  t.pass('200 random requests agree')
})

test('proofs from Hypercore 11 verify with nomadcore, and ours verify with Hypercore 11', async t => {
  const { ours, theirs } = await twins(t, 25)
  for (const index of [0, 7, 24]) {
    const req = { block: { index, nodes: 0 }, upgrade: { start: 0, length: 25 } }
    const fromThem = await theirs.proof(req)
    fromThem.block!.value = (await theirs.get(index))!
    const checked = await ours.verifyFullyRemote(fromThem as unknown as Proof)
    t.is(checked.length, 25)
    t.alike(checked.treeHash, await theirs.treeHash())

    const fromUs = await ours.proof(req)
    fromUs.block!.value = (await ours.get(index)) as Uint8Array
    const batch = await theirs.verifyFullyRemote(fromUs as unknown as Awaited<ReturnType<Hypercore11['proof']>>)
    t.is(batch.length, 25)
  }
})

test('a proof with a forged signature is rejected with INVALID_SIGNATURE', async t => {
  const { ours } = await twins(t, 8)
  const proof = await ours.proof({ upgrade: { start: 0, length: 8 } })
  const sig = b4a.from(proof.upgrade!.signature!)
  sig[10]! ^= 1
  proof.upgrade!.signature = sig
  await t.exception(ours.verifyFullyRemote(proof), /INVALID_SIGNATURE/)
})

test('a proof whose parts are not lists of nodes is refused with INVALID_PROOF, and the caller\'s proof is left as it was', async t => {
  const { ours } = await twins(t, 8)
  const proof = await ours.proof({ block: { index: 3, nodes: 0 }, upgrade: { start: 0, length: 8 } })
  proof.block!.value = (await ours.get(3)) as Uint8Array
  const before = JSON.stringify(proof)
  t.is((await ours.verifyFullyRemote(proof)).length, 8, 'the proof as proof() made it verifies')
  t.is(JSON.stringify(proof), before, 'and is not changed by the check')
  const broken: Array<[string, unknown]> = [
    ['a null node', { ...proof, block: { ...proof.block!, nodes: [null] } }],
    ['nodes that are a string', { ...proof, block: { ...proof.block!, nodes: 'nodes' } }],
    ['upgrade nodes that are a number', { ...proof, upgrade: { ...proof.upgrade!, nodes: 5 } }],
    ['no upgrade at all', { ...proof, upgrade: undefined }]
  ]
  for (const [what, bad] of broken) await t.exception(ours.verifyFullyRemote(bad as Proof), /INVALID_PROOF/, what)
})

test('fully remote tree node proofs are byte-identical to Hypercore 11 for roots and subtree roots', async t => {
  const { ours, theirs } = await twins(t, 21)
  // Roots of 21 blocks: 15, 35, 40. Every left-edge subtree root is a root of a shorter tree.
  for (const index of [15, 35, 40, 0, 1, 3, 7, 32, 33, 36]) {
    t.alike(await ours.generateRemoteProofForTreeNode(index), await theirs.generateRemoteProofForTreeNode(index), 'node ' + index)
  }
})
