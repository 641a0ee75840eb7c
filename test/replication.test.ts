/**
 * nomadcore ↔ nomadcore replication: learning lengths, sparse reads,
 * downloads and their handles, live appends, several peers, peers that go
 * away, timeouts, events, extensions, findingPeers and many cores sharing
 * one connection.
 */
import test from 'brittle'
import b4a from 'b4a'
import Protomux from 'protomux'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import { blocks, text } from './helpers/core'
import { memoryFiles } from './helpers/storage'
import { ramCore, replicate, pipePair, once, until, sleep, rejection, stateAfter, FakePeer, honestAnswer, type Pipeable } from './helpers/replication'
import RAM from 'random-access-memory'
import type { Peer } from '../lib/peer'
import { Hypercore, type DownloadHandle as Download } from '../lib/hypercore'
import { BUSY_MS, schedulePass } from '../lib/loop-turns'
import type { Teardownable } from './helpers/oracle'

function blockText (i: number): string {
  return text(blocks(1, i)[0])
}

function byteLen (i: number): number {
  return blocks(1, i)[0]!.byteLength
}

/** A writer with `n` blocks and an empty reader of the same key. */
async function writerAndReader (t: Teardownable, n: number): Promise<{ w: Hypercore, r: Hypercore }> {
  const w = await ramCore(t)
  if (n > 0) await w.append(blocks(n))
  const r = await ramCore(t, w.key)
  return { w, r }
}

async function storedBlocks (core: Hypercore): Promise<number> {
  return (await core.info()).blocks
}

async function haveList (core: Hypercore): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < core.length; i++) if (await core.has(i)) out.push(i)
  return out
}

// ---------------------------------------------------------------------------
// Length and sparse reads

test('update() learns the writer\'s length, byte length and fork without downloading a block', async t => {
  const { w, r } = await writerAndReader(t, 10)
  replicate(t, w, r)
  t.is(await r.update({ wait: true }), true, 'update resolves true when the core grew')
  t.is(r.length, 10)
  t.is(r.byteLength, w.byteLength)
  t.is(r.fork, 0)
  t.is(r.contiguousLength, 0, 'no block was fetched')
  t.is(await storedBlocks(r), 0)
  t.alike(await r.treeHash(), await w.treeHash(), 'the verified tree is the writer\'s')
  t.is(await r.update({ wait: true }), false, 'a second update with nothing new resolves false')
})

test('update() without peers resolves false at once', async t => {
  const { r } = await writerAndReader(t, 3)
  t.is(await r.update({ wait: true }), false)
  t.is(r.length, 0)
})

// Code V8 optimised for one connection's closures is thrown away once that connection is collected.
test('every channel, of every core and connection, is handled by the same functions: none are made per connection', async t => {
  const one = await writerAndReader(t, 3)
  const two = await writerAndReader(t, 3)
  replicate(t, one.w, one.r)
  replicate(t, two.w, two.r)
  await one.r.update({ wait: true })
  await two.r.update({ wait: true })
  const channels = [one.w, one.r, two.w, two.r].map(core => core.peers[0]!.channel)
  t.is(new Set(channels).size, 4, 'four channels')
  const handlers = (c: typeof channels[number]): unknown[] => c.messages.map(m => (m as unknown as { onmessage: unknown }).onmessage)
  for (const c of channels.slice(1)) t.alike(handlers(c), handlers(channels[0]!), 'the same message handlers, one for one')
})

test('get(i) on a reader fetches and verifies only block i', async t => {
  const { w, r } = await writerAndReader(t, 16)
  replicate(t, w, r)
  await r.update({ wait: true })
  const downloads: Array<[number, number]> = []
  const uploads: Array<[number, number]> = []
  r.on('download', (i, n) => downloads.push([i, n]))
  w.on('upload', (i, n) => uploads.push([i, n]))

  t.is(text(await r.get(5)), blockText(5))
  t.alike(downloads, [[5, byteLen(5)]], 'one download event, for block 5')
  t.alike(uploads, [[5, byteLen(5)]], 'the writer uploaded block 5 only')
  t.alike(await haveList(r), [5], 'only block 5 is stored')
  t.is(r.contiguousLength, 0)
  t.is(await storedBlocks(r), 1)
  t.absent(await r.has(4))
  t.absent(await r.has(6))
  t.is(text(await r.get(5)), blockText(5), 'a second read is local')
  t.is(downloads.length, 1, 'and downloads nothing')
})

test('get(i) before update() first learns the length, then fetches the block', async t => {
  const { w, r } = await writerAndReader(t, 8)
  replicate(t, w, r)
  t.is(text(await r.get(7)), blockText(7))
  t.is(r.length, 8)
  t.alike(await haveList(r), [7])
})

test('sparse reads of scattered blocks in a larger core store exactly those blocks', async t => {
  const { w, r } = await writerAndReader(t, 300)
  replicate(t, w, r)
  await r.update({ wait: true })
  const wanted = [0, 1, 63, 64, 150, 255, 256, 299]
  const values = await Promise.all(wanted.map(i => r.get(i)))
  t.alike(values.map(text), wanted.map(blockText))
  t.alike(await haveList(r), wanted)
  t.is(r.contiguousLength, 2)
})

// ---------------------------------------------------------------------------
// download()

test('download({ start, end }) resolves done() once exactly that range is stored', async t => {
  const { w, r } = await writerAndReader(t, 20)
  replicate(t, w, r)
  await r.update({ wait: true })
  const dl = r.download({ start: 4, end: 12 })
  await dl.done()
  t.ok(await r.has(4, 12), 'the range is stored')
  t.alike(await haveList(r), [4, 5, 6, 7, 8, 9, 10, 11], 'nothing outside it')
  for (let i = 4; i < 12; i++) t.is(text(await r.get(i, { wait: false })), blockText(i))
})

test('download({ blocks }) fetches exactly the listed blocks', async t => {
  const { w, r } = await writerAndReader(t, 20)
  replicate(t, w, r)
  await r.update({ wait: true })
  await r.download({ blocks: [17, 2, 9] }).done()
  t.alike(await haveList(r), [2, 9, 17])
})

test('download() of everything (no range) fetches every block and follows appends', async t => {
  const { w, r } = await writerAndReader(t, 40)
  replicate(t, w, r)
  r.download()
  await until(() => r.contiguousLength === 40, 3000, 'all 40 blocks')
  t.is(await storedBlocks(r), 40)
  await w.append(blocks(5, 40))
  await until(() => r.contiguousLength === 45, 3000, 'the appended blocks')
  t.is(text(await r.get(44, { wait: false })), blockText(44))
})

test('a download of a range already stored resolves at once', async t => {
  const { w, r } = await writerAndReader(t, 5)
  replicate(t, w, r)
  await r.update({ wait: true })
  await r.download({ start: 0, end: 5 }).done()
  t.is(await stateAfter(r.download({ start: 1, end: 3 }).done(), 20), 'resolved')
  t.is(await stateAfter(r.download({ blocks: [] }).done(), 20), 'resolved', 'an empty block list is done')
})

test('a range past the current length resolves when the writer appends the rest', async t => {
  const { w, r } = await writerAndReader(t, 10)
  replicate(t, w, r)
  await r.update({ wait: true })
  const dl = r.download({ start: 8, end: 12 })
  t.is(await stateAfter(dl.done(), 100), 'pending', 'blocks 10 and 11 do not exist yet')
  await w.append(blocks(2, 10))
  await dl.done()
  t.ok(await r.has(8, 12))
})

test('destroy() on a pending download makes done() resolve false, as in Hypercore 11', async t => {
  const { w, r } = await writerAndReader(t, 10)
  replicate(t, w, r)
  await r.update({ wait: true })
  const dl = r.download({ start: 0, end: 20 }) // 10..19 do not exist
  await until(() => r.contiguousLength === 10, 3000, 'the existing blocks')
  t.is(await stateAfter(dl.done(), 20), 'pending')
  dl.destroy()
  t.is(await dl.done(), false)
  t.is(r.contiguousLength, 10, 'what was downloaded stays')
})

test('destroy() on a download with no peers makes done() resolve false', async t => {
  const { r } = await writerAndReader(t, 0)
  const dl = r.download({ blocks: [1, 2] })
  dl.destroy()
  t.is(await dl.done(), false)
})

test('a completed download resolves done() with true', async t => {
  const { w, r } = await writerAndReader(t, 4)
  replicate(t, w, r)
  t.is(await r.download({ start: 0, end: 4 }).done(), true)
})

test('closing the core ends its downloads and rejects pending gets with REQUEST_CANCELLED', async t => {
  const { w, r } = await writerAndReader(t, 3)
  replicate(t, w, r)
  await r.update({ wait: true })
  const dl = r.download({ start: 0, end: 10 })
  let waiting!: () => void
  const isWaiting = new Promise<void>(resolve => { waiting = resolve })
  const get = r.get(9, { onwait: () => waiting() })
  await isWaiting
  const removed = once(w, 'peer-remove')
  await r.close()
  t.is(await dl.done(), false)
  t.is((await rejection(get))?.code, 'REQUEST_CANCELLED')
  await removed
  t.is(w.peers.length, 0, 'the writer dropped the closed reader')
})

// ---------------------------------------------------------------------------
// Live appends

test('live appends reach a connected reader: append event, then get', async t => {
  const { w, r } = await writerAndReader(t, 3)
  replicate(t, w, r)
  await r.update({ wait: true })
  for (let round = 0; round < 3; round++) {
    const appended = once(r, 'append')
    await w.append(blocks(2, 3 + 2 * round))
    await appended
    await until(() => r.length === 5 + 2 * round, 2000, 'length ' + (5 + 2 * round))
    t.is(text(await r.get(4 + 2 * round)), blockText(4 + 2 * round), 'round ' + round)
  }
  t.alike(await haveList(r), [4, 6, 8], 'still sparse')
})

test('every append event on a reader comes with a longer length', async t => {
  const { w, r } = await writerAndReader(t, 2)
  const lengths: number[] = []
  r.on('append', () => lengths.push(r.length))
  replicate(t, w, r)
  await r.update({ wait: true })
  for (let n = 3; n <= 5; n++) {
    await w.append(blocks(1, n - 1))
    await until(() => r.length === n, 2000, 'length ' + n)
  }
  await sleep(30)
  t.alike(lengths, [2, 3, 4, 5])
})

test('a get() waiting for a block that does not exist yet resolves when it is appended', async t => {
  const { w, r } = await writerAndReader(t, 2)
  replicate(t, w, r)
  await r.update({ wait: true })
  const get = r.get(4)
  t.is(await stateAfter(get, 50), 'pending')
  await w.append(blocks(3, 2))
  t.is(text(await get), blockText(4))
})

test('a live read stream on a reader yields blocks as they are appended', async t => {
  const { w, r } = await writerAndReader(t, 2)
  replicate(t, w, r)
  await r.update({ wait: true })
  const got: string[] = []
  const stream = r.createReadStream({ live: true })
  stream.on('error', () => {}) // the core closes under it at teardown
  stream.on('data', (v: unknown) => got.push(text(v)))
  await until(() => got.length === 2, 2000, 'existing blocks')
  await w.append(blocks(2, 2))
  await until(() => got.length === 4, 2000, 'appended blocks')
  t.alike(got, [0, 1, 2, 3].map(blockText))
  stream.destroy()
})

// ---------------------------------------------------------------------------
// Several peers

test('a reader connected to two seeders downloads from both', async t => {
  const { w, r } = await writerAndReader(t, 200)
  const s = await ramCore(t, w.key)
  replicate(t, w, s)
  await s.update({ wait: true })
  await s.download({ start: 0, end: 200 }).done()

  replicate(t, w, r)
  replicate(t, s, r)
  await until(() => r.peers.length === 2, 2000, 'two peers')
  const from = new Map<Peer, number>()
  r.on('download', (_i, _n, peer) => from.set(peer, (from.get(peer) ?? 0) + 1))
  await r.update({ wait: true })
  await r.download({ start: 0, end: 200 }).done()
  t.is(r.contiguousLength, 200)
  const total = (): number => [...from.values()].reduce((a, b) => a + b, 0)
  await until(() => total() >= 200, 2000, '200 download events') // see the done()/event ordering test
  await sleep(20)
  t.is(total(), 200, 'each block downloaded once')
  t.is(from.size, 2, 'both seeders served blocks')
  for (const i of [0, 99, 199]) t.is(text(await r.get(i)), blockText(i))
})

test('every download event has fired by the time download().done() resolves (as in Hypercore 11)', async t => {
  // Hypercore 11 emits 'download' for a block as soon as it is stored, so a
  // listener counting events sees all of them when done() resolves.
  const { w, r } = await writerAndReader(t, 500)
  replicate(t, w, r)
  await r.update({ wait: true })
  const seen = new Set<number>()
  r.on('download', i => seen.add(i))
  await r.download({ start: 0, end: 500 }).done()
  t.is(r.contiguousLength, 500)
  t.is(seen.size, 500, 'download events seen when done() resolved')
})

test('a downloading reader tells the writer what it stored in the frames that carry its requests', async t => {
  // Each batch the reader stores is announced to its peers (a range message,
  // as Hypercore 11 sends). Sent at once, every batch cost a frame of its own
  // besides the frame of the requests that followed: the reader sent more
  // frames than the writer that answered it (34 against 27 here).
  const { w, r } = await writerAndReader(t, 2000)
  const { a, b } = replicate(t, w, r)
  let writerFrames = 0
  let readerFrames = 0
  a.on('data', () => { writerFrames++ })
  b.on('data', () => { readerFrames++ })
  await r.download({ start: 0, end: 2000 }).done()
  t.ok(readerFrames < writerFrames, `the reader sent ${readerFrames} frames, the writer ${writerFrames}`)
  // And the writer still hears of every block: the reader holds them all.
  await until(() => (w.peers[0] as Peer).remoteContiguous === 2000, 3000, 'the writer to learn the reader holds every block')
  t.pass('the writer knows the reader holds all 2,000 blocks')
})

/**
 * A writer of `n` blocks, a reader, and between them a fake peer answering
 * honestly from the writer: each request in order as it comes, or with
 * `reverse` every batch of requests it receives in reverse; refusing the
 * blocks in `refuse` once each (and announcing each again at once with
 * `reannounce`). Counts what the reader asks for.
 */
async function fakeSeeder (t: Teardownable, n: number, { reverse = false, refuse = [] as number[], reannounce = true } = {}): Promise<{ w: Hypercore, r: Hypercore, fake: FakePeer, asked: Map<number, number>, nodes: () => number }> {
  const { w, r } = await writerAndReader(t, n)
  const asked = new Map<number, number>()
  const refusing = new Set(refuse)
  let nodes = 0
  let answered = Promise.resolve()
  let batch: Array<Parameters<typeof honestAnswer>[1]> = []
  const answer = async (p: FakePeer, req: Parameters<typeof honestAnswer>[1]): Promise<void> => {
    const index = req.block?.index ?? -1
    if (refusing.delete(index)) {
      p.sendNoData({ request: req.id, reason: 0 })
      if (reannounce) p.sendRange({ drop: false, start: index, length: 1 })
    } else {
      p.sendData(await honestAnswer(w, req) as never)
    }
  }
  const fake = new FakePeer(t, w.key!, {
    onopen: p => {
      p.sendSync({ length: n })
      p.sendRange({ drop: false, start: 0, length: n })
    },
    onrequest: (p, m) => {
      if (m.block !== null) {
        nodes += m.block.nodes
        asked.set(m.block.index, (asked.get(m.block.index) ?? 0) + 1)
      }
      if (!reverse) {
        answered = answered.then(async () => await answer(p, m))
        return
      }
      if (batch.push(m) > 1) return
      setImmediate(() => {
        const reversed = batch.reverse()
        batch = []
        void (async () => { for (const req of reversed) await answer(p, req) })()
      })
    }
  })
  r.replicate(fake.stream)
  await fake.open()
  return { w, r, fake, asked, nodes: () => nodes }
}

test('a reader downloading block after block asks for about one proof node a block, and for each block once', async t => {
  // Each proof need only climb to a node an earlier answer of the same peer
  // brings (test/proof-sizing.test.ts has the model): one node a block,
  // where climbing to where each block's way met the last one's took two.
  // A peer answering in order (this one), honestly, from the writer.
  const n = 5000
  const { r, asked, nodes } = await fakeSeeder(t, n)
  await r.download({ start: 0, end: n }).done()
  t.is(r.contiguousLength, n)
  t.is(asked.size, n, 'every block asked for')
  t.ok([...asked.values()].every(c => c === 1), 'each once: no answer came short')
  t.ok(nodes() < 1.01 * n, `${nodes()} proof nodes asked for ${n} blocks`)
})

test('answers that overtake the one they lean on wait for it: a peer answering out of order is asked for each block once', async t => {
  // A sized proof leans on the answer for the block asked just before; a
  // peer that answers out of order (Hypercore 11 writers do now and then)
  // sends answers that do not reach a node we hold yet. They wait for the
  // one they lean on instead of being asked again. This peer answers every
  // batch of requests it receives in reverse: all but one answer of each
  // batch overtakes the one it leans on.
  const n = 4000
  const { r, asked, nodes } = await fakeSeeder(t, n, { reverse: true })
  await r.download({ start: 0, end: n }).done()
  t.is(r.contiguousLength, n)
  t.is(asked.size, n, 'every block asked for')
  t.ok([...asked.values()].every(c => c === 1), 'each once: no answer was asked again')
  t.is((r.peers[0] as Peer).shortProofs, 0, 'no answer counted short')
  t.ok(nodes() < 1.01 * n, `${nodes()} proof nodes asked for ${n} blocks`)
})

/** A 4,000-block download from a fake seeder that refuses `block` once and announces it again at once: it alone is asked twice. */
async function refusedOnceThenAnnounced (t: test.Context, block: number, { reverse }: { reverse: boolean }): Promise<void> {
  const n = 4000
  const { r, asked } = await fakeSeeder(t, n, { reverse, refuse: [block], reannounce: true })
  await r.download({ start: 0, end: n }).done()
  t.is(r.contiguousLength, n, 'every block stored')
  t.is(asked.get(block), 2, 'the refused block asked again, once')
  t.alike([...asked].filter(([i, c]) => c > 1 && i !== block), [], 'no other block asked twice')
}

test('an answer whose awaited answer is refused and asked again waits for the second one', async t => {
  // The peer says it lacks block 2500 the first time (and announces it
  // again at once): 2500 is asked again, and the answer for 2501, which
  // leans on it, waits for that answer.
  await refusedOnceThenAnnounced(t, 2500, { reverse: true })
})

test('a refused block asked again leans on no answer that waits for it', async t => {
  // Block 1024 begins a subtree of 1,024 blocks; refused, then announced
  // again, it is asked again once the answers of the blocks after it (each
  // leaning on the one before, down to 1024) wait for it. Sized against the
  // block asked last, its answer would wait on them in turn: nothing would
  // let the circle go and the download would stall with nothing in flight.
  await refusedOnceThenAnnounced(t, 1024, { reverse: false })
})

test('an answer waiting for one that will not come is let go, and its block asked again in full', async t => {
  // Refused, and not announced again: block 2500 is not asked again, so the
  // answer for 2501 waits in vain, and 2501 is asked again with every node
  // it lacks. 2500 comes once the peer announces it.
  const n = 4000
  const { w, r, fake, asked } = await fakeSeeder(t, n, { reverse: true, refuse: [2500], reannounce: false })
  const stored = new Set<number>()
  r.on('download', (index: number) => stored.add(index))
  const all = r.download({ start: 0, end: n })
  await until(() => stored.size === n - 1, 10000, 'every block but 2500')
  t.absent(stored.has(2500), 'block 2500 not here yet')
  t.is(asked.get(2500), 1, 'the refused block not asked again')
  t.is(asked.get(2501), 2, 'the block whose answer leaned on it asked again')
  t.alike([...asked].filter(([i, c]) => c > 1 && i !== 2501), [], 'no other block asked twice')
  fake.sendRange({ drop: false, start: 2500, length: 1 })
  await all.done()
  t.is(r.contiguousLength, n, 'then every block')
  for (const i of [2499, 2500, 2501]) t.alike(await r.get(i), await w.get(i), `block ${i} as written`)
})

test('an answer left waiting by the last refusal is judged again, though nothing else comes', async t => {
  // Everything else is stored; then the peer answers the last block (which
  // leans on the one before) and, in the same breath, refuses the one before.
  // The pass after the refusal still counts on that block being asked again
  // (the last block's answer waits), but nobody has it to give: the pass
  // after that must come, though no answer or write is left to bring it, and
  // let the last block's answer go, to be asked again in full.
  const n = 3000
  const { w, r } = await writerAndReader(t, n)
  const asked = new Map<number, number>()
  const kept: Array<Parameters<typeof honestAnswer>[1]> = []
  const stored = new Set<number>()
  r.on('download', (i: number) => stored.add(i))
  const fake = new FakePeer(t, w.key!, {
    onopen: p => {
      p.sendSync({ length: n })
      p.sendRange({ drop: false, start: 0, length: n })
    },
    onrequest: async (p, m) => {
      const index = m.block?.index ?? -1
      if (index !== -1) asked.set(index, (asked.get(index) ?? 0) + 1)
      if (index >= n - 2 && asked.get(index) === 1) {
        kept.push(m)
        return
      }
      p.sendData(await honestAnswer(w, m) as never)
    }
  })
  r.replicate(fake.stream)
  await fake.open()
  const all = r.download({ start: 0, end: n })
  await until(() => stored.size === n - 2 && kept.length === 2, 10000, 'all but the last two')
  const [before, last] = kept.sort((a, b) => a.block!.index - b.block!.index)
  const answer = await honestAnswer(w, last!)
  fake.sendData(answer as never)
  fake.sendNoData({ request: before!.id, reason: 0 })
  await until(() => stored.has(n - 1), 10000, 'the last block, asked again')
  t.is(asked.get(n - 1), 2, 'the last block asked again once its answer stopped waiting')
  t.is(last!.block!.nodes, 0, 'first asked with no proof node: it leans on the block before')
  t.is(asked.get(n - 2), 1, 'the refused block not asked again: nobody announced it')
  fake.sendRange({ drop: false, start: n - 2, length: 1 })
  await all.done()
  t.is(r.contiguousLength, n, 'then every block')
})

test('answers waiting on a peer that leaves are let go, and their blocks come from another peer', async t => {
  // The fake peer answers its first batch in reverse but keeps back the
  // answer the others lean on, then leaves: the answers that waited prove
  // nothing now and are asked again, of the writer itself.
  const n = 2000
  const { w, r } = await writerAndReader(t, n)
  let batch: Array<Parameters<typeof honestAnswer>[1]> = []
  let held = 0
  const fake = new FakePeer(t, w.key!, {
    onopen: p => {
      p.sendSync({ length: n })
      p.sendRange({ drop: false, start: 0, length: n })
    },
    onrequest: (p, m) => {
      if (batch.push(m) > 1) return
      setImmediate(() => {
        const reversed = batch.reverse()
        batch = []
        if (held > 0) return
        // The first batch of many: all but its first request answered, then gone.
        const holding = reversed.length >= 8
        if (holding) held = reversed.length - 1
        void (async () => {
          for (const req of holding ? reversed.slice(0, -1) : reversed) p.sendData(await honestAnswer(w, req) as never)
          if (holding) setTimeout(() => fake.stream.destroy(), 50)
        })()
      })
    }
  })
  const errors: Error[] = []
  r.on('verification-error', (err: Error) => errors.push(err))
  r.replicate(fake.stream)
  await fake.open()
  const all = r.download({ start: 0, end: n })
  await until(() => fake.stream.destroyed, 5000, 'the fake peer to leave')
  t.ok(held > 1, `${held} answers sent ahead of the one kept back`)
  replicate(t, w, r)
  await all.done()
  t.is(r.contiguousLength, n, 'every block, from the writer')
  t.alike(errors, [], 'nobody was taken for a liar')
  for (let i = 0; i < n; i += 97) t.alike(await r.get(i), await w.get(i), `block ${i} as written`)
})

test('a peer that opens while stored blocks wait to be announced hears of them once, as it opens', async t => {
  // Announcements wait for the next pass; a pass that has to wait for a turn
  // of the event loop (the busy budget spent) may find a peer that opened
  // meanwhile, which learnt our length as it opened: it must not hear again.
  const w = await ramCore(t)
  const fake = new FakePeer(t, w.key!)
  schedulePass(() => {})
  const spent = Date.now() + BUSY_MS + 2
  while (Date.now() < spent) { /* the busy budget, spent */ }
  const appended = w.append(blocks(2))
  w.replicate(fake.stream)
  await appended
  await fake.open()
  await until(() => fake.remoteOpened, 2000, 'open')
  await sleep(50)
  const ranges = fake.received.filter(m => m.type === 'range').map(m => m.message)
  t.alike(ranges, [{ drop: false, start: 0, length: 2 }], 'one range: the one sent as it opened')
})

test('a reader connected only to a seeder (not the writer) gets verified blocks and live appends', async t => {
  const { w, r } = await writerAndReader(t, 10)
  const s = await ramCore(t, w.key)
  replicate(t, w, s)
  s.download() // the seeder keeps everything
  replicate(t, s, r)
  await until(() => s.contiguousLength === 10, 2000, 'seeder full')
  await r.update({ wait: true })
  t.is(r.length, 10)
  t.is(text(await r.get(6)), blockText(6))
  await w.append(blocks(1, 10))
  await until(() => r.length === 11, 3000, 'the append relayed through the seeder')
  t.is(text(await r.get(10)), blockText(10))
})

test('requests held by a peer that disconnects move to another peer', async t => {
  const { w, r } = await writerAndReader(t, 64)
  // A seeder that announces everything, answers upgrades, and sits on block requests.
  const held: number[] = []
  const fake = new FakePeer(t, w.key!, {
    onopen: p => {
      p.sendSync({ length: 64 })
      p.sendRange({ drop: false, start: 0, length: 64 })
    },
    onrequest: async (p, m) => {
      if (m.block !== null) held.push(m.block.index)
      else p.sendData(await honestAnswer(w, m) as never)
    }
  })
  r.replicate(fake.stream)
  await fake.open()
  await until(() => r.peers.length === 1, 2000, 'the fake peer')
  await r.update({ wait: true })
  t.is(r.length, 64)

  replicate(t, w, r)
  await until(() => r.peers.length === 2, 2000, 'the honest peer')
  const honest = r.peers.find(p => p.remotePublicKey !== null && !b4a.equals(p.remotePublicKey, fake.local.publicKey!))!
  const from = new Map<number, Peer>()
  r.on('download', (i, _n, peer) => from.set(i, peer))
  const dl = r.download({ start: 0, end: 64 })
  await until(() => held.length > 0, 2000, 'requests held by the fake peer')
  await sleep(50)
  t.ok(held.length > 0, held.length + ' requests sit with the fake peer')
  for (const i of held) t.absent(await r.has(i), 'held block ' + i + ' is not here')

  const removed = once(r, 'peer-remove')
  fake.destroy()
  await removed
  await dl.done()
  t.is(r.contiguousLength, 64, 'the download completed')
  await until(() => held.every(i => from.has(i)), 2000, 'download events of the held blocks')
  t.ok(held.every(i => from.get(i) === honest), 'every held block came from the remaining peer')
})

// ---------------------------------------------------------------------------
// wait / timeout

test('get with wait: false returns null for a block that is not here', async t => {
  const { w, r } = await writerAndReader(t, 5)
  replicate(t, w, r)
  await r.update({ wait: true })
  const downloads: number[] = []
  r.on('download', i => downloads.push(i))
  t.is(await r.get(2, { wait: false }), null)
  t.is(await r.get(99, { wait: false }), null, 'past the length too')
  await sleep(30)
  t.alike(downloads, [], 'nothing was requested')
})

test('get with a timeout rejects with REQUEST_TIMEOUT when nobody has the block', async t => {
  const { w, r } = await writerAndReader(t, 5)
  replicate(t, w, r)
  await r.update({ wait: true })
  const started = Date.now()
  const err = await rejection(r.get(50, { timeout: 150 }))
  t.is(err?.code, 'REQUEST_TIMEOUT')
  t.ok(Date.now() - started >= 140, 'after about the timeout')
  t.is(text(await r.get(1, { timeout: 1000 })), blockText(1), 'the core still works')
})

test('get with a timeout rejects when the only peer cleared the block', async t => {
  const { w, r } = await writerAndReader(t, 5)
  await w.clear(2)
  replicate(t, w, r)
  await r.update({ wait: true })
  const err = await rejection(r.get(2, { timeout: 200 }))
  t.is(err?.code, 'REQUEST_TIMEOUT')
  t.absent(await r.has(2))
  t.is(text(await r.get(3, { timeout: 1000 })), blockText(3))
})

// ---------------------------------------------------------------------------
// Events and peers

test('peer-add, upload, download and peer-remove fire with the peer, index and byte length', async t => {
  const { w, r } = await writerAndReader(t, 6)
  const wAdd = once<[Peer]>(w, 'peer-add')
  const rAdd = once<[Peer]>(r, 'peer-add')
  const link = replicate(t, w, r)
  const [wp] = await wAdd
  const [rp] = await rAdd
  t.alike(w.peers, [wp], 'the writer lists its peer')
  t.alike(r.peers, [rp], 'the reader lists its peer')
  const streams = link as { a: Pipeable & { publicKey?: Uint8Array }, b: Pipeable & { publicKey?: Uint8Array } }
  t.ok(rp.remotePublicKey !== null && b4a.equals(rp.remotePublicKey, streams.a.publicKey!), 'reader\'s peer is the writer\'s stream key')
  t.ok(wp.remotePublicKey !== null && b4a.equals(wp.remotePublicKey, streams.b.publicKey!), 'writer\'s peer is the reader\'s stream key')

  const uploads: Array<[number, number, Peer]> = []
  const downloads: Array<[number, number, Peer]> = []
  w.on('upload', (i, n, p) => uploads.push([i, n, p]))
  r.on('download', (i, n, p) => downloads.push([i, n, p]))
  await r.get(3)
  t.is(uploads.length, 1)
  t.is(uploads[0]![0], 3)
  t.is(uploads[0]![1], byteLen(3))
  t.is(uploads[0]![2], wp)
  t.is(downloads.length, 1)
  t.is(downloads[0]![0], 3)
  t.is(downloads[0]![1], byteLen(3))
  t.is(downloads[0]![2], rp)

  const wRemove = once<[Peer]>(w, 'peer-remove')
  const rRemove = once<[Peer]>(r, 'peer-remove')
  link.destroy()
  t.is((await wRemove)[0], wp)
  t.is((await rRemove)[0], rp)
  t.alike(w.peers, [])
  t.alike(r.peers, [])
})

test('peers lists every connected peer and forgets the ones that leave', async t => {
  const w = await ramCore(t)
  await w.append(blocks(2))
  const readers = await Promise.all([0, 1, 2].map(() => ramCore(t, w.key)))
  const links = readers.map(r => replicate(t, w, r))
  await until(() => w.peers.length === 3, 2000, 'three peers')
  for (const r of readers) await until(() => r.peers.length === 1, 2000, 'one peer each')
  links[1]!.destroy()
  await until(() => w.peers.length === 2, 2000, 'two peers')
  t.is(w.peers.length, 2)
  t.is(readers[1]!.peers.length, 0)
})

test('a stream that is opened for another core adds no peer', async t => {
  const w = await ramCore(t)
  await w.append(blocks(1))
  const other = await ramCore(t)
  let added = 0
  w.on('peer-add', () => added++)
  other.on('peer-add', () => added++)
  replicate(t, w, other)
  await sleep(150)
  t.is(added, 0)
  t.is(w.peers.length, 0)
  t.is(other.peers.length, 0)
})

// ---------------------------------------------------------------------------
// Extensions

test('registerExtension: send and broadcast JSON both ways, with the peer', async t => {
  const { w, r } = await writerAndReader(t, 1)
  const wGot: Array<[unknown, Peer]> = []
  const rGot: Array<[unknown, Peer]> = []
  const wExt = w.registerExtension<{ hello: string }>('chat', { encoding: 'json', onmessage: (m, p) => wGot.push([m, p]) })
  const rExt = r.registerExtension<{ hello: string }>('chat', { encoding: 'json', onmessage: (m, p) => rGot.push([m, p]) })
  replicate(t, w, r)
  await until(() => w.peers.length === 1 && r.peers.length === 1, 2000, 'peers')

  rExt.broadcast({ hello: 'from the reader' })
  await until(() => wGot.length === 1, 2000, 'writer got it')
  t.alike(wGot[0]![0], { hello: 'from the reader' })
  t.is(wGot[0]![1], w.peers[0], 'with the peer it came from')

  wExt.send({ hello: 'from the writer' }, w.peers[0]!)
  await until(() => rGot.length === 1, 2000, 'reader got it')
  t.alike(rGot[0]![0], { hello: 'from the writer' })
  t.is(rGot[0]![1], r.peers[0])

  wExt.broadcast({ hello: 'again' })
  await until(() => rGot.length === 2, 2000, 'reader got the broadcast')
  t.alike(rGot[1]![0], { hello: 'again' })
})

test('extensions: interleaved names reach the right handler; unknown and destroyed ones are ignored', async t => {
  const { w, r } = await writerAndReader(t, 1)
  const got: string[] = []
  r.registerExtension<string>('a', { encoding: 'utf-8', onmessage: m => got.push('a:' + m) })
  const rb = r.registerExtension<string>('b', { encoding: 'utf-8', onmessage: m => got.push('b:' + m) })
  const wa = w.registerExtension<string>('a', { encoding: 'utf-8' })
  const wb = w.registerExtension<string>('b', { encoding: 'utf-8' })
  const wc = w.registerExtension<string>('c', { encoding: 'utf-8' })
  replicate(t, w, r)
  await until(() => w.peers.length === 1 && r.peers.length === 1, 2000, 'peers')
  wa.broadcast('1')
  wa.broadcast('2') // same name again: sent with the name elided
  wb.broadcast('3')
  wc.broadcast('nobody listens')
  wa.broadcast('4')
  wb.broadcast('5')
  await until(() => got.length === 5, 2000, 'five messages')
  t.alike(got, ['a:1', 'a:2', 'b:3', 'a:4', 'b:5'])
  rb.destroy()
  wb.broadcast('6')
  wa.broadcast('7')
  await until(() => got.length === 6, 2000, 'the a message')
  await sleep(30)
  t.alike(got.slice(5), ['a:7'], 'the destroyed extension receives nothing')
})

test('an extension message that does not decode is dropped, the peer stays', async t => {
  const { w, r } = await writerAndReader(t, 2)
  const got: unknown[] = []
  r.registerExtension('j', { encoding: 'json', onmessage: m => got.push(m) })
  const wj = w.registerExtension<string>('j', { encoding: 'utf-8' })
  replicate(t, w, r)
  await until(() => w.peers.length === 1 && r.peers.length === 1, 2000, 'peers')
  wj.broadcast('{not json')
  wj.broadcast('{"ok":true}')
  await until(() => got.length === 1, 2000, 'the good one')
  t.alike(got, [{ ok: true }])
  t.is(r.peers.length, 1)
  t.is(text(await r.get(1)), blockText(1))
})

// ---------------------------------------------------------------------------
// findingPeers

test('findingPeers() makes update() wait for a peer until done() is called', async t => {
  const { w, r } = await writerAndReader(t, 7)
  const done = r.findingPeers()
  const update = r.update({ wait: true })
  t.is(await stateAfter(update, 150), 'pending', 'no peer yet, still looking')
  replicate(t, w, r)
  done()
  t.is(await update, true)
  t.is(r.length, 7)
})

test('findingPeers() done with no peer found: update() resolves false', async t => {
  const { r } = await writerAndReader(t, 7)
  const done = r.findingPeers()
  const update = r.update({ wait: true })
  t.is(await stateAfter(update, 100), 'pending')
  done()
  t.is(await update, false)
  done() // twice is harmless
  t.is(await r.update({ wait: true }), false)
})

test('a core used before ready(): replicate, get, download and extensions work once it opens (as in Hypercore 11)', async t => {
  const w = await ramCore(t)
  await w.append(blocks(6))
  const r = new Hypercore(() => new RAM(), w.key)
  t.teardown(() => r.close())
  const got: unknown[] = []
  r.registerExtension('x', { encoding: 'json', onmessage: m => got.push(m) })
  replicate(t, w, r)
  const get = r.get(2)
  let dl: Download | null = null
  let thrown: (Error & { code?: string }) | null = null
  try {
    dl = r.download({ start: 0, end: 6 })
  } catch (err) {
    thrown = err as Error & { code?: string }
  }
  t.is(thrown?.code ?? null, null, 'download() before ready() does not throw (Hypercore 11 queues it)')
  t.is(text(await get), blockText(2), 'get() before ready() works')
  if (dl !== null) {
    await dl.done()
    t.is(r.contiguousLength, 6)
  }
  const wx = w.registerExtension<{ hi: number }>('x', { encoding: 'json' })
  await until(() => w.peers.length === 1, 2000, 'peer')
  wx.broadcast({ hi: 1 })
  await until(() => got.length === 1, 2000, 'the extension message')
  t.alike(got, [{ hi: 1 }], 'an extension registered before ready() receives')
})

test('update() waits for a stream that is still handshaking', async t => {
  const { w, r } = await writerAndReader(t, 4)
  replicate(t, w, r)
  t.is(await r.update({ wait: true }), true, 'called right after replicate()')
  t.is(r.length, 4)
})

// ---------------------------------------------------------------------------
// Many cores, one connection

test('many cores share one stream: replicate(stream) with the stream another core returned', async t => {
  const w1 = await ramCore(t)
  const w2 = await ramCore(t)
  await w1.append(blocks(3))
  await w2.append(blocks(5, 100))
  const r1 = await ramCore(t, w1.key)
  const r2 = await ramCore(t, w2.key)

  const s1 = w1.replicate(true, { keepAlive: false })
  t.is(w2.replicate(s1 as NoiseSecretStream), s1, 'the same stream comes back')
  const s2 = r1.replicate(false, { keepAlive: false })
  r2.replicate(s2 as NoiseSecretStream)
  pipePair(t, s1 as unknown as Pipeable, s2 as unknown as Pipeable)

  await r1.update({ wait: true })
  await r2.update({ wait: true }) // may resolve false: r2 was upgraded eagerly while r1.update({ wait: true }) ran
  t.is(r1.length, 3)
  t.is(r2.length, 5)
  t.is(text(await r1.get(2)), blockText(2))
  t.is(text(await r2.get(4)), blockText(104))
})

test('many cores share one protomux, and cores can join a connection that is already running', async t => {
  const a = new NoiseSecretStream(true)
  const b = new NoiseSecretStream(false)
  pipePair(t, a.rawStream as unknown as Pipeable, b.rawStream as unknown as Pipeable)
  t.teardown(() => { a.destroy(); b.destroy() })
  const muxA = Protomux.from(a as unknown as Protomux.MuxStream)
  const muxB = Protomux.from(b as unknown as Protomux.MuxStream)

  const w1 = await ramCore(t)
  await w1.append(blocks(4))
  const r1 = await ramCore(t, w1.key)
  w1.replicate(muxA)
  r1.replicate(muxB)
  t.ok(await r1.update({ wait: true }))
  t.is(text(await r1.get(3)), blockText(3))

  // A second pair joins later over the same, already open, connection.
  const w2 = await ramCore(t)
  await w2.append(blocks(2, 50))
  const r2 = await ramCore(t, w2.key)
  r2.replicate(muxB)
  w2.replicate(muxA)
  await r2.update({ wait: true })
  t.is(r2.length, 2)
  t.is(text(await r2.get(1)), blockText(51))
  t.is(r1.peers.length, 1)
  t.is(r2.peers.length, 1)
})

test('closing one core on a shared connection leaves the others replicating', async t => {
  const w1 = await ramCore(t)
  const w2 = await ramCore(t)
  await w1.append(blocks(2))
  await w2.append(blocks(2))
  const r1 = await ramCore(t, w1.key)
  const r2 = await ramCore(t, w2.key)
  const s1 = w1.replicate(true, { keepAlive: false })
  w2.replicate(s1 as NoiseSecretStream)
  const s2 = r1.replicate(false, { keepAlive: false })
  r2.replicate(s2 as NoiseSecretStream)
  pipePair(t, s1 as unknown as Pipeable, s2 as unknown as Pipeable)
  await r1.update({ wait: true })
  await r2.update({ wait: true })

  const removed = once(w1, 'peer-remove')
  await r1.close()
  await removed
  t.is(w2.peers.length, 1, 'the other core keeps its peer')
  const appended = once(r2, 'append')
  await w2.append(blocks(1, 2))
  await appended
  t.is(text(await r2.get(2)), blockText(2))
})

test('a writer serving many readers at once reads and hashes each block about once, and every reader ends byte-identical', async t => {
  const files = memoryFiles()
  const writer = new Hypercore(files.factory)
  t.teardown(() => writer.close())
  const data = Array.from({ length: 1500 }, (_, i) => b4a.alloc(1024, i % 251))
  await writer.append(data)
  files.resetCounters()
  const readers = await Promise.all(Array.from({ length: 8 }, () => ramCore(t, writer.key)))
  for (const r of readers) replicate(t, writer, r)
  await Promise.all(readers.map(r => r.download({ start: 0, end: data.length }).done()))
  for (const r of readers) {
    const got = await Promise.all(data.map((_, i) => r.get(i)))
    t.ok(got.every((b, i) => b4a.equals(b as Uint8Array, data[i]!)), 'a reader holds every block as written')
  }
  const read = files.counters('data').readBytes
  const size = 1500 * 1024
  // Each reader served from its own reads would be 8 times the data.
  t.ok(read < 3 * size, `the writer read ${(read / size).toFixed(2)}× its data for 8 readers`)
})

test('a block found rotten while several readers wait for it reaches none of them, and the others do', async t => {
  const files = memoryFiles()
  const writer = new Hypercore(files.factory)
  t.teardown(() => writer.close())
  const data = Array.from({ length: 64 }, (_, i) => b4a.alloc(1024, i + 1))
  await writer.append(data)
  await writer.close()
  // Block 40 rots on disk; the writer reopens and serves.
  await files.poke('data', 40 * 1024 + 100, b4a.from([0xff, 0xee]))
  const served = new Hypercore(files.factory)
  t.teardown(() => served.close())
  await served.ready()
  const readers = await Promise.all(Array.from({ length: 4 }, () => ramCore(t, served.key)))
  for (const r of readers) replicate(t, served, r)
  // All four ask for block 40 at once: one read is shared, found rotten, and none gets it.
  const waits = readers.map(r => rejection(r.get(40, { timeout: 1500 })))
  const others = data.map((_, i) => i).filter(i => i !== 40)
  for (const r of readers) {
    const got = await Promise.all(others.map(i => r.get(i)))
    t.ok(got.every((b, k) => b4a.equals(b as Uint8Array, data[others[k]!]!)), 'every other block, as written')
  }
  for (const err of await Promise.all(waits)) t.is(err?.code, 'REQUEST_TIMEOUT', 'a reader waited in vain for block 40')
  t.is(await served.has(40), false, 'the writer cleared block 40')
  for (const r of readers) t.is(await r.has(40), false, 'no reader holds block 40')
})
