/**
 * Never hand rot on: a block read locally or served to a peer is checked
 * against its leaf, the leaf tied by hashes to the signed roots. Rotten
 * bytes are cleared and fetched again; tree nodes whose bytes cannot be a
 * node (an impossible size) are rot like any other; `clear` on a replica
 * drops the block, tells peers, and fetches it again on `get`.
 */
import test from 'brittle'
import * as fs from 'fs'
import * as path from 'path'
import b4a from 'b4a'
import {
  Hypercore, freshDir, openCore, blocks, filledCore, copyDir, text, healthyAndDamaged, readTreeFile, treeNodeBytes, isZero
} from './helpers/core'
import { makeHypercore, tmpDir, type Hypercore as Hypercore11, type Teardownable } from './helpers/oracle'
import { replicate, once, until, sleep } from './helpers/replication'
import { leafHash } from '../lib/crypto'
import { internals } from '../lib/hypercore'

const block = (i: number): string => text(blocks(1, i)[0])

/** Where block `i` of `blocks(n)` starts in the data file. */
function offsetOf (i: number): number {
  return blocks(i).reduce((sum, b) => sum + b.byteLength, 0)
}

function editFile (dir: string, name: string, edit: (bytes: Buffer) => void): void {
  const file = path.join(dir, name)
  const bytes = fs.readFileSync(file)
  edit(bytes)
  fs.writeFileSync(file, bytes)
}

/** Sets the size field of tree node `index` to 2^64 - 1: no core has that many bytes. */
function impossibleSize (dir: string, index: number): void {
  editFile(dir, 'tree', bytes => bytes.fill(0xff, 40 * index, 40 * index + 8))
}

function flipDataByte (dir: string, block: number, at = 2): void {
  editFile(dir, 'data', bytes => { bytes[offsetOf(block) + at]! ^= 0xff })
}

async function code (p: Promise<unknown>): Promise<string | null> {
  try {
    await p
    return null
  } catch (err) {
    return (err as { code?: string }).code ?? 'uncoded: ' + String(err)
  }
}

/** A Hypercore 11 reader in a temp dir, closed at teardown. */
async function hc11 (t: Teardownable, key: Uint8Array): Promise<Hypercore11> {
  const core = await makeHypercore(await tmpDir(t), key)
  t.teardown(() => core.close(), { order: 0 })
  return core
}

// ---------------------------------------------------------------------------
// Impossible sizes: rot like any other

test('a node with an impossible size does not stop the audit: it is rewritten and the rest is found', async t => {
  const { healthy, damaged } = await healthyAndDamaged(t, 16)
  impossibleSize(damaged, 21) // parent of blocks 10 and 11
  flipDataByte(damaged, 3)
  const core = await openCore(t, damaged)
  const report = await core.audit()
  t.is(report.restoredNodes, 1, 'node 21 is recomputed from its children')
  t.is(report.corruptBlocks, 1, 'and the audit went on to find block 3')
  t.alike(treeNodeBytes(damaged, 21), treeNodeBytes(healthy, 21))
  t.is(await core.get(3, { wait: false }), null)
  t.is(text(await core.get(10)), block(10))
})

test('a node with an impossible size that cannot be recomputed is dropped', async t => {
  const { damaged } = await healthyAndDamaged(t, 16)
  const setup = await openCore(t, damaged)
  await setup.clear(2) // leaf 4's block: nothing to recompute it from
  await setup.close()
  impossibleSize(damaged, 4)
  const core = await openCore(t, damaged)
  const report = await core.audit()
  t.ok(report.droppedNodes >= 1)
  t.ok(isZero(treeNodeBytes(damaged, 4)), 'the rotten bytes are gone from the tree file')
  t.is(report.unverifiedBlocks, 1, 'block 3 cannot be tied to the roots without leaf 4')
  t.is(await core.get(3, { wait: false }), null)
  t.is(text(await core.get(5)), block(5))
})

test('a leaf with an impossible size: get does not reject; null with wait: false, the right bytes from a peer', async t => {
  const { healthy, damaged } = await healthyAndDamaged(t, 16)
  impossibleSize(damaged, 4) // block 2's leaf
  const core = await openCore(t, damaged)
  t.is(await code(core.get(2, { wait: false })), null, 'no STORAGE_CORRUPT')
  t.is(await core.get(2, { wait: false }), null)
  t.is(text(await core.get(5)), block(5), 'blocks whose way up does not pass it still read')
  const source = await openCore(t, healthy)
  replicate(t, core, source)
  t.is(text(await core.get(2, { timeout: 5000 })), block(2))
  t.alike(treeNodeBytes(damaged, 4), treeNodeBytes(healthy, 4), 'the leaf came back with the block')
})

test('a root with an impossible size: ready() opens in repair mode, and a peer heals it', async t => {
  const { healthy, damaged } = await healthyAndDamaged(t, 16)
  impossibleSize(damaged, 15) // the only root
  const core = new Hypercore(damaged)
  t.teardown(() => core.close())
  t.is(await code(core.ready()), null, 'ready() resolves')
  t.ok(core.repairMode)
  const source = await openCore(t, healthy)
  const repaired = once(core, 'repaired', 5000)
  replicate(t, core, source)
  await repaired
  t.absent(core.repairMode)
  t.alike(readTreeFile(damaged), readTreeFile(healthy))
  t.is(text(await core.get(9)), block(9))
})

// ---------------------------------------------------------------------------
// Verified reads

test('get checks a block against its leaf: rotten bytes read as null and the block is cleared', async t => {
  const { damaged } = await healthyAndDamaged(t, 20)
  flipDataByte(damaged, 7)
  const core = await openCore(t, damaged)
  t.is(await core.get(7, { wait: false }), null)
  t.absent(await core.has(7), 'cleared')
  t.is(text(await core.get(6)), block(6))
  t.is(text(await core.get(8)), block(8))
  t.is(await code(core.get(7, { timeout: 100 })), 'REQUEST_TIMEOUT', 'waits like for any missing block, honouring timeout')
})

test('with a peer, a rotten block is fetched again and get returns the right bytes', async t => {
  const { healthy, damaged } = await healthyAndDamaged(t, 20)
  flipDataByte(damaged, 7)
  const core = await openCore(t, damaged)
  const source = await openCore(t, healthy)
  replicate(t, core, source)
  t.is(text(await core.get(7, { timeout: 5000 })), block(7))
  t.ok(await core.has(7))
  t.alike(await core.audit(), { blocks: 20, verifiedBlocks: 20, corruptBlocks: 0, unverifiedBlocks: 0, droppedNodes: 0, restoredNodes: 0 })
})

test('verify: false, per core and per call, reads the stored bytes as they are', async t => {
  const { damaged } = await healthyAndDamaged(t, 20)
  flipDataByte(damaged, 7)
  const raw = await openCore(t, damaged, { verify: false })
  const rotten = await raw.get(7) as Uint8Array
  t.is(rotten.byteLength, blocks(1, 7)[0]!.byteLength)
  t.not(text(rotten), block(7), 'the rotten bytes, unchecked')
  t.is(await raw.get(7, { verify: true, wait: false }), null, 'a verified read on the same core still refuses them')
  await raw.close()

  const { damaged: other } = await healthyAndDamaged(t, 20)
  flipDataByte(other, 7)
  const core = await openCore(t, other)
  t.not(text(await core.get(7, { verify: false })), block(7))
  t.ok(await core.has(7), 'an unverified read clears nothing')
})

test('a rotten leaf that matches a rotten block is caught by hashing up to the signed roots', async t => {
  const { healthy, damaged } = await healthyAndDamaged(t, 32)
  flipDataByte(damaged, 5)
  const bytes = fs.readFileSync(path.join(damaged, 'data')).subarray(offsetOf(5), offsetOf(6))
  editFile(damaged, 'tree', tree => { tree.set(leafHash(bytes), 40 * 10 + 8) }) // leaf 10 now matches the rotten block
  const core = await openCore(t, damaged)
  t.is(await core.get(5, { wait: false }), null)
  t.is(await core.get(4, { wait: false }), null, 'its sibling cannot be tied to the roots either')
  t.is(text(await core.get(6)), block(6))
  const report = await core.audit()
  t.is(report.corruptBlocks, 0, 'leaf and block agree: nothing says which of the two blocks is wrong')
  t.is(report.unverifiedBlocks, 2, 'so neither is vouched for')
  const source = await openCore(t, healthy)
  replicate(t, core, source)
  t.is(text(await core.get(5, { timeout: 5000 })), block(5))
  t.is(text(await core.get(4, { timeout: 5000 })), block(4))
})

test('a rotten size left of a block does not move it', async t => {
  const { damaged } = await healthyAndDamaged(t, 32)
  editFile(damaged, 'tree', tree => { tree[40 * 3]! ^= 0x04 }) // node 3 (blocks 0-3): its size
  editFile(damaged, 'tree', tree => { tree[40 * 8]! ^= 0x01 }) // leaf 8 (block 4): its size
  const core = await openCore(t, damaged)
  for (const i of [8, 9, 17, 31]) t.is(text(await core.get(i)), block(i), 'block ' + i + ', right of both')
  for (const i of [0, 3]) t.is(text(await core.get(i)), block(i), 'block ' + i + ', under the rotten node')
  // Node 3 is rebuilt in memory from its children once blocks 0-3 verified; leaf 8 has nothing to rebuild it from.
  for (const i of [6, 7]) t.is(text(await core.get(i)), block(i), 'block ' + i + ', hashed up through the rebuilt node 3')
  for (const i of [4, 5]) t.is(await core.get(i, { wait: false }), null, 'block ' + i + ': its way up passes the rotten leaf')
  const report = await core.audit()
  t.is(report.restoredNodes, 2, 'the audit recomputes both from below')
  for (let i = 0; i < 32; i++) t.is(text(await core.get(i)), block(i), 'block ' + i + ' after the audit')
})

// ---------------------------------------------------------------------------
// Serving

test('a rotten block is never served: the peer gets noData, we fetch it back from another peer and serve it then', async t => {
  const { healthy, damaged } = await healthyAndDamaged(t, 30)
  flipDataByte(damaged, 5)
  const source = await openCore(t, healthy)
  const relay = await openCore(t, damaged)
  replicate(t, relay, source)
  const reader = await openCore(t, freshDir(t, 'reader'), { key: relay.key! })
  const errors: Error[] = []
  reader.on('verification-error', err => errors.push(err))
  replicate(t, reader, relay)
  t.ok(await reader.update({ wait: true }))
  t.is(text(await reader.get(5, { timeout: 8000 })), block(5))
  t.alike(errors, [], 'the reader never saw a bad proof or block')
  t.is(reader.peers.length, 1, 'and kept the relay as a peer')
  t.ok(await relay.has(5), 'the relay fetched the block back')
})

test('a Hypercore 11 reader never gets a rotten block from us', async t => {
  const { healthy, damaged } = await healthyAndDamaged(t, 30)
  flipDataByte(damaged, 5)
  const source = await openCore(t, healthy)
  const relay = await openCore(t, damaged)
  replicate(t, relay, source)
  const reader = await hc11(t, relay.key!)
  const errors: Error[] = []
  reader.on('verification-error', err => errors.push(err))
  replicate(t, reader, relay)
  await reader.update({ wait: true })
  t.is(text(await reader.get(5, { timeout: 8000 })), block(5))
  t.is(text(await reader.get(6, { timeout: 8000 })), block(6))
  t.alike(errors, [])
})

test('after an audit, a block that could not be verified is not served', async t => {
  const { damaged } = await healthyAndDamaged(t, 32)
  editFile(damaged, 'tree', tree => { tree[40 * 9 + 12]! ^= 1; tree[40 * 10 + 12]! ^= 1 }) // node 9 and leaf 10 (block 5)
  const core = await openCore(t, damaged)
  const report = await core.audit()
  t.ok(report.unverifiedBlocks >= 2)
  const reader = await openCore(t, freshDir(t, 'reader'), { key: core.key! })
  const errors: Error[] = []
  reader.on('verification-error', err => errors.push(err))
  replicate(t, reader, core)
  t.ok(await reader.update({ wait: true }))
  t.is(await code(reader.get(4, { timeout: 500 })), 'REQUEST_TIMEOUT')
  t.is(text(await reader.get(12, { timeout: 5000 })), block(12))
  t.alike(errors, [])
})

// ---------------------------------------------------------------------------
// clear on a replica

async function replicaOf (t: Teardownable & { ok (value: unknown, message?: string): void }, n: number): Promise<{ writer: Hypercore, replica: Hypercore }> {
  const writerDir = freshDir(t, 'writer')
  await filledCore(t, writerDir, n)
  const writer = await openCore(t, writerDir)
  const replica = await openCore(t, freshDir(t, 'replica'), { key: writer.key! })
  replicate(t, replica, writer)
  t.ok(await replica.update({ wait: true }))
  await replica.download({ start: 0, end: n }).done()
  return { writer, replica }
}

test('clear on a replica: has is false, and get fetches the block again', async t => {
  const { replica } = await replicaOf(t, 12)
  const downloads: number[] = []
  replica.on('download', i => downloads.push(i))
  await replica.clear(3)
  t.absent(await replica.has(3))
  t.is(await replica.get(3, { wait: false }), null)
  t.is(text(await replica.get(3, { timeout: 5000 })), block(3))
  t.alike(downloads, [3], 'fetched from the peer')
  t.ok(await replica.has(3))
})

test('a clear racing the write of a fetched block leaves it cleared, never held with zeroed bytes', async t => {
  const writer = await openCore(t, freshDir(t, 'writer'))
  await writer.append(blocks(12))
  const replica = await openCore(t, freshDir(t, 'replica'), { key: writer.key! })
  replicate(t, replica, writer)
  t.ok(await replica.update({ wait: true }))
  const storage = internals(replica).core!.storage
  const writeData = storage.writeData
  let clearing: Promise<unknown> | null = null
  storage.writeData = async function (offset: number, bytes: Uint8Array): Promise<void> {
    await writeData.call(this, offset, bytes)
    // The user clears the block while its bytes are on disk but before it is marked held.
    if (clearing === null) clearing = replica.clear(3)
    await sleep(20)
  }
  const fetched = replica.get(3, { timeout: 5000 })
  await until(() => clearing !== null, 5000, 'the block to be written')
  await clearing
  storage.writeData = writeData
  t.absent(await replica.has(3), 'the clear wins: the block is not held')
  t.is(await replica.get(3, { wait: false, verify: false }), null, 'not even an unverified read finds it')
  t.is(text(await fetched), block(3), 'the waiting get fetches it again')
})

test('clear tells peers (a range drop): a peer connected only to the replica never gets the block from it', async t => {
  const { replica } = await replicaOf(t, 12)
  const third = await openCore(t, freshDir(t, 'third'), { key: replica.key! })
  const errors: Error[] = []
  third.on('verification-error', err => errors.push(err))
  replicate(t, third, replica)
  t.ok(await third.update({ wait: true }))
  await until(() => third.peers.length === 1 && third.peers[0]!.has(3), 3000, 'the third peer to learn the replica has block 3')

  await replica.clear(3)
  await until(() => !third.peers[0]!.has(3), 3000, 'the drop to reach the third peer')
  t.ok(third.peers[0]!.has(4), 'what the replica still holds stays known')
  t.is(await code(third.get(3, { timeout: 300 })), 'REQUEST_TIMEOUT', 'nobody has it now')
  t.is(text(await third.get(4, { timeout: 5000 })), block(4))

  t.is(text(await replica.get(3, { timeout: 5000 })), block(3), 'the replica fetches it again')
  t.is(text(await third.get(3, { timeout: 5000 })), block(3), 'and then serves it')
  t.alike(errors, [])
})

test('clear of blocks whose tree nodes a sparse replica never had does not throw', async t => {
  const writer = await openCore(t, freshDir(t, 'writer'))
  await writer.append(blocks(40))
  const replica = await openCore(t, freshDir(t, 'replica'), { key: writer.key! })
  replicate(t, replica, writer)
  t.ok(await replica.update({ wait: true }))
  t.is(text(await replica.get(21)), block(21))
  t.is(await code(replica.clear(0, 30)), null)
  t.absent(await replica.has(21))
  await sleep(10)
  t.is(text(await replica.get(21, { timeout: 5000 })), block(21))
})

test('a replica whose data file rotted fetches every block back before serving it', async t => {
  const { healthy, damaged } = await healthyAndDamaged(t, 40)
  editFile(damaged, 'data', bytes => bytes.fill(0x00, offsetOf(10), offsetOf(20)))
  const core = await openCore(t, damaged)
  const source = await openCore(t, healthy)
  replicate(t, core, source)
  for (let i = 0; i < 40; i++) t.is(text(await core.get(i, { timeout: 5000 })), block(i))
  const copy = freshDir(t, 'copy')
  await core.close()
  copyDir(damaged, copy)
  const reopened = await openCore(t, copy)
  t.alike(await reopened.audit(), { blocks: 40, verifiedBlocks: 40, corruptBlocks: 0, unverifiedBlocks: 0, droppedNodes: 0, restoredNodes: 0 })
  t.ok(b4a.equals(fs.readFileSync(path.join(copy, 'data')), fs.readFileSync(path.join(healthy, 'data'))))
})
