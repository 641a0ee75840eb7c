/**
 * Hyperdrive 13 and Hyperbee 2, unchanged, on a Store: files written and
 * read, mirrored between stores, and replicated Store↔Store and
 * Store↔Corestore in both directions with live updates.
 */
import test from 'brittle'
import b4a from 'b4a'
import { openStore, connect, until, type Store } from './helpers/store'
import { freshDir } from './helpers/core'
import { pipePair, type Pipeable } from './helpers/replication'
import type { Teardownable } from './helpers/oracle'

interface Drive {
  key: Uint8Array
  discoveryKey: Uint8Array
  version: number
  ready (): Promise<void>
  close (): Promise<void>
  put (name: string, data: Uint8Array | string): Promise<void>
  get (name: string, opts?: { wait?: boolean, timeout?: number }): Promise<Buffer | null>
  entry (name: string): Promise<{ key: string, value: { blob: unknown } } | null>
  exists (name: string): Promise<boolean>
  del (name: string): Promise<void>
  list (folder?: string, opts?: { recursive?: boolean }): AsyncIterable<{ key: string }>
  readdir (folder?: string): AsyncIterable<string>
  update (opts?: { wait?: boolean }): Promise<boolean>
  mirror (other: Drive): { done (): Promise<unknown> }
  findingPeers (): () => void
  on (event: string, fn: (...args: unknown[]) => void): void
}
interface Bee {
  ready (): Promise<void>
  close (): Promise<void>
  put (key: string, value: unknown): Promise<void>
  get (key: string): Promise<{ key: string, value: unknown } | null>
  createReadStream (): AsyncIterable<{ key: string, value: unknown }>
  version: number
}
interface CorestoreLike {
  replicate (isInitiator: boolean, opts?: unknown): Pipeable
  close (): Promise<void>
}

const Hyperdrive = require('hyperdrive') as new (store: unknown, key?: Uint8Array | null) => Drive
const Hyperbee = require('hyperbee') as new (core: unknown, opts?: unknown) => Bee
const Corestore = require('corestore') as new (dir: string, opts?: unknown) => CorestoreLike

function drive (t: Teardownable, store: unknown, key: Uint8Array | null = null): Drive {
  const d = new Hyperdrive(store, key)
  t.teardown(() => d.close(), { order: 0 })
  return d
}

async function names (d: Drive, folder = '/'): Promise<string[]> {
  const out: string[] = []
  for await (const e of d.list(folder, { recursive: true })) out.push(e.key)
  return out.sort()
}

function corestore (t: Teardownable): CorestoreLike {
  const cs = new Corestore(freshDir(t, 'corestore'))
  t.teardown(() => cs.close(), { order: 1 })
  return cs
}

/** Connects a Store and a Corestore (either side may be the initiator). */
function link (t: Teardownable, a: Store | CorestoreLike, b: Store | CorestoreLike): void {
  const s1 = (a as CorestoreLike).replicate(true, { keepAlive: false }) as Pipeable
  const s2 = (b as CorestoreLike).replicate(false, { keepAlive: false }) as Pipeable
  pipePair(t, s1, s2)
}

test('Hyperdrive runs on a Store: put, get, entry, exists, list, readdir, del', async t => {
  const store = openStore(t)
  // A drive closes the store it is given: give it a view, as Hyperdrive users do.
  const d = drive(t, store.session())
  await d.ready()
  t.ok(d.key && d.key.byteLength === 32)
  await d.put('/hello.txt', b4a.from('hello world'))
  await d.put('/docs/a.md', b4a.from('# a'))
  await d.put('/docs/b.md', b4a.from('# b'))
  t.alike(await d.get('/hello.txt'), b4a.from('hello world'))
  t.ok((await d.entry('/docs/a.md'))?.value.blob)
  t.ok(await d.exists('/docs/b.md'))
  t.absent(await d.exists('/nope'))
  t.alike(await names(d), ['/docs/a.md', '/docs/b.md', '/hello.txt'])
  const dir: string[] = []
  for await (const name of d.readdir('/docs')) dir.push(name)
  t.alike(dir.sort(), ['a.md', 'b.md'])
  await d.del('/docs/b.md')
  t.alike(await names(d, '/docs'), ['/docs/a.md'])
  const version = d.version
  await d.close()

  // Reopened from the same store: same drive, same files.
  const again = drive(t, store.session())
  await again.ready()
  t.is(again.version, version)
  t.alike(await again.get('/docs/a.md'), b4a.from('# a'))
})

test('Hyperdrive mirrors between two stores', async t => {
  const a = drive(t, openStore(t))
  const b = drive(t, openStore(t))
  await Promise.all([a.ready(), b.ready()])
  for (let i = 0; i < 5; i++) await a.put(`/f${i}`, b4a.from('file ' + i))
  await a.mirror(b).done()
  t.alike(await names(b), ['/f0', '/f1', '/f2', '/f3', '/f4'])
  t.alike(await b.get('/f3'), b4a.from('file 3'))
})

test('a drive replicates Store to Store, with live updates', async t => {
  const sa = openStore(t)
  const sb = openStore(t)
  const a = drive(t, sa)
  await a.ready()
  await a.put('/first', b4a.from('one'))
  connect(t, sa, sb)
  const b = drive(t, sb, a.key)
  await b.ready()
  await until('b sees the first file', async () => { await b.update({ wait: true }); return (await b.get('/first', { timeout: 5000 }).catch(() => null)) !== null })
  t.alike(await b.get('/first'), b4a.from('one'))
  await a.put('/second', b4a.from('two'))
  await until('b sees the live update', async () => { await b.update({ wait: true }); return await b.exists('/second') })
  t.alike(await b.get('/second', { timeout: 5000 }), b4a.from('two'))
})

test('a drive replicates from a Store to Corestore and from Corestore to a Store, live', async t => {
  for (const direction of ['store→corestore', 'corestore→store']) {
    const ours = openStore(t)
    const theirs = corestore(t)
    const [writerStore, readerStore] = direction === 'store→corestore' ? [ours, theirs] : [theirs, ours]
    const w = drive(t, writerStore)
    await w.ready()
    await w.put('/a.txt', b4a.from('from the writer'))
    link(t, writerStore, readerStore)
    const r = drive(t, readerStore, w.key)
    await r.ready()
    await until(direction + ': reader sees the file', async () => { await r.update({ wait: true }); return await r.exists('/a.txt') })
    t.alike(await r.get('/a.txt', { timeout: 5000 }), b4a.from('from the writer'), direction)
    await w.put('/b.txt', b4a.from('later'))
    await until(direction + ': live update', async () => { await r.update({ wait: true }); return await r.exists('/b.txt') })
    t.alike(await r.get('/b.txt', { timeout: 5000 }), b4a.from('later'), direction + ' live')
  }
})

test('Hyperbee on a core of the Store, replicated to another Store', async t => {
  const sa = openStore(t)
  const sb = openStore(t)
  const core = sa.get({ name: 'bee' })
  const bee = new Hyperbee(core, { keyEncoding: 'utf-8', valueEncoding: 'json' })
  t.teardown(() => bee.close(), { order: 0 })
  await bee.ready()
  for (let i = 0; i < 20; i++) await bee.put('k' + String(i).padStart(2, '0'), { i })
  t.alike((await bee.get('k07'))?.value, { i: 7 })
  connect(t, sa, sb)
  const replica = new Hyperbee(sb.get({ key: core.key! }), { keyEncoding: 'utf-8', valueEncoding: 'json' })
  t.teardown(() => replica.close(), { order: 0 })
  await replica.ready()
  await until('the replica reads', async () => (await replica.get('k19').catch(() => null)) !== null)
  const all: string[] = []
  for await (const e of replica.createReadStream()) all.push(e.key)
  t.is(all.length, 20)
  t.is(all[0], 'k00')
})

test('a core the store holds but has closed opens when a peer asks for it, and closes when the peer is done', async t => {
  const ours = openStore(t)
  const keys: Uint8Array[] = []
  for (const name of ['closed', 'closed too']) {
    const core = ours.get({ name, valueEncoding: 'utf-8' })
    await core.append(['one', 'two'])
    keys.push(core.key!)
    await core.close()
  }
  const [key, other] = keys as [Uint8Array, Uint8Array]
  t.is(ours.stats().coresOpen, 0)

  // Corestore asks: served from disk.
  const theirs = new Corestore(freshDir(t, 'corestore')) as CorestoreLike & { get (opts: unknown): { ready (): Promise<void>, get (i: number): Promise<Buffer>, close (): Promise<void> } }
  t.teardown(() => theirs.close(), { order: 1 })
  link(t, theirs, ours)
  const replica = theirs.get({ key, valueEncoding: 'utf-8' })
  await replica.ready()
  t.is(await replica.get(1), 'two', 'served to Corestore, on demand')
  await replica.close()

  // Another store asks, then lets go: the core closes again (Corestore lets go only after its linger).
  const lingering = ours.stats().coresOpen
  const store = openStore(t)
  connect(t, store, ours)
  const reader = store.get({ key: other, valueEncoding: 'utf-8' })
  t.is(await reader.get(0), 'one', 'served to a store, on demand')
  t.is(ours.stats().coresOpen, lingering + 1)
  await reader.close()
  await until('the store closes the core again', () => ours.stats().coresOpen === lingering, 10000)
  t.pass('closed once the reader let go')
})
