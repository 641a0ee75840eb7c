/**
 * Replication rows: a fresh reader downloads a whole core from a writer in
 * the same process, over Hypercore's replication protocol on a Noise secret
 * stream (`a.replicate(true).pipe(b.replicate(false)).pipe(a)`).
 * nomadcore↔nomadcore against hypercore↔hypercore.
 */
import * as fs from 'fs'
import { peerDriver, type BenchStream, type PeerCore } from './contenders'
import { blockPool, fmtInt, fmtOps, randomInts, type BenchEnv, type Column, type Contender, type Row, type RowResult, type Section, type Trial } from './harness'
import { replicationCeiling, type MachineLimits } from './limits'

export const DOWNLOAD_BLOCK_SIZE = 1024
const MIB = 2 ** 20
/** Blocks per append while filling the writer (untimed). */
const FILL_BATCH = 1000
const POOL = blockPool(0xd0d0, 256, DOWNLOAD_BLOCK_SIZE)

/** `n` blocks, appended in batches; the same content for both contenders. */
export async function fillBlocks (core: PeerCore, from: number, n: number, block: (i: number) => Uint8Array, batchSize: number): Promise<void> {
  for (let i = from; i < from + n; i += batchSize) {
    const batch: Uint8Array[] = []
    for (let k = i; k < Math.min(from + n, i + batchSize); k++) batch.push(block(k))
    await core.append(batch)
  }
}

/** Fills a new core in `dir` with `n` blocks; returns it open. */
export async function buildCore (contender: Contender, env: BenchEnv, dir: string, n: number, block: (i: number) => Uint8Array, batchSize: number): Promise<PeerCore> {
  const core = await peerDriver(contender).open(dir, { keyPair: env.keyPair })
  await fillBlocks(core, 0, n, block, batchSize)
  return core
}

/** Pipes two cores together, `initiator` dialling; returns both stream ends. */
export function connect (initiator: PeerCore, responder: PeerCore): [BenchStream, BenchStream] {
  const a = initiator.replicate(true)
  const b = responder.replicate(false)
  a.pipe(b).pipe(a)
  return [a, b]
}

/** Samples the process's resident set size while a trial runs. */
export class RssSampler {
  readonly start = process.memoryUsage.rss()
  peak = this.start
  readonly #timer: ReturnType<typeof setInterval>

  constructor (everyMs = 25) {
    this.#timer = setInterval(() => this.sample(), everyMs)
  }

  sample (): void {
    const rss = process.memoryUsage.rss()
    if (rss > this.peak) this.peak = rss
  }

  stop (): { rssStartMiB: number, rssPeakMiB: number } {
    clearInterval(this.#timer)
    this.sample()
    return { rssStartMiB: this.start / MIB, rssPeakMiB: this.peak / MIB }
  }
}

/**
 * The main thread's time on a CPU and its time runnable but waiting for one
 * while a trial runs, from Linux's scheduler statistics; nothing elsewhere.
 * Both peers share that thread, so a round's wall time is roughly the two
 * plus time idle. The wait is V8's compiler and collector threads (four, on
 * any machine) and other processes taking the cores.
 */
class MainThreadClock {
  readonly #start = schedstat()

  stop (): { mainRunMs: number, mainWaitMs: number } | Record<string, never> {
    const end = schedstat()
    if (this.#start === null || end === null) return {}
    return { mainRunMs: end.runMs - this.#start.runMs, mainWaitMs: end.waitMs - this.#start.waitMs }
  }
}

/** The main thread's CPU and run-queue time so far (ms), or null off Linux. */
function schedstat (): { runMs: number, waitMs: number } | null {
  try {
    const [run, wait] = fs.readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ').map(Number)
    return Number.isFinite(run) && Number.isFinite(wait) ? { runMs: run! / 1e6, waitMs: wait! / 1e6 } : null
  } catch {
    return null
  }
}

/** A writer of `full` 1 KiB blocks per contender, filled once (untimed) and kept open. */
function downloadWriter (contender: Contender, env: BenchEnv, n: number): Promise<PeerCore> {
  return env.shared(contender, `download-writer-${n}`,
    () => buildCore(contender, env, env.tmpDir(`${contender.name}-writer-${n}`), n, i => POOL[i % POOL.length]!, FILL_BATCH),
    core => core.close())
}

/**
 * Another reader of `writer` that has downloaded all `n` blocks (untimed) and
 * stays connected to it until the env closes, as the other peers of a writer
 * in a swarm do.
 */
function companionReader (contender: Contender, env: BenchEnv, writer: PeerCore, n: number): Promise<PeerCore> {
  return env.shared(contender, `download-companion-${n}`, async () => {
    const reader = await peerDriver(contender).open(env.tmpDir(`${contender.name}-companion-${n}`), { key: writer.key })
    const streams = connect(reader, writer)
    await reader.downloadAll(n)
    return Object.assign(reader, { streams })
  }, async reader => {
    for (const s of reader.streams) s.destroy()
    await reader.close()
  })
}

function downloadRow (id: string, full: number, opts: Pick<Row, 'rounds' | 'warmup' | 'quick' | 'note'>, companion = false): Row {
  return {
    id,
    label: `replicate ${fmtInt(full)} × 1 KiB, fresh reader, ${companion ? 'another reader connected throughout' : 'download().done()'}`,
    unit: 'block',
    note: `A writer holding ${fmtInt(full)} blocks of 1 KiB (filled untimed, kept open across rounds) and a fresh ` +
      'reader of its key, both in this process, piped together over the Noise secret stream that `replicate(true/false)` returns. ' +
      'Timed from piping the streams until the reader stores every block: nomadcore `download({ start: 0, end: n }).done()` ' +
      '(it fetches the upgrade itself); Hypercore `update({ wait: true })`, then `download({ start: 0, end: n }).done()`. ' +
      'Both ends share one event loop, so this is the CPU cost of both sides together. nomadcore\'s writer keeps a block it ' +
      'has served twice in its block cache (16 MiB for the process), as it keeps a block read twice: a 10,000-block writer is ' +
      'served from memory from its third round on (neither read from disk nor hashed again), a 100,000-block one from disk ' +
      'every round. MiB/s, peak RSS and the fraction of the machine\'s limits: see the replication table.',
    ...opts,
    async prepare (contender, env): Promise<Trial> {
      // Full and quick runs use `full` blocks; the warm-up 3% of ten times that.
      const n = Math.min(full, env.count(10 * full, 200))
      const driver = peerDriver(contender)
      const writer = await downloadWriter(contender, env, n)
      if (companion) await companionReader(contender, env, writer, n)
      const dir = env.tmpDir(`${contender.name}-reader-${n}`)
      const reader = await driver.open(dir, { key: writer.key })
      let streams: BenchStream[] = []
      return {
        ops: n,
        async run () {
          const rss = new RssSampler()
          const clock = new MainThreadClock()
          streams = connect(reader, writer)
          await reader.downloadAll(n)
          return { ...rss.stop(), ...clock.stop() }
        },
        async dispose () {
          for (const s of streams) s.destroy()
          const length = reader.length
          await reader.close()
          await fs.promises.rm(dir, { recursive: true, force: true })
          if (length !== n) throw new Error(`${contender.name}: reader has length ${length} after downloading ${n} blocks`)
        }
      }
    }
  }
}

/**
 * Five rounds: a round takes 0.2 s, and the first two of a process still run
 * partly unoptimised code (the warm-up downloads 3,000 blocks; tracing showed
 * 111 and 70 functions optimised in rounds one and two, 41-63 after).
 */
export const download10k = downloadRow('download-10k', 10_000, { rounds: { min: 5 } })
/**
 * Three rounds, best shown, as most rows: a process's first 200,000 or so
 * downloaded blocks still run partly unoptimised code (tracing a fresh
 * process's 100,000-block rounds: 1,319 ms of optimising compiles in the
 * first, 741 in the second, 275-338 after; the rounds ran at 61,724 /
 * 68,280 / 72,736 / 79,086 blocks/s). Not in --quick.
 */
export const download100k = downloadRow('download-100k', 100_000, {
  rounds: { max: 3 },
  warmup: false,
  quick: false,
  note: 'As download-10k, with a writer of 100,000 blocks (~100 MiB), three timed rounds (the first of a process runs partly unoptimised code).'
})
export const download1m = downloadRow('download-1m', 1_000_000, {
  rounds: { max: 1 },
  warmup: false,
  quick: false,
  note: 'As download-10k, with a writer of 1,000,000 blocks (~1 GiB), one timed round: whether throughput stays flat as the core grows, and memory bounded (peak RSS in the replication table).'
})

/**
 * download-10k with one more reader of the writer connected throughout (its
 * note says why). Measured with this bench's drivers (10,000-block
 * downloads, rounds 3-6 of a process): nomadcore 60,866-71,256 blocks/s
 * without the other reader, 82,604-90,554 with it; Hypercore 11
 * 6,586-7,846 and 8,034-8,489. In `lateReplicationRows`, run after every
 * other row (see index.ts).
 */
export const download10kPeer = downloadRow('download-10k-peer', 10_000, {
  rounds: { min: 5 },
  note: 'As download-10k, with one more reader of the same writer, which downloaded the whole core once (untimed) and stays ' +
    'connected from before the first round to the end of the run, as the other peers of a writer in a swarm do. In download-10k ' +
    'every object of a round\'s connection is garbage by the next round, and the collection forced before each round lets V8 drop ' +
    'the hidden classes no live object has any more (the peer, its channel, the download handle), and with them the optimised code ' +
    'that relied on them: each round runs partly unoptimised again. Here those classes stay alive. Run last, so that the extra ' +
    'connection changes no other row.'
}, true)

/** Random blocks asked of a remote peer at once, by a sparse reader. */
const SPARSE_INFLIGHT = 256
const SPARSE_GETS = 20_000

export const sparseGets: Row = {
  id: 'sparse-get',
  label: `remote get of random blocks, ${SPARSE_INFLIGHT} in flight, 100k-block writer`,
  unit: 'block',
  note: `A fresh reader of the 100,000-block writer of download-100k (in this process, over the secret stream), ` +
    `connected and told the length untimed (\`update({ wait: true })\`); then ${fmtInt(SPARSE_GETS)} \`get(i)\` of distinct random ` +
    `blocks, ${SPARSE_INFLIGHT} at a time (a new one as each resolves), the same indices for both. Each block comes with its own proof.`,
  quick: false,
  async prepare (contender, env): Promise<Trial> {
    const n = env.count(100_000, 1000)
    const gets = Math.min(n, env.count(SPARSE_GETS, 200))
    const writer = await downloadWriter(contender, env, n)
    const dir = env.tmpDir(`${contender.name}-sparse-${n}`)
    const reader = await peerDriver(contender).open(dir, { key: writer.key })
    const streams = connect(reader, writer)
    await reader.update()
    const indices = distinctRandom(0x5ba45e, gets, n)
    return {
      ops: gets,
      async run () {
        let next = 0
        const worker = async (): Promise<void> => {
          while (next < indices.length) {
            const i = indices[next++]!
            const value = await reader.get(i)
            if (value.byteLength !== DOWNLOAD_BLOCK_SIZE) throw new Error(`${contender.name}: block ${i} has ${value.byteLength} bytes`)
          }
        }
        await Promise.all(Array.from({ length: SPARSE_INFLIGHT }, worker))
      },
      async dispose () {
        for (const s of streams) s.destroy()
        await reader.close()
        await fs.promises.rm(dir, { recursive: true, force: true })
      }
    }
  }
}

/** `k` distinct integers in [0, n), in a seeded random order. */
function distinctRandom (seed: number, k: number, n: number): number[] {
  const all = randomInts(seed, n, 0, 1 << 30).map((key, i) => [key, i] as const).sort((a, b) => a[0] - b[0])
  return all.slice(0, k).map(([, i]) => i)
}

export const replicationRows: readonly Row[] = [download10k, download100k, download1m, sparseGets]
/** Rows to run after every other row: their extra connections stay open until the run ends. */
export const lateReplicationRows: readonly Row[] = [download10kPeer]

let machineLimits: MachineLimits | null = null

/** The limits measured in this run, for the fractions in the replication table. */
export function useLimits (limits: MachineLimits | null): void {
  machineLimits = limits
}

export const replicationSection: Section = {
  title: 'Replication throughput',
  rows: [...replicationRows, ...lateReplicationRows].map(r => r.id),
  table (results: readonly RowResult[], contenders: readonly Contender[]) {
    const limits = machineLimits
    const columns: Column[] = [
      { header: 'benchmark', align: 'left' },
      { header: 'blocks', align: 'right' },
      ...contenders.flatMap((c): Column[] => [
        { header: `${c.name} blocks/s`, align: 'right' },
        { header: `${c.name} MiB/s`, align: 'right' },
        { header: `${c.name} s`, align: 'right' },
        { header: `${c.name} peak RSS MiB (start)`, align: 'right' },
        { header: `${c.name} main thread ran / waited ms`, align: 'right' },
        ...(limits === null ? [] : [{ header: `${c.name} of stream / BLAKE2b×2 / both`, align: 'right' as const }])
      ])
    ]
    const ratio = contenders.length === 2
    if (ratio) columns.push({ header: `ratio (${contenders[0]!.name}/${contenders[1]!.name})`, align: 'right' })
    const rows = results.map(r => {
      const ms = contenders.map(c => r.results.get(c.name))
      const ops = ms.find(m => m !== undefined)?.ops ?? 0
      const cells = [r.row.id, fmtInt(ops)]
      for (const m of ms) {
        if (m === undefined) {
          cells.push('-', '-', '-', '-', '-', ...(limits === null ? [] : ['-']))
          continue
        }
        const metrics = m.metrics[m.bestRound] ?? null
        const rss = metrics !== null && metrics.rssPeakMiB !== undefined ? `${fmtInt(metrics.rssPeakMiB)} (${fmtInt(metrics.rssStartMiB ?? 0)})` : '-'
        const main = metrics !== null && metrics.mainRunMs !== undefined ? `${fmtInt(metrics.mainRunMs)} / ${fmtInt(metrics.mainWaitMs ?? 0)}` : '-'
        cells.push(fmtOps(m.best), (m.best * DOWNLOAD_BLOCK_SIZE / MIB).toFixed(2), (m.ops / m.best).toFixed(2), rss, main)
        if (limits !== null) {
          const pct = (x: number): string => `${(100 * m.best / x).toFixed(0)}%`
          cells.push(`${pct(limits.streamMessages)} / ${pct(limits.blake2b / 2)} / ${pct(replicationCeiling(limits))}`)
        }
      }
      if (ratio) {
        const [a, b] = ms
        cells.push(a !== undefined && b !== undefined && b.best > 0 ? (a.best / b.best).toFixed(2) + '×' : '-')
      }
      return cells
    })
    return { columns, rows }
  },
  get notes (): string {
    const limits = machineLimits
    const base = 'Best round. MiB/s counts block payload only (1 KiB a block), not proofs or protocol overhead; s = wall time of that round; ' +
      'peak RSS: the resident set of the whole process (both peers, and the other contender\'s cores held open) sampled every 25 ms during the round, and at its start; ' +
      '*main thread ran / waited*: in that round, the time the process\'s main thread (both peers) spent on a CPU, and runnable but waiting for one ' +
      '(Linux scheduler statistics; V8 runs four compiler and collector threads beside it on any machine), download rows only.'
    if (limits === null) return base
    return base + ` Machine limits measured in this run (bench/limits.ts): a Noise secret stream pair with protomux carried ${fmtInt(limits.streamMessages)} messages of 1 KiB/s ` +
      `in batches of 64 (${fmtInt(limits.streamMessagesUncorked)}/s one per write); BLAKE2b hashed ${fmtInt(limits.blake2b)} leaves of 1 KiB/s. ` +
      `*of stream / BLAKE2b×2 / both*: blocks/s as a fraction of the stream's messages/s, of half the hashes/s (a replicated block is hashed twice: checked by the server, verified by the reader), ` +
      `and of one core doing only those two (${fmtInt(replicationCeiling(limits))} blocks/s).`
  }
}
