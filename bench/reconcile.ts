/**
 * Set reconciliation at a million ids: what `sync()` costs in bytes and round
 * trips for d = 1, 50 and 5,000 differences (half missing on each side, d = 1:
 * one id missing on one side), against the information floor (d × 32 bytes:
 * the missing ids themselves) and the naive exchange (n × 32 bytes: one
 * side's whole list); plus the since fast path, a cold (empty) peer, the
 * time to build a tree of a million ids and to insert or delete one.
 *
 *   node dist/bench/reconcile.js [--n 1000000] [--d 1,50,5000]
 *
 * `reconcileBench()` returns the rows; `formatReconcileRows()` prints them.
 */
import { performance } from 'perf_hooks'
import { ReconcileSet, sync, type SyncResult } from '../lib/reconcile'
import { fmtBytesSI, fmtSI, type Chart } from './plot'

export interface ReconcileRow {
  /** Short id, e.g. `reconcile-d50`. */
  id: string
  label: string
  /** Ids in each set. */
  n: number
  /** Differences (ids missing on one side or the other); null for rows that are not a sync. */
  d: number | null
  /** Bytes both sides sent. */
  bytes: number | null
  /** Round trips. */
  rounds: number | null
  /** ⌈log16 n⌉ + 2, the round trip target. */
  roundTarget: number | null
  /** bytes / (d × 32). */
  floorRatio: number | null
  /** bytes / (n × 32). */
  naiveRatio: number | null
  /** Wall time of the sync or build, in ms (both sides, one process). */
  ms: number | null
  /** Microseconds per operation (insert/delete rows). */
  usPerOp: number | null
  /** How the sync went: tree walk, since fast path or bulk. */
  mode: string | null
  /** Whether the sync found exactly the symmetric difference. */
  exact: boolean | null
}

export interface ReconcileBenchOptions {
  n?: number
  ds?: number[]
  /** Ids inserted (then deleted) to time one insert and one delete (default 100,000). */
  ops?: number
  seed?: number
  log?: (msg: string) => void
}

/** Deterministic ids: xorshift128 filled into one buffer, viewed 32 bytes at a time. */
function makeIds (n: number, seed: number): Uint8Array[] {
  const buf = new Uint8Array(n * 32)
  const w = new Uint32Array(buf.buffer)
  let x = (seed ^ 0x9e3779b9) >>> 0 || 1
  let y = 0x243f6a88
  let z = 0xb7e15162
  let v = (seed * 0x85ebca6b) >>> 0 || 7
  for (let i = 0; i < w.length; i++) {
    const t = x ^ (x << 11)
    x = y; y = z; z = v
    v = (v ^ (v >>> 19) ^ t ^ (t >>> 8)) >>> 0
    w[i] = v
  }
  const ids = new Array<Uint8Array>(n)
  for (let i = 0; i < n; i++) ids[i] = buf.subarray(i * 32, i * 32 + 32)
  return ids
}

function hexSet (ids: readonly Uint8Array[]): Set<string> {
  return new Set(ids.map(id => Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex')))
}

function sameSet (got: readonly Uint8Array[], want: readonly Uint8Array[]): boolean {
  if (got.length !== want.length) return false
  const w = hexSet(want)
  for (const id of got) if (!w.has(Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex'))) return false
  return true
}

function row (partial: Partial<ReconcileRow> & Pick<ReconcileRow, 'id' | 'label' | 'n'>): ReconcileRow {
  return { d: null, bytes: null, rounds: null, roundTarget: null, floorRatio: null, naiveRatio: null, ms: null, usPerOp: null, mode: null, exact: null, ...partial }
}

function syncRow (id: string, label: string, n: number, d: number, res: SyncResult, ms: number, exact: boolean): ReconcileRow {
  return row({
    id,
    label,
    n,
    d,
    bytes: res.bytes,
    rounds: res.rounds,
    roundTarget: Math.ceil(Math.log(n) / Math.log(16)) + 2,
    floorRatio: d > 0 ? res.bytes / (d * 32) : null,
    naiveRatio: res.bytes / (n * 32),
    ms,
    mode: res.mode,
    exact
  })
}

/** Runs every row; takes a minute or so at n = 1,000,000. */
export function reconcileBench (opts: ReconcileBenchOptions = {}): ReconcileRow[] {
  const n = opts.n ?? 1_000_000
  const ds = opts.ds ?? [1, 50, 5000]
  const ops = opts.ops ?? 100_000
  const seed = opts.seed ?? 1
  const log = opts.log ?? (() => {})
  const rows: ReconcileRow[] = []
  const maxD = Math.max(...ds, 20)

  const base = makeIds(n, seed)
  const extra = makeIds(maxD + ops, seed + 1)

  // Build (best of 2).
  let a: ReconcileSet | null = null
  let buildMs = Infinity
  for (let k = 0; k < 2; k++) {
    a = null
    global.gc?.()
    const t0 = performance.now()
    a = ReconcileSet.from(base)
    buildMs = Math.min(buildMs, performance.now() - t0)
  }
  rows.push(row({ id: 'reconcile-build', label: `build a tree of ${n.toLocaleString('en-US')} ids`, n, ms: buildMs }))
  log(`build ${buildMs.toFixed(0)} ms`)
  const A = a!
  const B = ReconcileSet.from(base)

  // d differences: A gets the even extras, B the odd ones (d = 1: only A).
  for (const d of ds) {
    const inA = extra.slice(0, d).filter((_, i) => i % 2 === 0)
    const inB = extra.slice(0, d).filter((_, i) => i % 2 === 1)
    for (const id of inA) A.insert(id)
    for (const id of inB) B.insert(id)
    const t0 = performance.now()
    const res = sync(A, B)
    const ms = performance.now() - t0
    const exact = sameSet(res.missingInA, inB) && sameSet(res.missingInB, inA)
    rows.push(syncRow(`reconcile-d${d}`, `sync, d = ${d.toLocaleString('en-US')}`, n, d, res, ms, exact))
    log(`d=${d}: ${res.bytes} B, ${res.rounds} rounds, ${(res.bytes / (d * 32)).toFixed(2)}× floor, ${ms.toFixed(0)} ms${exact ? '' : ' NOT EXACT'}`)
    for (const id of inA) A.delete(id)
    for (const id of inB) B.delete(id)
  }

  // Since fast path: in sync, then 10 new ids on each side.
  {
    sync(A, B, { remember: true, apply: true })
    const inA = extra.slice(0, 10)
    const inB = extra.slice(10, 20)
    for (const id of inA) A.insert(id)
    for (const id of inB) B.insert(id)
    const t0 = performance.now()
    const res = sync(A, B, { remember: true })
    const ms = performance.now() - t0
    const exact = sameSet(res.missingInA, inB) && sameSet(res.missingInB, inA)
    rows.push(syncRow('reconcile-since', 'sync since the last one, 10 new ids each side', n, 20, res, ms, exact))
    log(`since: ${res.bytes} B, ${res.rounds} rounds, ${res.mode}`)
    for (const id of inA) A.delete(id)
    for (const id of inB) B.delete(id)
  }

  // A cold peer: empty.
  {
    const empty = new ReconcileSet()
    const t0 = performance.now()
    const res = sync(A, empty)
    const ms = performance.now() - t0
    const exact = res.missingInB.length === n && res.missingInA.length === 0
    rows.push(syncRow('reconcile-empty', 'sync with an empty peer', n, n, res, ms, exact))
    log(`empty peer: ${res.bytes} B, ${res.rounds} rounds, ${res.mode}`)
  }

  // Insert and delete on the full tree.
  {
    const ids = extra.slice(maxD, maxD + ops)
    global.gc?.()
    let t0 = performance.now()
    for (const id of ids) A.insert(id)
    const ins = (performance.now() - t0) * 1000 / ops
    t0 = performance.now()
    for (const id of ids) A.delete(id)
    const del = (performance.now() - t0) * 1000 / ops
    rows.push(row({ id: 'reconcile-insert', label: `insert one id into ${n.toLocaleString('en-US')}`, n, usPerOp: ins }))
    rows.push(row({ id: 'reconcile-delete', label: `delete one id from ${n.toLocaleString('en-US')}`, n, usPerOp: del }))
    log(`insert ${ins.toFixed(2)} µs, delete ${del.toFixed(2)} µs`)
  }
  return rows
}

function fmt (x: number | null, digits = 0): string {
  if (x === null) return ''
  return x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
}

/** The table's columns and cells (for the text and the Markdown table). */
export function reconcileCells (rows: readonly ReconcileRow[]): { head: string[], body: string[][] } {
  const head = ['row', 'n', 'bytes', 'rounds (target)', '× floor', '× naive', 'ms', 'µs/op', 'mode', 'exact']
  const body = rows.map(r => [
    r.label,
    fmt(r.n),
    fmt(r.bytes),
    r.rounds === null ? '' : `${r.rounds} (≤ ${r.roundTarget})`,
    fmt(r.floorRatio, 2),
    r.naiveRatio === null ? '' : r.naiveRatio < 0.01 ? r.naiveRatio.toExponential(2) : r.naiveRatio.toFixed(3),
    fmt(r.ms, 0),
    fmt(r.usPerOp, 2),
    r.mode ?? '',
    r.exact === null ? '' : r.exact ? 'yes' : 'NO'
  ])
  return { head, body }
}

/** A plain-text table of the rows. */
export function formatReconcileRows (rows: readonly ReconcileRow[]): string {
  const { head, body } = reconcileCells(rows)
  const widths = head.map((h, i) => Math.max(h.length, ...body.map(b => b[i]!.length)))
  const line = (cells: string[]): string => cells.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join('  ').trimEnd()
  return [line(head), line(widths.map(w => '-'.repeat(w))), ...body.map(line)].join('\n')
}

/**
 * The plots of bench/reconcile-bytes.svg: bytes against d at one n (`rows`,
 * from `reconcileBench`), and bytes against n at the fixed d of the `byN`
 * rows (sync rows of that d at several n), each with the floor and the naive line.
 */
export function reconcileCharts (rows: readonly ReconcileRow[], byN: readonly ReconcileRow[]): Chart[] {
  const isD = (r: ReconcileRow): boolean => /^reconcile-d\d+$/.test(r.id) && r.d !== null && r.bytes !== null
  const dRows = rows.filter(isD)
  const nRows = byN.filter(isD)
  const n = rows[0]?.n ?? 0
  const d = nRows[0]?.d ?? 0
  const ds = dRows.map(r => r.d!)
  const ns = nRows.map(r => r.n)
  const floor = '#2a9d3a'
  const naive = '#c0392b'
  return [
    {
      title: `Reconciliation bytes against d (n = ${n.toLocaleString('en-US')})`,
      xLabel: 'd (ids missing on one side or the other)',
      yLabel: 'bytes sent, both sides',
      xFormat: fmtSI,
      yFormat: fmtBytesSI,
      series: [
        { name: 'nomadcore sync()', color: '#1f5fbf', points: dRows.map(r => [r.d!, r.bytes!] as const) },
        { name: 'floor d·32', color: floor, dashed: true, points: ds.map(x => [x, x * 32] as const) },
        { name: `naive n·32 (n = ${fmtSI(n)})`, color: naive, dashed: true, points: ds.map(x => [x, n * 32] as const) }
      ]
    },
    {
      title: `Reconciliation bytes against n (d = ${d.toLocaleString('en-US')})`,
      xLabel: 'n (ids in each set)',
      yLabel: 'bytes sent, both sides',
      xFormat: fmtSI,
      yFormat: fmtBytesSI,
      series: [
        { name: 'nomadcore sync()', color: '#1f5fbf', points: nRows.map(r => [r.n, r.bytes!] as const) },
        { name: `floor d·32 (d = ${d})`, color: floor, dashed: true, points: ns.map(x => [x, d * 32] as const) },
        { name: 'naive n·32', color: naive, dashed: true, points: ns.map(x => [x, x * 32] as const) }
      ]
    }
  ]
}

if (require.main === module) {
  const argv = process.argv.slice(2)
  const opts: ReconcileBenchOptions = { log: msg => process.stderr.write(msg + '\n') }
  for (let k = 0; k < argv.length; k++) {
    if (argv[k] === '--n') opts.n = parseInt(argv[++k] ?? '', 10)
    else if (argv[k] === '--d') opts.ds = (argv[++k] ?? '').split(',').map(s => parseInt(s, 10))
    else if (argv[k] === '--ops') opts.ops = parseInt(argv[++k] ?? '', 10)
    else throw new Error(`Unknown argument ${argv[k]}`)
  }
  console.log(formatReconcileRows(reconcileBench(opts)))
}
