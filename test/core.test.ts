import test from 'brittle'
import b4a from 'b4a'
import c from 'compact-encoding'
import RAM from 'random-access-memory'
import { Hypercore, freshDir, openCore, blocks, text } from './helpers/core'
import { keyPair } from '../lib/crypto'

test('a new core is writable, empty and has a 32-byte key', async t => {
  const core = await openCore(t, freshDir(t))
  t.is(core.length, 0)
  t.is(core.byteLength, 0)
  t.is(core.fork, 0)
  t.ok(core.writable)
  t.ok(core.readable)
  t.is(core.key?.byteLength, 32)
  t.is(core.discoveryKey?.byteLength, 32)
  t.is(core.repairMode, false)
})

test('append returns the new length and byte length, get reads blocks back', async t => {
  const core = await openCore(t, freshDir(t))
  t.alike(await core.append(b4a.from('hello')), { length: 1, byteLength: 5 })
  t.alike(await core.append([b4a.from('a'), b4a.from('bc')]), { length: 3, byteLength: 8 })
  t.is(text(await core.get(0)), 'hello')
  t.is(text(await core.get(2)), 'bc')
  t.ok(await core.has(0))
  t.ok(await core.has(0, 3))
  t.absent(await core.has(3))
  t.is(core.contiguousLength, 3)
})

test('append emits append, truncate emits truncate with the new fork', async t => {
  const core = await openCore(t, freshDir(t))
  let appends = 0
  core.on('append', () => appends++)
  const truncated: Array<[number, number]> = []
  core.on('truncate', (length, fork) => truncated.push([length, fork]))
  await core.append(blocks(5))
  await core.truncate(2)
  t.is(appends, 1)
  t.alike(truncated, [[2, 1]])
  t.is(core.length, 2)
  t.is(core.fork, 1)
  await core.truncate(1, 7)
  t.is(core.fork, 7)
})

test('a core reopens with its length, fork, key and blocks', async t => {
  const dir = freshDir(t)
  const first = new Hypercore(dir)
  await first.append(blocks(20))
  await first.truncate(15)
  await first.append(blocks(3, 100))
  const key = first.key
  const hash = await first.treeHash()
  await first.close()

  const again = await openCore(t, dir)
  t.alike(again.key, key)
  t.is(again.length, 18)
  t.is(again.fork, 1)
  t.ok(again.writable)
  t.alike(await again.treeHash(), hash)
  t.is(text(await again.get(16)), text(blocks(1, 101)[0]))
})

test('value encodings: utf-8, json and compact-encoding codecs', async t => {
  const utf = await openCore(t, freshDir(t, 'utf'), { valueEncoding: 'utf-8' })
  await utf.append('héllo')
  t.is(await utf.get(0), 'héllo')

  const json = await openCore(t, freshDir(t, 'json'), { valueEncoding: 'json' })
  await json.append([{ a: 1 }, [2, 3]])
  t.alike(await json.get(0), { a: 1 })
  t.alike(await json.get(1), [2, 3])
  t.is(await json.get(1, { valueEncoding: 'utf-8' }), '[2,3]')

  const uint = await openCore(t, freshDir(t, 'codec'), { valueEncoding: c.uint })
  await uint.append([1, 300, 70000])
  t.is(await uint.get(2), 70000)
})

test('storage can be a function returning random-access-memory', async t => {
  const files = new Map<string, RAM>()
  const storage = (name: string): RAM => {
    let f = files.get(name)
    if (f === undefined) files.set(name, f = new RAM())
    return f
  }
  const core = new Hypercore(storage)
  await core.append(blocks(10))
  t.is(core.length, 10)
  t.is(text(await core.get(9)), text(blocks(1, 9)[0]))
  await core.close()
})

test('get of a block not yet appended waits for it, or returns null with wait: false', async t => {
  const core = await openCore(t, freshDir(t))
  t.is(await core.get(0, { wait: false }), null)
  const waiting = core.get(1)
  await core.append(blocks(2))
  t.is(text(await waiting), text(blocks(2)[1]))
})

test('get with a timeout rejects with REQUEST_TIMEOUT; close rejects pending gets with SESSION_CLOSED', async t => {
  const core = new Hypercore(freshDir(t))
  await core.ready()
  await t.exception(core.get(5, { timeout: 20 }), /REQUEST_TIMEOUT/)
  const pending = t.exception(core.get(5), /SESSION_CLOSED/)
  await core.close()
  await pending
  await t.exception(core.append(b4a.from('x')), /SESSION_CLOSED/)
})

test('seek maps byte offsets to [block, offset] like Hypercore', async t => {
  const core = await openCore(t, freshDir(t))
  await core.append(['aaa', 'bb', 'cccc', 'd'].map(s => b4a.from(s)))
  t.alike(await core.seek(0), [0, 0])
  t.alike(await core.seek(2), [0, 2])
  t.alike(await core.seek(3), [1, 0])
  t.alike(await core.seek(6), [2, 1])
  t.alike(await core.seek(9), [3, 0])
  t.alike(await core.seek(10), [4, 0])
  // Past the end, as in Hypercore 11: null without waiting, REQUEST_TIMEOUT after waiting.
  t.is(await core.seek(11, { wait: false }), null)
  await t.exception(core.seek(11, { timeout: 20 }), /REQUEST_TIMEOUT/)
})

test('clear drops local blocks but keeps the tree', async t => {
  const core = await openCore(t, freshDir(t))
  await core.append(blocks(10))
  const hash = await core.treeHash()
  await core.clear(2, 5)
  t.absent(await core.has(3))
  t.ok(await core.has(5))
  t.is(core.contiguousLength, 2)
  t.is(await core.get(3, { wait: false }), null)
  t.alike(await core.treeHash(), hash)
  t.is(core.length, 10)
})

test('treeHash of an older length matches the hash the core had then', async t => {
  const core = await openCore(t, freshDir(t))
  const hashes: Uint8Array[] = []
  for (const b of blocks(12)) {
    await core.append(b)
    hashes.push(await core.treeHash())
  }
  for (let len = 1; len <= 12; len++) t.alike(await core.treeHash(len), hashes[len - 1], 'length ' + len)
})

test('createReadStream yields blocks in order, and with live keeps following appends', async t => {
  const core = await openCore(t, freshDir(t), { valueEncoding: 'utf-8' })
  await core.append(['a', 'b', 'c', 'd'])
  const seen: unknown[] = []
  for await (const v of core.createReadStream({ start: 1, end: 3 })) seen.push(v)
  t.alike(seen, ['b', 'c'])

  const live = core.createReadStream({ start: 3, live: true })
  const got: unknown[] = []
  const done = new Promise<void>(resolve => {
    live.on('data', v => {
      got.push(v)
      if (got.length === 3) resolve()
    })
  })
  await core.append(['e', 'f'])
  await done
  live.destroy()
  t.alike(got, ['d', 'e', 'f'])
})

test('info reports length, bytes, fork and repair mode', async t => {
  const core = await openCore(t, freshDir(t))
  await core.append(blocks(4))
  const info = await core.info()
  t.is(info.length, 4)
  t.is(info.contiguousLength, 4)
  t.is(info.byteLength, core.byteLength)
  t.is(info.fork, 0)
  t.is(info.repairMode, false)
  t.is(info.storage.blocks, 4)
})

test('a core opened with another key than the stored one fails with STORAGE_CONFLICT', async t => {
  const dir = freshDir(t)
  const core = new Hypercore(dir)
  await core.ready()
  await core.close()
  const other = new Hypercore(dir, b4a.alloc(32, 1))
  await t.exception(other.ready(), /STORAGE_CONFLICT/)
})

test('createIfMissing: false on an empty directory fails with STORAGE_EMPTY and creates nothing', async t => {
  const dir = freshDir(t)
  const core = new Hypercore(dir + '/nothing-here', { createIfMissing: false })
  await t.exception(core.ready(), /STORAGE_EMPTY/)
  t.absent(require('fs').existsSync(dir + '/nothing-here'), 'no directory, no files')
})

test('overwrite replaces the stored core', async t => {
  const dir = freshDir(t)
  const first = new Hypercore(dir)
  await first.append(blocks(5))
  const oldKey = first.key
  await first.close()
  const kp = keyPair()
  const second = await openCore(t, dir, { keyPair: kp, overwrite: true })
  t.is(second.length, 0)
  t.unlike(second.key, oldKey)
  await second.append(b4a.from('fresh'))
  t.is(text(await second.get(0)), 'fresh')
})

test('a reader core (key, no key pair) is not writable and rejects appends', async t => {
  const core = await openCore(t, freshDir(t), { key: b4a.alloc(32, 7) })
  t.absent(core.writable)
  await t.exception(core.append(b4a.from('x')), /SESSION_NOT_WRITABLE/)
})

test('writable: false opens a writer read-only', async t => {
  const dir = freshDir(t)
  const w = new Hypercore(dir)
  await w.append(blocks(2))
  await w.close()
  const ro = await openCore(t, dir, { writable: false })
  t.absent(ro.writable)
  t.is(ro.length, 2)
  await t.exception(ro.append(b4a.from('x')), /SESSION_NOT_WRITABLE/)
})

test('truncate past the length and bad indices are BAD_ARGUMENT', async t => {
  const core = await openCore(t, freshDir(t))
  await core.append(blocks(3))
  await t.exception(core.truncate(4), /BAD_ARGUMENT/)
  await t.exception(core.get(-1), /BAD_ARGUMENT/)
  await t.exception(core.get(1.5), /BAD_ARGUMENT/)
})

test('the package works from require and import, with a default and a named Hypercore', async t => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const required = require('../..') as typeof Hypercore & { Hypercore: typeof Hypercore, default: typeof Hypercore }
  t.is(required, Hypercore)
  t.is(required.Hypercore, Hypercore)
  t.is(required.default, Hypercore)
  const imported = await (new Function('s', 'return import(s)') as (s: string) => Promise<{ default: unknown, Hypercore: unknown }>)('nomadcore')
  t.is(imported.default, Hypercore)
  t.is(imported.Hypercore, Hypercore)
})
