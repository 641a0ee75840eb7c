/**
 * Store as a Corestore 7 drop-in: sessions, close order, namespaces, key
 * derivation (checked against corestore@7.12.5), list, watch, findingPeers,
 * exclusive sessions, and what the store keeps on disk.
 */
import test from 'brittle'
import * as fs from 'fs'
import * as path from 'path'
import b4a from 'b4a'
import { Store, openStore, listed, hex } from './helpers/store'
import { freshDir } from './helpers/core'
import { Hypercore } from '../lib/hypercore'
import { discoveryKey, keyPair } from '../lib/crypto'
import { createKeyPair, DEFAULT_NAMESPACE } from '../lib/store/key-derivation'
import { FilePool } from '../lib/store/file-pool'

interface CorestoreLike {
  get (opts: unknown): { ready (): Promise<void>, close (): Promise<void>, key: Uint8Array, append (b: unknown): Promise<unknown> }
  namespace (name: string): CorestoreLike
  createKeyPair (name: string, ns?: Uint8Array): Promise<{ publicKey: Uint8Array, secretKey: Uint8Array }>
  list (ns?: Uint8Array): AsyncIterable<Uint8Array>
  ns: Uint8Array
  close (): Promise<void>
}
const Corestore = require('corestore') as new (dir: string, opts?: unknown) => CorestoreLike

test('get returns a session at once; every get is a new session on one core', async t => {
  const store = openStore(t)
  const a = store.get({ name: 'notes' })
  const b = store.get({ name: 'notes' })
  t.ok(a instanceof Hypercore, 'a Hypercore session, not a promise')
  t.not(a, b)
  await Promise.all([a.ready(), b.ready()])
  t.alike(a.key, b.key)
  t.ok(a.writable && b.writable)
  t.is(a.sessionCount, 2, 'two sessions on one shared core')
  t.is(a.manifest!.signers.length, 1)
  t.unlike(a.key, a.manifest!.signers[0]!.publicKey, 'the key is the manifest hash')
  await a.close()
  await b.close()
})

test('closing one session never affects another, and a later get of a closed core works', async t => {
  const store = openStore(t)
  const a = store.get({ name: 'log', valueEncoding: 'utf-8' })
  const b = store.get({ name: 'log', valueEncoding: 'utf-8' })
  await a.append(['one', 'two'])
  await a.close()
  t.is(await b.get(1), 'two', 'the other session still reads')
  await b.append('three')
  await b.close()
  t.is(store.stats().coresOpen, 0, 'the core closed with its last session')
  const c = store.get({ name: 'log', valueEncoding: 'utf-8' })
  await c.ready()
  t.is(c.length, 3)
  t.is(await c.get(2), 'three')
  // Closing and reopening at once: the new session waits for the old core to close.
  const closing = c.close()
  const d = store.get({ name: 'log' })
  await closing
  await d.ready()
  t.is(d.length, 3)
  await d.append('four')
  await d.close()
})

test('named cores get the keys Corestore 7 gives them, in the root namespace and in namespaces', async t => {
  const primaryKey = b4a.alloc(32, 0x5a)
  const ours = openStore(t, { primaryKey, unsafe: true })
  const theirs = new Corestore(freshDir(t, 'corestore'), { primaryKey, unsafe: true })
  t.teardown(() => theirs.close())
  for (const [s, c] of [[ours, theirs], [ours.namespace('app'), theirs.namespace('app')], [ours.namespace('app').namespace('sub'), theirs.namespace('app').namespace('sub')]] as const) {
    for (const name of ['db', 'blobs', 'a name with spaces']) {
      const x = s.get({ name })
      const y = c.get({ name })
      await Promise.all([x.ready(), y.ready()])
      t.alike(x.key, y.key, `${name} in namespace ${hex(s.ns).slice(0, 8)}`)
      await Promise.all([x.close(), y.close()])
    }
    t.alike(s.ns, c.ns, 'same namespace bytes')
    const [kx, ky] = await Promise.all([s.createKeyPair('kp'), c.createKeyPair('kp')])
    t.alike(kx.publicKey, ky.publicKey)
    t.alike(kx.secretKey, ky.secretKey)
  }
  t.alike(createKeyPair(primaryKey, DEFAULT_NAMESPACE, 'db').publicKey, (await theirs.createKeyPair('db')).publicKey)
})

test('a primary key needs unsafe: true; the store keeps it; another one is refused', async t => {
  const dir = freshDir(t, 'pk')
  const primaryKey = b4a.alloc(32, 1)
  t.exception(() => new Store(dir, { primaryKey }), /unsafe/)
  const store = new Store(dir, { primaryKey, unsafe: true, repairInterval: 0 })
  await store.ready()
  t.alike(store.primaryKey, primaryKey)
  const core = store.get({ name: 'test' })
  await core.ready()
  const key = core.key!
  await store.close()

  const again = new Store(dir, { repairInterval: 0 })
  await again.ready()
  t.alike(again.primaryKey, primaryKey, 'read back from disk')
  const same = again.get({ name: 'test' })
  await same.ready()
  t.alike(same.key, key)
  await again.close()

  const other = new Store(dir, { primaryKey: b4a.alloc(32, 2), unsafe: true, repairInterval: 0 })
  await t.exception(other.ready(), /STORAGE_CONFLICT|Another store/)
  await other.close()
})

test('a named core made with another manifest is the same core when opened by name again', async t => {
  const dir = freshDir(t, 'alias')
  const store = new Store(dir, { repairInterval: 0 })
  const kp = await store.createKeyPair('old')
  const core = store.get({ name: 'old', manifest: { version: 0, signers: [{ publicKey: kp.publicKey }] } })
  await core.ready()
  const key = core.key!
  await core.append('x')
  await store.close()
  const again = new Store(dir, { repairInterval: 0 })
  const same = again.get({ name: 'old' })
  await same.ready()
  t.alike(same.key, key)
  t.is(same.length, 1)
  t.ok(same.writable)
  await again.close()
})

test('a key given to get is there at once; by discovery key, a held core opens and an unknown one fails', async t => {
  const store = openStore(t)
  const zero = b4a.alloc(32)
  const a = store.get({ key: zero })
  t.alike(a.key, zero, 'before ready')
  const held = store.get(keyPair().publicKey)
  await held.ready()
  const byDk = store.get({ discoveryKey: held.discoveryKey! })
  await byDk.ready()
  t.alike(byDk.key, held.key)
  const unknown = store.get({ discoveryKey: b4a.alloc(32, 3) })
  await t.exception(unknown.ready(), /STORAGE_EMPTY/)
  const absent = store.get({ key: b4a.alloc(32, 4), createIfMissing: false })
  await t.exception(absent.ready(), /STORAGE_EMPTY/)
  t.exception(() => store.get({}), /BAD_ARGUMENT/)
  await Promise.all([a.close(), held.close(), byDk.close()])
})

test('list() streams the discovery keys of every core, or of those named in one namespace, as Corestore does', async t => {
  const store = openStore(t)
  const corestore = new Corestore(freshDir(t, 'corestore'))
  t.teardown(() => corestore.close())
  const ns = store.namespace('test')
  const csNs = corestore.namespace('test')
  const all: string[] = []
  const inNs: string[] = []
  for (let i = 0; i < 6; i++) {
    const s = i < 3 ? store : ns
    const core = s.get({ name: 'core' + i })
    await core.ready()
    all.push(hex(core.discoveryKey!))
    if (i >= 3) inNs.push(hex(core.discoveryKey!))
    await core.close()
    const c = (i < 3 ? corestore : csNs).get({ name: 'core' + i })
    await c.ready()
    await c.close()
  }
  t.alike((await listed(store)).map(hex).sort(), all.sort())
  t.alike((await listed(store, ns.ns)).map(hex).sort(), inNs.sort())
  const theirs: string[] = []
  for await (const dk of corestore.list(csNs.ns)) theirs.push(hex(dk))
  t.is(theirs.length, inNs.length, 'Corestore lists the namespace alike')
})

test('closing a store session closes what was made from it, sessions of those included, and nothing else', async t => {
  const store = openStore(t)
  const keep = store.get({ name: 'keep' })
  const view = store.session()
  const a = view.get({ name: 'test' })
  const b = a.session()
  await Promise.all([keep.ready(), a.ready(), b.ready()])
  let closed = 0
  a.on('close', () => closed++)
  b.on('close', () => closed++)
  await view.close()
  t.is(closed, 2, 'the session and the session made from it')
  t.absent(keep.closed)
  await keep.append('still writable')
  t.exception(() => view.get({ name: 'x' }), /SESSION_CLOSED/)
  const again = store.get({ name: 'test' })
  await again.ready()
  t.ok(again.writable, 'the store itself is open')
  await again.close()
  await keep.close()
})

test('a session made before the store is ready works', async t => {
  const store = new Store(freshDir(t, 'early'), { repairInterval: 0 })
  t.teardown(() => store.close())
  const a = store.get({ name: 'test' })
  const b = a.session()
  await a.ready()
  await b.ready()
  t.alike(a.key, b.key)
  await a.close()
  t.ok(b.writable)
  await b.close()
})

test('watch hears cores open; a weak session on one closes with the core', async t => {
  const store = openStore(t)
  const seen: Uint8Array[] = []
  const closes: Array<Promise<void>> = []
  const fn = (core: unknown): void => {
    const weak = new Hypercore({ core, weak: true })
    closes.push(new Promise(resolve => weak.once('close', () => resolve())))
    void weak.ready().then(() => seen.push(weak.key!))
  }
  store.watch(fn)
  const core = store.get({ name: 'hello' })
  await core.ready()
  await new Promise(resolve => setImmediate(resolve))
  t.is(seen.length, 1)
  t.alike(seen[0], core.key)
  await core.close()
  await Promise.all(closes)
  t.pass('the weak session closed with the core')
  store.unwatch(fn)
  const other = store.get({ name: 'other' })
  await other.ready()
  t.is(seen.length, 1, 'unwatched')
  await other.close()
})

test('findingPeers makes update() wait until it is done', async t => {
  const store = openStore(t)
  const done = store.findingPeers()
  const core = store.get({ key: b4a.alloc(32) })
  let waited = false
  setTimeout(() => {
    waited = true
    done()
  }, 200)
  await core.update()
  t.ok(waited)
  await core.close()
})

test('an exclusive session is ready only once the previous exclusive session closed', async t => {
  const store = openStore(t)
  const a = store.get({ name: 'db', exclusive: true })
  await a.ready()
  const b = store.get({ name: 'db', exclusive: true })
  let ready = false
  const opening = b.ready().then(() => { ready = true })
  await new Promise(resolve => setTimeout(resolve, 50))
  t.absent(ready)
  await a.close()
  await opening
  t.ok(ready)
  const reader = store.get({ name: 'db', exclusive: true, writable: false })
  await reader.ready()
  t.pass('a read-only session is not exclusive')
  await Promise.all([b.close(), reader.close()])
})

test('a read-only store opens cores read-only; a closed store refuses get', async t => {
  const dir = freshDir(t, 'ro')
  const store = new Store(dir, { repairInterval: 0 })
  const core = store.get({ name: 'x' })
  await core.append('a')
  await store.close()
  t.exception(() => store.get({ name: 'x' }), /SESSION_CLOSED/)
  t.ok(core.closed, 'closing the store closed its sessions')
  const ro = new Store(dir, { writable: false, repairInterval: 0 })
  const again = ro.get({ name: 'x' })
  await again.ready()
  t.absent(again.writable)
  t.is(again.length, 1)
  await ro.close()
})

test('each core lives in cores/<discovery key>/; the catalog survives a reopen', async t => {
  const dir = freshDir(t, 'layout')
  const store = new Store(dir, { repairInterval: 0 })
  const core = store.get({ name: 'notes' })
  await core.append(['a', 'b'])
  const key = core.key!
  await core.close()
  t.ok(fs.existsSync(path.join(dir, 'cores', hex(discoveryKey(key)), 'tree')))
  await store.close()
  const again = openStore(t, { dir })
  t.alike((await listed(again)).map(hex), [hex(discoveryKey(key))])
})

test('the file pool bounds files open, opens in flight included', async t => {
  const dir = freshDir(t, 'pool')
  const pool = new FilePool(8)
  const files = Array.from({ length: 40 }, (_, i) => pool.file(path.join(dir, 'f' + i)))
  await Promise.all(files.map((f, i) => new Promise<void>((resolve, reject) => {
    (f as unknown as { write (o: number, d: Uint8Array, cb: (err: Error | null) => void): void }).write(0, b4a.from('file ' + i), err => err ? reject(err) : resolve())
  })))
  t.ok(pool.peak <= 8, `at most 8 open at once (peak ${pool.peak})`)
  const read = await Promise.all(files.map(f => new Promise<string>((resolve, reject) => {
    (f as unknown as { read (o: number, n: number, cb: (err: Error | null, d?: Uint8Array) => void): void }).read(0, 6, (err, d) => err ? reject(err) : resolve(b4a.toString(d as Buffer)))
  })))
  t.alike(read.slice(0, 3), ['file 0', 'file 1', 'file 2'], 'suspended files reopen on use')
  t.ok(pool.peak <= 8)
  await Promise.all(files.map(f => new Promise(resolve => (f as unknown as { close (cb: () => void): void }).close(() => resolve(null)))))
  t.is(pool.size, 0)
})
