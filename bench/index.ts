/**
 * nomadcore vs Hypercore 11, side by side in one process.
 *
 *   node dist/bench/index.js [--quick] [--rounds N] [--only id,id] [--side name] [--write | --no-write]
 *
 *   --quick      op counts ÷10 and the slowest rows left out, for development (RESULTS.md is not written)
 *   --rounds N   timed rounds per row and contender, best counts (default 3; some rows bound it)
 *   --only ids   run only these rows (ids: see --list)
 *   --side name  run only one contender (e.g. for `node --cpu-prof`)
 *   --list       print the row ids and exit
 *   --write      write bench/RESULTS.md even for a partial or quick run
 *   --no-write   never write bench/RESULTS.md
 *   --out dir    where RESULTS.md and the plots go (default bench/)
 *   --no-limits  skip measuring the machine's limits (for profiling a replication row alone)
 *
 * Besides the rows, the run does set reconciliation (bench/reconcile.ts; id
 * `reconcile` for --only; nomadcore against Rateless IBLT and Negentropy,
 * no Hypercore counterpart), the reconnects of two stores of a group
 * (bench/store-sync.ts; id `store-sync`; nomadcore only) and draws
 * bench/repair-cost.svg and bench/reconcile-bytes.svg next to RESULTS.md.
 *
 * Rows come in modules (bench/core.ts, ...): add a module's `Row[]` to `ROWS`,
 * and its `Section`s (extra tables) to `SECTIONS`.
 */
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { keyPair as generateKeyPair } from '../lib/crypto'
import { contenders as allContenders } from './contenders'
import { coreRows } from './core'
import { auditRows, auditSection } from './audit'
import { lateReplicationRows, replicationRows, replicationSection, useLimits } from './replication'
import { measureLimits } from './limits'
import { cloneRows, cloneSection } from './clone'
import { manyReaderRows, manyReadersSection } from './many-readers'
import { repairCharts, repairRows, repairSection } from './repair'
import { reconcileBench, reconcileCells, reconcileCharts, formatReconcileRows, type ReconcileRow } from './reconcile'
import { svgCharts } from './plot'
import { storeSyncBench, formatStoreSync, storeSyncCells, type StoreSyncResult } from './store-sync'
import {
  BenchEnv, fmtOps, machineInfo, makeBenchRoot, markdownTable, roundCells, roundsOf, runRow, tableCells, textTable,
  type Contender, type Row, type RowResult, type Section
} from './harness'

const ROWS: readonly Row[] = [...coreRows, ...auditRows, ...replicationRows, ...cloneRows, ...manyReaderRows, ...repairRows, ...lateReplicationRows]
const SECTIONS: readonly Section[] = [auditSection, replicationSection, cloneSection, manyReadersSection, repairSection]

/** The set reconciliation benchmark's id for --only (it is not a `Row`: nothing to compare it with). */
const RECONCILE_ID = 'reconcile'
/** Its sizes: ids per set for the table and the bytes-against-d plot, the d values, and the n values (at D_BY_N) of the bytes-against-n plot. */
const RECONCILE = {
  full: { n: 1_000_000, ds: [1, 50, 5000], byN: [10_000, 100_000] },
  quick: { n: 20_000, ds: [1, 50, 500], byN: [5_000] }
}
const D_BY_N = 50

/** Two stores of a group reconnecting (bench/store-sync.ts): id for --only, and cores in all (half made by each store). */
const STORE_SYNC_ID = 'store-sync'
const STORE_SYNC = { full: 10_000, quick: 1_000 }

/** Op counts of the warm-up, relative to a full run. */
const WARMUP_SCALE = 0.03

interface Args {
  quick: boolean
  rounds: number
  only: string[] | null
  side: string | null
  list: boolean
  write: boolean | null
  out: string | null
  limits: boolean
}

function parseArgs (argv: readonly string[]): Args {
  const args: Args = { quick: false, rounds: 3, only: null, side: null, list: false, write: null, out: null, limits: true }
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k]!
    const value = (): string => {
      const v = argv[++k]
      if (v === undefined) throw new Error(`${a} needs a value`)
      return v
    }
    if (a === '--quick') args.quick = true
    else if (a === '--rounds') args.rounds = Math.max(1, parseInt(value(), 10) || 1)
    else if (a === '--only') args.only = value().split(',').map(s => s.trim()).filter(Boolean)
    else if (a === '--side') args.side = value()
    else if (a === '--list') args.list = true
    else if (a === '--write') args.write = true
    else if (a === '--no-write') args.write = false
    else if (a === '--out') args.out = value()
    else if (a === '--no-limits') args.limits = false
    else throw new Error(`Unknown argument ${a}`)
  }
  return args
}

function log (msg: string): void {
  process.stderr.write(msg + '\n')
}

async function main (): Promise<void> {
  const args = parseArgs(process.argv.slice(2))
  if (args.list) {
    for (const r of ROWS) console.log(`${r.id.padEnd(14)} ${r.label}${r.quick === false ? '  (not in --quick)' : ''}`)
    console.log(`${RECONCILE_ID.padEnd(14)} set reconciliation, n = ${RECONCILE.full.n.toLocaleString('en-US')} (${RECONCILE.quick.n.toLocaleString('en-US')} in --quick), against Rateless IBLT and Negentropy`)
    console.log(`${STORE_SYNC_ID.padEnd(14)} two stores of a group, ${STORE_SYNC.full.toLocaleString('en-US')} cores (${STORE_SYNC.quick.toLocaleString('en-US')} in --quick): first sync, reconnects, memory; nomadcore only`)
    return
  }

  let rows = ROWS
  if (args.only !== null) {
    const unknown = args.only.filter(id => id !== RECONCILE_ID && id !== STORE_SYNC_ID && !ROWS.some(r => r.id === id))
    if (unknown.length > 0) throw new Error(`Unknown row ${unknown.join(', ')}; rows: ${ROWS.map(r => r.id).join(', ')}`)
    rows = ROWS.filter(r => args.only!.includes(r.id))
  } else if (args.quick) {
    rows = ROWS.filter(r => r.quick !== false)
  }
  let contenders: readonly Contender[] = allContenders
  if (args.side !== null) {
    contenders = allContenders.filter(c => c.name === args.side)
    if (contenders.length === 0) throw new Error(`Unknown side ${args.side}; sides: ${allContenders.map(c => c.name).join(', ')}`)
  }

  const scale = args.quick ? 0.1 : 1
  const keyPair = generateKeyPair()
  const info = machineInfo()
  const started = Date.now()
  log(`nomadcore bench: ${args.quick ? 'quick' : 'full'} run, ${args.rounds} round(s) per row, ` +
    `${contenders.map(c => `${c.name}@${c.version}`).join(' vs ')}`)
  log(`${info.cpu} × ${info.cores}, node ${info.node}, tmp on ${info.tmpdir}, load ${info.load.toFixed(2)}`)
  if (info.load > info.cores / 2) log(`warning: load average ${info.load.toFixed(2)} on ${info.cores} cores, other work will add noise`)

  // Warm-up: every row once, small, for every contender (JIT, file system, RocksDB).
  const warm = new BenchEnv(WARMUP_SCALE * scale, keyPair, makeBenchRoot())
  try {
    for (const [k, row] of rows.entries()) if (row.warmup !== false) await runRow({ ...row, rounds: undefined }, contenders, warm, { rounds: 1, reversed: k % 2 === 1 })
  } finally {
    await warm.close()
  }
  log(`warm-up done in ${((Date.now() - started) / 1000).toFixed(1)} s`)

  // The machine's limits, in this run, when replication rows run: their rows are shown as a fraction of them.
  if (args.limits && rows.some(r => replicationRows.includes(r) || lateReplicationRows.includes(r))) {
    const limits = await measureLimits(scale)
    useLimits(limits)
    log(`  limits        secret stream ${fmtOps(limits.streamMessages)} msgs of 1 KiB/s (${fmtOps(limits.streamMessagesUncorked)} uncorked), BLAKE2b ${fmtOps(limits.blake2b)} leaves of 1 KiB/s`)
  }

  const env = new BenchEnv(scale, keyPair, makeBenchRoot())
  const results: RowResult[] = []
  try {
    for (const [k, row] of rows.entries()) {
      const t0 = Date.now()
      const result = await runRow(row, contenders, env, { rounds: args.rounds, reversed: k % 2 === 1 })
      results.push(result)
      const parts = contenders.filter(c => result.results.has(c.name)).map(c => `${c.name} ${result.results.get(c.name)!.rounds.map(fmtOps).join(' / ')}`)
      log(`  ${row.id.padEnd(13)} ${parts.join('   ')} ops/s   (${((Date.now() - t0) / 1000).toFixed(1)} s)`)
    }
  } finally {
    await env.close()
  }

  // Set reconciliation: against Rateless IBLT and Negentropy, in-memory, after the rows.
  let reconcile: { rows: ReconcileRow[], byN: ReconcileRow[] } | null = null
  if ((args.only === null || args.only.includes(RECONCILE_ID)) && (args.side === null || args.side === 'nomadcore')) {
    const sizes = args.quick ? RECONCILE.quick : RECONCILE.full
    const t0 = Date.now()
    log(`  reconcile     n = ${sizes.n.toLocaleString('en-US')}, d = ${sizes.ds.join(', ')}`)
    const rows = await reconcileBench({ n: sizes.n, ds: sizes.ds, log: msg => log(`    ${msg}`) })
    const byN: ReconcileRow[] = []
    for (const n of sizes.byN) byN.push(...(await reconcileBench({ n, ds: [D_BY_N], ops: 1000, peers: false, draws: 0 })).filter(r => r.id === `d${D_BY_N}`))
    byN.push(...rows.filter(r => r.id === `d${D_BY_N}` && r.contender === 'nomadcore'))
    reconcile = { rows, byN }
    log(`  reconcile done (${((Date.now() - t0) / 1000).toFixed(1)} s)`)
  }
  // Two stores of a group: nomadcore only, on disk, after the rows.
  let storeSync: StoreSyncResult | null = null
  if ((args.only === null || args.only.includes(STORE_SYNC_ID)) && (args.side === null || args.side === 'nomadcore')) {
    const cores = args.quick ? STORE_SYNC.quick : STORE_SYNC.full
    const t0 = Date.now()
    log(`  store-sync    two stores, ${cores.toLocaleString('en-US')} cores`)
    storeSync = await storeSyncBench({ cores, log: msg => log(`    ${msg}`) })
    log(`  store-sync done (${((Date.now() - t0) / 1000).toFixed(1)} s)`)
  }
  const seconds = (Date.now() - started) / 1000

  const { columns, rows: cells } = tableCells(results, contenders)
  console.log()
  console.log(textTable(columns, cells))
  const sections = SECTIONS.map(section => {
    const ran = results.filter(r => section.rows.includes(r.row.id))
    return ran.length === 0 ? null : { section, ...section.table(ran, contenders) }
  }).filter(x => x !== null)
  for (const { section, columns, rows } of sections) {
    console.log()
    console.log(section.title)
    console.log(textTable(columns, rows))
  }
  if (reconcile !== null) {
    console.log()
    console.log('Set reconciliation (nomadcore, Rateless IBLT, Negentropy)')
    console.log(formatReconcileRows([...reconcile.rows, ...reconcile.byN.filter(r => r.n !== reconcile!.rows[0]?.n)]))
  }
  if (storeSync !== null) {
    console.log()
    console.log('Two stores of a group (nomadcore only)')
    console.log(formatStoreSync(storeSync))
  }
  console.log()
  console.log(`${info.date}  node ${info.node}  ${info.cpu} × ${info.cores}  (${seconds.toFixed(1)} s)`)

  const partial = args.quick || args.only !== null || args.side !== null
  const write = args.write ?? !partial
  if (write) {
    const dir = args.out ?? path.join(__dirname, '..', '..', 'bench')
    fs.mkdirSync(dir, { recursive: true })
    const file = path.join(dir, 'RESULTS.md')
    const rounds = roundCells(results, contenders)
    const plots: string[] = []
    const plot = (name: string, alt: string, svg: string | null): void => {
      if (svg === null) return
      fs.writeFileSync(path.join(dir, name), svg)
      plots.push(`![${alt}](${name})`)
      log(`wrote ${path.relative(process.cwd(), path.join(dir, name))}`)
    }
    plot('repair-cost.svg', 'repair cost', svgCharts(repairCharts(results, contenders)))
    if (reconcile !== null) plot('reconcile-bytes.svg', 'reconciliation bytes', svgCharts(reconcileCharts(reconcile.rows, reconcile.byN)))
    const rest = [
      ...sections.map(({ section, columns, rows }) => `## ${section.title}\n\n${markdownTable(columns, rows)}${section.notes ? '\n\n' + section.notes : ''}`),
      ...(reconcile === null ? [] : [reconcileMarkdown(reconcile.rows, reconcile.byN)]),
      ...(storeSync === null ? [] : [storeSyncMarkdown(storeSync)]),
      ...(plots.length === 0 ? [] : ['## Plots\n\nLog-log axes; best round of each row.\n\n' + plots.join('\n\n')]),
      '## Every timed round\n\nEach contender\'s rounds run back to back; which contender goes first alternates from row to row.\n\n' + markdownTable(rounds.columns, rounds.rows)
    ].join('\n\n')
    fs.writeFileSync(file, markdown(info, args, contenders, markdownTable(columns, cells), rest, results, seconds))
    log(`wrote ${path.relative(process.cwd(), file)}`)
  } else {
    log('bench/RESULTS.md not written (partial run; pass --write to force)')
  }
}

function reconcileMarkdown (rows: readonly ReconcileRow[], byN: readonly ReconcileRow[]): string {
  const n = rows[0]?.n ?? 0
  const extra = byN.filter(r => r.n !== n)
  const { head, body } = reconcileCells([...rows, ...extra])
  const columns = head.map((h, i): { header: string, align: 'left' | 'right' } => ({ header: h, align: i <= 1 || i >= head.length - 2 ? 'left' : 'right' }))
  return `## Set reconciliation (nomadcore, Rateless IBLT, Negentropy)

Hypercore has no counterpart (it does not reconcile sets of ids); the other two are Rateless IBLT
(\`@peerbit/riblt\`) and Negentropy (\`@nostr-dev-kit/sync\`), on the same sets. bench/reconcile.ts, in memory,
both sides in one process: two sets of ${n.toLocaleString('en-US')} random 32-byte ids that differ in d ids (half missing
on each side; d = 1: one id missing on one side), a one-sided pair (one set lacks some of the other's ids), and a nearly one-sided one (the smaller set also holds 50 ids of its own).
${extra.length > 0 ? `The last ${extra.length === 1 ? 'row is' : `${extra.length} rows are`} nomadcore's sync at d = ${D_BY_N} with smaller sets, for the bytes-against-n plot.\n` : ''}
${markdownTable(columns, body)}

*first knows*: bytes (both directions) and flights until one side knows the whole symmetric difference (the
decoding side); *both know*: until both sides know the ids they lack; *× floor*: bytes / (d × 32), the
missing ids themselves; a *flight* is one message in one direction on the critical path (nomadcore's two
sides send at once, so each round, the hello included, is a flight; Rateless IBLT streams, so its symbols
count as 1 flight, the stop signal and what is in flight meanwhile not counted; Rateless IBLT's bytes count
41 per coded symbol of 32-byte ids); *CPU ms*: the sync, both sides in one process (nomadcore: on top of
what the sets hold, i.e. their coded symbols and the fingerprint under the pair's key; the row "under a new
key" hashes both sets afresh; the others build their encoder, decoder or storage per session, as they must),
or the build; *µs/op*: one insert or delete, averaged over 100,000; *mode*: coded symbols, tree walk,
since path, bulk; *exact*: the sync found exactly the symmetric difference.`
}

function storeSyncMarkdown (result: StoreSyncResult): string {
  const { head, body } = storeSyncCells(result)
  const columns = head.map((h, i): { header: string, align: 'left' | 'right' } => ({ header: h, align: i === 0 || i === head.length - 1 ? 'left' : 'right' }))
  return `## Two stores of a group (nomadcore only)

bench/store-sync.ts: two stores in one process, on disk, full replicas, connected by an in-memory pipe. Each
makes half of the cores (one 40-byte block each), then they sync in full; the reconnects follow. *bytes*: everything
on the wire both ways, Noise handshake and framing included; *per-core channels*: \`hypercore/alpha\` channels
opened, both sides together (a pair counts 2). Corestore has no counterpart (it replicates every open core on every
connection and does not reconcile what stores hold).

${markdownTable(columns, body)}`
}

function markdown (info: ReturnType<typeof machineInfo>, args: Args, contenders: readonly Contender[], main: string, rest: string, results: readonly RowResult[], seconds: number): string {
  const bounded = results.filter(r => roundsOf(r.row, args.rounds) !== args.rounds)
    .map(r => `${r.row.id} ${roundsOf(r.row, args.rounds)}`)
  const notes = results.map((r, k) => `${k + 1}. ${r.row.note ?? r.row.label}`).join('\n')
  return `# Benchmark results

nomadcore vs Hypercore 11, side by side in one process on the same machine and
data. Written by \`npm run bench\` (\`node dist/bench/index.js\`); do not edit by hand.

- date: ${info.date}
- node: ${info.node}
- machine: ${info.cpu}, ${info.cores} cores, ${info.memory}, ${info.os}
- storage: fresh temp dirs under ${info.tmpdir}; nomadcore = directory → random-access-file, hypercore = directory → RocksDB
- versions: ${contenders.map(c => `${c.name} ${c.version}`).join(', ')}
- load average (1 min) at the start: ${info.load.toFixed(2)} → ${os.loadavg()[0]!.toFixed(2)} at the end${info.load > info.cores / 2 ? ' (busy machine: expect noise)' : ''}
- run: ${args.quick ? 'quick (op counts ÷10)' : 'full'}, ${args.rounds} timed round(s) per row and contender${bounded.length > 0 ? ` (rows that set their own: ${bounded.join(', ')})` : ''} after a warm-up, each contender's rounds back to back (which goes first alternating from row to row), best round shown; ${seconds.toFixed(0)} s in all

${main}

ops/s = operations per second, each operation awaited before the next; for the
append and replication rows an op is one block. ratio > 1 means nomadcore is faster.

${notes}

${rest}
`
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
