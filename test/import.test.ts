/**
 * `importStore` / `nomadcore import`: a store built by Corestore 7 (RocksDB,
 * through its own Hypercore 11) is read without being touched and every core
 * comes over verified, opens in nomadcore with the same key, length, fork,
 * tree hash and blocks, and replicates to a hypercore@11.35.1 peer.
 */
import test from 'brittle'
import { spawn } from 'child_process'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import b4a from 'b4a'
import { importStore, type ImportSummary, type ImportedCore } from '../lib/import'
import { Hypercore } from '../lib/hypercore'
import { Store } from '../lib/store'
import { CoreStorage } from '../lib/storage'
import * as crypto from '../lib/crypto'
import { fullRoots, inTree, parent as parentOf, sibling } from '../lib/flat-tree'
import { Bitfield } from '../lib/bitfield'
import { LeafWalk, type NodeFile } from '../lib/import/verify'
import type { TreeNode } from '../lib/tree-node'
import { blocks } from './helpers/core'
import { makeHypercore, tmpDir, type Teardownable } from './helpers/oracle'
import { replicate } from './helpers/replication'
import { Corestore, withReplication, damage, readHead, snapshotDir, hex, type StoreCore } from './helpers/corestore'

/** What a core of the source store held when it was built. */
interface Expected {
  label: string
  key: Buffer
  discoveryKey: Buffer
  length: number
  fork: number
  treeHash: Buffer
  held: number[]
  blocks: Map<number, Buffer>
  userData: Array<[string, Uint8Array]>
  writable: boolean
}

interface Built {
  dir: string
  primaryKey: Buffer
  cores: Expected[]
}

/** `writer`: where to take the tree hash from (Hypercore's treeHash() waits for the last block, which a reader may lack). */
async function capture (label: string, core: StoreCore, userData: Array<[string, Uint8Array]> = [], writer: StoreCore = core): Promise<Expected> {
  const held: number[] = []
  const data = new Map<number, Buffer>()
  for (let i = 0; i < core.length; i++) {
    if (await core.has(i)) {
      held.push(i)
      data.set(i, (await core.get(i, { wait: false }))!)
    }
  }
  return {
    label,
    key: core.key,
    discoveryKey: core.discoveryKey,
    length: core.length,
    fork: core.fork,
    treeHash: await writer.treeHash(core.length),
    held,
    blocks: data,
    userData,
    writable: core.writable
  }
}

/**
 * A Corestore 7 store with writers (named, namespaced, one with its own
 * manifest and user data, a forked one, an empty one, one of 5,000 blocks)
 * and readers of another store's cores (sparse, a range plus far blocks, the
 * length only, never synced).
 */
async function buildSource (t: Teardownable): Promise<Built> {
  const dir = await tmpDir(t)
  const otherDir = await tmpDir(t)
  const store = new Corestore(dir)
  const other = new Corestore(otherDir)
  await store.ready()

  const notes = store.get({ name: 'notes' })
  await notes.append(blocks(50))
  const notesData: Array<[string, Uint8Array]> = [['bin', b4a.from([0, 1, 2, 255])], ['title', b4a.from('Notes')]]
  for (const [k, v] of notesData) await notes.setUserData(k, v)

  const kp = crypto.keyPair()
  const manifested = store.get({ keyPair: kp, manifest: { version: 2, signers: [{ publicKey: kp.publicKey }], userData: b4a.from('manifest user data') } })
  await manifested.append(blocks(7))
  await manifested.setUserData('kind', b4a.from('manifested'))

  const forked = store.get({ name: 'forked' })
  await forked.append(blocks(10))
  await forked.truncate(6)
  await forked.append(blocks(4, 100))

  const empty = store.get({ name: 'empty' })
  await empty.ready()
  const inner = store.namespace('app').get({ name: 'inner' })
  await inner.append(blocks(5))
  const big = store.get({ name: 'big' })
  await big.append(blocks(5000))

  const w = other.get({ name: 'w' })
  await w.append(blocks(40))
  const w2 = other.get({ name: 'w2' })
  await w2.append(blocks(5000))
  const w3 = other.get({ name: 'w3' })
  await w3.append(blocks(8))
  const sparse = store.get({ key: w.key })
  const ranged = store.get({ key: w2.key })
  const lengthOnly = store.get({ key: w3.key })
  const never = store.get({ key: crypto.randomBytes(32) })
  await Promise.all([sparse.ready(), ranged.ready(), lengthOnly.ready(), never.ready()])
  await withReplication(store, other, async () => {
    for (const i of [3, 17, 30]) await sparse.get(i)
    await ranged.download({ start: 0, end: 10 }).done()
    await ranged.get(4500)
    await ranged.get(4999)
    await lengthOnly.update({ wait: true })
  })

  const cores = [
    await capture('notes', notes, notesData),
    await capture('manifested', manifested, [['kind', b4a.from('manifested')]]),
    await capture('forked', forked),
    await capture('empty', empty),
    await capture('inner', inner),
    await capture('big', big),
    await capture('sparse reader', sparse, [], w),
    await capture('ranged reader', ranged, [], w2),
    await capture('length-only reader', lengthOnly, [], w3),
    await capture('never synced', never)
  ]
  const primaryKey = store.primaryKey
  await store.close()
  await other.close()
  return { dir, primaryKey, cores }
}

let shared: Promise<Built> | null = null
/** One source store for the tests that only read it (built once; removed at exit). */
function sharedSource (): Promise<Built> {
  if (shared === null) {
    const dirs: Array<() => unknown> = []
    shared = buildSource({ teardown: (fn) => { dirs.push(fn) } })
    process.once('exit', () => { for (const fn of dirs) void fn() })
  }
  return shared
}

function dstDir (t: Teardownable): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nomadcore-import-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }), { order: Number.MAX_SAFE_INTEGER })
  return path.join(dir, 'store')
}

function coreDir (dst: string, e: { discoveryKey: Uint8Array }): string {
  return path.join(dst, 'cores', hex(e.discoveryKey))
}

async function openImported (t: Teardownable, dst: string, e: Expected): Promise<Hypercore> {
  const core = new Hypercore(coreDir(dst, e), e.key)
  t.teardown(() => core.close(), { order: 0 })
  await core.ready()
  return core
}

function keysFile (dst: string): string[] {
  const bytes = fs.readFileSync(path.join(dst, 'keys'))
  const out: string[] = []
  for (let at = 0; at + 32 <= bytes.byteLength; at += 32) out.push(hex(bytes.subarray(at, at + 32)))
  return out
}

function byKey (s: ImportSummary, e: { key: Uint8Array }): ImportedCore | undefined {
  return s.imported.find(c => c.key === hex(e.key))
}

// ---------------------------------------------------------------------------

test('every core of a Corestore 7 store opens in nomadcore with the same key, length, fork, tree hash and blocks', async t => {
  const src = await sharedSource()
  const dst = dstDir(t)
  const summary = await importStore(src.dir, dst)

  t.is(summary.total, src.cores.length, 'every core of the source listed')
  t.is(summary.imported.length, src.cores.length, 'every core imported')
  t.alike(summary.failed, [], 'none failed')
  t.is(summary.source, 'read-only')
  t.is(summary.interrupted, false)
  t.is(summary.primaryKey, 'imported')
  t.alike(fs.readFileSync(path.join(dst, 'primary-key')), src.primaryKey, 'the Corestore primary key is the destination\'s')
  t.alike(keysFile(dst).sort(), src.cores.map(e => hex(e.key)).sort(), 'keys lists every core once')
  t.is(summary.blocks, src.cores.reduce((n, e) => n + e.held.length, 0), 'blocks counted')

  for (const e of src.cores) {
    const report = byKey(summary, e)!
    t.is(report.blocks, e.held.length, `${e.label}: block count in the summary`)
    const core = await openImported(t, dst, e)
    t.alike(core.key, e.key, `${e.label}: key`)
    t.is(core.length, e.length, `${e.label}: length`)
    t.is(core.fork, e.fork, `${e.label}: fork`)
    t.is(core.repairMode, false, `${e.label}: not in repair mode`)
    t.alike(await core.treeHash(), e.treeHash, `${e.label}: tree hash`)
    t.is(core.writable, e.writable, `${e.label}: writable as in the source`)
    t.is(report.writable, e.writable, `${e.label}: writable in the summary`)
    let same = true
    for (let i = 0; i < e.length; i++) {
      const want = e.blocks.get(i)
      if ((await core.has(i)) !== (want !== undefined)) same = false
      if (want !== undefined && !b4a.equals(await core.get(i, { wait: false }) as Uint8Array, want)) same = false
    }
    t.ok(same, `${e.label}: held blocks equal, absent blocks absent (${e.held.length} of ${e.length})`)
    await core.close()
    const header = await readHeader(coreDir(dst, e))
    t.alike((header.userData ?? []).map(u => [u.key, b4a.from(u.value)]), e.userData.map(([k, v]) => [k, b4a.from(v)]), `${e.label}: user data`)
  }

  const named = summary.imported.filter(c => c.name !== null).map(c => c.name).sort()
  t.alike(named, ['big', 'empty', 'forked', 'inner', 'notes'], 'named cores carry their names')
  const inner = summary.imported.find(c => c.name === 'inner')!
  t.not(inner.namespace, hex(new Uint8Array(32)), 'a namespaced core carries its namespace')
})

async function readHeader (dir: string): Promise<NonNullable<Awaited<ReturnType<CoreStorage['readHeader']>>>> {
  const storage = CoreStorage.fromDirectory(dir)
  try {
    return (await storage.readHeader())!
  } finally {
    await storage.close()
  }
}

test('imported cores replicate to a Hypercore 11 peer, and an imported writer appends for it', async t => {
  const src = await sharedSource()
  const dst = dstDir(t)
  await importStore(src.dir, dst)
  const get = (label: string): Expected => src.cores.find(e => e.label === label)!

  for (const label of ['notes', 'manifested', 'forked', 'inner', 'big']) {
    const e = get(label)
    const ours = await openImported(t, dst, e)
    const theirs = await makeHypercore(await tmpDir(t), e.key)
    t.teardown(() => theirs.close(), { order: 0 })
    const link = replicate(t, ours, theirs)
    t.ok(await theirs.update({ wait: true }), `${label}: the Hypercore 11 peer learns the length`)
    t.is(theirs.length, e.length)
    t.is(theirs.fork, e.fork, `${label}: same fork`)
    await theirs.download({ start: 0, end: e.length }).done()
    let same = true
    for (let i = 0; i < e.length; i++) if (!b4a.equals((await theirs.get(i))!, e.blocks.get(i)!)) same = false
    t.ok(same, `${label}: the peer got every block, verified`)
    t.alike(await theirs.treeHash(), e.treeHash, `${label}: the peer's tree hash`)
    link.destroy()
    await ours.close()
    await theirs.close()
  }

  const e = get('sparse reader')
  const ours = await openImported(t, dst, e)
  const theirs = await makeHypercore(await tmpDir(t), e.key)
  t.teardown(() => theirs.close(), { order: 0 })
  replicate(t, ours, theirs)
  await theirs.update({ wait: true })
  for (const i of e.held) t.alike(await theirs.get(i), e.blocks.get(i), `sparse reader: block ${i} from the imported copy`)

  const w = get('notes')
  const writer = await openImported(t, dst, w)
  const reader = await makeHypercore(await tmpDir(t), w.key)
  t.teardown(() => reader.close(), { order: 0 })
  replicate(t, writer, reader)
  await reader.update({ wait: true })
  await writer.append(b4a.from('after the import'))
  await until(async () => { await reader.update({ wait: true }); return reader.length === w.length + 1 })
  t.alike(await reader.get(w.length), b4a.from('after the import'), 'a block appended with the imported key pair verifies in Hypercore 11')
})

async function until (fn: () => Promise<boolean>, ms = 10000): Promise<void> {
  const end = Date.now() + ms
  while (!(await fn())) {
    if (Date.now() > end) throw new Error('timed out')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

test('the source directory is byte-identical after an import, mtimes included, read-only or through a copy', async t => {
  const src = await sharedSource()
  const before = snapshotDir(src.dir)
  const a = await importStore(src.dir, dstDir(t))
  t.alike(snapshotDir(src.dir), before, 'read-only: every file and directory as it was')
  t.is(a.source, 'read-only')
  const b = await importStore(src.dir, dstDir(t), { copySource: true })
  t.alike(snapshotDir(src.dir), before, 'through a copy: every file and directory as it was')
  t.is(b.source, 'copy')
  t.is(b.imported.length, a.imported.length, 'the copy imports the same cores')
  t.is(b.blocks, a.blocks)
})

test('a second import finds nothing new; an interrupted one resumes and redoes the core it was in', async t => {
  const src = await sharedSource()
  const dst = dstDir(t)
  const big = src.cores.find(e => e.label === 'big')!

  // Stop in the middle of the 5,000-block core.
  const ac = new AbortController()
  const first = await importStore(src.dir, dst, {
    signal: ac.signal,
    onprogress: p => { if (p.current === hex(big.discoveryKey) && p.blocks > 0) ac.abort() }
  })
  t.is(first.interrupted, true, 'interrupted')
  t.absent(fs.existsSync(coreDir(dst, big)), 'the core in progress is not in cores/')
  t.absent(fs.existsSync(path.join(dst, '.import-tmp')), 'no scratch space left')
  const done = first.imported.length
  t.ok(done < src.cores.length, `${done} cores done before the interruption`)
  t.alike(keysFile(dst).length, done, 'keys lists only the cores that are complete')

  const second = await importStore(src.dir, dst)
  t.is(second.imported.length, src.cores.length - done, 'the rest is imported')
  t.is(second.unchanged.length, done, 'what was done is not redone')
  t.is(second.interrupted, false)
  const core = await openImported(t, dst, big)
  t.is(core.contiguousLength, big.length, 'the interrupted core is whole')
  t.alike(await core.treeHash(), big.treeHash)
  await core.close()

  const third = await importStore(src.dir, dst)
  t.is(third.imported.length, 0, 'a third run imports nothing')
  t.is(third.blocks, 0)
  t.is(third.unchanged.length, src.cores.length)
  t.is(third.primaryKey, 'unchanged')
  t.is(keysFile(dst).length, src.cores.length, 'no key listed twice')
})

test('what a killed import left is redone, not trusted: partial cores, a replacement cut short, a torn key', async t => {
  const src = await sharedSource()
  const dst = dstDir(t)
  await importStore(src.dir, dst)
  const [notes, forked] = [src.cores[0]!, src.cores[2]!]

  // The state a kill leaves: a partial core in scratch, a copy moved aside
  // for replacement whose successor never landed, half a key at the end.
  fs.rmSync(coreDir(dst, notes), { recursive: true })
  const scratch = path.join(dst, '.import-tmp')
  fs.mkdirSync(path.join(scratch, hex(notes.discoveryKey)), { recursive: true })
  for (const f of ['header', 'tree', 'data', 'bitfield']) fs.writeFileSync(path.join(scratch, hex(notes.discoveryKey), f), 'half written')
  fs.renameSync(coreDir(dst, forked), path.join(scratch, 'old-' + hex(forked.discoveryKey)))
  const keys = fs.readFileSync(path.join(dst, 'keys'))
  const withoutNotes = Buffer.concat(keysFile(dst).filter(k => k !== hex(notes.key)).map(k => b4a.from(k, 'hex')))
  fs.writeFileSync(path.join(dst, 'keys'), Buffer.concat([withoutNotes, notes.key.subarray(0, 13)]))
  t.not(keys.byteLength % 32, 13)

  const s = await importStore(src.dir, dst)
  t.alike(s.imported.map(c => c.key), [hex(notes.key)], 'the partial core is imported again')
  t.ok(s.unchanged.some(c => c.key === hex(forked.key)), 'the copy moved aside is put back, and found complete')
  t.absent(fs.existsSync(scratch), 'scratch space is gone')
  t.alike(keysFile(dst).sort(), src.cores.map(e => hex(e.key)).sort(), 'the torn key is overwritten, every key listed once')
  t.is(fs.statSync(path.join(dst, 'keys')).size, 32 * src.cores.length)
  for (const e of [notes, forked]) {
    const core = await openImported(t, dst, e)
    t.alike(await core.treeHash(), e.treeHash, `${e.label}: whole again`)
    t.is(core.contiguousLength, e.length)
    await core.close()
  }
})

test('a destination that cannot be written stops the import with its error; what was done stays done', async t => {
  const src = await sharedSource()
  const dst = dstDir(t)
  const big = src.cores.find(e => e.label === 'big')!
  // Where the header of one core would go, a directory: opening it fails with EISDIR.
  fs.mkdirSync(path.join(coreDir(dst, big), 'header'), { recursive: true })
  fs.writeFileSync(path.join(coreDir(dst, big), 'header', 'x'), 'x')
  await t.exception(() => importStore(src.dir, dst), /EISDIR/)
  t.absent(fs.existsSync(path.join(dst, '.import-tmp')), 'no scratch space left')
  const complete = keysFile(dst)
  for (const key of complete) {
    const e = src.cores.find(c => hex(c.key) === key)!
    t.ok(await CoreStorage.exists(coreDir(dst, e)), `${e.label}: listed, and there`)
  }

  fs.rmSync(coreDir(dst, big), { recursive: true })
  const s = await importStore(src.dir, dst)
  t.is(s.imported.length + s.unchanged.length, src.cores.length, 'a second run completes the import')
  t.is(s.unchanged.length, complete.length, 'without redoing what was done')
})

test('a damaged source core is reported with why, and nothing of it is written', async t => {
  const dir = await tmpDir(t)
  const store = new Corestore(dir)
  const make = async (name: string, n = 10): Promise<StoreCore> => {
    const core = store.get({ name })
    await core.append(blocks(n))
    return core
  }
  const good = await make('good')
  const badBlock = await make('bad block')
  const noRoot = await make('no root')
  const badSig = await make('bad signature')
  const lostBlock = await make('lost block')
  const badNode = await make('bad inner node')
  const all = [good, badBlock, noRoot, badSig, lostBlock, badNode]
  const ids = all.map(c => ({ key: c.key, discoveryKey: c.discoveryKey }))
  await store.close()

  await damage(dir, badBlock.discoveryKey, tx => tx.putBlock(3, b4a.from('not block 3')))
  await damage(dir, noRoot.discoveryKey, tx => tx.deleteTreeNode(fullRoots(20)[1]!))
  await damage(dir, badSig.discoveryKey, async (tx, core) => {
    const head = await readHead(core)
    const signature = b4a.from(head.signature!)
    signature[signature.byteLength - 1]! ^= 1
    tx.setHead({ ...head, signature })
  })
  await damage(dir, lostBlock.discoveryKey, tx => tx.deleteBlock(5))
  await damage(dir, badNode.discoveryKey, tx => tx.putTreeNode({ index: 1, size: 18, hash: crypto.randomBytes(32) }))

  const dst = dstDir(t)
  const before = snapshotDir(dir)
  const s = await importStore(dir, dst)
  t.alike(snapshotDir(dir), before, 'the damaged source is not touched either')
  t.alike(s.imported.map(c => c.key), [hex(good.key)], 'only the intact core is imported')
  const why = (c: { key: Uint8Array }): { code: string, reason: string } | undefined => s.failed.find(f => f.key === hex(c.key))
  t.is(why(badBlock)?.code, 'STORAGE_CORRUPT')
  t.ok(/Block 3 does not match its tree node/.test(why(badBlock)?.reason ?? ''), `a rotten block: ${why(badBlock)?.reason}`)
  t.ok(/Root tree node 17 missing/.test(why(noRoot)?.reason ?? ''), `a missing root: ${why(noRoot)?.reason}`)
  t.is(why(badSig)?.code, 'INVALID_SIGNATURE', `a forged signature: ${why(badSig)?.reason}`)
  t.ok(/Block 5 is marked as held but is not stored/.test(why(lostBlock)?.reason ?? ''), `a lost block: ${why(lostBlock)?.reason}`)
  t.ok(/Tree node 3 does not match its children 1 and 5/.test(why(badNode)?.reason ?? ''), `a rotten inner node: ${why(badNode)?.reason}`)
  t.ok(s.failed.every(f => f.name !== null), 'failures name the core')

  for (const c of ids.slice(1)) t.absent(fs.existsSync(coreDir(dst, c)), 'no directory for a damaged core')
  t.alike(keysFile(dst), [hex(good.key)], 'keys lists only the intact core')
  t.absent(fs.existsSync(path.join(dst, '.import-tmp')), 'no scratch space left')

  const again = await importStore(dir, dst)
  t.is(again.imported.length, 0, 'a second run imports nothing')
  t.is(again.unchanged.length, 1)
  t.is(again.failed.length, 5, 'and reports the damaged cores again')
})

test('a destination with another primary key keeps it, and the import says so', async t => {
  const src = await sharedSource()
  const dst = dstDir(t)
  fs.mkdirSync(dst, { recursive: true })
  const mine = crypto.randomBytes(32)
  fs.writeFileSync(path.join(dst, 'primary-key'), mine)
  const s = await importStore(src.dir, dst)
  t.is(s.primaryKey, 'different')
  t.alike(fs.readFileSync(path.join(dst, 'primary-key')), b4a.from(mine), 'not overwritten')
  t.is(s.imported.length, src.cores.length, 'the cores come over with their own key pairs')
})

test('cores the destination already holds: an older copy is replaced, a newer one kept, another fork reported', async t => {
  const writerDir = await tmpDir(t)
  const dir = await tmpDir(t)
  const writerStore = new Corestore(writerDir)
  const w = writerStore.get({ name: 'w' })
  await w.append(blocks(20))
  let store = new Corestore(dir)
  let r = store.get({ key: w.key })
  const mine = store.get({ name: 'mine' })
  await mine.append(blocks(5))
  const mineKey = mine.key
  await withReplication(store, writerStore, async () => { await r.download({ start: 0, end: 5 }).done() })
  await store.close()

  const dst = dstDir(t)
  const first = await importStore(dir, dst)
  t.is(byKey(first, w)?.blocks, 5, 'a reader with 5 blocks')

  // The source gets more: more blocks, a longer core.
  await w.append(blocks(10, 20))
  store = new Corestore(dir)
  r = store.get({ key: w.key })
  await withReplication(store, writerStore, async () => {
    await r.update({ wait: true })
    await r.download({ start: 5, end: 12 }).done()
  })
  const treeHash = await w.treeHash(r.length)
  await store.close()
  await writerStore.close()

  const second = await importStore(dir, dst)
  const updated = byKey(second, w)
  t.is(updated?.status, 'updated', 'the older copy is replaced')
  t.is(updated?.length, 30)
  t.is(updated?.blocks, 12)
  const core = await openImported(t, dst, { key: w.key, discoveryKey: r.discoveryKey } as unknown as Expected)
  t.is(core.length, 30)
  t.is(core.contiguousLength, 12)
  t.alike(await core.treeHash(), treeHash)
  await core.close()

  // The destination's writer appends after the import: it is ahead of the source.
  const ours = new Hypercore(path.join(dst, 'cores', hex(crypto.discoveryKey(mineKey))), mineKey)
  await ours.append(b4a.from('only in the destination'))
  await ours.close()
  const third = await importStore(dir, dst)
  t.ok(third.unchanged.some(c => c.key === hex(mineKey)), 'a copy ahead of the source is kept')
  const again = new Hypercore(path.join(dst, 'cores', hex(crypto.discoveryKey(mineKey))), mineKey)
  await again.ready()
  t.is(again.length, 6, 'with what only it holds')

  // The destination's writer forks: the two can no longer be reconciled by an import.
  await again.truncate(3)
  await again.close()
  const fourth = await importStore(dir, dst)
  const conflict = fourth.failed.find(f => f.key === hex(mineKey))
  t.is(conflict?.code, 'STORAGE_CONFLICT')
  t.ok(/fork/.test(conflict?.reason ?? ''), `says why: ${conflict?.reason}`)
  const after = new Hypercore(path.join(dst, 'cores', hex(crypto.discoveryKey(mineKey))), mineKey)
  await after.ready()
  t.is(after.fork, 1, 'the destination copy is left as it was')
  t.is(after.length, 3)
  await after.close()
})

test('a directory that is not a Corestore store, or a destination inside the source, is refused before anything is created', async t => {
  const notAStore = await tmpDir(t)
  fs.writeFileSync(path.join(notAStore, 'hello.txt'), 'hi')
  const dst = dstDir(t)
  await t.exception(() => importStore(notAStore, dst), /BAD_ARGUMENT/)
  t.absent(fs.existsSync(dst), 'no destination created')

  const src = await sharedSource()
  const inside = path.join(src.dir, 'imported')
  await t.exception(() => importStore(src.dir, inside), /inside the source/, 'nor a destination inside the source')
  t.absent(fs.existsSync(inside), 'nothing written into the source')
})

// ---------------------------------------------------------------------------
// The tree walk on its own

/** Every node of a tree of `n` blocks, built bottom-up with our crypto. */
function treeOf (n: number): { nodes: Map<number, TreeNode>, data: Uint8Array[] } {
  const data = blocks(n)
  const nodes = new Map<number, TreeNode>()
  data.forEach((d, i) => nodes.set(2 * i, crypto.leafNode(2 * i, d)))
  for (let grew = true; grew;) {
    grew = false
    for (const node of [...nodes.values()]) {
      const p = parentOf(node.index)
      const sib = nodes.get(sibling(node.index))
      if (nodes.has(p) || sib === undefined || !inTree(p, n)) continue
      nodes.set(p, crypto.parentNode(p, node, sib))
      grew = true
    }
  }
  return { nodes, data }
}

/** A NodeFile over a map, the way the walk sees the tree file. */
function nodeFile (nodes: Map<number, TreeNode>): NodeFile & { deleted: number[] } {
  const deleted: number[] = []
  return {
    deleted,
    async getNodes (indices) { return indices.map(i => nodes.get(i) ?? null) },
    async deleteNodeRange (start, end) {
      for (const i of [...nodes.keys()]) if (i >= start && i < end) { nodes.delete(i); deleted.push(i) }
    }
  }
}

function storedOf (nodes: Map<number, TreeNode>): Bitfield {
  const b = new Bitfield()
  for (const i of nodes.keys()) b.set(i, true)
  return b
}

test('the tree walk gives every leaf its offset, whether a subtree is read in one go or node by node', async t => {
  const n = 300
  for (const chunk of [1, 3, 31, 8191]) {
    const { nodes, data } = treeOf(n)
    const roots = fullRoots(2 * n).map(i => nodes.get(i)!)
    const walk = new LeafWalk(nodeFile(nodes), roots, storedOf(nodes), chunk)
    let offset = 0
    let right = true
    for (let i = 0; i < n; i++) {
      const leaf = await walk.leaf(i)
      if (leaf === null || leaf.offset !== offset || leaf.size !== data[i]!.byteLength) right = false
      offset += data[i]!.byteLength
    }
    await walk.finish()
    t.ok(right, `chunk ${chunk}: every leaf, at the offset of the sizes before it`)
    t.is(walk.dropped, 0, `chunk ${chunk}: nothing dropped`)
  }
})

test('the tree walk leaves out nodes no hash chain links to a root, and refuses a node its parent contradicts', async t => {
  for (const chunk of [1, 8191]) {
    const { nodes } = treeOf(64)
    const roots = fullRoots(128).map(i => nodes.get(i)!)
    nodes.delete(2) // block 1's leaf: block 0's leaf has no sibling now
    nodes.delete(9) // node 9 gone: its children 8 and 10 hang from nothing, and so do 13 and its subtree
    const file = nodeFile(nodes)
    const walk = new LeafWalk(file, roots, storedOf(nodes), chunk)
    t.is(await walk.leaf(0), null, `chunk ${chunk}: a leaf without its sibling is not verified`)
    t.is(await walk.leaf(1), null)
    t.is(await walk.leaf(4), null, 'nor one whose ancestor is missing')
    t.ok((await walk.leaf(8)) !== null, 'a leaf with its whole chain is')
    await walk.finish()
    t.is(walk.dropped, 6, `chunk ${chunk}: the unverifiable nodes are counted`)
    t.alike(file.deleted.sort((a, b) => a - b), [0, 8, 10, 12, 13, 14], 'and zeroed')

    const rotten = treeOf(64).nodes
    const r = fullRoots(128).map(i => rotten.get(i)!)
    rotten.set(5, { index: 5, size: rotten.get(5)!.size, hash: crypto.randomBytes(32) })
    const bad = new LeafWalk(nodeFile(rotten), r, storedOf(rotten), chunk)
    await t.exception(() => bad.finish(), /Tree node 3 does not match its children 1 and 5/, `chunk ${chunk}: a rotten node is damage`)
  }
})

// ---------------------------------------------------------------------------
// The command

const BIN = path.join(__dirname, '..', 'bin', 'nomadcore.js')

function run (args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    child.on('error', reject)
    child.on('close', code => resolve({ code, stdout, stderr }))
  })
}

test('nomadcore import: a JSON summary, then nothing new; a damaged core makes exit status 2', async t => {
  const src = await sharedSource()
  const dst = dstDir(t)
  const r = await run(['import', src.dir, dst, '--json'])
  t.is(r.code, 0, r.stderr)
  const s = JSON.parse(r.stdout) as ImportSummary
  t.is(s.imported.length, src.cores.length)
  t.is(s.failed.length, 0)

  const again = await run(['import', src.dir, dst])
  t.is(again.code, 0)
  t.ok(/imported 0 cores/.test(again.stdout), 'the second run says nothing was imported')
  t.ok(new RegExp(`${src.cores.length} cores already there`).test(again.stdout), 'and that every core was already there')

  const dir = await tmpDir(t)
  const store = new Corestore(dir)
  const core = store.get({ name: 'c' })
  await core.append(blocks(4))
  await store.close()
  await damage(dir, core.discoveryKey, tx => tx.putBlock(1, b4a.from('rot')))
  const bad = await run(['import', dir, dstDir(t)])
  t.is(bad.code, 2, 'exit status 2')
  t.ok(/NOT imported: 1 core/.test(bad.stdout), 'lists what was not imported')
  t.ok(/named 'c'.*Block 1 does not match its tree node \(STORAGE_CORRUPT\)/.test(bad.stdout), 'names the core and says why')

  const notAStore = await tmpDir(t)
  const refused = await run(['import', notAStore, dstDir(t)])
  t.is(refused.code, 1)
  t.is(refused.stderr.trim().split('\n').length, 1, 'one line on stderr')
  t.ok(/not a Hypercore 11 \/ Corestore 7 storage directory/.test(refused.stderr), refused.stderr)
})

test('Store.import, then the Store opens every imported core, and names give the keys Corestore gave them', async t => {
  const built = await sharedSource()
  const dst = dstDir(t)
  const summary = await Store.import(built.dir, dst)
  t.is(summary.failed.length, 0)
  const store = new Store(dst)
  t.teardown(() => store.close())
  await store.ready()
  for (const e of built.cores) {
    const core = store.get({ key: e.key })
    await core.ready()
    t.is(core.length, e.length, e.label + ': length')
    t.is(core.fork, e.fork, e.label + ': fork')
    if (e.held.length > 0) {
      const i = e.held[e.held.length - 1]!
      t.alike(await core.get(i, { wait: false }), e.blocks.get(i), e.label + ': a held block')
    }
    await core.close()
  }
  // The Corestore primary key came along: a named core is the same core by name.
  const notes = store.get({ name: 'notes' })
  await notes.ready()
  t.is(hex(notes.key!), hex(built.cores.find(e => e.label === 'notes')!.key), 'get({ name }) finds the imported named core')
  t.ok(notes.writable, 'and it is writable')
  const inner = store.namespace('app').get({ name: 'inner' })
  await inner.ready()
  t.is(hex(inner.key!), hex(built.cores.find(e => e.label === 'inner')!.key), 'in a namespace too')
})
