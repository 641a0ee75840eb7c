/**
 * Sessions and snapshots behave as Hypercore 11's do: each scenario runs on
 * nomadcore and on hypercore@11.35.1, and the transcripts must agree.
 */
import test from 'brittle'
import b4a from 'b4a'
import { sideBySide, outcome, drain, show, link, type SessionLike } from './helpers/side-by-side'
import { keyPair } from '../lib/crypto'

const text = (s: string): Uint8Array => b4a.from(s)

test('a snapshot keeps its length and blocks through appends, truncations and re-appends', async t => {
  const { ours, theirs } = await sideBySide(t, async env => {
    const core = env.open()
    await core.append(['block0', 'block1', 'block2'].map(text))
    const snap = core.snapshot()
    await snap.ready()
    const log: unknown[] = []
    const look = async (): Promise<void> => {
      log.push([snap.length, snap.signedLength, snap.byteLength, snap.fork, await outcome(snap.get(2))])
    }
    await look()
    await core.append(text('block3'))
    await look()
    await core.truncate(3)
    await look()
    await core.truncate(2)
    await look()
    await core.append(text('new block2'))
    await look()
    log.push(await drain(snap.createReadStream()))
    log.push(await outcome(snap.get(3, { wait: false })), await outcome(snap.get(1000)))
    log.push(await snap.has(2), await snap.update())
    await snap.close()
    return log
  })
  t.alike(ours, theirs)
  t.alike((ours as unknown[])[5], ['block0', 'block1', 'block2'], 'the snapshot still reads the old fork')
})

test('a snapshot taken before ready() is fixed when the core opens, and never moves', async t => {
  const { ours, theirs } = await sideBySide(t, async env => {
    const dir = env.dir()
    const first = env.open(dir)
    await first.append(['a', 'b', 'c'].map(text))
    await first.close()
    const core = env.open(dir)
    const s1 = core.snapshot()
    await s1.ready()
    const before = s1.length
    await core.append(text('d'))
    const s2 = core.snapshot()
    await core.append(text('e'))
    await s2.ready()
    const out = [before, s1.length, s2.length, await s1.update(), s1.length]
    await s1.close()
    await s2.close()
    return out
  })
  t.alike(ours, theirs)
})

test('appends and truncations reach every live session, never a snapshot', async t => {
  const { ours, theirs } = await sideBySide(t, async env => {
    const core = env.open()
    await core.ready()
    const a = core.session()
    const snap = core.snapshot()
    await a.ready()
    await snap.ready()
    const heard: string[] = []
    core.on('append', () => heard.push('core append'))
    a.on('append', () => heard.push('session append'))
    snap.on('append', () => heard.push('snapshot append'))
    core.on('truncate', (len: number, fork: number) => heard.push(`core truncate ${len} ${fork}`))
    a.on('truncate', (len: number, fork: number) => heard.push(`session truncate ${len} ${fork}`))
    snap.on('truncate', () => heard.push('snapshot truncate'))
    await a.append(['x', 'y'].map(text))
    await core.truncate(1)
    await a.close()
    await snap.close()
    return heard.sort()
  })
  t.alike(ours, theirs)
  t.ok((ours as string[]).includes('session truncate 1 1'))
})

test('closing one session leaves the others and the core open; the last one out closes the core', async t => {
  const { ours, theirs } = await sideBySide(t, async env => {
    const dir = env.dir()
    const core = env.open(dir)
    await core.append(text('hello'))
    const a = core.session()
    const b = core.session()
    await a.ready()
    await b.ready()
    const closes: string[] = []
    core.on('close', () => closes.push('core'))
    a.on('close', () => closes.push('a'))
    b.on('close', () => closes.push('b'))
    await core.close()
    const log: unknown[] = [core.closed, a.closed, b.closed, await outcome(a.get(0)), await outcome(core.get(0))]
    await a.close()
    log.push(await outcome(b.append(text('world'))), b.length)
    await b.close()
    log.push(closes)
    // Everything is closed: the directory opens again.
    const again = env.open(dir)
    await again.ready()
    log.push(again.length, await outcome(again.get(1)))
    await again.close()
    return log
  })
  t.alike(ours, theirs)
})

test('a pending get is cancelled with its session only', async t => {
  const { ours, theirs } = await sideBySide(t, async env => {
    const core = env.open()
    await core.append(text('0'))
    const s = core.session()
    await s.ready()
    const mine = outcome(s.get(3))
    const other = outcome(core.get(3))
    await new Promise(resolve => setTimeout(resolve, 20))
    await s.close()
    const first = await mine
    await core.append(['1', '2', '3'].map(text))
    return [first, await other, await outcome(s.get(0))]
  })
  t.alike(ours, theirs)
  t.alike((ours as unknown[])[0], { error: 'REQUEST_CANCELLED' })
})

test('each session has its own value encoding, and writable: false means read-only', async t => {
  const { ours, theirs } = await sideBySide(t, async env => {
    const core = env.open()
    await core.append(text(JSON.stringify({ a: 1 })))
    const json = core.session({ valueEncoding: 'json' })
    const utf8 = core.session({ valueEncoding: 'utf-8' })
    const ro = core.session({ writable: false })
    await Promise.all([json.ready(), utf8.ready(), ro.ready()])
    await json.append({ b: 2 })
    const out = [
      await json.get(0), await json.get(1), await utf8.get(1), show(await core.get(1)),
      await core.get(1, { valueEncoding: 'json' }),
      ro.writable, json.writable, await outcome(ro.append(text('no'))), await outcome(ro.truncate(1))
    ]
    await Promise.all([json.close(), utf8.close(), ro.close()])
    return out
  })
  t.alike(ours, theirs)
})

test('a session with a key pair can write to a core opened without its secret key', async t => {
  const kp = keyPair()
  const { ours, theirs } = await sideBySide(t, async env => {
    const dir = env.dir()
    const writer = env.open(dir, null, { keyPair: kp })
    await writer.append(text('first'))
    const key = writer.key
    await writer.close()
    const reader = env.open(dir, key)
    await reader.ready()
    const session = reader.session({ keyPair: kp })
    await session.ready()
    const out = [reader.writable, session.writable, await outcome(reader.append(text('no'))), await outcome(session.append(text('second'))), reader.length]
    await session.close()
    return out
  })
  t.alike(ours, theirs)
})

test('user data is kept on disk, strings come back as bytes, and null deletes', async t => {
  const { ours, theirs } = await sideBySide(t, async env => {
    const dir = env.dir()
    const core = env.open(dir, null, { userData: { greeting: 'hi' } })
    await core.ready()
    await core.setUserData('a', text('one'))
    await core.setUserData('b', 'two')
    await core.setUserData('gone', 'x')
    await core.setUserData('gone', null)
    await core.close()
    const again = env.open(dir)
    await again.ready()
    const out = await Promise.all(['greeting', 'a', 'b', 'gone', 'never'].map(async k => show(await again.getUserData(k))))
    await again.close()
    return out
  })
  t.alike(ours, theirs)
})

test('update() without peers or findingPeers resolves false at once; a snapshot never updates', async t => {
  const { ours, theirs } = await sideBySide(t, async env => {
    const writer = env.open()
    await writer.ready()
    const reader = env.open(null, writer.key)
    await reader.ready()
    const snap = reader.snapshot()
    await snap.ready()
    const out = [await reader.update(), await reader.update({ wait: true }), await writer.update(), await snap.update()]
    await snap.close()
    return out
  })
  t.alike(ours, theirs)
})

test('clear() resolves null, or with { diff: true } an object', async t => {
  const { ours, theirs } = await sideBySide(t, async env => {
    const core = env.open()
    await core.append(['a', 'b', 'c', 'd'].map(text))
    const plain = await core.clear(1)
    const diff = await core.clear(2, 4, { diff: true }) as { blocks: number } | null
    return [plain, diff === null ? null : typeof diff.blocks, await core.has(1), await core.has(0), await outcome(core.get(2, { wait: false }))]
  })
  t.alike(ours, theirs)
})

test('a key passed to the constructor is known before ready(), as bytes, hex or z32', async t => {
  const kp = keyPair()
  const { ours, theirs } = await sideBySide(t, async env => {
    const writer = env.open(null, null, { keyPair: kp })
    await writer.ready()
    const key = writer.key!
    const fromBytes = env.open(null, key)
    const fromHex = env.open(null, b4a.toString(key, 'hex'))
    const fromZ32 = env.open(null, writer.id!)
    const out = [fromBytes.id, fromHex.id, fromZ32.id, b4a.toString(fromZ32.discoveryKey!, 'hex'), writer.id!.length]
    await Promise.all([fromBytes.ready(), fromHex.ready(), fromZ32.ready()])
    return out
  })
  t.alike(ours, theirs)
})

test('byte streams, write streams and read stream options agree with Hypercore 11', async t => {
  const { ours, theirs } = await sideBySide(t, async env => {
    const core = env.open()
    await core.ready()
    const ws = core.createWriteStream()
    const finished = new Promise(resolve => ws.on('finish', resolve))
    for (const s of ['hello', ' ', 'wonderful', ' world']) ws.write(text(s))
    ws.end()
    await finished
    const bytes = async (opts: Record<string, unknown>): Promise<string> => {
      const parts: string[] = []
      for await (const b of core.createByteStream(opts)) parts.push(b4a.toString(b))
      return parts.join('|')
    }
    return [
      core.length,
      await bytes({}),
      await bytes({ byteOffset: 3 }),
      await bytes({ byteOffset: 6, byteLength: 7 }),
      await drain(core.createReadStream({ start: 1, end: 3 })),
      await drain(core.createReadStream({ start: 2 }))
    ]
  })
  t.alike(ours, theirs)
})

test('seek, signable, treeHash and info agree with Hypercore 11', async t => {
  const kp = keyPair()
  const { ours, theirs } = await sideBySide(t, async env => {
    const core = env.open(null, null, { keyPair: kp })
    await core.append(['abc', 'd', 'efg'].map(text))
    const info = await core.info()
    return [
      await core.seek(1), await core.seek(3), await core.seek(5), await core.seek(7), await core.seek(8, { wait: false }),
      b4a.toString(await core.signable(), 'hex'),
      b4a.toString(await core.treeHash(2), 'hex'),
      [info.length, info.byteLength, info.contiguousLength, info.fork, info.padding, info.storage]
    ]
  })
  t.alike(ours, theirs)
})

test('append respects maxLength and refuses blocks over the suggested maximum', async t => {
  const { ours, theirs } = await sideBySide(t, async env => {
    const core = env.open()
    await core.append(['a', 'b'].map(text))
    const capped = await core.append(['c', 'd'].map(text), { maxLength: 3 })
    const fits = await core.append(text('c'), { maxLength: 3 })
    const huge = await outcome(core.append(b4a.alloc(15 * 1024 * 1024 + 1)))
    return [capped, fits, huge]
  })
  t.alike(ours, theirs)
})

test('proof() fills in the block value, as Hypercore 11 does', async t => {
  const kp = keyPair()
  const { ours, theirs } = await sideBySide(t, async env => {
    const core = env.open(null, null, { keyPair: kp })
    await core.append(['zero', 'one', 'two'].map(text))
    const proof = await (core as unknown as { proof (r: unknown): Promise<{ block: { value: Uint8Array } }> }).proof({ block: { index: 1, nodes: 0 } })
    return show(proof.block.value)
  })
  t.alike(ours, theirs)
  t.is(ours, 'one')
})

test('sessions made before the core opens share it; a snapshot of a snapshot is the same view; encodings do not carry over', async t => {
  const { ours, theirs } = await sideBySide(t, async env => {
    const dir = env.dir()
    const first = env.open(dir)
    await first.append(['a', 'b'].map(text))
    await first.close()
    const core = env.open(dir)
    const early = core.session({ valueEncoding: 'utf-8' })
    await early.ready()
    const snap = early.snapshot()
    await snap.ready()
    await core.append(text('c'))
    const snapOfSnap = snap.snapshot()
    await snapOfSnap.ready()
    const out = [early.length, snap.length, snapOfSnap.length, await snapOfSnap.get(1), await outcome(snapOfSnap.get(2))]
    await Promise.all([early.close(), snap.close(), snapOfSnap.close()])
    return out
  })
  t.alike(ours, theirs)
})

test('purge() closes every session and deletes the core', async t => {
  // Hypercore 11.35.1's purge() throws (it calls a method it no longer has), so this is ours alone.
  const { ours } = await sideBySide(t, async env => {
    if (env.kind === 'hypercore') return null
    const dir = env.dir()
    const core = env.open(dir)
    await core.append(text('a'))
    const s = core.session()
    await s.ready()
    await (core as unknown as { purge (): Promise<void> }).purge()
    const again = env.open(dir)
    await again.ready()
    const out = [core.closed, s.closed, again.length]
    await again.close()
    return out
  })
  t.alike(ours, [true, true, 0])
})

test('a weak session closes when the last strong session closes', async t => {
  const { ours, theirs } = await sideBySide(t, async env => {
    const core = env.open()
    await core.append(text('a'))
    const weak = core.session({ weak: true })
    await weak.ready()
    const strong = core.session()
    await strong.ready()
    await core.close()
    const mid = [weak.closed, strong.closed]
    await strong.close()
    await new Promise(resolve => setTimeout(resolve, 20))
    return [mid, weak.closed]
  })
  t.alike(ours, theirs)
  t.alike(ours, [[false, false], true])
})

test('an exclusive session waits for the one before it to close', async t => {
  const { ours, theirs } = await sideBySide(t, async env => {
    const core = env.open()
    await core.ready()
    const order: string[] = []
    const first = core.session({ exclusive: true })
    await first.ready()
    order.push('first ready')
    const second = core.session({ exclusive: true })
    const secondReady = second.ready().then(() => order.push('second ready'))
    const reader = core.session({ exclusive: true, writable: false })
    await reader.ready()
    order.push('read-only one does not wait')
    await new Promise(resolve => setTimeout(resolve, 20))
    order.push('first closes')
    await first.close()
    await secondReady
    await Promise.all([second.close(), reader.close()])
    return order
  })
  t.alike(ours, theirs)
})

test('a reader\'s waiting gets are answered as Hypercore 11 answers them when the writer truncates', async t => {
  const kp = keyPair()
  const { ours, theirs } = await sideBySide(t, async env => {
    const core = env.open(null, null, { keyPair: kp })
    await core.append(['block #0.0', 'block #1.0', 'block #2.0'].map(text))
    const clone = env.open(null, core.key, { valueEncoding: 'utf-8' })
    await clone.ready()
    const truncations: unknown[] = []
    clone.on('truncate', (len: number, fork: number) => truncations.push([len, fork]))
    let unlink = link(core, clone)
    const first = await clone.get(0)
    unlink()
    const p2 = outcome(clone.get(1))
    const p3 = outcome(clone.get(2))
    await core.truncate(2)
    await core.append(['block #2.1', 'block #3.1'].map(text))
    unlink = link(core, clone)
    const out = [first, await p2, await p3, await clone.get(2), clone.fork, truncations]
    unlink()
    return out
  })
  t.alike(ours, theirs)
  t.alike((ours as unknown[])[2], { error: 'SNAPSHOT_NOT_AVAILABLE' })
})

test('a reader\'s snapshot keeps what it held through a reorg and refuses what it did not', async t => {
  const kp = keyPair()
  const { ours, theirs } = await sideBySide(t, async env => {
    const core = env.open(null, null, { keyPair: kp })
    await core.append(['block #0.0', 'block #1.0', 'block #2.0'].map(text))
    const clone = env.open(null, core.key)
    const unlink = link(clone, core)
    await clone.update({ wait: true })
    const snapshot = clone.snapshot({ valueEncoding: 'utf-8' })
    await snapshot.ready()
    const before = [snapshot.length, await snapshot.get(1)]
    const moved = new Promise(resolve => clone.on('truncate', resolve))
    await core.truncate(1)
    await core.append(['block #1.1', 'block #2.1'].map(text))
    await moved
    const out = [before, clone.fork, await outcome(snapshot.get(0)), await outcome(snapshot.get(1)), await outcome(snapshot.get(2)), snapshot.length, snapshot.signedLength]
    await snapshot.close()
    unlink()
    return out
  })
  t.alike(ours, theirs)
})

test('a snapshot taken before a local truncation keeps the blocks it held', async t => {
  const { ours, theirs } = await sideBySide(t, async env => {
    const core = env.open(null, null, { valueEncoding: 'utf-8' })
    await core.append(['a', 'b', 'c', 'd'])
    await core.clear(2)
    const snap = core.snapshot({ valueEncoding: 'utf-8' })
    await snap.ready()
    await core.truncate(1)
    await core.append(['B', 'C', 'D'])
    const out = [await outcome(snap.get(1)), await outcome(snap.get(2, { wait: false })), await outcome(snap.get(3)), await snap.has(3), await snap.has(2), await core.get(1)]
    await snap.close()
    return out
  })
  t.alike(ours, theirs)
})

test('a block a snapshot kept through a truncation reads as a buffer of its own each time', async t => {
  const { ours, theirs } = await sideBySide(t, async env => {
    const core = env.open(null, null)
    await core.append([text('first'), text('second'), text('third')])
    const snap = core.snapshot()
    await snap.ready()
    await core.truncate(1)
    const got = await snap.get(1) as Uint8Array
    got[0] = 0x53 // 'S'
    const again = await snap.get(2) as Uint8Array
    again.fill(0x2e)
    const out = [b4a.toString(got), b4a.toString(await snap.get(1) as Uint8Array), b4a.toString(await snap.get(2) as Uint8Array)]
    await snap.close()
    return out
  })
  t.alike(ours, theirs)
  t.alike(ours, ['Second', 'second', 'third'], 'what a caller does to a block changes no later read')
})

test('every session of a core hears its uploads and downloads, snapshots too, with the bytes of each block', async t => {
  const { ours, theirs } = await sideBySide(t, async env => {
    const w = env.open()
    await w.append(['a', 'bb', 'ccc', 'dddd'].map(text))
    const ws = w.session()
    const r = env.open(null, w.key)
    await r.ready()
    const rs = r.session()
    const rsnap = r.snapshot()
    const heard: Record<string, string[]> = {}
    const listen = (name: string, s: SessionLike, event: string): void => {
      heard[name] = []
      s.on(event, (index: number, byteLength: number) => { heard[name]!.push(index + ':' + byteLength) })
    }
    listen('writer', w, 'upload')
    listen('writer session', ws, 'upload')
    listen('reader', r, 'download')
    listen('reader session', rs, 'download')
    listen('reader snapshot', rsnap, 'download')
    const unlink = link(w, r)
    await r.update({ wait: true })
    await r.download({ start: 0, end: 4 }).done()
    unlink()
    for (const name of Object.keys(heard)) heard[name]!.sort()
    await Promise.all([ws.close(), rs.close(), rsnap.close()])
    return heard
  })
  t.alike(ours, theirs)
  t.alike((ours as Record<string, string[]>)['reader snapshot'], ['0:1', '1:2', '2:3', '3:4'])
})

/** Kept for readers of the transcripts above: what one looks like. */
export type Transcript = Array<SessionLike | unknown>
