/**
 * One writer serving many in-memory readers in one process: every reader
 * downloads the whole core at once. Aggregate throughput, and memory per
 * reader against the data it holds. nomadcore only: Hypercore 11 keeps a
 * core in RocksDB on disk and has no in-memory storage to put a hundred
 * readers in.
 *
 * Each round runs in a process of its own (this file, run directly), so
 * the memory it measures is the scenario's and not what the rows before it
 * left in the bench's heap; one untimed reader downloads first, so one
 * reader and a hundred both run warm code.
 */
import { spawn } from 'child_process'
import RAM from 'random-access-memory'
import { Hypercore } from '../lib/hypercore'
import { RssSampler } from './replication'
import { blockPool, collectGarbage, fmtInt, fmtOps, type Column, type Metrics, type Row, type RowResult, type Section } from './harness'

const BLOCKS = 10_000
const BLOCK_SIZE = 1024
const POOL = blockPool(0x4ead, 256, BLOCK_SIZE)
const MIB = 2 ** 20

/** A random-access-memory factory that can say how many bytes its files hold. */
function countedRam (): { factory: (name: string) => RAM, bytes: () => number } {
  const files: RAM[] = []
  return {
    factory: () => {
      const ram = new RAM()
      files.push(ram)
      return ram
    },
    bytes: () => {
      let n = 0
      for (const f of files) {
        const pages = (f as unknown as { buffers: Array<Uint8Array | undefined> }).buffers
        for (const p of pages) if (p !== undefined && p !== null) n += p.byteLength
      }
      return n
    }
  }
}

/** The in-memory writer, filled (untimed). */
async function memoryWriter (n: number): Promise<Hypercore> {
  const w = new Hypercore(() => new RAM())
  await w.ready()
  for (let i = 0; i < n; i += 1000) {
    const batch: Uint8Array[] = []
    for (let k = i; k < Math.min(n, i + 1000); k++) batch.push(POOL[k % POOL.length]!)
    await w.append(batch)
  }
  return w
}

type Stream = NodeJS.ReadWriteStream & { destroy (): void }

/** A fresh reader of `writer` on `storage`, piped to it over a stream pair of its own. */
function pipedReader (writer: Hypercore, storage: (name: string) => RAM): { reader: Hypercore, streams: Stream[] } {
  const reader = new Hypercore(storage, writer.key!)
  const a = writer.replicate(true) as unknown as Stream
  const b = reader.replicate(false) as unknown as Stream
  a.pipe(b).pipe(a)
  return { reader, streams: [a, b] }
}

/**
 * The scenario, in this process: a writer of `n` blocks, then `readers`
 * fresh readers each piped to it, timed until all hold every block; then
 * every reader checked. Metrics: the time, RSS at the start and at its peak,
 * the bytes each reader's files hold.
 */
async function readersRound (readers: number, n: number): Promise<Metrics> {
  const writer = await memoryWriter(n)
  // One untimed reader first, so the timed ones run warm code whatever their number.
  const warm = pipedReader(writer, () => new RAM())
  await warm.reader.download({ start: 0, end: n }).done()
  for (const s of warm.streams) s.destroy()
  await warm.reader.close()
  const ram = countedRam()
  const cores: Hypercore[] = []
  const streams: Stream[] = []
  collectGarbage()
  const rss = new RssSampler()
  const t0 = performance.now()
  for (let r = 0; r < readers; r++) {
    const piped = pipedReader(writer, ram.factory)
    cores.push(piped.reader)
    streams.push(...piped.streams)
  }
  await Promise.all(cores.map(c => c.download({ start: 0, end: n }).done()))
  const timedMs = performance.now() - t0
  const { rssStartMiB, rssPeakMiB } = rss.stop()
  for (const s of streams) s.destroy()
  for (const c of cores) {
    if (c.length !== n || !(await c.has(0, n))) throw new Error(`a reader holds ${c.length} blocks, not ${n}`)
  }
  const last = await cores[cores.length - 1]!.get(n - 1) as Uint8Array
  if (Buffer.compare(last, POOL[(n - 1) % POOL.length]!) !== 0) throw new Error('a reader\'s last block is not the writer\'s')
  const heldMiB = ram.bytes() / MIB / readers
  await Promise.all(cores.map(c => c.close()))
  await writer.close()
  return { timedMs, rssStartMiB, rssPeakMiB, heldMiB, readers }
}

/** One round in a child process (this file): its metrics, from the one JSON line it prints. */
function roundInChild (readers: number, n: number): Promise<Metrics> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [__filename, String(readers), String(n)], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk: string) => { out += chunk })
    child.on('error', reject)
    child.on('close', code => {
      if (code !== 0) return reject(new Error(`the readers' process exited with ${String(code)}`))
      try {
        resolve(JSON.parse(out) as Metrics)
      } catch (err) {
        reject(err)
      }
    })
  })
}

function readersRow (id: string, readers: number): Row {
  return {
    id,
    label: `${readers} in-memory reader${readers === 1 ? '' : 's'} of one writer, ${fmtInt(BLOCKS)} × 1 KiB each`,
    unit: 'block',
    contenders: ['nomadcore'],
    rounds: { max: readers > 1 ? 1 : 3 },
    warmup: false,
    quick: readers === 1,
    note: `A writer of ${fmtInt(BLOCKS)} blocks of 1 KiB in memory (random-access-memory, filled untimed) and ${readers} fresh in-memory ` +
      `reader${readers === 1 ? '' : 's'}, all in one process of their own (a child of the bench, one per round), each piped to the writer over its own secret stream; timed ` +
      'in that process, after one untimed reader has downloaded the core (warm code), from the first reader made until every reader holds every block (`download().done()`). ops = blocks stored, all readers together. Memory: see the many-readers table.',
    async prepare (contender, env) {
      const n = env.count(BLOCKS, 200)
      return {
        ops: n * readers,
        run: () => roundInChild(readers, n)
      }
    }
  }
}

export const oneReader = readersRow('readers-1', 1)
export const hundredReaders = readersRow('readers-100', 100)
export const manyReaderRows: readonly Row[] = [oneReader, hundredReaders]

export const manyReadersSection: Section = {
  title: 'Many readers of one writer (nomadcore)',
  rows: manyReaderRows.map(r => r.id),
  table (results: readonly RowResult[]) {
    const columns: Column[] = [
      { header: 'readers', align: 'right' },
      { header: 'blocks stored, all readers', align: 'right' },
      { header: 'aggregate blocks/s', align: 'right' },
      { header: 'aggregate MiB/s', align: 'right' },
      { header: 's', align: 'right' },
      { header: 'peak RSS MiB (at start)', align: 'right' },
      { header: 'RSS per reader MiB', align: 'right' },
      { header: 'held per reader MiB', align: 'right' },
      { header: 'per reader beyond what it holds MiB', align: 'right' }
    ]
    const rows = results.map(r => {
      const m = r.results.get('nomadcore')
      if (m === undefined) return [r.row.id, '-', '-', '-', '-', '-', '-', '-', '-']
      const x = m.metrics[m.bestRound] ?? {}
      const readers = x.readers ?? 1
      const perReader = ((x.rssPeakMiB ?? 0) - (x.rssStartMiB ?? 0)) / readers
      // One reader's growth is lost in what the process had already (earlier rounds freed memory it reuses).
      const memory = readers > 1 ? [perReader.toFixed(2), (x.heldMiB ?? 0).toFixed(2), (perReader - (x.heldMiB ?? 0)).toFixed(2)] : ['-', (x.heldMiB ?? 0).toFixed(2), '-']
      return [
        String(readers), fmtInt(m.ops), fmtOps(m.best), (m.best * BLOCK_SIZE / MIB).toFixed(1), (m.ops / m.best).toFixed(1),
        `${fmtInt(x.rssPeakMiB ?? 0)} (${fmtInt(x.rssStartMiB ?? 0)})`, ...memory
      ]
    })
    return { columns, rows }
  },
  notes: '*RSS per reader*: (peak RSS during the round − RSS at its start) / readers: everything the process grew by, the writer\'s side of every connection included. ' +
    '*held per reader*: the bytes of the reader\'s random-access-memory files (its blocks, tree, bitfield and header, in the 1 MiB pages random-access-memory allocates). ' +
    'One round for 100 readers.'
}

if (require.main === module) {
  const [readers, n] = process.argv.slice(2).map(Number)
  readersRound(readers!, n!).then(m => {
    process.stdout.write(JSON.stringify(m) + '\n')
  }, err => {
    console.error(err)
    process.exitCode = 1
  })
}
