/**
 * Tree recovery over replication: a core in repair mode heals from whoever
 * it is connected to, Hypercore 11 peers included, and a node lost while
 * serving is fetched and restored on the spot.
 */
import test from 'brittle'
import b4a from 'b4a'
import { Hypercore, freshDir, openCore, blocks, filledCore, zeroTreeNode, copyDir, readTreeFile, text, healthyAndDamaged } from './helpers/core'
import { makeHypercore, tmpDir, hcCrypto, repairMode, deleteHypercoreTreeNode, getHypercoreTreeNode, type Teardownable } from './helpers/oracle'
import { replicate } from './helpers/replication'

function once<T extends unknown[]> (emitter: { once (event: string, fn: (...args: T) => void): unknown }, event: string, ms = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out waiting for ' + event)), ms)
    emitter.once(event, (...args: T) => {
      clearTimeout(timer)
      resolve(args)
    })
  })
}

test('a core in repair mode heals from a Hypercore 11 peer on connect, then appends without a restart', async t => {
  const keyPair = hcCrypto.keyPair()
  const dir = freshDir(t)
  const first = new Hypercore(dir, { keyPair })
  await first.append(blocks(10))
  await first.close()
  zeroTreeNode(dir, 17)

  const core = await openCore(t, dir)
  t.ok(core.repairMode)
  const theirs = await makeHypercore(await tmpDir(t), null, { keyPair })
  t.teardown(() => theirs.close())
  await theirs.append(blocks(10))

  const events: string[] = []
  core.on('repairing', () => events.push('repairing'))
  const repaired = once(core, 'repaired')
  replicate(t, core, theirs)
  await repaired
  events.push('repaired')
  t.absent(core.repairMode)
  t.alike(events, ['repairing', 'repaired'])
  t.alike(await core.treeHash(), await theirs.treeHash())
  await core.append(b4a.from('more'))
  t.is(core.length, 11)
})

test('a Hypercore 11 core in repair mode heals from a nomadcore peer', async t => {
  const keyPair = hcCrypto.keyPair()
  const hcDir = await tmpDir(t)
  const first = await makeHypercore(hcDir, null, { keyPair })
  await first.append(blocks(10))
  await deleteHypercoreTreeNode(first, 17)
  await first.close()
  const broken = await makeHypercore(hcDir)
  t.teardown(() => broken.close())
  t.ok(repairMode(broken))

  const ours = await openCore(t, freshDir(t), { keyPair })
  await ours.append(blocks(10))
  const repaired = once(broken, 'repaired')
  replicate(t, broken, ours)
  await repaired
  t.ok(await getHypercoreTreeNode(broken, 17))
})

test('a bad proof from one peer does not stop a good one from another', async t => {
  const keyPair = hcCrypto.keyPair()
  const dir = freshDir(t)
  const first = new Hypercore(dir, { keyPair })
  await first.append(blocks(10))
  await first.close()
  zeroTreeNode(dir, 17)
  const core = await openCore(t, dir)

  // Same key, another history of the same length: its proofs verify on their own but not against us.
  const liar = await openCore(t, freshDir(t, 'liar'), { keyPair })
  await liar.append(blocks(4))
  await liar.truncate(2, 0)
  await liar.append(blocks(8, 700))
  const honest = await openCore(t, freshDir(t, 'honest'), { keyPair })
  await honest.append(blocks(10))

  let failures = 0
  core.on('repair-failed', () => failures++)
  const failed = once(core, 'repair-failed')
  replicate(t, core, liar)
  await failed
  t.ok(core.repairMode, 'still in repair mode after the bad proof')
  const repaired = once(core, 'repaired')
  replicate(t, core, honest)
  await repaired
  t.absent(core.repairMode)
  t.ok(failures >= 1)
  t.alike(await core.treeHash(), await honest.treeHash())
})

test('a core in repair mode still tells peers its length and answers what it cannot prove with noData', async t => {
  const { damaged } = await healthyAndDamaged(t, 10, dir => zeroTreeNode(dir, 17))
  const core = await openCore(t, damaged)
  t.ok(core.repairMode)
  const reader = await openCore(t, freshDir(t, 'reader'), { key: core.key! })
  replicate(t, core, reader)
  const updated = await reader.update({ wait: true })
  t.absent(updated, 'nothing verifiable to learn from a core missing its roots')
  t.is(reader.peers.length, 1)
  t.is(reader.peers[0]!.remoteLength, 10, 'the handshake completed and the length was told')
  await t.exception(reader.get(0, { timeout: 500 }), /REQUEST_TIMEOUT/)
})

test('after healing from a peer, the core serves a new reader without a restart', async t => {
  const { healthy, damaged } = await healthyAndDamaged(t, 40, dir => {
    zeroTreeNode(dir, 31)
    zeroTreeNode(dir, 71)
  })
  const source = await openCore(t, healthy)
  const core = await openCore(t, damaged)
  t.ok(core.repairMode)
  const repaired = once(core, 'repaired')
  replicate(t, core, source)
  await repaired
  t.absent(core.repairMode)

  const reader = await openCore(t, freshDir(t, 'reader'), { key: core.key! })
  replicate(t, reader, core)
  t.ok(await reader.update({ wait: true }))
  const dl = reader.download({ start: 0, end: 40 })
  await dl.done()
  for (let i = 0; i < 40; i++) t.is(text(await reader.get(i)), text(blocks(1, i)[0]))
})

test('a node lost on a serving peer is fetched from another peer and restored on the spot', async t => {
  const { healthy, damaged } = await healthyAndDamaged(t, 64, dir => zeroTreeNode(dir, 9))
  const source = await openCore(t, healthy)
  const relay = await openCore(t, damaged)
  t.absent(relay.repairMode, 'an inner node is not a root')
  replicate(t, relay, source)

  const reader = await openCore(t, freshDir(t, 'reader'), { key: relay.key! })
  replicate(t, reader, relay)
  t.ok(await reader.update({ wait: true }))
  // Block 6's proof needs node 9, which the relay lost.
  const repaired = once(relay, 'repaired')
  t.is(text(await reader.get(6, { timeout: 5000 })), text(blocks(1, 6)[0]))
  await repaired
  t.alike(readTreeFile(damaged), readTreeFile(healthy), 'the relay restored its tree file')
})
