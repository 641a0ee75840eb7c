/**
 * Repair mode and self-repair of the tree from fully remote proofs, with
 * Hypercore 11 on the other side in both directions.
 */
import test from 'brittle'
import b4a from 'b4a'
import {
  Hypercore, freshDir, openCore, blocks, filledCore, zeroTreeNode, rotTreeNode,
  treeNodeBytes, readTreeFile, isZero, copyDir, text, healthyAndDamaged
} from './helpers/core'
import { makeHypercore, tmpDir, hcCrypto, repairMode, deleteHypercoreTreeNode, getHypercoreTreeNode, Hypercore as Hypercore11 } from './helpers/oracle'
import { fullRoots, inTree } from '../lib/flat-tree'
import { RepairRequests, type RepairHost } from '../lib/repair-requests'
import type { Peer } from '../lib/peer'
import type { DataMessage } from '../lib/messages'
import { FakePeer, honestAnswer } from './helpers/replication'
import type { Teardownable } from './helpers/oracle'

test('a core with a missing root opens in repair mode and only refuses what needs the tree', async t => {
  // 10 blocks: roots 7 and 17
  const { damaged } = await healthyAndDamaged(t, 10, dir => zeroTreeNode(dir, 17))
  const core = await openCore(t, damaged)
  t.ok(core.repairMode)
  t.is(core.length, 10)
  t.is(text(await core.get(0)), text(blocks(1)[0]), 'a read that needs no missing node works')
  await t.exception(core.treeHash(), /INVALID_OPERATION/)
  await t.exception(core.append(b4a.from('x')), /Cannot commit while repair mode is on/)
  await t.exception(core.truncate(3), /Cannot commit while repair mode is on/)
  const err = await core.append(b4a.from('x')).then(() => null, (e: { code: string }) => e)
  t.is(err?.code, 'ERR_ASSERTION')
})

test('in repair mode, blocks right of a lost root still read, located from the end of the tree', async t => {
  // 1000 blocks: roots 511, 1279, 1663, 1855, 1951, 1991
  const { damaged } = await healthyAndDamaged(t, 1000, dir => {
    zeroTreeNode(dir, 511)
    zeroTreeNode(dir, 400) // a leaf: its size comes from its neighbours' offsets
  })
  const core = await openCore(t, damaged)
  t.ok(core.repairMode)
  for (const i of [512, 700, 999]) t.is(text(await core.get(i)), text(blocks(1, i)[0]), 'block ' + i)
  // Under the lost root (blocks 0-511) nothing ties a block to the signature:
  // unverified reads return what is stored; verified reads fetch them (null
  // without peers), and from then on they are marked unverified.
  for (const i of [0, 200, 255, 511]) {
    t.is(text(await core.get(i, { verify: false })), text(blocks(1, i)[0]), 'block ' + i + ', unverified')
    t.is(await core.get(i, { wait: false }), null, 'block ' + i + ' cannot be verified')
    t.absent(await core.has(i))
  }
})

test('a missing root is repaired from a Hypercore 11 proof; the core then appends without a reopen', async t => {
  const keyPair = hcCrypto.keyPair()
  const dir = freshDir(t)
  const ours = new Hypercore(dir, { keyPair })
  await ours.append(blocks(10))
  await ours.close()
  const theirs = await makeHypercore(await tmpDir(t), null, { keyPair })
  t.teardown(() => theirs.close())
  await theirs.append(blocks(10))

  zeroTreeNode(dir, 17)
  const core = await openCore(t, dir)
  t.ok(core.repairMode)

  const events: string[] = []
  let started: unknown = null
  core.on('repairing', p => { events.push('repairing'); started = p })
  core.on('repaired', p => { events.push('repaired'); t.is(p, started, 'repaired carries the same proof object') })
  core.on('repair-failed', () => events.push('repair-failed'))

  t.ok(await core.recoverFromRemoteProof(await theirs.generateRemoteProofForTreeNode(17)))
  t.alike(events, ['repairing', 'repaired'])
  t.absent(core.repairMode)
  t.absent(isZero(treeNodeBytes(dir, 17)))
  t.alike(await core.treeHash(), await theirs.treeHash())

  await core.append(b4a.from('after repair'))
  await theirs.append(b4a.from('after repair'))
  t.alike(await core.treeHash(), await theirs.treeHash(), 'appends after repair agree with Hypercore 11')
  await core.truncate(5)
  t.is(core.length, 5)
})

test('a Hypercore 11 core in repair mode is repaired by a nomadcore proof', async t => {
  const keyPair = hcCrypto.keyPair()
  const ours = await openCore(t, freshDir(t), { keyPair })
  await ours.append(blocks(10))

  const hcDir = await tmpDir(t)
  const first = await makeHypercore(hcDir, null, { keyPair })
  await first.append(blocks(10))
  await deleteHypercoreTreeNode(first, 17)
  await first.close()

  const broken = await makeHypercore(hcDir)
  t.teardown(() => broken.close())
  t.ok(repairMode(broken), 'Hypercore 11 opened in repair mode')
  t.ok(await broken.recoverFromRemoteProof(await ours.generateRemoteProofForTreeNode(17)))
  const node = await getHypercoreTreeNode(broken, 17)
  t.ok(node)
  t.alike(await broken.treeHash(), await ours.treeHash())
})

test('a missing subtree root is restored from a nomadcore proof', async t => {
  const { healthy, damaged } = await healthyAndDamaged(t, 10, dir => zeroTreeNode(dir, 3))
  const source = await openCore(t, healthy)
  const core = await openCore(t, damaged)
  t.absent(core.repairMode, 'an inner node missing is not repair mode')
  t.ok(await core.recoverFromRemoteProof(await source.generateRemoteProofForTreeNode(3)))
  t.alike(readTreeFile(damaged), readTreeFile(healthy))
})

test('any missing tree node can be recovered, inner nodes included', async t => {
  const n = 37
  const healthyDir = freshDir(t, 'healthy')
  await filledCore(t, healthyDir, n)
  const source = await openCore(t, healthyDir)

  for (const index of [5, 9, 11, 13, 19, 21, 23, 27, 41, 43, 45, 51, 53, 57, 61, 69]) {
    const dir = freshDir(t, 'node' + index)
    copyDir(healthyDir, dir)
    zeroTreeNode(dir, index)
    const core = new Hypercore(dir)
    await core.ready()
    t.ok(await core.recoverFromRemoteProof(await source.generateRemoteProofForTreeNode(index)), 'node ' + index)
    await core.close()
    t.alike(readTreeFile(dir), readTreeFile(healthyDir), 'tree file restored after losing node ' + index)
  }
})

test('a core that lost every root and many inner nodes heals node by node, then appends', async t => {
  const n = 50
  const dirs = await healthyAndDamaged(t, n, dir => {
    for (let i = 1; i < 2 * n; i += 4) zeroTreeNode(dir, i)
    for (const r of fullRoots(2 * n)) zeroTreeNode(dir, r)
  })
  const source = await openCore(t, dirs.healthy)
  const core = await openCore(t, dirs.damaged)
  t.ok(core.repairMode)
  const tree = readTreeFile(dirs.damaged)
  let repaired = 0
  for (let i = 0; i < 2 * n - 1; i++) {
    if (!inTree(i, n) || !isZero(tree.subarray(40 * i, 40 * i + 40))) continue
    if (await core.recoverFromRemoteProof(await source.generateRemoteProofForTreeNode(i))) repaired++
  }
  t.ok(repaired > 0)
  t.alike(readTreeFile(dirs.damaged), readTreeFile(dirs.healthy))
  t.absent(core.repairMode)
  await core.append(b4a.from('healed'))
  t.is(core.length, n + 1)
})

test('a rotten root (flipped bits) opens in repair mode and is overwritten by a good proof', async t => {
  const { healthy, damaged } = await healthyAndDamaged(t, 10, dir => rotTreeNode(dir, 7))
  const source = await openCore(t, healthy)
  const core = await openCore(t, damaged)
  t.ok(core.repairMode, 'roots that do not match the signature are not trusted')
  t.ok(await core.recoverFromRemoteProof(await source.generateRemoteProofForTreeNode(7)))
  t.absent(core.repairMode)
  t.alike(readTreeFile(damaged), readTreeFile(healthy))
})

test('a proof from a fork of the same key is refused: repair-failed, false, tree file untouched', async t => {
  const keyPair = hcCrypto.keyPair()
  const dir = freshDir(t)
  const ours = new Hypercore(dir, { keyPair })
  await ours.append(blocks(10))
  await ours.close()
  // Same key, other history: truncated and appended differently, same length.
  const fork = await openCore(t, freshDir(t, 'fork'), { keyPair })
  await fork.append(blocks(6))
  await fork.truncate(4, 0)
  await fork.append(blocks(6, 900))

  zeroTreeNode(dir, 17)
  const core = await openCore(t, dir)
  const before = readTreeFile(dir)
  const failures: Array<{ code?: string }> = []
  core.on('repair-failed', err => failures.push(err as { code?: string }))
  t.absent(await core.recoverFromRemoteProof(await fork.generateRemoteProofForTreeNode(17)))
  t.is(failures.length, 1)
  t.is(failures[0]?.code, 'INVALID_PROOF')
  t.alike(readTreeFile(dir), before)
  t.ok(core.repairMode)
})

test('a proof for another core returns false and changes nothing', async t => {
  const { healthy, damaged } = await healthyAndDamaged(t, 10, dir => zeroTreeNode(dir, 17))
  const other = await openCore(t, freshDir(t, 'other'))
  await other.append(blocks(10))
  const core = await openCore(t, damaged)
  const before = readTreeFile(damaged)
  t.absent(await core.recoverFromRemoteProof(await other.generateRemoteProofForTreeNode(17)))
  t.alike(readTreeFile(damaged), before)
  t.ok(core.repairMode)
  t.unlike(readTreeFile(healthy), before)
})

test('Hypercore 11 cores agree: its own repair of a deleted root matches ours', async t => {
  const keyPair = hcCrypto.keyPair()
  const dir = await tmpDir(t)
  const a = await makeHypercore(dir, null, { keyPair })
  await a.append(blocks(10))
  const expected = await getHypercoreTreeNode(a, 7)
  await deleteHypercoreTreeNode(a, 7)
  await a.close()
  const b = new Hypercore11(dir)
  t.teardown(() => b.close())
  await b.ready()
  const ours = await openCore(t, freshDir(t), { keyPair })
  await ours.append(blocks(10))
  t.ok(await b.recoverFromRemoteProof(await ours.generateRemoteProofForTreeNode(7)))
  t.alike(await getHypercoreTreeNode(b, 7), expected)
})

test('a lost node whose proof waits for the core\'s lock is not asked for again meanwhile', t => {
  // Every read that finds the node missing reports it; each used to queue one more proof behind the lock.
  const peer = { remoteOpened: true, remoteFork: 0, remoteLength: 64, remoteContiguous: 64 } as unknown as Peer
  const inFlight = new Set<number>()
  let asked = 0
  const host = {
    core: { length: 64, fork: 0, repairMode: false, manifest: null, bitfield: { firstSet: () => 0 } },
    peers: [peer],
    inflight: {
      hasNode: (i: number) => inFlight.has(i),
      send: (_p: Peer, _kind: string, index: number) => { asked++; inFlight.add(index); return {} },
      values: () => [][Symbol.iterator]()
    },
    pickPeer: (ok: (p: Peer) => boolean) => ok(peer) ? peer : null
  } as unknown as RepairHost
  const repair = new RepairRequests(host)
  repair.onmissingnode(31, true)
  t.is(asked, 1, 'asked for its proof')
  repair.onmissingnode(31, true)
  t.is(asked, 1, 'not twice while that request is in flight')
  inFlight.delete(31)
  repair.onapplying(31)
  for (let k = 0; k < 100; k++) repair.onmissingnode(31, true)
  t.is(asked, 1, 'not again while its proof is being applied')
  repair.onanswer(31, peer, true)
  repair.onmissingnode(31, true)
  t.is(asked, 2, 'lost again after that: asked again')
})

test('a reader in repair mode whose peer answers from memory still repairs, then reads the blocks under the lost root', async t => {
  // 40 blocks: roots 31, 71, 77. Blocks 0-15 hang under the lost root 31.
  const { healthy, damaged } = await healthyAndDamaged(t, 40, dir => zeroTreeNode(dir, 31))
  const source = await openCore(t, healthy)
  const reader = await openCore(t, damaged)
  t.ok(reader.repairMode)
  // A peer that answers a request it answered before at once, from memory: no disk read, no wait.
  const answered = new Map<string, DataMessage>()
  const fake = new FakePeer(t, source.key!, {
    onopen: p => {
      p.sendSync({ length: source.length })
      p.sendRange({ drop: false, start: 0, length: source.length })
    },
    onrequest: (p, m) => {
      const key = JSON.stringify({ block: m.block, hash: m.hash, upgrade: m.upgrade, manifest: m.manifest })
      const kept = answered.get(key)
      if (kept !== undefined) {
        p.sendData({ ...kept, request: m.id })
        return
      }
      void honestAnswer(source, m).then(a => {
        if (!('fork' in a)) return p.sendNoData(a)
        answered.set(key, a)
        p.sendData(a)
      })
    }
  })
  reader.replicate(fake.stream)
  await fake.open()
  // Asked again and again while the repair is under way, block 0 must not starve the repair's own reads.
  const block = await reader.get(0, { timeout: 10_000 })
  t.is(text(block as Uint8Array), text(blocks(1)[0]), 'block 0, verified')
  t.absent(reader.repairMode, 'out of repair mode')
})
