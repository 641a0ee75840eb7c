/**
 * Verified blocks kept in memory: a block read twice is kept, and read again
 * neither from disk nor hashed, yet nothing kept is ever returned for a block
 * that changed since (cleared, truncated away, replaced on a new fork),
 * callers get buffers of their own, and the process-wide budget holds.
 */
import test from 'brittle'
import * as fs from 'fs'
import * as path from 'path'
import b4a from 'b4a'
import RAM from 'random-access-memory'
import { Hypercore, freshDir, openCore, blocks, text } from './helpers/core'
import { replicate, until } from './helpers/replication'
import { ScratchHasher } from '../lib/blake2b'
import { blockCacheUsed, blockCacheSize, DEFAULT_BLOCK_CACHE_BYTES, ENTRY_OVERHEAD, seenSlotsFor } from '../lib/block-cache'
import { countFileCalls } from './helpers/storage'

/** Counts BLAKE2b calls over inputs of `length` bytes while `fn` runs. */
async function hashesOf (length: number, fn: () => Promise<unknown>): Promise<number> {
  const original = ScratchHasher.prototype.hash
  let n = 0
  ScratchHasher.prototype.hash = function (this: ScratchHasher, len: number) {
    if (len === length) n++
    original.call(this, len)
  }
  try {
    await fn()
  } finally {
    ScratchHasher.prototype.hash = original
  }
  return n
}

function ramCore (t: { teardown (fn: () => unknown): void }, key?: Uint8Array): Promise<Hypercore> {
  const core = new Hypercore(() => new RAM(), key)
  t.teardown(() => core.close())
  return core.ready().then(() => core)
}

test('a block read twice is kept: later reads are not hashed again, and match the first', async t => {
  const core = await openCore(t, freshDir(t))
  const block = b4a.alloc(1000, 'x')
  await core.append([block, block, block])
  t.is(await hashesOf(9 + 1000, () => core.get(1)), 1, 'the first read checks the block against its leaf')
  t.is(await hashesOf(9 + 1000, () => core.get(1)), 1, 'so does the second, which keeps it')
  t.is(await hashesOf(9 + 1000, () => core.get(1)), 0, 'the third is answered from verified memory')
  t.alike(await core.get(1), block)
  t.is(await hashesOf(9 + 1000, () => core.get(1, { verify: false })), 0, 'verify: false reads the disk unchecked, as before')
})

test('a block read once is not kept: a scan does not fill the cache', async t => {
  const core = await openCore(t, freshDir(t))
  await core.append(Array.from({ length: 100 }, () => b4a.alloc(1000, 'z')))
  const before = blockCacheUsed()
  let read = 0
  for await (const value of core.createReadStream()) if ((value as Uint8Array).byteLength === 1000) read++
  t.is(read, 100, 'every block streamed')
  t.is(blockCacheUsed(), before, 'and none kept')
})

test('a caller that changes a returned block changes no later read', async t => {
  const core = await openCore(t, freshDir(t))
  await core.append(blocks(4))
  await core.get(2)
  const first = await core.get(2) as Uint8Array
  first.fill(0)
  const second = await core.get(2) as Uint8Array
  t.is(text(second), text(blocks(1, 2)[0]))
  t.not(second, first, 'each read gets its own buffer')
})

test('rot that reaches the data file after a block was verified is not served: the kept bytes are the verified ones', async t => {
  const dir = freshDir(t)
  const core = await openCore(t, dir)
  await core.append(blocks(8))
  await core.get(5)
  await core.get(5)
  const file = path.join(dir, 'data')
  const bytes = fs.readFileSync(file)
  const at = blocks(5).reduce((sum, b) => sum + b.byteLength, 0)
  bytes[at] ^= 0xff
  fs.writeFileSync(file, bytes)
  t.is(text(await core.get(5)), text(blocks(1, 5)[0]))
  t.ok(core.has(5))
})

test('a cleared block is not answered from memory', async t => {
  const core = await openCore(t, freshDir(t))
  await core.append(blocks(8))
  await core.get(3)
  await core.get(3)
  await core.clear(3)
  t.is(await core.get(3, { wait: false }), null)
})

test('a block truncated away and written anew reads as the new block', async t => {
  const core = await openCore(t, freshDir(t))
  await core.append(blocks(8))
  await core.get(6)
  t.is(text(await core.get(6)), text(blocks(1, 6)[0]))
  await core.truncate(4)
  await core.append([b4a.from('four'), b4a.from('five'), b4a.from('six'), b4a.from('seven')])
  t.is(text(await core.get(6)), 'six')
  t.is(core.fork, 1)
})

test('a replica that follows a reorg reads the new fork\'s block, never the one it read before', async t => {
  const writer = await ramCore(t)
  await writer.append(blocks(10))
  const reader = await ramCore(t, writer.key!)
  const link = replicate(t, writer, reader)
  await reader.get(7)
  await reader.get(7)
  t.is(await hashesOf(9 + blocks(1, 7)[0]!.byteLength, () => reader.get(7)), 0, 'block 7 is kept in memory')
  t.is(text(await reader.get(7)), text(blocks(1, 7)[0]))
  await writer.truncate(5)
  await writer.append([b4a.from('f5'), b4a.from('f6'), b4a.from('f7'), b4a.from('f8'), b4a.from('f9')])
  await until(() => reader.fork === 1 && reader.length === 10)
  t.is(text(await reader.get(7, { timeout: 5000 })), 'f7')
  link.destroy()
})

test('a get that waits for a block from a peer gets the block just verified and stored, not read back from disk', async t => {
  const writer = await openCore(t, freshDir(t, 'writer'))
  await writer.append(blocks(40))
  const readerDir = freshDir(t, 'reader')
  const reader = await openCore(t, readerDir, { key: writer.key! })
  const link = replicate(t, writer, reader)
  await reader.update({ wait: true }) // the length first: the answer that brings it goes another way
  // Reads of the reader's data file, either way one can go (at once, or through the queue).
  const calls = countFileCalls(file => file.filename === path.join(readerDir, 'data'))
  const dataReads = (): number => calls.nowReads + calls.queuedReads
  try {
    t.is(text(await reader.get(17, { timeout: 5000 })), text(blocks(1, 17)[0]))
    t.is(dataReads(), 0, 'the waiting get was answered from memory')
    const used = blockCacheUsed()
    await reader.download({ start: 20, end: 40 }).done()
    t.is(blockCacheUsed(), used, 'blocks downloaded with no get waiting are not kept')
    t.is(text(await reader.get(30)), text(blocks(1, 30)[0]))
    t.is(dataReads(), 1, 'and are read from disk when asked for')
  } finally {
    calls.stop()
  }
  link.destroy()
})

test('a block served to one peer after another is read from disk for the first two only, then answered from memory', async t => {
  const writerDir = freshDir(t, 'writer')
  const writer = await openCore(t, writerDir)
  const written = blocks(40)
  await writer.append(written)
  // Reads of the writer's data file, either way one can go (at once, or through the queue).
  const calls = countFileCalls(file => file.filename === path.join(writerDir, 'data'))
  const dataReads = (): number => calls.nowReads + calls.queuedReads
  const readsPerPeer: number[] = []
  try {
    for (let peer = 0; peer < 4; peer++) {
      const reader = await ramCore(t, writer.key!)
      const link = replicate(t, writer, reader)
      const before = dataReads()
      await reader.download({ start: 0, end: 40 }).done()
      readsPerPeer.push(dataReads() - before)
      const got = await Promise.all(written.map((_, i) => reader.get(i)))
      t.alike(got.map(text), written.map(text), 'peer ' + peer + ' got every block as written')
      link.destroy()
      await reader.close()
    }
  } finally {
    calls.stop()
  }
  t.ok(readsPerPeer[0]! > 0 && readsPerPeer[1]! > 0, 'the first two peers are served from disk')
  t.alike(readsPerPeer.slice(2), [0, 0], 'the others from the bytes verified then')
})

test('a core read twice is kept when the memory of blocks read once spans it, and a scan of twice as many keeps nothing', async t => {
  // 1 MiB of budget: blocks read once are remembered for as many reads as it holds blocks of 1 KiB.
  Hypercore.setBlockCacheSize(1024 * 1024)
  t.teardown(() => Hypercore.setBlockCacheSize(DEFAULT_BLOCK_CACHE_BYTES))
  const span = seenSlotsFor(1024 * 1024)
  t.ok(span > 600 && span < 800, 'about 700 blocks (1 KiB each, and what keeping one costs)')
  const block = b4a.alloc(16, 's')
  const readTwice = async (n: number): Promise<number> => {
    const core = await ramCore(t)
    await core.append(Array.from({ length: n }, () => block))
    const before = blockCacheUsed()
    let read = 0
    for (let round = 0; round < 2; round++) for await (const value of core.createReadStream()) if ((value as Uint8Array).byteLength === 16) read++
    t.is(read, 2 * n, 'every block streamed twice')
    const kept = blockCacheUsed() - before
    await core.close()
    return kept
  }
  t.ok(await readTwice(span) >= span * 16, 'a core of as many blocks streamed twice is kept')
  t.is(await readTwice(2 * span), 0, 'one of twice as many streamed twice forgets each block before it comes round again')
})

test('the cache keeps to its budget, and a core that closes lets go of what it kept', async t => {
  t.is(blockCacheSize(), DEFAULT_BLOCK_CACHE_BYTES, '16 MiB unless set')
  const before = blockCacheUsed()
  const core = new Hypercore(freshDir(t))
  await core.ready()
  const block = b4a.alloc(4096, 'y')
  await core.append(Array.from({ length: 64 }, () => block))
  for (let i = 0; i < 64; i++) await core.get(i)
  t.is(blockCacheUsed(), before, 'read once, nothing is kept')
  for (let i = 0; i < 64; i++) await core.get(i)
  const kept = blockCacheUsed() - before
  t.ok(kept >= 64 * 4096, 'read twice, every block is kept')

  Hypercore.setBlockCacheSize(before + 3 * (4096 + ENTRY_OVERHEAD))
  t.ok(blockCacheUsed() <= before + 3 * (4096 + ENTRY_OVERHEAD), 'a smaller budget evicts at once')
  const twice = async (i: number): Promise<void> => { await core.get(i); await core.get(i) }
  await twice(10)
  await twice(11)
  await twice(12)
  await core.get(10) // read lately: 11 is now the one read longest ago
  await twice(13)
  t.ok(blockCacheUsed() <= before + 3 * (4096 + ENTRY_OVERHEAD), 'and holds while reading')
  const hashes = async (i: number): Promise<number> => await hashesOf(9 + 4096, () => core.get(i))
  t.alike([await hashes(10), await hashes(12), await hashes(13)], [0, 0, 0], 'the blocks read lately are kept')
  t.is(await hashes(11), 1, 'the one read longest ago was let go')

  Hypercore.setBlockCacheSize(0)
  t.is(blockCacheUsed(), 0, 'a budget of 0 keeps nothing')
  await core.get(5)
  t.is(blockCacheUsed(), 0)

  Hypercore.setBlockCacheSize(DEFAULT_BLOCK_CACHE_BYTES)
  await core.get(5)
  await core.get(5)
  t.ok(blockCacheUsed() > 0)
  await core.close()
  t.is(blockCacheUsed(), 0, 'closing the core lets go of its blocks')
  t.exception.all(() => Hypercore.setBlockCacheSize(-1), /non-negative integer/)
  t.exception.all(() => Hypercore.setBlockCacheSize(1.5), /non-negative integer/)
})
