/**
 * Audit: every held block against its leaf, every stored node against its
 * parent, up to the signed roots; a rotten node is rewritten from what lies
 * below it where it can be, dropped where not; corrupt blocks are cleared;
 * what is gone comes back from peers on its own.
 */
import test from 'brittle'
import * as fs from 'fs'
import * as path from 'path'
import b4a from 'b4a'
import { freshDir, openCore, blocks, filledCore, rotTreeNode, copyDir, readTreeFile, text, healthyAndDamaged } from './helpers/core'
import { replicate } from './helpers/replication'
import type { Teardownable } from './helpers/oracle'

function flipDataByte (dir: string, at: number): void {
  const file = path.join(dir, 'data')
  const bytes = fs.readFileSync(file)
  bytes[at]! ^= 0xff
  fs.writeFileSync(file, bytes)
}

const clean = (n: number): Record<string, number> => ({ blocks: n, verifiedBlocks: n, corruptBlocks: 0, unverifiedBlocks: 0, droppedNodes: 0, restoredNodes: 0 })

test('a healthy core audits clean', async t => {
  const { damaged } = await healthyAndDamaged(t, 50)
  const core = await openCore(t, damaged)
  t.alike(await core.audit(), clean(50))
})

test('a block with a flipped byte is found and cleared, its neighbours kept', async t => {
  const { damaged } = await healthyAndDamaged(t, 20)
  const sizes = blocks(20).map(b => b.byteLength)
  const offset7 = sizes.slice(0, 7).reduce((a, b) => a + b, 0)
  flipDataByte(damaged, offset7 + 2)
  const core = await openCore(t, damaged)
  const report = await core.audit()
  t.is(report.corruptBlocks, 1)
  t.is(report.droppedNodes, 0)
  t.absent(await core.has(7))
  t.ok(await core.has(6))
  t.ok(await core.has(8))
  t.is(text(await core.get(8)), text(blocks(1, 8)[0]))
})

test('a rotten inner node is rewritten from its children; blocks right of it are not mistaken for corrupt', async t => {
  const { healthy, damaged } = await healthyAndDamaged(t, 32)
  rotTreeNode(damaged, 5) // covers blocks 2-3
  const core = await openCore(t, damaged)
  const report = await core.audit()
  t.is(report.restoredNodes, 1)
  t.is(report.droppedNodes, 0)
  t.is(report.corruptBlocks, 0)
  t.absent(core.repairMode)
  t.alike(readTreeFile(damaged), readTreeFile(healthy), 'the node is back, no peer needed')
  t.is(text(await core.get(31)), text(blocks(1, 31)[0]))
  t.alike(await core.audit(), clean(32))
})

test('a rotten size field does not shift the blocks after it into looking corrupt', async t => {
  const { healthy, damaged } = await healthyAndDamaged(t, 32)
  const file = path.join(damaged, 'tree')
  const bytes = fs.readFileSync(file)
  bytes[40 * 3]! ^= 0x04 // node 3 (blocks 0-3): its size, not its hash
  fs.writeFileSync(file, bytes)
  const core = await openCore(t, damaged)
  const report = await core.audit()
  t.is(report.restoredNodes, 1)
  t.is(report.corruptBlocks, 0, 'offsets come from trusted sizes only')
  t.alike(readTreeFile(damaged), readTreeFile(healthy))
})

test('a leaf and its parent both rotten: the blocks that cannot be tied to the roots are unverified, not read, until a peer restores them', async t => {
  const { healthy, damaged } = await healthyAndDamaged(t, 32)
  rotTreeNode(damaged, 9) // blocks 4-5
  rotTreeNode(damaged, 8) // block 4's leaf
  const core = await openCore(t, damaged)
  const report = await core.audit()
  // Node 9 cannot be recomputed (its leaf is rotten too), and without it its
  // sibling 13 cannot be tied to node 11: blocks 4-7 are unverified.
  t.is(report.unverifiedBlocks, 4)
  t.is(report.verifiedBlocks, 28)
  t.is(report.corruptBlocks, 0)
  t.ok(report.droppedNodes >= 1)
  for (const i of [4, 5, 6, 7]) t.absent(await core.has(i), 'block ' + i + ' is not held as good')
  t.is(await core.get(4, { wait: false, verify: false }), null, 'not even an unverified read returns it')
  t.is(await core.get(5, { wait: false }), null)
  t.is(text(await core.get(8)), text(blocks(1, 8)[0]))

  const source = await openCore(t, healthy)
  replicate(t, core, source)
  t.is(text(await core.get(4, { timeout: 5000 })), text(blocks(1, 4)[0]), 'fetched again, with the nodes it lacked')
  t.is(text(await core.get(5, { timeout: 5000 })), text(blocks(1, 5)[0]))
  t.alike(await core.audit(), clean(32))
})

test('blocks that cannot be located for a missing node are not taken for corrupt', async t => {
  const { damaged } = await healthyAndDamaged(t, 1000)
  for (const i of [511, 1029]) {
    const fd = fs.openSync(path.join(damaged, 'tree'), 'r+')
    fs.writeSync(fd, new Uint8Array(40), 0, 40, 40 * i)
    fs.closeSync(fd)
  }
  const core = await openCore(t, damaged)
  const report = await core.audit()
  t.is(report.corruptBlocks, 0)
  t.is(report.restoredNodes, 2, 'both lost nodes are recomputed from their children')
  t.ok(await core.has(0, 1000), 'every block is still held')
})

test('a rotten root is rebuilt from its children, checked against the signature: the core leaves repair mode', async t => {
  const { healthy, damaged } = await healthyAndDamaged(t, 10)
  rotTreeNode(damaged, 17)
  const core = await openCore(t, damaged)
  t.ok(core.repairMode, 'open notices rotten roots')
  const report = await core.audit()
  t.is(report.restoredNodes, 1)
  t.absent(core.repairMode)
  t.alike(readTreeFile(damaged), readTreeFile(healthy))
  await core.append(b4a.from('more'))
  t.is(core.length, 11)
})

test('a root rotten in the open core (after its signature was checked) is rewritten from memory', async t => {
  const { healthy, damaged } = await healthyAndDamaged(t, 10)
  const core = await openCore(t, damaged)
  rotTreeNode(damaged, 7)
  const report = await core.audit()
  t.is(report.restoredNodes, 1)
  t.absent(core.repairMode)
  t.alike(readTreeFile(damaged), readTreeFile(healthy))
})

test('a rotten root and rotten children: dropped, the core goes into repair mode', async t => {
  const { damaged } = await healthyAndDamaged(t, 10)
  rotTreeNode(damaged, 17)
  rotTreeNode(damaged, 16)
  const core = await openCore(t, damaged)
  t.ok(core.repairMode)
  const report = await core.audit()
  t.ok(report.droppedNodes >= 1)
  t.ok(core.repairMode)
  t.is(text(await core.get(3)), text(blocks(1, 3)[0]), 'blocks under the other root still read')
  t.is(await core.get(8, { wait: false }), null, 'blocks under the dropped root do not')
})

test('with a peer connected, cleared blocks and dropped nodes come back on their own', async t => {
  const { healthy, damaged } = await healthyAndDamaged(t, 64)
  rotTreeNode(damaged, 9)
  rotTreeNode(damaged, 10) // block 5's leaf: node 9 cannot be recomputed from below
  flipDataByte(damaged, 100)
  const source = await openCore(t, healthy)
  const core = await openCore(t, damaged)
  replicate(t, core, source)
  await core.update({ wait: true })
  const report = await core.audit()
  t.ok(report.droppedNodes >= 1)
  t.ok(report.corruptBlocks >= 1)
  const deadline = Date.now() + 5000
  while (Date.now() < deadline) {
    if (core.contiguousLength === 64 && b4a.equals(readTreeFile(damaged), readTreeFile(healthy))) break
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  t.is(core.contiguousLength, 64, 'every block is back')
  t.alike(readTreeFile(damaged), readTreeFile(healthy), 'the dropped nodes are back')
  t.alike(await core.audit(), clean(64))
})

test('garbage tree and data files only ever give coded errors or a report', async t => {
  for (let round = 0; round < 10; round++) {
    const { damaged } = await healthyAndDamaged(t, 16)
    const tree = fs.readFileSync(path.join(damaged, 'tree'))
    const data = fs.readFileSync(path.join(damaged, 'data'))
    for (let i = 0; i < 20; i++) tree[Math.floor(Math.random() * tree.length)] = Math.floor(Math.random() * 256)
    for (let i = 0; i < 20; i++) data[Math.floor(Math.random() * data.length)] = Math.floor(Math.random() * 256)
    fs.writeFileSync(path.join(damaged, 'tree'), tree)
    fs.writeFileSync(path.join(damaged, 'data'), data.subarray(0, Math.floor(data.length * Math.random())))
    const core = await openCore(t, damaged).catch((err: { code?: string }) => err)
    if (!('audit' in core)) {
      t.ok(typeof core.code === 'string', 'open failed with a coded error')
      continue
    }
    const result = await core.audit().catch((err: { code?: string }) => err)
    t.ok('blocks' in result || typeof (result as { code?: string }).code === 'string', 'report or coded error')
  }
})
