/**
 * Stores: many cores under one directory, replicated over one stream, and
 * reconciled with the members of their group.
 */
import test from 'brittle'
import * as fs from 'fs'
import * as path from 'path'
import b4a from 'b4a'
import { Store } from '../lib/store'
import { freshDir } from './helpers/core'
import { pipePair, type Pipeable } from './helpers/replication'
import { discoveryKey } from '../lib/crypto'
import type { Teardownable } from './helpers/oracle'

const hex = (b: Uint8Array): string => b4a.toString(b as Buffer, 'hex')

function openStore (t: Teardownable, dir: string, group: Uint8Array | null = null): Store {
  const store = new Store(dir, { group, repairInterval: 0 })
  t.teardown(() => store.close())
  return store
}

function connect (t: Teardownable, a: Store, b: Store): () => void {
  const link = pipePair(t, a.replicate(true, { keepAlive: false }) as unknown as Pipeable, b.replicate(false, { keepAlive: false }) as unknown as Pipeable)
  return () => link.destroy()
}

async function until (what: string, cond: () => boolean | Promise<boolean>, ms = 20000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what)
    await new Promise(resolve => setTimeout(resolve, 25))
  }
}

test('a named core is writable and keeps its key across reopens; list() remembers every core', async t => {
  const dir = freshDir(t, 'store')
  const store = new Store(dir, { repairInterval: 0 })
  const core = await store.get({ name: 'notes' })
  t.ok(core.writable)
  await core.append(b4a.from('hello'))
  const other = await store.get({ key: b4a.alloc(32, 9) })
  t.absent(other.writable)
  const key = core.key!
  t.ok(fs.existsSync(path.join(dir, 'cores', hex(discoveryKey(key)), 'tree')), 'core files under cores/<discovery key>/')
  await store.close()

  const again = openStore(t, dir)
  const same = await again.get({ name: 'notes' })
  t.alike(same.key, key)
  t.is(same.length, 1)
  t.is((await again.list()).length, 2)
})

test('two stores replicate all their cores over one stream', async t => {
  const a = openStore(t, freshDir(t, 'a'))
  const b = openStore(t, freshDir(t, 'b'))
  const cores = await Promise.all([1, 2, 3].map(async i => {
    const c = await a.get({ name: 'c' + i })
    await c.append([b4a.from('x' + i), b4a.from('y' + i)])
    return c
  }))
  connect(t, a, b)
  for (const c of cores) {
    const replica = await b.get({ key: c.key! })
    await until('replica update', async () => (await replica.update({ wait: true })) || replica.length === 2)
    t.is(b4a.toString(await replica.get(1) as Buffer), b4a.toString(await c.get(1) as Buffer))
  }
})

test('stores of one group learn each other’s cores; a store of another group learns nothing', async t => {
  const group = b4a.alloc(32, 1)
  const a = openStore(t, freshDir(t, 'a'), group)
  const b = openStore(t, freshDir(t, 'b'), group)
  const outsider = openStore(t, freshDir(t, 'x'), b4a.alloc(32, 2))
  for (let i = 0; i < 10; i++) await (await a.get({ name: 'a' + i })).append(b4a.from('a' + i))
  for (let i = 0; i < 4; i++) await (await b.get({ name: 'b' + i })).append(b4a.from('b' + i))
  let outsiderLearned = 0
  outsider.on('core', () => outsiderLearned++)
  connect(t, a, b)
  connect(t, a, outsider)
  await until('b learns a’s cores', async () => (await b.list()).length === 14)
  await until('a learns b’s cores', async () => (await a.list()).length === 14)
  await new Promise(resolve => setTimeout(resolve, 200))
  t.is(outsiderLearned, 0)
  t.is((await outsider.list()).length, 0)
})

test('a core created after connecting is announced to the group at once', async t => {
  const group = b4a.alloc(32, 3)
  const a = openStore(t, freshDir(t, 'a'), group)
  const b = openStore(t, freshDir(t, 'b'), group)
  connect(t, a, b)
  await new Promise(resolve => setTimeout(resolve, 100))
  const fresh = await a.get({ name: 'late' })
  await fresh.append(b4a.from('late block'))
  await until('b learns the late core', async () => (await b.list()).some(k => b4a.equals(k, fresh.key!)))
  const replica = await b.get({ key: fresh.key! })
  await until('b downloads it', () => replica.contiguousLength === 1)
})

test('reconciling stores that differ by two cores sends far less than their key lists', async t => {
  const group = b4a.alloc(32, 5)
  const a = openStore(t, freshDir(t, 'a'), group)
  const b = openStore(t, freshDir(t, 'b'), group)
  for (let i = 0; i < 200; i++) await a.get({ name: 'c' + i })
  const first = connect(t, a, b)
  await until('b learns 200 cores', async () => (await b.list()).length === 200)
  first()
  await a.get({ name: 'extra-1' })
  await a.get({ name: 'extra-2' })
  const stats: Array<{ rounds: number, bytes: number }> = []
  b.on('reconciled', (_peer: unknown, s: { rounds: number, bytes: number }) => stats.push(s))
  connect(t, a, b)
  await until('b learns the 2 new cores', async () => (await b.list()).length === 202)
  t.ok(stats.length >= 1)
  t.ok(stats[0]!.bytes < 202 * 32 / 4, `reconciled with ${stats[0]!.bytes} bytes; the key list alone is ${202 * 32}`)
})

test('the periodic repair audits every core on its timer', async t => {
  const store = new Store(freshDir(t, 'timer'), { repairInterval: 50 })
  t.teardown(() => store.close())
  const core = await store.get({ name: 'x' })
  await core.append(b4a.from('a block'))
  // The store's timer is unref'd (it never keeps a process alive): hold the loop open meanwhile.
  const keepAlive = setTimeout(() => {}, 10000)
  const [summary] = await new Promise<[{ cores: number, blocks: number }]>(resolve => store.once('repair', (s: { cores: number, blocks: number }) => resolve([s])))
  clearTimeout(keepAlive)
  t.is(summary.cores, 1)
  t.is(summary.blocks, 1)
})

/** Flips one byte somewhere in a file of a core of `dir`. */
function rot (dir: string, core: Uint8Array, file: 'data' | 'tree', at: number): void {
  const p = path.join(dir, 'cores', hex(discoveryKey(core)), file)
  const bytes = fs.readFileSync(p)
  if (bytes.length === 0) return
  bytes[at % bytes.length]! ^= 0x5a
  fs.writeFileSync(p, bytes)
}

test('three stores with hundreds of cores go offline, diverge and rot, reconnect, and converge', { timeout: 120000 }, async t => {
  const group = b4a.alloc(32, 42)
  const dirs = [freshDir(t, 's0'), freshDir(t, 's1'), freshDir(t, 's2')]
  const PER_STORE = 100
  let stores = dirs.map(d => new Store(d, { group, repairInterval: 0 }))

  // Phase 1: each store writes its own cores, then all three meet and converge.
  for (const [i, s] of stores.entries()) {
    for (let k = 0; k < PER_STORE; k++) {
      const core = await s.get({ name: 'core-' + k })
      await core.append(Array.from({ length: 1 + (k % 5) }, (_, j) => b4a.from(`store ${i} core ${k} block ${j}`)))
    }
  }
  let links = [connect(t, stores[0]!, stores[1]!), connect(t, stores[1]!, stores[2]!), connect(t, stores[0]!, stores[2]!)]
  await until('first convergence', async () => {
    for (const s of stores) if ((await s.list()).length !== 3 * PER_STORE) return false
    return true
  }, 60000)
  for (const l of links) l()
  await Promise.all(stores.map(s => s.close()))

  // Phase 2, offline: new cores, new blocks, and bit rot in data and tree files.
  stores = dirs.map(d => new Store(d, { group, repairInterval: 0 }))
  const written: Array<Map<string, number>> = []
  for (const [i, s] of stores.entries()) {
    const mine = new Map<string, number>()
    for (let k = 0; k < PER_STORE + 20; k++) {
      const core = await s.get({ name: 'core-' + k })
      if (k >= PER_STORE || k % 7 === 0) await core.append(b4a.from(`store ${i} core ${k} offline block`))
      mine.set(hex(core.key!), core.length)
    }
    written.push(mine)
  }
  await Promise.all(stores.map(s => s.close()))
  let rotted = 0
  for (const [i, dir] of dirs.entries()) {
    const other = written[(i + 1) % 3]!
    let n = 0
    for (const keyHex of other.keys()) {
      if (n++ % 9 !== 0) continue
      const key = b4a.from(keyHex, 'hex')
      if (!fs.existsSync(path.join(dir, 'cores', hex(discoveryKey(key))))) continue
      rot(dir, key, n % 2 === 0 ? 'data' : 'tree', 7 * n + 3)
      rotted++
    }
  }
  t.ok(rotted > 10, rotted + ' core files rotted')

  // Phase 3: back online. Each store audits itself, reconciles, downloads and repairs.
  stores = dirs.map(d => new Store(d, { group, repairInterval: 0 }))
  t.teardown(() => Promise.all(stores.map(s => s.close())))
  const summaries = await Promise.all(stores.map(s => s.repair()))
  t.ok(summaries.reduce((n, s) => n + s.corruptBlocks + s.droppedNodes + s.repairMode, 0) > 0, 'audits found the rot')
  links = [connect(t, stores[0]!, stores[1]!), connect(t, stores[1]!, stores[2]!), connect(t, stores[0]!, stores[2]!)]

  const expected = new Map<string, number>()
  for (const m of written) for (const [k, len] of m) expected.set(k, Math.max(expected.get(k) ?? 0, len))
  t.is(expected.size, 3 * (PER_STORE + 20))

  await until('every store holds every core, every block', async () => {
    for (const s of stores) {
      const keys = await s.list()
      if (keys.length !== expected.size) return false
      for (const key of keys) {
        const core = await s.get({ key })
        if (core.repairMode || core.length < expected.get(hex(key))! || core.contiguousLength < core.length) return false
      }
    }
    return true
  }, 90000)

  // Nothing lost, nothing unverified: every core audits clean in every store.
  for (const s of stores) {
    const summary = await s.repair()
    t.is(summary.cores, expected.size)
    t.is(summary.corruptBlocks + summary.droppedNodes + summary.repairMode, 0)
  }
  for (const l of links) l()
})
