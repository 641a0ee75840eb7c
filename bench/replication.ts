/**
 * Replication rows: a fresh reader downloads a whole core from a writer in
 * the same process, over Hypercore's replication protocol on a Noise secret
 * stream (`a.replicate(true).pipe(b.replicate(false)).pipe(a)`).
 * nomadcore↔nomadcore against hypercore↔hypercore.
 */
import * as fs from 'fs'
import { peerDriver, type BenchStream, type PeerCore } from './contenders'
import { blockPool, fmtInt, fmtOps, type BenchEnv, type Column, type Contender, type Row, type RowResult, type Section, type Trial } from './harness'

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

/**
 * Fills a new core in `dir` with `n` blocks, closing and reopening it every
 * `driver.reopenEvery` blocks (see there); returns it open.
 */
export async function buildCore (contender: Contender, env: BenchEnv, dir: string, n: number, block: (i: number) => Uint8Array, batchSize: number): Promise<PeerCore> {
  const driver = peerDriver(contender)
  let core = await driver.open(dir, { keyPair: env.keyPair })
  for (let at = 0; at < n;) {
    const step = Math.min(n - at, driver.reopenEvery)
    if (at > 0) {
      await core.close()
      core = await driver.open(dir)
    }
    await fillBlocks(core, at, step, block, batchSize)
    at += step
  }
  return core
}

/** Pipes two cores together, `initiator` dialling; returns both stream ends. */
export function connect (initiator: PeerCore, responder: PeerCore): [BenchStream, BenchStream] {
  const a = initiator.replicate(true)
  const b = responder.replicate(false)
  a.pipe(b).pipe(a)
  return [a, b]
}

function downloadRow (id: string, full: number, opts: Pick<Row, 'rounds' | 'warmup' | 'quick' | 'note'>): Row {
  return {
    id,
    label: `replicate ${fmtInt(full)} × 1 KiB, fresh reader, download().done()`,
    unit: 'block',
    note: `A writer holding ${fmtInt(full)} blocks of 1 KiB (filled untimed, kept open across rounds) and a fresh ` +
      'reader of its key, both in this process, piped together over the Noise secret stream that `replicate(true/false)` returns. ' +
      'Timed from piping the streams until the reader stores every block: nomadcore `download({ start: 0, end: n }).done()` ' +
      '(it fetches the upgrade itself); Hypercore `update({ wait: true })`, then `download({ start: 0, end: n }).done()`. ' +
      'Both ends share one event loop, so this is the CPU cost of both sides together. MiB/s: see the replication table.',
    ...opts,
    async prepare (contender, env): Promise<Trial> {
      // Full and quick runs use `full` blocks; the warm-up 3% of ten times that.
      const n = Math.min(full, env.count(10 * full, 200))
      const driver = peerDriver(contender)
      const writer = await env.shared(contender, `download-writer-${n}`,
        () => buildCore(contender, env, env.tmpDir(`${contender.name}-writer-${n}`), n, i => POOL[i % POOL.length]!, FILL_BATCH),
        core => core.close())
      const dir = env.tmpDir(`${contender.name}-reader-${n}`)
      const reader = await driver.open(dir, { key: writer.key })
      let streams: BenchStream[] = []
      return {
        ops: n,
        async run () {
          streams = connect(reader, writer)
          await reader.downloadAll(n)
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

export const download10k = downloadRow('download-10k', 10_000, {})
/** One round in full runs (it is ~100 MiB each way); not in --quick. */
export const download100k = downloadRow('download-100k', 100_000, {
  rounds: { max: 1 },
  warmup: false,
  quick: false,
  note: 'As download-10k, with a writer of 100,000 blocks (~100 MiB), one timed round.'
})

export const replicationRows: readonly Row[] = [download10k, download100k]

export const replicationSection: Section = {
  title: 'Replication throughput',
  rows: replicationRows.map(r => r.id),
  table (results: readonly RowResult[], contenders: readonly Contender[]) {
    const columns: Column[] = [
      { header: 'benchmark', align: 'left' },
      { header: 'blocks', align: 'right' },
      ...contenders.flatMap((c): Column[] => [
        { header: `${c.name} blocks/s`, align: 'right' },
        { header: `${c.name} MiB/s`, align: 'right' },
        { header: `${c.name} s`, align: 'right' }
      ])
    ]
    const ratio = contenders.length === 2
    if (ratio) columns.push({ header: `ratio (${contenders[0]!.name}/${contenders[1]!.name})`, align: 'right' })
    const rows = results.map(r => {
      const ms = contenders.map(c => r.results.get(c.name))
      const ops = ms.find(m => m !== undefined)?.ops ?? 0
      const cells = [r.row.id, fmtInt(ops)]
      for (const m of ms) {
        if (m === undefined) cells.push('-', '-', '-')
        else cells.push(fmtOps(m.best), (m.best * DOWNLOAD_BLOCK_SIZE / MIB).toFixed(2), (m.ops / m.best).toFixed(2))
      }
      if (ratio) {
        const [a, b] = ms
        cells.push(a !== undefined && b !== undefined && b.best > 0 ? (a.best / b.best).toFixed(2) + '×' : '-')
      }
      return cells
    })
    return { columns, rows }
  },
  notes: 'Best round. MiB/s counts block payload only (1 KiB a block), not proofs or protocol overhead; s = wall time of that round.'
}
