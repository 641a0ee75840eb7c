/**
 * Two stores of one group, 10,000 cores each: what a reconnect costs.
 *
 *   node dist/bench/store-sync.js [--cores 10000]
 *
 * Store A makes half the cores and store B the other half (one 40-byte
 * block each, full replicas), then:
 *  1. first full sync: both end up holding every core;
 *  2. reconnect with nothing changed (both stores kept open);
 *  3. the same after both stores restarted;
 *  4. reconnect after, while apart, 20 of A's cores got a new block, 10 of
 *     B's did, and A made 5 new cores;
 *  5. memory of an idle store holding every core (reopened from disk).
 * Bytes are everything on the wire both ways, Noise handshake and framing
 * included; channels are per-core channels opened, both sides together.
 * Nomadcore only: Corestore has no group reconciliation to compare with.
 */
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import b4a from 'b4a'
import { Store, type StoreOptions } from '../lib/store'
import { collectGarbage } from './harness'

const BLOCK_BYTES = 40
const GROWN_A = 20
const GROWN_B = 10
const NEW_CORES = 5

export interface StoreSyncRow {
  id: string
  label: string
  /** Cores each store holds when the row starts (after the first sync). */
  cores: number
  ms: number
  /** Bytes on the wire, both directions. */
  bytes: number
  /** Per-core channels opened, both sides. */
  channels: number
  /** Bytes of the new blocks themselves (payload), for the change row. */
  payload: number | null
  /** Most files open at once in either store. */
  peakFiles: number | null
  note: string
}

export interface StoreSyncResult {
  rows: StoreSyncRow[]
  /** Heap of an idle store holding every core, in bytes; and the same with 100 cores open. */
  idleHeap: number
  openHeap: number
  cores: number
}

interface Link { bytes (): number, destroy (): void }

function connect (a: Store, b: Store): Link {
  const s1 = a.replicate(true, { keepAlive: false }) as unknown as NodeJS.ReadWriteStream & { destroy (): void }
  const s2 = b.replicate(false, { keepAlive: false }) as unknown as NodeJS.ReadWriteStream & { destroy (): void }
  let n = 0
  s1.on('data', (d: Uint8Array) => { n += d.byteLength })
  s2.on('data', (d: Uint8Array) => { n += d.byteLength })
  s1.on('error', noop)
  s2.on('error', noop)
  s1.pipe(s2).pipe(s1)
  return { bytes: () => n, destroy: () => { s1.destroy(); s2.destroy() } }
}

function noop (): void {}

function sleep (ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}

/** Resolves once both stores said they agree with each other ('synced'). */
function agreement (a: Store, b: Store): Promise<void> {
  return new Promise(resolve => {
    let n = 0
    const on = (): void => { if (++n === 2) resolve() }
    a.once('synced', on)
    b.once('synced', on)
  })
}

async function idle (...stores: Store[]): Promise<void> {
  for (;;) {
    if (stores.every(s => s.stats().syncs === 0 && s.stats().coresOpen === 0)) return
    await sleep(50)
  }
}

function block (label: string): Uint8Array {
  return b4a.from(label.padEnd(BLOCK_BYTES, '.').slice(0, BLOCK_BYTES))
}

async function fill (store: Store, prefix: string, n: number): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++
      const core = store.get({ name: prefix + i })
      await core.append(block(`${prefix} ${i} block 0`))
      await core.close()
    }
  }
  await Promise.all(Array.from({ length: 32 }, worker))
}

async function appendTo (store: Store, name: string, label: string): Promise<void> {
  const core = store.get({ name })
  await core.append(block(label))
  await core.close()
}

function channels (...stores: Store[]): number {
  return stores.reduce((n, s) => n + s.stats().channels, 0)
}

/** Runs a reconnect: connect, wait for `done`, then a quiet moment; returns bytes, ms and channels. */
async function reconnect (a: Store, b: Store, done: Promise<void>): Promise<{ ms: number, bytes: number, channels: number, link: Link }> {
  const before = channels(a, b)
  const t0 = performance.now()
  const link = connect(a, b)
  await done
  const ms = performance.now() - t0
  await idle(a, b)
  await sleep(300)
  return { ms, bytes: link.bytes(), channels: channels(a, b) - before, link }
}

async function heap (): Promise<number> {
  for (let i = 0; i < 3; i++) {
    collectGarbage()
    await sleep(20)
  }
  return process.memoryUsage().heapUsed
}

export async function storeSyncBench (opts: { cores?: number, root?: string, log?: (msg: string) => void } = {}): Promise<StoreSyncResult> {
  const total = opts.cores ?? 10_000
  const log = opts.log ?? noop
  const root = opts.root ?? fs.mkdtempSync(path.join(os.tmpdir(), 'nomadcore-store-bench-'))
  const group = b4a.alloc(32, 0x42)
  const options: StoreOptions = { group, replicas: 'full', repairInterval: 0 }
  const dirs = [path.join(root, 'a'), path.join(root, 'b')] as const
  let a = new Store(dirs[0], options)
  let b = new Store(dirs[1], options)
  const rows: StoreSyncRow[] = []
  const half = total / 2
  // The stores' timers are unref'd and the pipe between them is in memory: keep the process up meanwhile.
  const keepAlive = setInterval(noop, 1000)

  try {
    let t0 = performance.now()
    await Promise.all([fill(a, 'a', half), fill(b, 'b', half)])
    log(`made ${total.toLocaleString('en-US')} cores in ${((performance.now() - t0) / 1000).toFixed(1)} s`)

    // 1. First full sync.
    let r = await reconnect(a, b, agreement(a, b))
    r.link.destroy()
    rows.push({
      id: 'store-first-sync',
      label: `first full sync, ${half.toLocaleString('en-US')} + ${half.toLocaleString('en-US')} cores`,
      cores: half,
      ms: r.ms,
      bytes: r.bytes,
      channels: r.channels,
      payload: null,
      peakFiles: Math.max(a.stats().peakFilesOpen, b.stats().peakFilesOpen),
      note: `both end with ${total.toLocaleString('en-US')} cores`
    })
    log(`first sync: ${(r.ms / 1000).toFixed(1)} s, ${r.bytes} B, ${r.channels} channels`)
    await sleep(200)

    // 2. Reconnect, nothing changed, both stores kept open.
    const reconciled = (s: Store): Promise<void> => new Promise(resolve => s.once('reconciled', () => resolve()))
    r = await reconnect(a, b, Promise.all([reconciled(a), reconciled(b)]).then(noop))
    r.link.destroy()
    rows.push({ id: 'store-reconnect', label: 'reconnect, nothing changed', cores: total, ms: r.ms, bytes: r.bytes, channels: r.channels, payload: null, peakFiles: null, note: 'stores kept open' })
    log(`reconnect: ${r.ms.toFixed(0)} ms, ${r.bytes} B, ${r.channels} channels`)

    // 3. The same after a restart of both.
    await Promise.all([a.close(), b.close()])
    a = new Store(dirs[0], options)
    b = new Store(dirs[1], options)
    await Promise.all([a.ready(), b.ready()])
    r = await reconnect(a, b, Promise.all([reconciled(a), reconciled(b)]).then(noop))
    r.link.destroy()
    rows.push({ id: 'store-restart', label: 'reconnect after a restart of both, nothing changed', cores: total, ms: r.ms, bytes: r.bytes, channels: r.channels, payload: null, peakFiles: null, note: 'stores reopened from disk' })
    log(`after restart: ${r.ms.toFixed(0)} ms, ${r.bytes} B, ${r.channels} channels`)

    // 4. Apart: 20 + 10 cores grow, 5 new cores; then reconnect.
    for (let i = 0; i < GROWN_A; i++) await appendTo(a, 'a' + i * 7, `a ${i * 7} block 1`)
    for (let i = 0; i < GROWN_B; i++) await appendTo(b, 'b' + i * 11, `b ${i * 11} block 1`)
    await fill(a, 'a-new', NEW_CORES)
    await idle(a, b)
    const changed = GROWN_A + GROWN_B + NEW_CORES
    r = await reconnect(a, b, agreement(a, b))
    r.link.destroy()
    const payload = changed * BLOCK_BYTES
    rows.push({
      id: 'store-changes',
      label: `reconnect after ${GROWN_A} + ${GROWN_B} cores grew and ${NEW_CORES} were made`,
      cores: total,
      ms: r.ms,
      bytes: r.bytes,
      channels: r.channels,
      payload,
      peakFiles: null,
      note: `${changed} new blocks of ${BLOCK_BYTES} B; beyond them ${r.bytes - payload} B = ${((r.bytes - payload) / (changed * 40)).toFixed(1)}× the floor of ${changed} × 40 B`
    })
    log(`changes: ${r.ms.toFixed(0)} ms, ${r.bytes} B, ${r.channels} channels`)

    // 5. Memory of an idle store holding every core.
    await Promise.all([a.close(), b.close()])
    const base = await heap()
    a = new Store(dirs[0], options)
    await a.ready()
    await sleep(300)
    const idleHeap = (await heap()) - base
    const open = Array.from({ length: 100 }, (_, i) => a.get({ name: 'a' + i, active: false }))
    await Promise.all(open.map(c => c.ready()))
    const openHeap = (await heap()) - base
    await Promise.all(open.map(c => c.close()))
    log(`idle store: ${(idleHeap / 2 ** 20).toFixed(1)} MiB heap, with 100 cores open ${(openHeap / 2 ** 20).toFixed(1)} MiB`)
    return { rows, idleHeap, openHeap, cores: total + NEW_CORES }
  } finally {
    clearInterval(keepAlive)
    await Promise.all([a.close(), b.close()])
    if (opts.root === undefined) fs.rmSync(root, { recursive: true, force: true })
  }
}

function fmtBytes (n: number): string {
  return n.toLocaleString('en-US') + ' B'
}

/** The rows as table cells: head and body. */
export function storeSyncCells (result: StoreSyncResult): { head: string[], body: string[][] } {
  const head = ['scenario', 'time', 'bytes on the wire', 'per-core channels', 'peak files open', 'notes']
  const body = result.rows.map(r => [
    r.label,
    r.ms >= 10000 ? (r.ms / 1000).toFixed(1) + ' s' : Math.round(r.ms).toLocaleString('en-US') + ' ms',
    fmtBytes(r.bytes),
    r.channels.toLocaleString('en-US'),
    r.peakFiles === null ? '' : String(r.peakFiles),
    r.note
  ])
  body.push([
    `idle store holding ${result.cores.toLocaleString('en-US')} cores`, '', '', '', '',
    `${(result.idleHeap / 2 ** 20).toFixed(1)} MiB of heap (${Math.round(result.idleHeap / result.cores)} B per core held), no core open; with 100 cores open: ${(result.openHeap / 2 ** 20).toFixed(1)} MiB`
  ])
  return { head, body }
}

export function formatStoreSync (result: StoreSyncResult): string {
  const { head, body } = storeSyncCells(result)
  const widths = head.map((h, i) => Math.max(h.length, ...body.map(r => (r[i] ?? '').length)))
  return [head, ...body].map(r => r.map((c, i) => i === 0 || i === r.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join('  ').trimEnd()).join('\n')
}

if (require.main === module) {
  const i = process.argv.indexOf('--cores')
  const cores = i === -1 ? 10_000 : parseInt(process.argv[i + 1] ?? '10000', 10)
  storeSyncBench({ cores, log: msg => process.stderr.write(msg + '\n') })
    .then(result => console.log(formatStoreSync(result)))
    .catch(err => { console.error(err); process.exitCode = 1 })
}
