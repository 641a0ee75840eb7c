/**
 * Readers follow a writer's truncation: a peer's signed tree on a higher
 * fork is verified, the common ancestor length found, the local core cut to
 * it and moved to the fork; every block read afterwards is the new fork's.
 * Checked between nomadcore cores and with Hypercore 11 on either side, with
 * a relay in the middle, over repeated truncations.
 */
import test from 'brittle'
import b4a from 'b4a'
import { blocks } from './helpers/core'
import { ramCore, replicate, rejection, until, FakePeer } from './helpers/replication'
import { makeCore, connect, forkBlocks, follows, differingBlocks, sleep, type AnyCore, type Impl } from './helpers/forks'

/**
 * Truncation points below, at and above earlier ones, each followed by new
 * blocks (or none): [truncate to, then append].
 */
const ROUNDS: Array<[number, number]> = [
  [501, 10], // the first truncation
  [300, 50], // below it
  [300, 500], // at it again, growing well past it
  [700, 5], // above every earlier one
  [705, 0] // at the current length: a new fork that drops nothing
]

/** Writer with 1,001 blocks, then ROUNDS; after each, `check` runs. */
async function truncationRounds (t: any, writer: AnyCore, check: (round: number) => Promise<void>): Promise<void> {
  for (let r = 0; r < ROUNDS.length; r++) {
    const [to, add] = ROUNDS[r]!
    await writer.truncate(to)
    if (add > 0) await writer.append(forkBlocks(writer.fork, to, add))
    await check(r)
  }
}

async function readerFollows (t: any, writerImpl: Impl, readerImpl: Impl, relayImpl: Impl | null): Promise<void> {
  const writer = await makeCore(t, writerImpl)
  await writer.append(blocks(1001))
  const reader = await makeCore(t, readerImpl, writer.key)
  const relay = relayImpl === null ? null : await makeCore(t, relayImpl, writer.key)
  if (relay !== null) {
    connect(t, writer, relay)
    connect(t, relay, reader)
    relay.download({ start: 0, end: -1 }) // a relay that keeps everything, live
  } else {
    connect(t, writer, reader)
  }
  await follows(reader, writer)
  t.alike(await differingBlocks(reader, writer), [], 'before any truncation the reader has the writer\'s blocks')

  await truncationRounds(t, writer, async round => {
    await follows(reader, writer)
    t.is(reader.fork, writer.fork, 'round ' + round + ': the reader is on the writer\'s fork')
    t.alike(await differingBlocks(reader, writer), [], 'round ' + round + ': every block read equals the writer\'s (length ' + writer.length + ')')
  })
}

// ---------------------------------------------------------------------------
// Both directions, with and without a relay

test('nomadcore writer → nomadcore reader: the reader follows repeated truncations', async t => {
  await readerFollows(t, 'nomad', 'nomad', null)
})

test('Hypercore 11 writer → nomadcore reader: the reader follows repeated truncations', async t => {
  await readerFollows(t, 'hc11', 'nomad', null)
})

test('nomadcore writer → Hypercore 11 reader: the reader follows repeated truncations', async t => {
  await readerFollows(t, 'nomad', 'hc11', null)
})

test('Hypercore 11 writer → nomadcore relay → Hypercore 11 reader: both follow repeated truncations', async t => {
  await readerFollows(t, 'hc11', 'hc11', 'nomad')
})

test('nomadcore writer → Hypercore 11 relay → nomadcore reader: both follow repeated truncations', async t => {
  await readerFollows(t, 'nomad', 'nomad', 'hc11')
})

test('nomadcore writer → nomadcore relay → nomadcore reader: both follow repeated truncations', async t => {
  await readerFollows(t, 'nomad', 'nomad', 'nomad')
})

// ---------------------------------------------------------------------------
// What the reader sees, as Hypercore 11 shows it

test('a reader that meets a writer on a new fork emits what Hypercore 11 emits: truncate(ancestors, fork) and no append', async t => {
  const writer = await makeCore(t, 'hc11')
  await writer.append(blocks(20))
  const readers = { nomad: await makeCore(t, 'nomad', writer.key), hc11: await makeCore(t, 'hc11', writer.key) }
  const events: Record<Impl, string[]> = { nomad: [], hc11: [] }
  for (const impl of ['nomad', 'hc11'] as const) {
    const reader = readers[impl]
    const link = connect(t, writer, reader)
    await reader.download({ start: 0, end: 20 }).done()
    link.destroy()
    reader.on('truncate', (ancestors: number, fork: number) => events[impl].push('truncate ' + ancestors + ' ' + fork))
    reader.on('append', () => events[impl].push('append'))
  }
  await writer.truncate(12)
  await writer.append(forkBlocks(1, 12, 6))
  for (const impl of ['nomad', 'hc11'] as const) {
    connect(t, writer, readers[impl])
    await follows(readers[impl], writer)
  }
  t.alike(events.nomad, ['truncate 12 1'], 'nomadcore: one truncate to the common ancestor, on fork 1')
  t.alike(events.nomad, events.hc11, 'the same events as Hypercore 11')
  t.is(readers.nomad.contiguousLength, readers.hc11.contiguousLength, 'the same contiguous length as Hypercore 11 (blocks past the ancestors dropped)')
  t.alike(await differingBlocks(readers.nomad, writer), [])
})

test('an empty reader meeting a writer on fork 1 moves to fork 1 with truncate(0, 1), as Hypercore 11 does', async t => {
  const writer = await makeCore(t, 'nomad')
  await writer.append(blocks(5))
  await writer.truncate(4)
  await writer.append(forkBlocks(1, 4, 1))
  for (const impl of ['nomad', 'hc11'] as const) {
    const reader = await makeCore(t, impl, writer.key)
    const seen: string[] = []
    reader.on('truncate', (a: number, f: number) => seen.push('truncate ' + a + ' ' + f))
    connect(t, writer, reader)
    await follows(reader, writer)
    t.alike(seen, ['truncate 0 1'], impl + ': truncate(0, 1)')
  }
})

test('update() resolves true when the only news is a new fork', async t => {
  const w = await ramCore(t)
  await w.append(blocks(10))
  const r = await ramCore(t, w.key)
  const link = replicate(t, w, r)
  await r.update({ wait: true })
  link.destroy()
  await w.truncate(10, 3) // same length, new fork
  replicate(t, w, r)
  t.is(await r.update({ wait: true }), true)
  t.is(r.fork, 3)
  t.is(r.length, 10)
})

test('a get waiting for a block the truncation removed rejects with SNAPSHOT_NOT_AVAILABLE, as in Hypercore 11', async t => {
  const writer = await makeCore(t, 'nomad')
  await writer.append(blocks(10))
  const results: Record<string, string> = {}
  const readers: AnyCore[] = []
  for (const impl of ['nomad', 'hc11'] as const) {
    const reader = await makeCore(t, impl, writer.key)
    const link = connect(t, writer, reader)
    await follows(reader, writer) // length 10, no block held
    link.destroy()
    readers.push(reader)
  }
  const waits = readers.map(r => ({
    removed: rejection(r.get(7)), // in the tree when asked: the truncation removes it
    future: r.get(12, { timeout: 10000 }) // past the length when asked: keeps waiting
  }))
  await writer.truncate(5)
  await writer.append(forkBlocks(1, 5, 10))
  for (const r of readers) connect(t, writer, r)
  const impls = ['nomad', 'hc11']
  for (let k = 0; k < readers.length; k++) {
    const err = await waits[k]!.removed
    results[impls[k]!] = err === null ? 'resolved' : String(err.code)
    t.alike(await waits[k]!.future, forkBlocks(1, 12, 1)[0], impls[k] + ': a wait for a block past the old length gets the new fork\'s block')
  }
  t.is(results.nomad, 'SNAPSHOT_NOT_AVAILABLE')
  t.is(results.nomad, results.hc11, 'the same answer as Hypercore 11')
})

test('a reader holding only some blocks follows a reorg and refetches what it lost', async t => {
  const w = await ramCore(t)
  await w.append(blocks(64))
  const r = await ramCore(t, w.key)
  const link = replicate(t, w, r)
  await r.update({ wait: true })
  await r.download({ blocks: [1, 20, 33, 40, 63] }).done()
  link.destroy()
  await w.truncate(36)
  await w.append(forkBlocks(1, 36, 4))
  replicate(t, w, r)
  await follows(r as unknown as AnyCore, w as unknown as AnyCore)
  t.is(await r.has(40), false, 'a block of the old fork past the ancestors is gone')
  t.ok(await r.has(1), 'a block below the ancestors stays')
  t.alike(await differingBlocks(r as unknown as AnyCore, w as unknown as AnyCore), [])
})

test('a peer still on the old fork is neither trusted nor dropped', async t => {
  const w = await ramCore(t)
  await w.append(blocks(30))
  const stale = await ramCore(t, w.key) // follows the writer to block 30, then is cut off
  const l1 = replicate(t, w, stale)
  await stale.download({ start: 0, end: 30 }).done()
  l1.destroy()
  await w.truncate(10)
  await w.append(forkBlocks(1, 10, 25))

  const r = await ramCore(t, w.key)
  let removed = 0
  let errors = 0
  r.on('peer-remove', () => removed++)
  r.on('verification-error', () => errors++)
  replicate(t, stale, r) // first the stale peer, on fork 0 with 30 blocks
  await until(() => r.length === 30)
  t.alike(b4a.toString(await r.get(20) as Uint8Array), b4a.toString(blocks(1, 20)[0]!), 'before it knows better, the reader reads fork 0')
  replicate(t, w, r)
  await until(() => r.fork === 1 && r.length === 35, 10000)
  t.is(r.peers.length, 2, 'both peers stay connected')
  t.is(removed, 0)
  t.is(errors, 0, 'no peer is blamed for answers about the fork it is on')
  t.alike(await r.get(20, { timeout: 5000 }), forkBlocks(1, 20, 1)[0], 'block 20 is fork 1\'s, from the writer')
  t.alike(await differingBlocks(r as unknown as AnyCore, w as unknown as AnyCore), [])
  await sleep(100)
  t.is(r.fork, 1, 'the stale peer does not pull the reader back')
})

test('a peer on a higher fork that cannot prove it is not asked again and not blamed', async t => {
  const w = await ramCore(t)
  await w.append(blocks(8))
  const r = await ramCore(t, w.key)
  replicate(t, w, r)
  await r.update({ wait: true })
  const requests: number[] = []
  const fake = new FakePeer(t, w.key!, {
    onopen: p => p.sendSync({ fork: 5, length: 20 }),
    onrequest: (p, m) => {
      requests.push(m.fork)
      p.sendNoData({ request: m.id, reason: 1 })
    }
  })
  r.replicate(fake.stream)
  await fake.open()
  await sleep(500)
  t.alike(requests, [5], 'asked once for its fork proof')
  t.is(r.fork, 0)
  t.is(r.peers.length, 2, 'still connected')
  t.is(await r.update({ wait: true }), false, 'update() does not hang on it')
})

test('a reorgHint message changes nothing, as in Hypercore 11 (it has no slot on the channel there)', async t => {
  const w = await ramCore(t)
  await w.append(blocks(8))
  for (const impl of ['nomad', 'hc11'] as const) {
    const r = await makeCore(t, impl, w.key)
    const link = connect(t, w as unknown as AnyCore, r)
    await follows(r, w as unknown as AnyCore)
    link.destroy()
    let blamed = 0
    r.on('verification-error', () => blamed++)
    const fake = new FakePeer(t, w.key!, {
      onopen: p => {
        p.sendSync({ fork: 0, length: 8 })
        p.sendReorgHint({ from: 0, to: 3, ancestors: 2 })
      }
    })
    r.replicate(fake.stream)
    await fake.open()
    await sleep(200)
    t.is(r.fork, 0, impl + ': still on fork 0')
    t.is(r.length, 8, impl + ': nothing truncated')
    t.is(blamed, 0)
    t.is(fake.closed, false, impl + ': the peer stays')
  }
})
