/**
 * Replication over Hyperswarm, the way Hypercore runs in production, on a
 * local HyperDHT testnet bound to 127.0.0.1: a nomadcore writer announces its
 * discovery key; a nomadcore reader and a Hypercore 11 reader find it through
 * the DHT, connect, and replicate over the swarm connection.
 */
import test from 'brittle'
import b4a from 'b4a'
import Hyperswarm from 'hyperswarm'
import HyperDHT from 'hyperdht'
import createTestnet from 'hyperdht/testnet'
import { freshDir, openCore, blocks, Hypercore } from './helpers/core'
import { makeHypercore, tmpDir, type Hypercore as Hypercore11, type ReplicationStream, type Teardownable } from './helpers/oracle'

/** Every wait below is bounded by this, so a broken replication fails instead of hanging. */
const STEP_MS = 5000

/** Rejects after `ms`, naming the step that did not complete. */
function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** A swarm on the testnet, destroyed at teardown. Its DHT node binds to 127.0.0.1 so nothing leaves loopback. */
function localSwarm (t: Teardownable, bootstrap: HyperDHT.Node[]): Hyperswarm {
  const swarm = new Hyperswarm({ dht: new HyperDHT({ bootstrap, host: '127.0.0.1' }) })
  t.teardown(() => swarm.destroy(), { order: -1 })
  return swarm
}

/** Hypercore 11 takes the swarm's connection as its replication stream (typed loosely in the oracle). */
function asReplicationStream (conn: Hyperswarm.Connection): ReplicationStream {
  return conn as unknown as ReplicationStream
}

/** Resolves on the next `event` from `emitter`; bounded like every other wait. */
function next (emitter: { once (event: string, fn: () => void): unknown }, event: string, what: string): Promise<void> {
  return within(new Promise<void>(resolve => { emitter.once(event, () => resolve()) }), STEP_MS, what)
}

test('nomadcore replicates over Hyperswarm on a local DHT testnet', { timeout: 15000 }, async t => {
  const testnet = await createTestnet(3, { host: '127.0.0.1' })
  t.teardown(() => testnet.destroy(), { order: 1 })
  for (const node of testnet) t.is(node.address().host, '127.0.0.1', 'testnet node bound to 127.0.0.1')

  // Writer: a nomadcore core, announced on the DHT under its discovery key.
  // Every core in `served` is replicated on every connection, as Corestore does.
  const writer = await openCore(t, freshDir(t, 'swarm-writer'))
  const served: Hypercore[] = [writer]
  const initial = blocks(8)
  await writer.append(initial)
  const writerSwarm = localSwarm(t, testnet.bootstrap)
  writerSwarm.on('connection', conn => {
    for (const core of served) core.replicate(conn)
  })
  await within(writerSwarm.join(writer.discoveryKey!, { server: true, client: false }).flushed(), STEP_MS, 'writer announce')

  await t.test('a nomadcore reader finds the writer and gets its blocks, then a live append', async t => {
    const reader = await openCore(t, freshDir(t, 'swarm-reader'), { key: writer.key })
    const swarm = localSwarm(t, testnet.bootstrap)
    const conns: Hyperswarm.Connection[] = []
    swarm.on('connection', conn => {
      conns.push(conn)
      reader.replicate(conn)
    })

    // The Hypercore docs' pattern: update() waits until the swarm is flushed.
    const done = reader.findingPeers()
    swarm.join(reader.discoveryKey!, { server: false, client: true })
    swarm.flush().then(done, done)
    t.ok(await within(reader.update({ wait: true }), STEP_MS, 'reader.update({ wait: true })'), 'update() reports the core grew')

    t.is(conns.length, 1, 'one swarm connection')
    t.ok(conns[0]!.isInitiator, 'the reader dialled (client side)')
    t.is(reader.peers.length, 1, 'one replicating peer')
    t.is(reader.length, initial.length, 'reader learned the length')
    t.is(reader.byteLength, writer.byteLength, 'and the byte length')
    t.alike(await reader.treeHash(), await writer.treeHash(), 'same tree hash')
    const got: Uint8Array[] = []
    for (let i = 0; i < reader.length; i++) got.push(await reader.get(i, { timeout: STEP_MS }) as Uint8Array)
    t.alike(got, initial, 'every block, byte for byte')

    // Live: the writer appends while connected; the reader hears of it over the swarm.
    const appended = next(reader, 'append', 'live append')
    const more = blocks(3, initial.length)
    await writer.append(more)
    await appended
    t.is(reader.length, initial.length + more.length, 'the live append reaches the reader')
    for (let i = 0; i < more.length; i++) {
      t.alike(await reader.get(initial.length + i, { timeout: STEP_MS }), more[i], `live block ${initial.length + i}`)
    }

    // A block appended with nothing waiting for it arrives by get() alone.
    const index = writer.length
    await writer.append(b4a.from('last one'))
    t.alike(await reader.get(index, { timeout: STEP_MS }), b4a.from('last one'), 'get() of a freshly appended block')
  })

  await t.test('a Hypercore 11 reader replicates from the nomadcore writer over the same testnet', async t => {
    const reader: Hypercore11 = await makeHypercore(await tmpDir(t), writer.key)
    t.teardown(() => reader.close(), { order: 0.5 })
    const swarm = localSwarm(t, testnet.bootstrap)
    swarm.on('connection', conn => { reader.replicate(asReplicationStream(conn)) })

    const done = reader.findingPeers()
    swarm.join(reader.discoveryKey!, { server: false, client: true })
    swarm.flush().then(done, done)
    t.ok(await within(reader.update({ wait: true }), STEP_MS, 'Hypercore 11 update()'), 'Hypercore 11 update() reports the core grew')

    t.is(reader.length, writer.length, 'Hypercore 11 learned the length')
    t.alike(await reader.treeHash(), b4a.from(await writer.treeHash()), 'same tree hash')
    for (let i = 0; i < writer.length; i++) {
      const theirs = await reader.get(i, { timeout: STEP_MS })
      const ours = await writer.get(i) as Uint8Array
      t.alike(theirs, b4a.from(ours), `block ${i} from the nomadcore writer`)
    }

    const appended = next(reader, 'append', 'Hypercore 11 live append')
    const index = writer.length
    await writer.append(b4a.from('for hypercore 11'))
    await appended
    t.is(reader.length, index + 1, 'the live append reaches Hypercore 11')
    t.alike(await reader.get(index, { timeout: STEP_MS }), b4a.from('for hypercore 11'), 'and its block')
  })

  await t.test('two cores replicate over one swarm connection', async t => {
    const second = await openCore(t, freshDir(t, 'swarm-writer2'))
    await second.append(blocks(5, 100))
    served.push(second)
    t.teardown(() => { served.splice(served.indexOf(second), 1) }, { order: -2 })
    await within(writerSwarm.join(second.discoveryKey!, { server: true, client: false }).flushed(), STEP_MS, 'second announce')

    const readers = [
      await openCore(t, freshDir(t, 'swarm-reader-a'), { key: writer.key }),
      await openCore(t, freshDir(t, 'swarm-reader-b'), { key: second.key })
    ]
    const swarm = localSwarm(t, testnet.bootstrap)
    let conns = 0
    swarm.on('connection', conn => {
      conns++
      for (const r of readers) r.replicate(conn)
    })
    const done = readers.map(r => r.findingPeers())
    for (const r of readers) swarm.join(r.discoveryKey!, { server: false, client: true })
    const finish = (): void => { for (const d of done) d() }
    swarm.flush().then(finish, finish)
    await within(Promise.all(readers.map(r => r.update({ wait: true }))), STEP_MS, 'both updates')

    t.is(conns, 1, 'the swarm dedupes to one connection to the writer')
    t.is(readers[0]!.length, writer.length, 'first core synced')
    t.is(readers[1]!.length, second.length, 'second core synced over the same connection')
    t.alike(await readers[1]!.get(4, { timeout: STEP_MS }), blocks(1, 104)[0], 'a block of the second core')
  })

  await t.test('a dropped swarm connection removes the peer; the swarm reconnects and replication resumes', async t => {
    const reader = await openCore(t, freshDir(t, 'swarm-reader-drop'), { key: writer.key })
    const swarm = localSwarm(t, testnet.bootstrap)
    swarm.on('connection', conn => { reader.replicate(conn) })
    const done = reader.findingPeers()
    swarm.join(reader.discoveryKey!, { server: false, client: true })
    swarm.flush().then(done, done)
    await within(reader.update({ wait: true }), STEP_MS, 'reader.update({ wait: true })')
    t.is(reader.peers.length, 1, 'connected')

    const removed = next(reader, 'peer-remove', 'peer-remove after the drop')
    const added = next(reader, 'peer-add', 'peer-add after the swarm reconnects')
    for (const conn of swarm.connections) conn.destroy()
    await removed
    t.is(reader.peers.length, 0, 'the peer is gone with its connection')

    await added
    t.is(reader.peers.length, 1, 'a new peer on the new connection')
    const appended = next(reader, 'append', 'append after reconnect')
    const index = writer.length
    await writer.append(b4a.from('after reconnect'))
    await appended
    t.alike(await reader.get(index, { timeout: STEP_MS }), b4a.from('after reconnect'), 'replication resumed')
  })
})
