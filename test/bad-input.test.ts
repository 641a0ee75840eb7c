/**
 * Hostile proof bytes: whatever arrives, the answer is false or a coded
 * error, and the tree file stays byte for byte as it was.
 */
import test from 'brittle'
import fc from 'fast-check'
import b4a from 'b4a'
import { freshDir, openCore, filledCore, zeroTreeNode, copyDir, readTreeFile, Hypercore } from './helpers/core'
import { isCoded } from '../lib/errors'
import { decodeFullyRemote, encodeFullyRemote } from '../lib/fully-remote-proof'
import type { Teardownable } from './helpers/oracle'

interface Setup { core: Hypercore, dir: string, healthy: string, good: Uint8Array, before: Uint8Array }

/** A core missing root 17, and a good proof that would repair it. */
async function damagedWithProof (t: Teardownable): Promise<Setup> {
  const healthy = freshDir(t, 'healthy')
  await filledCore(t, healthy, 10)
  const source = await openCore(t, healthy)
  const dir = freshDir(t, 'damaged')
  copyDir(healthy, dir)
  zeroTreeNode(dir, 17)
  const core = await openCore(t, dir)
  core.on('repair-failed', () => {})
  return { core, dir, healthy, good: await source.generateRemoteProofForTreeNode(17), before: readTreeFile(dir) }
}

/** Feeds `bytes` to recovery: must resolve false or reject with a coded error. */
async function feed (core: Hypercore, bytes: Uint8Array): Promise<'false' | 'true' | 'coded'> {
  try {
    return (await core.recoverFromRemoteProof(bytes)) ? 'true' : 'false'
  } catch (err) {
    if (isCoded(err)) return 'coded'
    throw err
  }
}

test('empty, short and random bytes are not proofs', async t => {
  const { core, dir, before } = await damagedWithProof(t)
  t.is(await feed(core, new Uint8Array(0)), 'false')
  t.is(await feed(core, new Uint8Array(32)), 'false')
  t.is(await feed(core, b4a.alloc(500, 0xff)), 'false')
  await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), async bytes => {
    return await feed(core, bytes) !== 'true'
  }), { numRuns: 300 })
  t.alike(readTreeFile(dir), before)
  t.ok(core.repairMode)
})

test('every truncation of a good proof is refused', async t => {
  const { core, dir, good, before } = await damagedWithProof(t)
  for (let len = 0; len < good.byteLength; len++) {
    const r = await feed(core, good.subarray(0, len))
    if (r === 'true') t.fail('truncated to ' + len + ' bytes was accepted')
  }
  t.alike(readTreeFile(dir), before)
  t.ok(core.repairMode)
})

test('a good proof with any single byte flipped is refused, or repairs exactly right', async t => {
  const { core, dir, good, before, healthy } = await damagedWithProof(t)
  let accepted = 0
  let current = core
  for (let i = 0; i < good.byteLength; i++) {
    const bad = b4a.from(good)
    bad[i]! ^= 0x5a
    if (await feed(current, bad) !== 'true') {
      t.alike(readTreeFile(dir), before, 'refused flip at byte ' + i + ' wrote nothing')
      continue
    }
    // Bytes nobody needs (the manifest, when ours is known) may flip harmlessly.
    accepted++
    t.alike(readTreeFile(dir), readTreeFile(healthy), 'accepted flip at byte ' + i + ' repaired correctly')
    await current.close()
    zeroTreeNode(dir, 17)
    current = await openCore(t, dir)
  }
  t.comment(accepted + ' of ' + good.byteLength + ' flips were harmless')
})

test('random mutations of a good proof: false or coded, never a crash, never wrong nodes', async t => {
  const { core, dir, good, before, healthy } = await damagedWithProof(t)
  let current = core
  await fc.assert(fc.asyncProperty(
    fc.array(fc.tuple(fc.nat({ max: good.byteLength - 1 }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 6 }),
    async flips => {
      const bad = b4a.from(good)
      for (const [at, x] of flips) bad[at]! ^= x
      if (await feed(current, bad) !== 'true') return b4a.equals(readTreeFile(dir), before)
      const right = b4a.equals(readTreeFile(dir), readTreeFile(healthy))
      await current.close()
      zeroTreeNode(dir, 17)
      current = await openCore(t, dir)
      return right
    }
  ), { numRuns: 300 })
  t.pass('300 mutated proofs')
})

test('a forged signature is refused and nothing is written', async t => {
  const { core, dir, good, before } = await damagedWithProof(t)
  const { discoveryKey, proof } = decodeFullyRemote(good)
  const sig = b4a.from(proof.upgrade!.signature!)
  sig[20]! ^= 1
  proof.upgrade!.signature = sig
  const forged = encodeFullyRemote(discoveryKey, { ...proof, block: null })
  let failed: unknown = null
  core.on('repair-failed', err => { failed = err })
  t.is(await feed(core, forged), 'false')
  t.is((failed as { code?: string } | null)?.code, 'INVALID_SIGNATURE')
  t.alike(readTreeFile(dir), before)
})

test('nodes swapped for other valid-looking nodes are refused', async t => {
  const { core, dir, good, before } = await damagedWithProof(t)
  const { discoveryKey, proof } = decodeFullyRemote(good)
  const nodes = proof.upgrade!.nodes
  t.ok(nodes.length > 0)
  nodes[0] = { ...nodes[0]!, hash: b4a.alloc(32, 9) }
  t.is(await feed(core, encodeFullyRemote(discoveryKey, { ...proof, block: null })), 'false')
  nodes[0] = { ...nodes[0]!, index: nodes[0]!.index + 2 }
  t.is(await feed(core, encodeFullyRemote(discoveryKey, { ...proof, block: null })), 'false')
  t.alike(readTreeFile(dir), before)
})
