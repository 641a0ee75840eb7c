/**
 * Replication over secret-stream with hypercore@11.35.1 on the other side:
 * Hypercore 11 writer → nomadcore reader, nomadcore writer → Hypercore 11
 * reader, and a nomadcore relay between two Hypercore 11 cores.
 */
import test from 'brittle'
import b4a from 'b4a'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import { blocks, text } from './helpers/core'
import { makeHypercore, tmpDir, type Hypercore as Hypercore11, type Teardownable } from './helpers/oracle'
import { ramCore, replicate, pipePair, once, until, sleep, type Pipeable } from './helpers/replication'
import type { Peer } from '../lib/peer'

function blockText (i: number): string {
  return text(blocks(1, i)[0])
}

/** A Hypercore 11 core in a temp dir, closed at teardown. */
async function hc (t: Teardownable, key?: Uint8Array | null): Promise<Hypercore11> {
  const core = await makeHypercore(await tmpDir(t), key ?? null)
  t.teardown(() => core.close(), { order: 0 })
  return core
}

async function haveList (core: { length: number, has (i: number): Promise<boolean> }): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < core.length; i++) if (await core.has(i)) out.push(i)
  return out
}

// ---------------------------------------------------------------------------
// Hypercore 11 writer → nomadcore reader

test('Hypercore 11 writer → nomadcore reader: update, then a sparse get of one block', async t => {
  const w = await hc(t)
  await w.append(blocks(20))
  const r = await ramCore(t, w.key)
  replicate(t, w, r)
  t.is(await r.update({ wait: true }), true)
  t.is(r.length, 20)
  t.is(r.byteLength, w.byteLength)
  t.alike(await r.treeHash(), await w.treeHash(), 'same tree hash as the writer')
  const uploads: number[] = []
  w.on('upload', i => uploads.push(i))
  t.is(text(await r.get(13)), blockText(13))
  t.alike(await haveList(r), [13], 'only block 13 is stored')
  t.is(r.contiguousLength, 0)
  t.alike(uploads, [13], 'Hypercore 11 uploaded block 13 only')
})

test('Hypercore 11 writer → nomadcore reader: full download, blocks by list, byte-identical', async t => {
  const w = await hc(t)
  await w.append(blocks(300))
  const r = await ramCore(t, w.key)
  replicate(t, w, r)
  await r.update({ wait: true })
  await r.download({ blocks: [299, 0, 150] }).done()
  t.alike(await haveList(r), [0, 150, 299])
  await r.download({ start: 0, end: 300 }).done()
  t.is(r.contiguousLength, 300)
  let same = true
  for (let i = 0; i < 300; i++) {
    const ours = await r.get(i, { wait: false }) as Uint8Array
    const theirs = await w.get(i)
    if (!b4a.equals(ours, theirs!)) same = false
  }
  t.ok(same, 'every block equals the writer\'s')
})

test('Hypercore 11 writer → nomadcore reader: each live append can be fetched right after its append event', async t => {
  // Hypercore 11 announces a new block with `range` before the `sync` that
  // carries the new length; the reader must not lose that announcement.
  const w = await hc(t)
  await w.append(blocks(2))
  const r = await ramCore(t, w.key)
  replicate(t, w, r)
  await r.update({ wait: true })
  for (let round = 0; round < 3; round++) {
    const index = 2 + round
    await w.append(blocks(1, index))
    await until(() => r.length === index + 1, 2000, 'length ' + (index + 1))
    const got = await r.get(index, { timeout: 700 }).then(text, (err: { code?: string }) => 'failed: ' + err.code)
    t.is(got, blockText(index), 'block ' + index + ' right after its append')
  }
})

test('Hypercore 11 writer → nomadcore reader: a live download keeps up with appends', async t => {
  const w = await hc(t)
  await w.append(blocks(2))
  const r = await ramCore(t, w.key)
  replicate(t, w, r)
  await r.update({ wait: true })
  r.download({ start: 0, end: -1 })
  await until(() => r.contiguousLength === 2, 2000, 'the first 2 blocks')
  for (let n = 3; n <= 5; n++) {
    await w.append(blocks(1, n - 1))
    const caught = await until(() => r.contiguousLength === n, 700, n + ' blocks').then(() => true, () => false)
    t.ok(caught, 'contiguousLength reached ' + n + ' (is ' + r.contiguousLength + ')')
    if (!caught) break
  }
})

test('Hypercore 11 writer → nomadcore reader: every append event comes with a longer length', async t => {
  const w = await hc(t)
  await w.append(blocks(2))
  const r = await ramCore(t, w.key)
  const lengths: number[] = []
  r.on('append', () => lengths.push(r.length))
  replicate(t, w, r)
  await r.update({ wait: true })
  await w.append(blocks(1, 2))
  await until(() => r.length === 3, 2000, 'length 3')
  await w.append(blocks(1, 3))
  await until(() => r.length === 4, 2000, 'length 4')
  await sleep(50)
  t.alike(lengths, [2, 3, 4], 'one append event per growth, none without growth')
})

test('Hypercore 11 writer → nomadcore reader: peer events carry the peer; disconnect removes it', async t => {
  const w = await hc(t)
  await w.append(blocks(4))
  const r = await ramCore(t, w.key)
  const added = once<[Peer]>(r, 'peer-add')
  const link = replicate(t, w, r)
  const [peer] = await added
  t.alike(r.peers, [peer])
  const downloads: Array<[number, number, Peer]> = []
  r.on('download', (i, n, p) => downloads.push([i, n, p]))
  await r.get(2)
  t.alike(downloads.map(d => [d[0], d[1]]), [[2, blocks(1, 2)[0]!.byteLength]])
  t.is(downloads[0]![2], peer)
  const removed = once<[Peer]>(r, 'peer-remove')
  link.destroy()
  t.is((await removed)[0], peer)
  t.is(r.peers.length, 0)
})

// ---------------------------------------------------------------------------
// nomadcore writer → Hypercore 11 reader

test('nomadcore writer → Hypercore 11 reader: update (findingPeers), then a sparse get', async t => {
  const w = await ramCore(t)
  await w.append(blocks(20))
  const r = await hc(t, w.key)
  const done = r.findingPeers()
  replicate(t, w, r)
  const uploads: Array<[number, number]> = []
  w.on('upload', (i, n) => uploads.push([i, n]))
  const updating = r.update({ wait: true })
  done()
  t.is(await updating, true)
  t.is(r.length, 20)
  t.is(text(await r.get(7)), blockText(7))
  t.alike(await haveList(r), [7], 'Hypercore 11 stored block 7 only')
  t.alike(uploads, [[7, blocks(1, 7)[0]!.byteLength]], 'we uploaded block 7 only')
})

test('nomadcore writer → Hypercore 11 reader: full download and live appends (update wait)', async t => {
  const w = await ramCore(t)
  await w.append(blocks(300))
  const r = await hc(t, w.key)
  replicate(t, w, r)
  t.is(await r.update({ wait: true }), true)
  t.is(r.length, 300)
  await r.download({ start: 0, end: 300 }).done()
  t.is(r.contiguousLength, 300)
  t.is(text(await r.get(299)), blockText(299))
  t.alike(await r.treeHash(), await w.treeHash(), 'Hypercore 11 computes our tree hash')

  const appended = once(r, 'append')
  await w.append(blocks(2, 300))
  await appended
  await until(() => r.length === 302, 2000, 'Hypercore 11 sees length 302')
  t.is(text(await r.get(301)), blockText(301))
})

test('nomadcore writer → Hypercore 11 reader: get of a block not yet appended resolves once it is', async t => {
  const w = await ramCore(t)
  await w.append(blocks(1))
  const r = await hc(t, w.key)
  replicate(t, w, r)
  await r.update({ wait: true })
  const get = r.get(3)
  await sleep(30)
  await w.append(blocks(3, 1))
  t.is(text(await get), blockText(3))
})

// ---------------------------------------------------------------------------
// A nomadcore relay between two Hypercore 11 cores

test('relay: Hypercore 11 writer ↔ nomadcore ↔ Hypercore 11 reader', async t => {
  const w = await hc(t)
  await w.append(blocks(50))
  const relay = await ramCore(t, w.key)
  const r = await hc(t, w.key)
  replicate(t, w, relay)
  relay.download({ start: 0, end: -1 }) // keep everything, new blocks included
  await until(() => relay.contiguousLength === 50, 3000, 'the relay has everything')

  replicate(t, relay, r) // the reader only knows the relay
  t.is(await r.update({ wait: true }), true)
  t.is(r.length, 50)
  t.is(text(await r.get(42)), blockText(42))
  t.alike(await haveList(r), [42])
  await r.download({ start: 0, end: 50 }).done()
  t.is(r.contiguousLength, 50)

  // New blocks flow through the relay too.
  await w.append(blocks(5, 50))
  await until(() => r.length === 55, 3000, 'the reader learns length 55 through the relay')
  t.is(text(await r.get(54)), blockText(54))
  t.is(relay.contiguousLength, 55)
})

test('relay: a sparse nomadcore relay serves what it has, and what it fetches later', async t => {
  const w = await hc(t)
  await w.append(blocks(30))
  const relay = await ramCore(t, w.key)
  const r = await hc(t, w.key)
  replicate(t, w, relay)
  await relay.update({ wait: true })
  await relay.get(5)
  replicate(t, relay, r)
  await r.update({ wait: true })
  t.is(text(await r.get(5)), blockText(5))
  const later = r.get(20)
  await sleep(50)
  await relay.get(20) // the relay fetches it from the writer; the reader gets it from the relay
  t.is(text(await later), blockText(20))
})

// ---------------------------------------------------------------------------
// Extensions and shared connections across implementations

test('extensions work between Hypercore 11 and nomadcore, both ways', async t => {
  const w = await hc(t)
  await w.append(blocks(1))
  const r = await ramCore(t, w.key)
  const theirs: unknown[] = []
  const ours: unknown[] = []
  const hcExt = (w as unknown as { registerExtension (name: string, h: { encoding: string, onmessage: (m: unknown) => void }): { broadcast (m: unknown): void } })
    .registerExtension('chat', { encoding: 'json', onmessage: m => theirs.push(m) })
  const ext = r.registerExtension('chat', { encoding: 'json', onmessage: m => ours.push(m) })
  replicate(t, w, r)
  await until(() => r.peers.length === 1 && w.peers.length === 1, 2000, 'peers')
  ext.broadcast({ n: 1 })
  ext.broadcast({ n: 2 })
  hcExt.broadcast({ m: 1 })
  await until(() => theirs.length === 2 && ours.length === 1, 2000, 'messages')
  t.alike(theirs, [{ n: 1 }, { n: 2 }])
  t.alike(ours, [{ m: 1 }])
})

test('extensions without an encoding carry bytes Hypercore 11 decodes (length-prefixed), both ways', async t => {
  const w = await hc(t)
  await w.append(blocks(1))
  const r = await ramCore(t, w.key)
  const theirs: unknown[] = []
  const ours: unknown[] = []
  const hcExt = (w as unknown as { registerExtension (name: string, h: { onmessage: (m: unknown) => void }): { broadcast (m: unknown): void } })
    .registerExtension('raw', { onmessage: m => theirs.push(b4a.toString(m as Uint8Array)) })
  const ext = r.registerExtension<Uint8Array>('raw', { onmessage: m => ours.push(b4a.toString(m)) })
  const link = replicate(t, w, r)
  let broken = false
  link.a.on('error', () => { broken = true })
  await until(() => r.peers.length === 1 && w.peers.length === 1, 2000, 'peers')
  ext.broadcast(b4a.from('from nomadcore'))
  hcExt.broadcast(b4a.from('from Hypercore 11'))
  await until(() => theirs.length === 1 && ours.length === 1, 2000, 'messages')
  t.alike(theirs, ['from nomadcore'])
  t.alike(ours, ['from Hypercore 11'])
  t.absent(broken, 'the Hypercore 11 side did not fail to decode')
})

test('two Hypercore 11 cores and two nomadcore cores share one connection', async t => {
  const w1 = await hc(t)
  const w2 = await hc(t)
  await w1.append(blocks(3))
  await w2.append(blocks(4, 10))
  const r1 = await ramCore(t, w1.key)
  const r2 = await ramCore(t, w2.key)
  const s1 = w1.replicate(true, { keepAlive: false })
  w2.replicate(s1)
  const s2 = r1.replicate(false, { keepAlive: false })
  r2.replicate(s2 as NoiseSecretStream)
  pipePair(t, s1 as unknown as Pipeable, s2 as unknown as Pipeable)
  await until(() => r1.peers.length === 1 && r2.peers.length === 1, 2000, 'both channels open')
  await r1.update({ wait: true })
  await r2.update({ wait: true })
  t.is(r1.length, 3)
  t.is(r2.length, 4)
  t.is(text(await r1.get(1)), blockText(1))
  t.is(text(await r2.get(3)), blockText(13))
})

test('a nomadcore reader with two Hypercore 11 seeders completes a download when one leaves', async t => {
  const w = await hc(t)
  await w.append(blocks(100))
  const s = await hc(t, w.key)
  replicate(t, w, s)
  await s.update({ wait: true })
  await s.download({ start: 0, end: 100 }).done()
  const r = await ramCore(t, w.key)
  const linkW = replicate(t, w, r)
  replicate(t, s, r)
  await until(() => r.peers.length === 2, 2000, 'two peers')
  await r.update({ wait: true })
  const dl = r.download({ start: 0, end: 100 })
  let dropped = false
  r.on('download', () => {
    if (!dropped) {
      dropped = true
      linkW.destroy() // the writer leaves mid-download
    }
  })
  await dl.done()
  t.is(r.contiguousLength, 100)
  await until(() => r.peers.length === 1, 2000, 'the writer is gone')
})
