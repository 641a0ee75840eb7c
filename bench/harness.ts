/**
 * The benchmark machinery, independent of what is measured: the common shape
 * of a core under test (`BenchCore`), the implementations that provide it
 * (`Contender`), rows (`Row`, each module of rows exports a list of them),
 * the runner that times every row for every contender, and the output tables.
 *
 * Fairness rules the runner enforces for every row:
 *  - both contenders run the same row back to back in one process, on the
 *    same data (rows derive inputs from fixed seeds, never from the contender);
 *  - every row is timed `rounds` times per contender, and the best round
 *    counts. A contender's rounds run back to back, and which contender
 *    goes first alternates from row to row (see `runRow` for why);
 *  - preparation (opening cores, filling them, generating inputs) and
 *    disposal are never timed, and the heap is collected before each timing.
 *
 * A trial may also hand back figures that are not rates (bytes on the wire,
 * proof sizes, ...): `Metrics`, kept per round. A `Section` turns the results
 * of some rows into a table of its own, for what ops/s does not show.
 */
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import * as v8 from 'v8'
import * as vm from 'vm'
import { execFileSync } from 'child_process'
import { performance } from 'perf_hooks'

export interface BenchKeyPair {
  publicKey: Uint8Array
  secretKey: Uint8Array
}

/** The subset of Hypercore's proof request the rows use. */
export interface BenchProofRequest {
  block?: { index: number, nodes: number } | null
  hash?: { index: number, nodes: number } | null
  upgrade?: { start: number, length: number } | null
}

/**
 * One open core, whichever implementation is behind it. Proofs are opaque
 * values of the implementation's own type: rows only hand them back to the
 * same core. (Method syntax keeps `BenchCore<X>` assignable to `BenchCore`.)
 */
export interface BenchCore<P = unknown> {
  readonly length: number
  append (blocks: Uint8Array | Uint8Array[]): Promise<void>
  /**
   * Block `index`, which must be stored locally. `verify: false` asks for the
   * stored bytes unchecked (nomadcore checks each block against its verified
   * leaf by default; Hypercore 11 never checks local reads).
   */
  get (index: number, opts?: { verify?: boolean }): Promise<Uint8Array>
  proof (req: BenchProofRequest): Promise<P>
  /**
   * What a peer serving a block request produces: the block proof with an
   * upgrade from 0 and `block.value` filled in with the block's bytes.
   */
  blockProofWithValue (index: number, length: number): Promise<P>
  /** Puts the block's bytes into a block proof (as a peer receives it). */
  setBlockValue (proof: P, value: Uint8Array): void
  /** Resolves if the proof verifies against this core's key, rejects if not. */
  verifyFullyRemote (proof: P): Promise<void>
  treeHash (length?: number): Promise<Uint8Array>
  /** Reads every block with `createReadStream()`, in order; resolves with the count. */
  readStream (): Promise<number>
  /** Checks every stored block and tree node (nomadcore `audit()`, Hypercore 11 `core.core.audit()`); rejects unless it is clean. */
  audit (): Promise<void>
  close (): Promise<void>
}

/** An implementation under test. */
export interface Contender {
  readonly name: string
  readonly version: string
  /** A new writable core stored in the (empty) directory `dir`. */
  open (dir: string, keyPair: BenchKeyPair): Promise<BenchCore>
}

/** Figures a trial measured besides its time, by name. */
export type Metrics = Record<string, number>

/**
 * One timed run of a row for one contender: `run` does `ops` operations and
 * may resolve with metrics of that run (their collection is timed with it,
 * so keep it cheap); `timedMs` among them replaces the time measured around
 * `run` (a run in a child process times only its own work). `dispose` is
 * untimed and may throw to fail the row, e.g. when the run did not leave the
 * state it claims.
 */
export interface Trial {
  readonly ops: number
  run (): Promise<void | Metrics>
  dispose? (): Promise<void>
}

export interface Row {
  /** Short id, for `--only`. */
  readonly id: string
  /** Column text; `env.count()` sizes may be mentioned via `detail`. */
  readonly label: string
  /** What one op is, for the table ("block", "proof", ...). */
  readonly unit: string
  /** Untimed: opens/fills what the trial needs and returns it. */
  prepare (contender: Contender, env: BenchEnv): Promise<Trial>
  /** Bounds on the timed rounds, whatever `--rounds` says (for rows too slow or too noisy for the default). */
  readonly rounds?: { readonly min?: number, readonly max?: number }
  /** False: no warm-up trial (a row whose smaller sibling warms the same code). Default true. */
  readonly warmup?: boolean
  /** False: left out of `--quick` runs unless named with `--only`. Default true. */
  readonly quick?: boolean
  /** What the row measures, for the notes under the table (Markdown, one paragraph). */
  readonly note?: string
  /** Only these contenders run it (by name), when it has no counterpart in the others. Default: all. */
  readonly contenders?: readonly string[]
}

/** A table of its own for some rows' results, after the main one. */
export interface Section {
  readonly title: string
  /** Ids of the rows it reports on; it is shown when any of them ran. */
  readonly rows: readonly string[]
  /** The table, from the results of those of its rows that ran. */
  table (results: readonly RowResult[], contenders: readonly Contender[]): { columns: Column[], rows: string[][] }
  /** Markdown under the table. */
  readonly notes?: string
}

/** Timed rounds of `row` when `requested` are asked for. */
export function roundsOf (row: Row, requested: number): number {
  return Math.max(row.rounds?.min ?? 1, Math.min(row.rounds?.max ?? Infinity, requested))
}

// ---------------------------------------------------------------------------
// Environment: sizes, temp dirs, shared fixtures

export class BenchEnv {
  private readonly memos = new Map<string, Promise<unknown>>()
  private readonly sharedCores: Array<Promise<BenchCore>> = []
  private readonly closers: Array<() => Promise<void>> = []
  private dirs = 0

  /**
   * @param scale multiplies every op count (1 = full run)
   * @param keyPair the one key pair every core of every contender is created with
   * @param root a temp directory this env owns and removes on close
   */
  constructor (readonly scale: number, readonly keyPair: BenchKeyPair, private readonly root: string) {}

  /** `n` scaled, at least `min`. */
  count (n: number, min = 10): number {
    return Math.max(min, Math.round(n * this.scale))
  }

  /** A fresh, empty directory under the env's root. */
  tmpDir (label: string): string {
    const dir = path.join(this.root, `${String(this.dirs++).padStart(4, '0')}-${label.replace(/[^a-z0-9]+/gi, '-')}`)
    fs.mkdirSync(dir, { recursive: true })
    return dir
  }

  /**
   * A value per contender and `key`, made once by `make` (untimed) and reused
   * by every later trial of the env: inputs that trials only read.
   */
  memo<T> (contender: Contender, key: string, make: () => Promise<T>): Promise<T> {
    const id = contender.name + '\u0000' + key
    let p = this.memos.get(id) as Promise<T> | undefined
    if (p === undefined) {
      p = make()
      this.memos.set(id, p)
    }
    return p
  }

  /**
   * A core per contender and `key`, built once by `build` and kept open until
   * the env closes; rows that only read share it.
   */
  sharedCore (contender: Contender, key: string, build: (core: BenchCore) => Promise<void>): Promise<BenchCore> {
    return this.memo(contender, 'core:' + key, () => {
      const dir = this.tmpDir(`${contender.name}-${key}`)
      const core = contender.open(dir, this.keyPair).then(async c => {
        await build(c)
        return c
      })
      this.sharedCores.push(core)
      return core
    })
  }

  /**
   * Like `memo`, for a value that holds resources (open cores, streams):
   * `close` is called on it when the env closes.
   */
  shared<T> (contender: Contender, key: string, make: () => Promise<T>, close: (value: T) => Promise<void>): Promise<T> {
    return this.memo(contender, 'shared:' + key, () => {
      const p = make()
      this.closers.push(async () => {
        const value = await p.then(v => ({ v }), () => null)
        if (value !== null) await close(value.v)
      })
      return p
    })
  }

  async close (): Promise<void> {
    const cores = this.sharedCores.splice(0)
    const closers = this.closers.splice(0)
    this.memos.clear()
    for (const p of cores) {
      const core = await p.catch(() => null)
      if (core !== null) await core.close()
    }
    for (const close of closers) await close()
    await fs.promises.rm(this.root, { recursive: true, force: true })
  }
}

/** A temp root for an env, removed at process exit if the env is not closed. */
export function makeBenchRoot (): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nomadcore-bench-'))
  process.once('exit', () => fs.rmSync(root, { recursive: true, force: true }))
  return root
}

/** Closes a trial's core and removes its directory. */
export function disposeCore (core: BenchCore, dir: string): () => Promise<void> {
  return async () => {
    await core.close()
    await fs.promises.rm(dir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------
// Deterministic inputs

/** mulberry32: a small seeded PRNG, so both contenders see the same sequence. */
export function rng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** `n` integers in [lo, hi), from `seed`. */
export function randomInts (seed: number, n: number, lo: number, hi: number): number[] {
  const r = rng(seed)
  const out = new Array<number>(n)
  for (let i = 0; i < n; i++) out[i] = lo + Math.floor(r() * (hi - lo))
  return out
}

/** `count` distinct pseudo-random blocks of `size` bytes, from `seed`. */
export function blockPool (seed: number, count: number, size: number): Uint8Array[] {
  const r = rng(seed)
  const pool: Uint8Array[] = []
  for (let k = 0; k < count; k++) {
    const b = Buffer.allocUnsafe(size)
    for (let i = 0; i < size; i += 4) b.writeUInt32LE(Math.floor(r() * 4294967296), i)
    pool.push(b)
  }
  return pool
}

// ---------------------------------------------------------------------------
// Running

export interface Measurement {
  /** Best ops/s over the rounds. */
  best: number
  /** Index in `rounds` of the best round. */
  bestRound: number
  /** ops/s of every round, in round order. */
  rounds: number[]
  /** What each round's trial reported besides its time (null: nothing). */
  metrics: Array<Metrics | null>
  ops: number
}

export interface RowResult {
  row: Row
  /** By contender name. */
  results: Map<string, Measurement>
}

let gcFn: (() => void) | null | undefined

/** Full GC before a timing, without needing `node --expose-gc`. */
export function collectGarbage (): void {
  if (gcFn === undefined) {
    try {
      v8.setFlagsFromString('--expose-gc')
      const fn: unknown = vm.runInNewContext('gc')
      gcFn = typeof fn === 'function' ? () => { (fn as () => void)() } : null
    } catch {
      gcFn = null
    }
  }
  if (gcFn !== null) gcFn()
}

/**
 * Writes the page cache's dirty pages to disk before a timing (`sync`), so a
 * round does not pay for the writeback of what was written before it: the
 * other contender's round, or filling the writer. Measured: a 1,000,000-block
 * download right after 2 GiB were written ran at 48,241 blocks/s, and at
 * 54,674 with a sync in between (the kernel throttles writers while it
 * writes back).
 */
export function flushDirtyPages (): void {
  if (process.platform === 'win32') return
  try {
    execFileSync('sync', { stdio: 'ignore' })
  } catch {
    // No `sync` here: the rounds pay for writeback as before.
  }
}

export interface RunOptions {
  rounds: number
  /** Whether the contenders go in reverse order (alternate it from row to row). */
  reversed?: boolean
  /** Called after every timed trial. */
  onTrial?: (row: Row, contender: Contender, round: number, opsPerSec: number) => void
}

/**
 * Times `row` for every contender, `rounds` times each, one contender's
 * rounds after another's. Not interleaved: V8 sizes the old generation
 * after a full collection by how fast the program allocated over the last
 * seconds, so a round timed right after the other contender's is run in
 * a heap sized for that contender's allocation rate. Measured on the
 * download rows: after a Hypercore round (which allocates slowly) V8 gave
 * nomadcore's round a growing factor of 1.1 instead of 4.0, and the round
 * spent its whole length marking (three full collections in 240 ms).
 */
export async function runRow (row: Row, contenders: readonly Contender[], env: BenchEnv, opts: RunOptions): Promise<RowResult> {
  const results = new Map<string, Measurement>()
  const rounds = roundsOf(row, opts.rounds)
  const running = row.contenders === undefined ? contenders : contenders.filter(c => row.contenders!.includes(c.name))
  for (const contender of opts.reversed === true ? [...running].reverse() : running) {
    for (let round = 0; round < rounds; round++) {
      const trial = await row.prepare(contender, env)
      flushDirtyPages()
      collectGarbage()
      const t0 = performance.now()
      const metrics = await trial.run()
      // A trial that times itself (in a process of its own) says so.
      const ms = metrics?.timedMs ?? performance.now() - t0
      if (trial.dispose) await trial.dispose()
      const opsPerSec = trial.ops / (ms / 1000)
      let m = results.get(contender.name)
      if (m === undefined) results.set(contender.name, m = { best: 0, bestRound: 0, rounds: [], metrics: [], ops: trial.ops })
      m.rounds.push(opsPerSec)
      m.metrics.push(metrics ?? null)
      if (opsPerSec > m.best) {
        m.best = opsPerSec
        m.bestRound = m.rounds.length - 1
      }
      opts.onTrial?.(row, contender, round, opsPerSec)
    }
  }
  return { row, results }
}

// ---------------------------------------------------------------------------
// Output

export interface Column {
  header: string
  align: 'left' | 'right'
}

export function fmtInt (n: number): string {
  return Math.round(n).toLocaleString('en-US')
}

export function fmtOps (n: number): string {
  if (n >= 100) return fmtInt(n)
  if (n >= 10) return n.toFixed(1)
  return n.toFixed(2)
}

/** The table's cells: row, ops, one ops/s column per contender, ratio of the first to the second. */
export function tableCells (results: readonly RowResult[], contenders: readonly Contender[]): { columns: Column[], rows: string[][] } {
  const columns: Column[] = [
    { header: '#', align: 'right' },
    { header: 'benchmark', align: 'left' },
    { header: 'ops', align: 'right' },
    ...contenders.map((c): Column => ({ header: `${c.name} ops/s`, align: 'right' }))
  ]
  const ratio = contenders.length === 2
  if (ratio) columns.push({ header: `ratio (${contenders[0]!.name}/${contenders[1]!.name})`, align: 'right' })
  const rows = results.map((r, k) => {
    const ms = contenders.map(c => r.results.get(c.name))
    const ops = ms.find(m => m !== undefined)?.ops ?? 0
    const cells = [String(k + 1), r.row.label, `${fmtInt(ops)} ${r.row.unit}${ops === 1 ? '' : 's'}`, ...ms.map(m => m === undefined ? '-' : fmtOps(m.best))]
    if (ratio) {
      const [a, b] = ms
      cells.push(a !== undefined && b !== undefined && b.best > 0 ? (a.best / b.best).toFixed(2) + '×' : '-')
    }
    return cells
  })
  return { columns, rows }
}

/** Every round's ops/s, for judging the noise behind the best-of figures. */
export function roundCells (results: readonly RowResult[], contenders: readonly Contender[]): { columns: Column[], rows: string[][] } {
  const columns: Column[] = [
    { header: '#', align: 'right' },
    { header: 'benchmark', align: 'left' },
    ...contenders.map((c): Column => ({ header: `${c.name} ops/s, each round`, align: 'right' }))
  ]
  const rows = results.map((r, k) => [
    String(k + 1),
    r.row.label,
    ...contenders.map(c => r.results.get(c.name)?.rounds.map(fmtOps).join(' / ') ?? '-')
  ])
  return { columns, rows }
}

export function textTable (columns: readonly Column[], rows: readonly string[][]): string {
  const widths = columns.map((c, i) => Math.max(c.header.length, ...rows.map(r => (r[i] ?? '').length)))
  const line = (cells: readonly string[]): string => cells
    .map((cell, i) => columns[i]!.align === 'left' ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))
    .join('  ')
    .trimEnd()
  return [line(columns.map(c => c.header)), widths.map(w => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

export function markdownTable (columns: readonly Column[], rows: readonly string[][]): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|')
  const head = '| ' + columns.map(c => esc(c.header)).join(' | ') + ' |'
  const rule = '| ' + columns.map(c => c.align === 'left' ? '---' : '---:').join(' | ') + ' |'
  return [head, rule, ...rows.map(r => '| ' + r.map(esc).join(' | ') + ' |')].join('\n')
}

const FS_TYPES: Record<number, string> = {
  0xef53: 'ext4',
  0x01021994: 'tmpfs',
  0x58465342: 'xfs',
  0x9123683e: 'btrfs',
  0x794c7630: 'overlayfs',
  0x2fc12fc1: 'zfs',
  0x6969: 'nfs'
}

/** Name of the file system `dir` is on, best effort. */
export function fileSystemOf (dir: string): string {
  try {
    const type = Number(fs.statfsSync(dir).type)
    return FS_TYPES[type] ?? '0x' + type.toString(16)
  } catch {
    return 'unknown'
  }
}

export interface MachineInfo {
  date: string
  node: string
  cpu: string
  cores: number
  memory: string
  os: string
  tmpdir: string
  /** 1-minute load average when the run started. */
  load: number
}

export function machineInfo (): MachineInfo {
  const cpus = os.cpus()
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    node: process.version,
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    tmpdir: `${os.tmpdir()} (${fileSystemOf(os.tmpdir())})`,
    load: os.loadavg()[0] ?? 0
  }
}
