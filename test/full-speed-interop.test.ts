/**
 * Whole-core downloads at full speed (one `download()` of every block, as
 * many requests in flight as the reader allows) between nomadcore and
 * hypercore@11.35.1, both on disk: the copy is byte-identical to the source,
 * block by block, with the same tree hash. Blocks of many sizes, so an offset
 * off by one block would show.
 */
import test from 'brittle'
import * as path from 'path'
import b4a from 'b4a'
import { Hypercore } from '../lib/hypercore'
import { makeHypercore, tmpDir, type Hypercore as Hypercore11, type Teardownable } from './helpers/oracle'
import { replicate } from './helpers/replication'

const BLOCKS = 8_000

/** Block i: 1 to 3,000 bytes, its bytes derived from i. */
function blockOf (i: number): Uint8Array {
  const size = 1 + ((i * 7919) % 3000)
  const b = b4a.alloc(size)
  for (let k = 0; k < size; k++) b[k] = (i * 31 + k * 7 + (i >> 8)) & 0xff
  return b
}

async function fill (core: { append (blocks: Uint8Array[]): Promise<unknown> }, n: number): Promise<void> {
  for (let i = 0; i < n; i += 1000) {
    const batch: Uint8Array[] = []
    for (let k = i; k < Math.min(n, i + 1000); k++) batch.push(blockOf(k))
    await core.append(batch)
  }
}

async function nomad (t: Teardownable, dir: string, key?: Uint8Array | null): Promise<Hypercore> {
  const core = new Hypercore(dir, key ?? null)
  t.teardown(() => core.close(), { order: 0 })
  await core.ready()
  return core
}

async function hc (t: Teardownable, key?: Uint8Array | null): Promise<Hypercore11> {
  const core = await makeHypercore(await tmpDir(t), key ?? null)
  t.teardown(() => core.close(), { order: 0 })
  return core
}

/** Every block of both, compared; the index of the first that differs, or -1. */
async function firstDifference (a: { get (i: number): Promise<unknown> }, b: { get (i: number): Promise<unknown> }, n: number): Promise<number> {
  for (let i = 0; i < n; i++) {
    const [x, y] = await Promise.all([a.get(i), b.get(i)])
    if (!(x instanceof Uint8Array) || !(y instanceof Uint8Array) || !b4a.equals(x, y)) return i
  }
  return -1
}

interface Replica {
  length: number
  byteLength: number
  contiguousLength: number
  treeHash (): Promise<Uint8Array>
  get (i: number): Promise<unknown>
}

/** The reader holds every block of the writer, under the same tree hash, byte for byte. */
async function endsIdentical (t: test.Context, r: Replica, w: Replica): Promise<void> {
  t.is(r.length, BLOCKS)
  t.is(r.byteLength, w.byteLength)
  t.is(r.contiguousLength, BLOCKS, 'every block stored')
  t.alike(await r.treeHash(), await w.treeHash(), 'the same tree hash')
  t.is(await firstDifference(r, w, BLOCKS), -1, 'every block equals the writer\'s')
}

test('a nomadcore reader downloading at full speed from a Hypercore 11 writer ends byte-identical', async t => {
  const w = await hc(t)
  await fill(w, BLOCKS)
  const r = await nomad(t, path.join(await tmpDir(t), 'reader'), w.key)
  replicate(t, w, r)
  await r.download({ start: 0, end: BLOCKS }).done()
  await endsIdentical(t, r, w)
})

test('a Hypercore 11 reader downloading at full speed from a nomadcore writer ends byte-identical', async t => {
  const w = await nomad(t, path.join(await tmpDir(t), 'writer'))
  await fill(w, BLOCKS)
  const r = await hc(t, w.key)
  replicate(t, w, r)
  await r.update({ wait: true })
  await r.download({ start: 0, end: BLOCKS }).done()
  await endsIdentical(t, r, w)
})

test('a nomadcore reader downloading at full speed from a nomadcore writer and a Hypercore 11 copy at once ends byte-identical', async t => {
  const w = await nomad(t, path.join(await tmpDir(t), 'writer'))
  await fill(w, BLOCKS)
  const copy = await hc(t, w.key)
  replicate(t, w, copy)
  await copy.update({ wait: true })
  await copy.download({ start: 0, end: BLOCKS }).done()
  const r = await nomad(t, path.join(await tmpDir(t), 'reader'), w.key)
  replicate(t, w, r)
  replicate(t, copy, r)
  await r.download({ start: 0, end: BLOCKS }).done()
  await endsIdentical(t, r, w)
})
