/**
 * seek() on a replica uses the network, as Hypercore 11's does: a seek
 * request to a peer, the proof verified and its nodes stored, then the
 * answer from local nodes. It waits for peers and an upgrade, and gives up
 * with REQUEST_TIMEOUT like get. Checked with Hypercore 11 on either side.
 */
import test from 'brittle'
import b4a from 'b4a'
import { ramCore, replicate, rejection, sleep } from './helpers/replication'
import { makeCore, connect, follows, type AnyCore, type Impl } from './helpers/forks'

/** Blocks of uneven sizes: 'x' repeated 1 + (i * 7) % 13 times. */
function uneven (n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => b4a.alloc(1 + (i * 7) % 13, 'x'))
}

/** Byte offsets to seek: block starts, middles and ends across the core. */
function offsets (byteLength: number): number[] {
  const out: number[] = []
  for (let b = 0; b <= byteLength; b += Math.max(1, Math.floor(byteLength / 37))) out.push(b)
  out.push(byteLength - 1, byteLength)
  return out
}

for (const [w, r] of [['nomad', 'nomad'], ['hc11', 'nomad'], ['nomad', 'hc11']] as Array<[Impl, Impl]>) {
  test(w + ' writer → ' + r + ' replica: seek fetches what it needs and agrees with the writer, downloading no block', async t => {
    const writer = await makeCore(t, w)
    await writer.append(uneven(300))
    const reader = await makeCore(t, r, writer.key)
    connect(t, writer, reader)
    await follows(reader, writer)
    const byteLength = (writer as unknown as { byteLength: number }).byteLength
    let differ = 0
    for (const bytes of offsets(byteLength)) {
      const [ours, theirs] = await Promise.all([reader.seek(bytes, { timeout: 5000 }), writer.seek(bytes)])
      if (ours === null || ours[0] !== theirs![0] || ours[1] !== theirs![1]) differ++
    }
    t.is(differ, 0, 'every seek answers as the writer does')
    let held = 0
    for (let i = 0; i < 300; i++) if (await reader.has(i)) held++
    t.is(held, 0, 'proofs, not blocks')
  })
}

test('seek through a sparse relay that holds one block, as in Hypercore 11\'s "seek gossip" test', async t => {
  for (const [a, b, c] of [['nomad', 'nomad', 'nomad'], ['hc11', 'hc11', 'nomad'], ['nomad', 'nomad', 'hc11']] as Array<[Impl, Impl, Impl]>) {
    const writer = await makeCore(t, a)
    await writer.append(Array.from({ length: 10000 }, () => b4a.from('.')))
    const relay = await makeCore(t, b, writer.key)
    const reader = await makeCore(t, c, writer.key)
    connect(t, writer, relay)
    connect(t, relay, reader)
    await relay.get(4999)
    t.alike(await reader.seek(4999, { timeout: 10000 }), [4999, 0], a + ' → ' + b + ' relay → ' + c + ': seek(4999)')
  }
})

test('seek on a replica waits for a peer, then answers', async t => {
  const w = await ramCore(t)
  await w.append(uneven(100))
  const r = await ramCore(t, w.key)
  const pending = r.seek(333, { timeout: 10000 })
  await sleep(50)
  replicate(t, w, r)
  t.alike(await pending, await w.seek(333))
})

test('seek past the byte length waits for the writer to append (seeking while replicating)', async t => {
  const w = await ramCore(t)
  const r = await ramCore(t, w.key)
  replicate(t, w, r)
  const pending = r.seek(6, { timeout: 10000 })
  await sleep(50)
  await w.append(['hello', 'this', 'is', 'test', 'data'].map(s => b4a.from(s)))
  t.alike(await pending, [1, 1])
})

test('seek with wait: false resolves null, and with a timeout rejects REQUEST_TIMEOUT, when no peer can answer', async t => {
  const w = await ramCore(t)
  await w.append(uneven(100))
  const r = await ramCore(t, w.key)
  const link = replicate(t, w, r)
  await r.update({ wait: true })
  link.destroy()
  t.is(await r.seek(500, { wait: false }), null, 'the nodes are not here')
  const err = await rejection(r.seek(500, { timeout: 100 }))
  t.is(err?.code, 'REQUEST_TIMEOUT')
  const hc = await makeCore(t, 'hc11')
  const hcErr = await rejection(hc.seek(6, { timeout: 100 }))
  t.is(hcErr?.code, err?.code, 'as Hypercore 11 answers')
})

test('seek after a reorg answers from the new fork', async t => {
  const w = await ramCore(t)
  await w.append(uneven(50))
  const r = await ramCore(t, w.key)
  replicate(t, w, r)
  await r.update({ wait: true })
  await w.truncate(20)
  await w.append(Array.from({ length: 30 }, () => b4a.alloc(40, 'y')))
  await follows(r as unknown as AnyCore, w as unknown as AnyCore)
  const bytes = w.byteLength - 45
  t.alike(await r.seek(bytes, { timeout: 5000 }), await w.seek(bytes))
})
