/**
 * Repair rows: a core that lost every root of its Merkle tree reopens in
 * repair mode and gets them back from a healthy peer over replication.
 * What it costs — wall time, bytes on the wire, and the size of the fully
 * remote proofs for those roots — should grow with log n, not n: the rows
 * run at 1,000, 100,000 and 1,000,000 blocks to make that visible.
 */
import { performance } from 'perf_hooks'
import { fullRoots } from '../lib/flat-tree'
import { peerDriver, type BenchStream, type PeerCore, type StoredNode } from './contenders'
import { buildCore } from './replication'
import { fmtBytesSI, fmtMs, fmtSI, type Chart } from './plot'
import { fmtInt, type BenchEnv, type Column, type Contender, type Metrics, type Row, type RowResult, type Section, type Trial } from './harness'

/** Small blocks keep the 1M-block cores affordable to build; repair never reads blocks. */
export const REPAIR_BLOCK_SIZE = 8
const FILL_BATCH = 10_000
/** A repair that has not happened by then is not going to. */
const REPAIR_TIMEOUT_MS = 60_000

function block (i: number): Uint8Array {
  const b = Buffer.alloc(REPAIR_BLOCK_SIZE)
  b.writeUInt32LE(i >>> 0, 0)
  b.writeUInt32LE(0x5eed, 4)
  return b
}

interface Fixture {
  /** The healthy copy, open for the whole env: the peer that repairs. */
  healthy: PeerCore
  /** Where the copy to damage lives (closed between trials). */
  damagedDir: string
  roots: number[]
  /** The healthy roots, as stored. */
  expected: StoredNode[]
  /** Size of `generateRemoteProofForTreeNode(root)` for each root. */
  proofBytes: number[]
}

/**
 * Two identical cores of `n` blocks, built once per contender (untimed):
 * one copied when the storage allows, else built twice from the same key
 * pair and blocks (signatures are deterministic, so the trees are equal).
 */
function fixture (contender: Contender, env: BenchEnv, n: number): Promise<Fixture> {
  return env.shared(contender, `repair-${n}`, async () => {
    const driver = peerDriver(contender)
    const healthyDir = env.tmpDir(`${contender.name}-healthy-${n}`)
    const damagedDir = env.tmpDir(`${contender.name}-damaged-${n}`)
    let healthy: PeerCore
    if (driver.copy !== null) {
      const built = await buildCore(contender, env, healthyDir, n, block, FILL_BATCH)
      await built.close()
      await driver.copy(healthyDir, damagedDir)
      healthy = await driver.open(healthyDir)
    } else {
      const [a, b] = await Promise.all([
        buildCore(contender, env, healthyDir, n, block, FILL_BATCH),
        buildCore(contender, env, damagedDir, n, block, FILL_BATCH)
      ])
      await b.close()
      healthy = a
    }
    const roots = fullRoots(2 * n)
    const expected: StoredNode[] = []
    const proofBytes: number[] = []
    for (const r of roots) {
      const node = await healthy.storedTreeNode(r)
      if (node === null) throw new Error(`${contender.name}: healthy core lacks root ${r}`)
      expected.push(node)
      proofBytes.push((await healthy.generateRemoteProofForTreeNode(r)).byteLength)
    }
    return { healthy, damagedDir, roots, expected, proofBytes }
  }, f => f.healthy.close())
}

function sameNode (a: StoredNode | null, b: StoredNode): boolean {
  return a !== null && a.size === b.size && Buffer.compare(Buffer.from(a.hash), Buffer.from(b.hash)) === 0
}

function repairRow (id: string, n: number, opts: Pick<Row, 'warmup' | 'quick' | 'note'>): Row {
  return {
    id,
    label: `repair all ${fullRoots(2 * n).length} roots of a ${fmtInt(n)}-block core from a peer`,
    unit: 'repair',
    // Each round is milliseconds: more of them, and they are cheap to prepare.
    rounds: { min: 15 },
    note: `A core of ${fmtInt(n)} blocks of ${REPAIR_BLOCK_SIZE} bytes and an identical healthy copy (built once, untimed). ` +
      'Before each round every root of the damaged copy is deleted (nomadcore: its 40 bytes in the tree file zeroed; ' +
      'Hypercore: `deleteTreeNode` in its storage) and the core reopened, in repair mode. Timed from piping it to the ' +
      'healthy copy until it emits `repaired` (nomadcore asks on sync; Hypercore calls `recoverTreeNodeFromPeers()` on `peer-add`). ' +
      'After each round the restored roots are compared with the healthy ones. ops/s = repairs per second; see the repair table.',
    ...opts,
    async prepare (contender, env): Promise<Trial> {
      const driver = peerDriver(contender)
      const f = await fixture(contender, env, n)
      await driver.deleteTreeNodes(f.damagedDir, f.roots)
      const damaged = await driver.open(f.damagedDir)
      if (!damaged.repairMode || damaged.length !== n) {
        await damaged.close()
        throw new Error(`${contender.name}: the damaged core did not open in repair mode at length ${n}`)
      }
      let streams: BenchStream[] = []
      return {
        ops: 1,
        async run (): Promise<Metrics> {
          let sent = 0
          let received = 0
          let connectMs = NaN
          let timer: ReturnType<typeof setTimeout> | null = null
          const cpu0 = process.cpuUsage()
          const t0 = performance.now()
          const repaired = new Promise<void>((resolve, reject) => {
            damaged.once('repaired', resolve)
            timer = setTimeout(() => reject(new Error(`${contender.name}: no repair within ${REPAIR_TIMEOUT_MS} ms`)), REPAIR_TIMEOUT_MS)
          })
          damaged.once('peer-add', () => { connectMs = performance.now() - t0 })
          const a = damaged.replicate(true)
          const b = f.healthy.replicate(false)
          streams = [a, b]
          // What each end writes is what the other reads: together, the wire.
          a.on('data', chunk => { sent += chunk.byteLength })
          b.on('data', chunk => { received += chunk.byteLength })
          a.pipe(b).pipe(a)
          try {
            await repaired
          } finally {
            if (timer !== null) clearTimeout(timer)
          }
          const ms = performance.now() - t0
          const cpu = process.cpuUsage(cpu0)
          const proofBytes = f.proofBytes.reduce((x, y) => x + y, 0)
          return { ms, cpuMs: (cpu.user + cpu.system) / 1000, connectMs, sent, received, roots: f.roots.length, proofBytes, proofMax: Math.max(...f.proofBytes) }
        },
        async dispose () {
          for (const s of streams) s.destroy()
          try {
            const restored = await Promise.all(f.roots.map(r => damaged.storedTreeNode(r)))
            const bad = f.roots.filter((r, k) => !sameNode(restored[k]!, f.expected[k]!))
            if (bad.length > 0) throw new Error(`${contender.name}: roots ${bad.join(', ')} not restored after 'repaired'`)
            if (contender.name === 'nomadcore' && damaged.repairMode) throw new Error('nomadcore: still in repair mode after repairing')
          } finally {
            await damaged.close()
          }
        }
      }
    }
  }
}

export const repair1k = repairRow('repair-1k', 1_000, {})
export const repair100k = repairRow('repair-100k', 100_000, { warmup: false, note: 'As repair-1k, at 100,000 blocks.' })
export const repair1m = repairRow('repair-1m', 1_000_000, { warmup: false, quick: false, note: 'As repair-1k, at 1,000,000 blocks.' })

export const repairRows: readonly Row[] = [repair1k, repair100k, repair1m]

function fmtBytes (n: number): string {
  if (n < 10 * 1024) return `${fmtInt(n)} B`
  if (n < 2 ** 20) return `${(n / 1024).toFixed(0)} KiB`
  return `${(n / 2 ** 20).toFixed(1)} MiB`
}

/** The length a repair row runs at, from its label. */
function lengthOf (row: Row): number {
  const m = /of a ([\d,]+)-block core/.exec(row.label)
  return m === null ? NaN : parseInt(m[1]!.replace(/,/g, ''), 10)
}

export const repairSection: Section = {
  title: 'Repair cost by length',
  rows: repairRows.map(r => r.id),
  table (results: readonly RowResult[], contenders: readonly Contender[]) {
    const columns: Column[] = [
      { header: 'blocks', align: 'right' },
      { header: 'roots', align: 'right' },
      { header: 'whole tree', align: 'right' },
      ...contenders.flatMap((c): Column[] => [
        { header: `${c.name} ms = connect + repair`, align: 'right' },
        { header: `${c.name} CPU ms`, align: 'right' },
        { header: `${c.name} wire B out / in`, align: 'right' },
        { header: `${c.name} root proofs B (max)`, align: 'right' }
      ])
    ]
    const ratio = contenders.length === 2
    if (ratio) columns.push({ header: `time ratio (${contenders[1]!.name}/${contenders[0]!.name})`, align: 'right' })
    const rows = results.map(r => {
      const n = lengthOf(r.row)
      const ms = contenders.map(c => r.results.get(c.name))
      const cells = [fmtInt(n), String(fullRoots(2 * n).length), fmtBytes((2 * n - 1) * 40)]
      for (const m of ms) {
        const x = m?.metrics[m.bestRound] ?? null
        if (x === null) {
          cells.push('-', '-', '-', '-')
          continue
        }
        cells.push(
          `${x.ms!.toFixed(1)} = ${x.connectMs!.toFixed(1)} + ${(x.ms! - x.connectMs!).toFixed(1)}`,
          x.cpuMs!.toFixed(1),
          `${fmtInt(x.sent!)} / ${fmtInt(x.received!)}`,
          `${fmtInt(x.proofBytes!)} (${fmtInt(x.proofMax!)})`
        )
      }
      if (ratio) {
        const [a, b] = ms
        cells.push(a !== undefined && b !== undefined && b.best > 0 ? (a.best / b.best).toFixed(2) + '×' : '-')
      }
      return cells
    })
    return { columns, rows }
  },
  notes: 'Best round of each (by total time). *ms*: from piping the streams until the damaged core emits `repaired`; *connect*: the part until ' +
    'it emits `peer-add` (Noise handshake and channel open); *repair*: the rest, asking for the proof, verifying it and writing the roots. ' +
    '*CPU ms*: CPU time of the process (both peers, all threads) in that round, less disturbed by other load than wall time. ' +
    '*wire B out / in*: bytes the damaged core wrote / read on its raw stream in that time, handshake included. ' +
    '*root proofs B*: `generateRemoteProofForTreeNode(root)` on the healthy core, summed over the roots (largest one). ' +
    '*whole tree*: (2n−1) nodes × 40 bytes, what a repair that re-fetched the tree would move. ' +
    'Hypercore 11 keeps its repair-mode flag (`core._repairMode`) set after `repaired` until the core is reopened; ' +
    'nomadcore leaves repair mode with the repair.'
}

const CONTENDER_COLORS = ['#1f5fbf', '#e07b00', '#7b3fbf']

/**
 * The plots of bench/repair-cost.svg: repair wall time and bytes on the wire
 * (both directions) against core length, per contender, from the best round
 * of each repair row that ran; the bytes plot also draws the whole tree.
 */
export function repairCharts (results: readonly RowResult[], contenders: readonly Contender[]): Chart[] {
  const ran = results.filter(r => repairRows.includes(r.row)).map(r => ({ n: lengthOf(r.row), r }))
  const best = (c: Contender, r: RowResult): Metrics | null => {
    const m = r.results.get(c.name)
    return m?.metrics[m.bestRound] ?? null
  }
  const name = (c: Contender): string => c.name === 'hypercore' ? `Hypercore ${c.version.split('.')[0]}` : c.name
  const points = (c: Contender, f: (x: Metrics) => number): Array<readonly [number, number]> =>
    ran.map(({ n, r }) => { const x = best(c, r); return x === null ? null : [n, f(x)] as const }).filter(p => p !== null)
  return [
    {
      title: 'Repair wall time against core length',
      xLabel: 'core length (blocks)',
      yLabel: 'wall time, best round',
      xFormat: fmtSI,
      yFormat: fmtMs,
      series: contenders.map((c, k) => ({ name: name(c), color: CONTENDER_COLORS[k % CONTENDER_COLORS.length]!, points: points(c, x => x.ms!) }))
    },
    {
      title: 'Repair bytes on the wire against core length',
      xLabel: 'core length (blocks)',
      yLabel: 'bytes on the wire, both directions',
      xFormat: fmtSI,
      yFormat: fmtBytesSI,
      series: [
        ...contenders.map((c, k) => ({ name: name(c), color: CONTENDER_COLORS[k % CONTENDER_COLORS.length]!, points: points(c, x => x.sent! + x.received!) })),
        { name: 'whole tree (2n−1)·40', color: '#c0392b', dashed: true, points: ran.map(({ n }) => [n, (2 * n - 1) * 40] as const) }
      ]
    }
  ]
}
