/**
 * Races between a reorg and the data that was under way when it happened: a
 * block verified against the old fork is never stored once the core moved,
 * whether it was still being checked, queued for disk, or in flight from a
 * slow peer; a read that overlaps the move reads again.
 */
import test from 'brittle'
import b4a from 'b4a'
import { blocks } from './helpers/core'
import { ramCore, replicate, rejection, until, FakePeer, honestAnswer, sleep } from './helpers/replication'
import { forkBlocks } from './helpers/forks'
import { internals, type Hypercore } from '../lib/hypercore'
import type { Core, VerifiedFork } from '../lib/core'
import type { DataMessage } from '../lib/messages'

/** A writer with 20 blocks and a reader that knows length 20 but holds no block. */
async function setup (t: any): Promise<{ w: Hypercore, r: Hypercore, core: Core }> {
  const w = await ramCore(t)
  await w.append(blocks(20))
  const r = await ramCore(t, w.key)
  const link = replicate(t, w, r)
  await r.update({ wait: true })
  link.destroy()
  return { w, r, core: internals(r).core! }
}

/** Block `index` of `source` as a peer would send it to a reader that holds only the roots. */
async function blockMessage (source: Hypercore, index: number, nodes: number): Promise<DataMessage> {
  const proof = await source.proof({ block: { index, nodes } })
  const value = await source.get(index) as Uint8Array
  return { request: 1, fork: proof.fork, block: { index, value, nodes: proof.block!.nodes }, hash: null, seek: null, upgrade: null, manifest: null }
}

/** The writer's fork, verified by `core` and searched down to the common ancestor, as the replicator would. */
async function verifiedFork (core: Core, writer: Hypercore): Promise<VerifiedFork> {
  const proof = await writer.proof({ upgrade: { start: 0, length: writer.length } })
  const fork = await core.verifyFork({ request: 1, fork: proof.fork, block: null, hash: null, seek: null, upgrade: proof.upgrade, manifest: null })
  for (let probe = fork.point.probe; probe !== null; probe = fork.point.probe) {
    const answer = await writer.proof({ hash: { index: 2 * probe.start, nodes: probe.nodes } })
    await core.continueFork(fork, { request: 1, fork: answer.fork, block: null, hash: answer.hash, seek: null, upgrade: null, manifest: null })
  }
  return fork
}

test('a block verified against the old fork is not stored after the core moved to the new one', async t => {
  const { w, r, core } = await setup(t)
  const checked = await core.verifyData(await blockMessage(w, 15, 4))
  await w.truncate(10)
  await w.append(forkBlocks(1, 10, 5))
  t.ok(await core.reorg(await verifiedFork(core, w)))
  t.is(core.fork, 1)
  t.is(await core.applyData(checked), false, 'applying it reports nothing stored')
  t.is(core.has(15), false)
  t.is(await r.get(15, { wait: false }), null, 'no block 15 to read: the old one is not the new fork\'s')
})

for (const order of ['write first', 'reorg first'] as const) {
  test('a block of the old fork queued for disk around the reorg is not left behind (' + order + ')', async t => {
    const { w, core } = await setup(t)
    const checked = await core.verifyData(await blockMessage(w, 15, 4))
    await w.truncate(10)
    await w.append(forkBlocks(1, 10, 5))
    const fork = await verifiedFork(core, w)
    const [stored, moved] = order === 'write first'
      ? await Promise.all([core.applyData(checked), core.reorg(fork)])
      : await Promise.all([core.reorg(fork), core.applyData(checked)]).then(([m, s]) => [s, m])
    t.ok(moved)
    if (order === 'reorg first') t.is(stored, false, 'queued against the old tree: dropped')
    t.is(core.has(15), false, 'block 15 of fork 0 is not there')
    t.is(await core.getBlock(15), null)
  })
}

test('blocks below the common ancestor stay across the reorg', async t => {
  const { w, core } = await setup(t)
  const three = await blockMessage(w, 3, 4)
  t.ok(await core.applyData(await core.verifyData(three)))
  await w.truncate(10)
  await w.append(forkBlocks(1, 10, 5))
  t.ok(await core.reorg(await verifiedFork(core, w)))
  t.ok(core.has(3))
  t.alike(await core.getBlock(3), three.block!.value)
  t.is(core.contiguousLength, 0)
})

test('a fork search made before a local truncation is stale: reorg changes nothing', async t => {
  const w = await ramCore(t)
  await w.append(blocks(20))
  // A second writer with the same key pair and the same 20 blocks (a restored backup, say).
  const twin = await ramCore(t, w.key, { keyPair: w.keyPair! })
  await twin.append(blocks(20))
  await w.truncate(12)
  await w.append(forkBlocks(1, 12, 3))
  const fork = await verifiedFork(internals(twin).core!, w)
  await twin.truncate(15) // our own tree changes shape meanwhile
  t.is(await internals(twin).core!.reorg(fork), false, 'the search is stale')
  t.is(twin.length, 15)
  t.alike(await twin.get(14), blocks(1, 14)[0], 'nothing of the other fork landed')
})

test('an answer from a slow peer on the old fork arrives after the reorg: not stored, the peer not blamed', async t => {
  const w = await ramCore(t)
  await w.append(blocks(20))
  const old = await ramCore(t, w.key) // a full copy of fork 0, served slowly
  const l0 = replicate(t, w, old)
  await old.download({ start: 0, end: 20 }).done()
  l0.destroy()

  const r = await ramCore(t, w.key)
  let answered = 0
  const fake = new FakePeer(t, w.key!, {
    onopen: p => {
      p.sendSync({ fork: 0, length: 20 })
      p.sendRange({ drop: false, start: 0, length: 20 })
    },
    onrequest: async (p, m) => {
      const a = await honestAnswer(old, m)
      if (m.block !== null) await sleep(300) // block answers come late
      answered++
      if ('fork' in a) p.sendData(a)
      else p.sendNoData(a)
    }
  })
  let blamed = 0
  r.on('verification-error', () => blamed++)
  r.replicate(fake.stream)
  await fake.open()
  await until(() => r.length === 20)
  const pending = rejection(r.get(15)) // asked of the slow peer, on fork 0

  await w.truncate(10)
  await w.append(forkBlocks(1, 10, 10))
  replicate(t, w, r)
  const err = await pending
  t.is(err?.code, 'SNAPSHOT_NOT_AVAILABLE', 'the wait for a block the reorg removed fails, as in Hypercore 11')
  await until(() => answered >= 1, 3000)
  await sleep(100)
  t.is(r.fork, 1)
  t.alike(await r.get(15, { timeout: 5000 }), forkBlocks(1, 15, 1)[0], 'read again, block 15 is the new fork\'s')
  t.is(blamed, 0, 'the slow peer is not blamed for answering about its fork')
  t.is(fake.closed, false)
  t.ok(b4a.equals(await r.get(3) as Uint8Array, blocks(1, 3)[0]!), 'blocks below the ancestors read as before')
})
