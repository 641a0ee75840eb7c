/**
 * The rest of Hypercore 11's public surface, item by item, each against
 * hypercore@11.35.1: signatures made elsewhere, statics, the manifest and
 * remote-contiguous-length events, and the properties Hypercore 11 has.
 */
import test from 'brittle'
import b4a from 'b4a'
import { sideBySide, outcome, link, HC11, type SessionLike } from './helpers/side-by-side'
import { Hypercore } from '../lib/hypercore'
import { keyPair } from '../lib/crypto'
import { until } from './helpers/replication'
import { tmpDir } from './helpers/oracle'

const text = (s: string): Uint8Array => b4a.from(s)
const hex = (b: Uint8Array | null): string | null => b === null ? null : b4a.toString(b, 'hex')

interface Proving { proof (req: unknown): Promise<{ upgrade: { signature: Uint8Array } }> }
interface HasManifest { readonly manifest: unknown, getManifest (opts?: { raw?: boolean }): unknown }

test('append and truncate take a signature made elsewhere; a wrong one is INVALID_SIGNATURE', async t => {
  const kp = keyPair()
  const { ours, theirs } = await sideBySide(t, async env => {
    const signer = env.open(null, null, { keyPair: kp })
    await signer.append(['x', 'y'].map(text))
    const twoBlocks = (await (signer as unknown as Proving).proof({ upgrade: { start: 0, length: 2 } })).upgrade.signature
    await signer.truncate(1)
    const truncated = (await (signer as unknown as Proving).proof({ upgrade: { start: 0, length: 1 } })).upgrade.signature

    // A core that knows the manifest but holds no secret key of its signer.
    const copy = env.open(null, null, { manifest: (signer as unknown as HasManifest).manifest })
    await copy.ready()
    const noManifest = env.open(null, signer.key)
    await noManifest.ready()
    return [
      hex(copy.key) === hex(signer.key),
      await outcome(noManifest.append(['x', 'y'].map(text), { signature: twoBlocks })),
      await outcome(copy.append(['x', 'y'].map(text), { signature: twoBlocks })),
      await outcome(copy.append(text('z'), { signature: twoBlocks })),
      copy.length,
      await outcome(copy.truncate(1, { fork: 1, signature: truncated })),
      copy.length, copy.fork,
      hex(await copy.treeHash()) === hex(await signer.treeHash())
    ]
  })
  t.alike(ours, theirs)
  t.alike((ours as unknown[])[3], { error: 'INVALID_SIGNATURE' })
})

test('statics: key(), discoveryKey(), MAX_SUGGESTED_BLOCK_SIZE, blockEncryptionKey() and protocol streams', async t => {
  const kp = keyPair()
  const Their = HC11 as unknown as {
    key (m: unknown, o?: unknown): Uint8Array
    discoveryKey (k: Uint8Array): Uint8Array
    MAX_SUGGESTED_BLOCK_SIZE: number
    blockEncryptionKey (k: Uint8Array, e: Uint8Array): Uint8Array
  }
  const ref = new HC11(await tmpDir(t), null, { keyPair: kp })
  await ref.ready()
  t.teardown(() => ref.close())
  const manifest = (ref as unknown as HasManifest).manifest
  t.is(hex(Hypercore.key(manifest as never)), hex(Their.key(manifest)), 'key of a manifest')
  t.is(hex(Hypercore.key(kp.publicKey)), hex(Their.key(kp.publicKey)), 'key of a public key')
  t.is(hex(Hypercore.key(kp.publicKey, { compat: true })), hex(Their.key(kp.publicKey, { compat: true })), 'compat key')
  t.is(hex(Hypercore.discoveryKey(ref.key!)), hex(Their.discoveryKey(ref.key!)))
  t.is(Hypercore.MAX_SUGGESTED_BLOCK_SIZE, Their.MAX_SUGGESTED_BLOCK_SIZE)
  const secret = b4a.alloc(32, 7)
  t.is(hex(Hypercore.blockEncryptionKey(ref.key!, secret)), hex(Their.blockEncryptionKey(ref.key!, secret)))

  // A protocol stream made without a core hears which cores the remote asks for.
  const asked: string[] = []
  const writer = new Hypercore(await tmpDir(t))
  await writer.append(text('hi'))
  t.teardown(() => writer.close())
  const bare = Hypercore.createProtocolStream(false, { ondiscoverykey: dk => { asked.push(hex(dk)!) } })
  const theirs = writer.replicate(true, { keepAlive: false }) as unknown as NodeJS.ReadWriteStream
  theirs.pipe(bare as unknown as NodeJS.ReadWriteStream).pipe(theirs)
  t.ok(Hypercore.getProtocolMuxer(bare), 'the stream carries a protomux')
  await until(() => asked.length === 1, 3000, 'the remote asked for its core')
  t.alike(asked, [hex(writer.discoveryKey)])
  ;(bare as unknown as { destroy (): void }).destroy()
})

test('a reader emits manifest and remote-contiguous-length as Hypercore 11 does', async t => {
  const kp = keyPair()
  const { ours, theirs } = await sideBySide(t, async env => {
    const w = env.open(null, null, { keyPair: kp })
    await w.append(['x', 'y', 'z'].map(text))
    const r = env.open(null, w.key)
    await r.ready()
    const heard: unknown[] = []
    r.on('manifest', () => heard.push('manifest'))
    r.on('remote-contiguous-length', (len: number) => heard.push(['remote-contiguous-length', len]))
    const before = (r as unknown as HasManifest).getManifest()
    const unlink = link(w, r)
    await r.update({ wait: true })
    await until(() => heard.length >= 2, 3000, 'both events')
    await r.download({ start: 0, end: 3 }).done()
    await until(() => w.remoteContiguousLength === 3, 3000, 'the writer learns the reader holds it all')
    const raw = (r as unknown as HasManifest).getManifest({ raw: true }) as Uint8Array
    const out = [
      before, heard.map(String).sort(), r.remoteContiguousLength, w.remoteContiguousLength,
      hex(raw) === hex((w as unknown as HasManifest).getManifest({ raw: true }) as Uint8Array),
      Object.keys((r as unknown as HasManifest).getManifest() as object)
    ]
    unlink()
    return out
  })
  t.alike(ours, theirs)
})

test('properties Hypercore 11 has: contiguousByteLength, padding, snapshotted', async t => {
  const { ours, theirs } = await sideBySide(t, async (env) => {
    const core = env.open()
    await core.append(['a', 'bb'].map(text))
    const snap = core.snapshot()
    await snap.ready()
    const p = (s: SessionLike): unknown[] => {
      const x = s as unknown as { contiguousByteLength: number, padding: number, snapshotted: boolean }
      return [x.contiguousByteLength, x.padding, x.snapshotted]
    }
    const out = [p(core), p(snap)]
    await snap.close()
    return out
  })
  t.alike(ours, theirs)
})

test('a reader that is shown a second signed tree at its length emits conflict and closes, as Hypercore 11 does', async t => {
  const kp = keyPair()
  const { ours, theirs } = await sideBySide(t, async env => {
    // Two cores signed by one key pair with different blocks at the same fork and length: an equivocating writer.
    const a = env.open(null, null, { keyPair: kp })
    await a.append(['a', 'b', 'c'].map(text))
    const reader = env.open(null, a.key)
    await reader.ready()
    const heard: unknown[] = []
    reader.on('conflict', (length: number, fork: number) => heard.push(['conflict', length, fork]))
    const closed = new Promise(resolve => reader.on('close', resolve))
    const unlink = link(a, reader)
    await reader.update({ wait: true })
    await reader.download({ start: 0, end: 3 }).done()
    unlink()

    // The other tree lives in a Hypercore 11 core: it asks the reader for its tree and finds the conflict itself.
    const other = new HC11(env.dir(), null, { keyPair: kp }) as unknown as SessionLike & { recoverTreeNodeFromPeers (): void }
    t.teardown(() => other.close())
    await other.append(['x', 'y', 'z'].map(text))
    const otherHeard = new Promise(resolve => other.on('conflict', (length: number) => resolve(length)))
    t.teardown(link(other, reader))
    await until(() => reader.peers.length === 1, 3000, 'connected')
    other.recoverTreeNodeFromPeers()
    const otherLength = await otherHeard
    await closed
    return [otherLength, heard, reader.closed, await outcome(reader.get(0))]
  })
  t.alike(ours, theirs)
  t.alike((ours as unknown[])[1], [['conflict', 3, 0]])
})

test('treeHash(length) on a replica that lacks that length\'s roots fetches what it needs, as Hypercore 11 does', async t => {
  const kp = keyPair()
  const { ours, theirs } = await sideBySide(t, async env => {
    const w = env.open(null, null, { keyPair: kp })
    await w.append(['a', 'bb', 'ccc', 'dddd', 'eeeee'].map(text))
    const r = env.open(null, w.key)
    await r.ready()
    const unlink = link(w, r)
    await r.update({ wait: true })
    const out = await Promise.all([1, 2, 3, 5].map(async n => hex(await r.treeHash(n)) === hex(await w.treeHash(n))))
    unlink()
    return out
  })
  t.alike(ours, theirs)
  t.alike(ours, [true, true, true, true])
})
