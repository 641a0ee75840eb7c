/**
 * Hyperbee 2.27.3, unchanged and with default options, runs on nomadcore:
 * every operation gives what it gives on Hypercore 11, alone and replicated
 * to and from Hypercore 11.
 */
import test from 'brittle'
import RAM from 'random-access-memory'
import { Hypercore } from '../lib/hypercore'
import { sideBySide, HC11 } from './helpers/side-by-side'
import { replicate, type Replicable } from './helpers/replication'
import { tmpDir, type Teardownable } from './helpers/oracle'
type Test = test.Context

interface BeeEntry { seq: number, key: unknown, value: unknown }
interface Bee {
  readonly version: number
  readonly core: unknown
  ready (): Promise<void>
  close (): Promise<void>
  put (key: unknown, value?: unknown, opts?: Record<string, unknown>): Promise<void>
  del (key: unknown, opts?: Record<string, unknown>): Promise<void>
  get (key: unknown, opts?: Record<string, unknown>): Promise<BeeEntry | null>
  batch (opts?: Record<string, unknown>): { put (k: unknown, v?: unknown): Promise<void>, del (k: unknown): Promise<void>, flush (): Promise<void> }
  sub (prefix: string, opts?: Record<string, unknown>): Bee
  checkout (version: number): Bee
  snapshot (): Bee
  createReadStream (range?: Record<string, unknown>, opts?: Record<string, unknown>): AsyncIterable<BeeEntry>
  createHistoryStream (opts?: Record<string, unknown>): AsyncIterable<BeeEntry & { type: string }>
  createDiffStream (other: number, opts?: Record<string, unknown>): AsyncIterable<{ left: BeeEntry | null, right: BeeEntry | null }>
  peek (range?: Record<string, unknown>): Promise<BeeEntry | null>
  watch (range?: Record<string, unknown>): AsyncIterator<[Bee, Bee]> & { close (): Promise<void>, ready (): Promise<void> }
  getAndWatch (key: unknown): Promise<{ node: BeeEntry | null, close (): Promise<void>, on (e: string, f: () => void): void }>
  update (opts?: Record<string, unknown>): Promise<boolean>
}
const Hyperbee = require('hyperbee') as new (core: unknown, opts?: Record<string, unknown>) => Bee

const entries = async (it: AsyncIterable<BeeEntry>): Promise<unknown[]> => {
  const out: unknown[] = []
  for await (const e of it) out.push([e.seq, e.key, e.value])
  return out
}

function bee (core: unknown, t: Teardownable): Bee {
  const db = new Hyperbee(core, { keyEncoding: 'utf-8', valueEncoding: 'json' })
  t.teardown(() => db.close().catch(() => {}))
  return db
}

test('Hyperbee does the same on nomadcore as on Hypercore 11: put, get, del, ranges, batch, sub, peek', async t => {
  const { ours, theirs } = await sideBySide(t, async env => {
    const db = bee(env.open(), t)
    await db.ready()
    for (const k of ['b', 'a', 'd', 'c', 'e']) await db.put(k, { k })
    await db.del('d')
    const b = db.batch()
    await b.put('f', 6)
    await b.put('g', 7)
    await b.del('a')
    await b.flush()
    const sub = db.sub('inner')
    await sub.put('x', 'in the sub')
    return [
      db.version,
      await db.get('b'), await db.get('a'), await db.get('nope'),
      await entries(db.createReadStream()),
      await entries(db.createReadStream({ gt: 'b', lte: 'f' })),
      await entries(db.createReadStream({ reverse: true, limit: 2 })),
      await entries(sub.createReadStream()),
      await sub.get('x'),
      await db.peek({ gt: 'e' })
    ]
  })
  t.alike(ours, theirs)
})

test('Hyperbee checkouts, snapshots, history and diffs agree with Hypercore 11', async t => {
  const { ours, theirs } = await sideBySide(t, async env => {
    const db = bee(env.open(), t)
    await db.ready()
    await db.put('a', 1)
    await db.put('b', 2)
    const v = db.version
    const snap = db.snapshot()
    await db.put('a', 10)
    await db.del('b')
    await db.put('c', 3)
    const old = db.checkout(v)
    const out = [
      await old.get('a'), await old.get('b'), await entries(old.createReadStream()),
      await snap.get('a'), await snap.get('c'),
      await entries(db.createHistoryStream()),
      await entries(db.createHistoryStream({ reverse: true, limit: 2 })),
      await entries(db.createHistoryStream({ live: false, gte: 2 }))
    ]
    const diff: unknown[] = []
    for await (const d of db.createDiffStream(v)) diff.push([d.left?.key ?? null, d.left?.value ?? null, d.right?.key ?? null, d.right?.value ?? null])
    out.push(diff)
    await old.close()
    await snap.close()
    return out
  })
  t.alike(ours, theirs)
})

test('Hyperbee watch and getAndWatch see new versions on nomadcore', async t => {
  const core = new Hypercore(() => new RAM())
  const db = bee(core, t)
  await db.ready()
  await db.put('a', 1)
  const watcher = db.watch({ gte: 'a', lt: 'z' })
  await watcher.ready()
  const next = watcher.next()
  await db.put('b', 2)
  const { value } = await next
  const [current, previous] = value as [Bee, Bee]
  t.is((await current.get('b'))?.value, 2)
  t.is(await previous.get('b'), null)
  await watcher.close()

  const w = await db.getAndWatch('a')
  t.is(w.node?.value, 1)
  const changed = new Promise<void>(resolve => w.on('update', () => resolve()))
  await db.put('a', 'one')
  await changed
  t.is(w.node?.value, 'one')
  await w.close()
})

async function replicatedBee (t: Test, writerCore: Replicable & { ready (): Promise<void>, key: Uint8Array | null }, makeReader: (key: Uint8Array) => Replicable & { ready (): Promise<void> }): Promise<void> {
  await writerCore.ready()
  const writer = bee(writerCore, t)
  await writer.ready()
  for (let i = 0; i < 50; i++) await writer.put('key-' + String(i).padStart(2, '0'), { i })
  const readerCore = makeReader(writerCore.key!)
  replicate(t, writerCore, readerCore)
  const reader = bee(readerCore, t)
  await reader.ready()
  await reader.update({ wait: true })
  t.alike(await reader.get('key-07'), await writer.get('key-07'), 'a key read across the wire')
  t.alike(await entries(reader.createReadStream({ gte: 'key-40' })), await entries(writer.createReadStream({ gte: 'key-40' })), 'a range read across the wire')
  // Live: the reader follows new writes.
  const watcher = reader.watch()
  await watcher.ready()
  const next = watcher.next()
  await writer.put('late', 'and live')
  await next
  t.is((await reader.get('late'))?.value, 'and live', 'a live write reaches the reader')
  await watcher.close()
}

test('Hyperbee replicates from a nomadcore writer to a nomadcore reader, live', async t => {
  await replicatedBee(t, new Hypercore(() => new RAM()), key => new Hypercore(() => new RAM(), key))
})

test('Hyperbee replicates from a nomadcore writer to a Hypercore 11 reader, live', async t => {
  const dir = await tmpDir(t)
  await replicatedBee(t, new Hypercore(() => new RAM()), key => {
    const reader = new HC11(dir, key)
    t.teardown(() => reader.close())
    return reader as unknown as Replicable & { ready (): Promise<void> }
  })
})

test('Hyperbee replicates from a Hypercore 11 writer to a nomadcore reader, live', async t => {
  const dir = await tmpDir(t)
  const writer = new HC11(dir)
  t.teardown(() => writer.close())
  await replicatedBee(t, writer as unknown as Replicable & { ready (): Promise<void>, key: Uint8Array | null }, key => new Hypercore(() => new RAM(), key))
})
