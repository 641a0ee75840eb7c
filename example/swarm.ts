// Run: npx tsc -p . && node dist/example/swarm.js   (replicates a core over Hyperswarm on a local 127.0.0.1 DHT testnet)
/**
 * Replication the way Hypercore runs in production, but offline: a local
 * HyperDHT testnet on 127.0.0.1, a writer swarm that announces the core's
 * discovery key, and a reader swarm that finds it, connects, and replicates
 * over the Hyperswarm connection (`core.replicate(conn)`).
 */
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import b4a from 'b4a'
import Hyperswarm from 'hyperswarm'
import HyperDHT from 'hyperdht'
import createTestnet from 'hyperdht/testnet'
import { Hypercore } from '../lib/hypercore'

const hex = (b: Uint8Array | null): string => b === null ? '-' : b4a.toString(b as Buffer, 'hex').slice(0, 16) + '…'

/** A swarm on the testnet. Its DHT node binds to 127.0.0.1, so no packet leaves loopback. */
function localSwarm (bootstrap: HyperDHT.Node[]): Hyperswarm {
  return new Hyperswarm({ dht: new HyperDHT({ bootstrap, host: '127.0.0.1' }) })
}

/** Rejects after `ms` so a step that never completes cannot hang the example. */
function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

async function main (): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nomadcore-swarm-'))
  const cleanup: Array<() => Promise<unknown>> = []
  try {
    console.log('1. start a local DHT testnet (3 nodes on 127.0.0.1)')
    const testnet = await createTestnet(3, { host: '127.0.0.1' })
    cleanup.push(() => testnet.destroy())
    console.log('   bootstrap', testnet.bootstrap.map(n => `${n.host}:${n.port}`).join(', '))

    console.log('2. writer: create a core in', path.join(root, 'writer'))
    const writer = new Hypercore(path.join(root, 'writer'), { valueEncoding: 'utf-8' })
    cleanup.push(() => writer.close())
    await writer.ready()
    await writer.append(['hello', 'from', 'nomadcore', 'over', 'hyperswarm'])
    console.log('   key', hex(writer.key), 'length', writer.length)

    const writerSwarm = localSwarm(testnet.bootstrap)
    cleanup.push(() => writerSwarm.destroy())
    writerSwarm.on('connection', (conn) => {
      console.log('   writer: connection from', hex(conn.remotePublicKey))
      writer.replicate(conn)
    })
    await within(writerSwarm.join(writer.discoveryKey!, { server: true, client: false }).flushed(), 10000, 'announce')
    console.log('3. writer: announced discovery key', hex(writer.discoveryKey))

    console.log('4. reader: open a core by key in', path.join(root, 'reader'))
    const reader = new Hypercore(path.join(root, 'reader'), writer.key, { valueEncoding: 'utf-8' })
    cleanup.push(() => reader.close())
    await reader.ready()

    const readerSwarm = localSwarm(testnet.bootstrap)
    cleanup.push(() => readerSwarm.destroy())
    readerSwarm.on('connection', (conn) => {
      console.log('   reader: connected to', hex(conn.remotePublicKey))
      reader.replicate(conn)
    })
    const done = reader.findingPeers()
    readerSwarm.join(reader.discoveryKey!, { server: false, client: true })
    readerSwarm.flush().then(done, done)

    const grew = await within(reader.update({ wait: true }), 10000, 'reader.update({ wait: true })')
    console.log('5. reader: update() ->', grew, 'length', reader.length, 'peers', reader.peers.length)

    for (let i = 0; i < reader.length; i++) {
      console.log(`   block ${i}:`, await reader.get(i, { timeout: 5000 }))
    }

    console.log('6. writer: live append')
    const next = reader.length
    const appended = reader.update({ wait: true })
    await writer.append('appended while connected')
    await within(appended, 10000, 'live update')
    console.log(`   reader: length ${reader.length}, block ${next}:`, await reader.get(next, { timeout: 5000 }))
  } finally {
    console.log('7. tear down')
    for (const fn of cleanup.reverse()) await fn().catch((err: unknown) => console.error('   teardown:', err))
    fs.rmSync(root, { recursive: true, force: true })
  }
  console.log('done')
}

main().catch(err => {
  console.error(err)
  process.exitCode = 1
})
