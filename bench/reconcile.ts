/**
 * Set reconciliation, side by side with Rateless IBLT (`@peerbit/riblt`)
 * and Negentropy (`@nostr-dev-kit/sync`) on the same sets: two sets of n
 * random 32-byte ids that differ in d ids (half missing on each side; d = 1:
 * one id missing on one side), a one-sided pair (A has n ids, B the same
 * less 5,000), a nearly one-sided one (B also holds 50 ids of its own),
 * plus nomadcore's own rows: the since path, an empty peer, a session under
 * a key the sets do not hold a fingerprint for yet, the time to build a set
 * of n ids and to insert or delete one; and the same syncs with a burst
 * (A follows its hello with cells for up to 50 differences, sent blind:
 * the "first knows" bytes count the packets B read, the "both know" bytes
 * every packet sent), including equal sets, where the burst is all cost.
 *
 * For each sync: the bytes and flights until one side knows the whole
 * symmetric difference (the decoding side), and until both sides know
 * their missing ids; against the floor, d × 32 bytes (the ids themselves).
 * A flight is one message in one direction on the critical path.
 *
 *  - nomadcore: `sync()`, both sides in one process exchanging real bytes;
 *    both send at once, so each round is one flight (the hello included).
 *    The pair shares a key, as peers share their connection's handshake
 *    hash; the sets already hold their coded symbols and the keyed
 *    fingerprint for it (one sync of the pair before), so the CPU time is
 *    what a sync costs on top of what the sets hold.
 *  - Rateless IBLT: A's encoder streams coded symbols until B's decoder
 *    has decoded. The wasm build codes 64-bit symbols, so it codes the ids'
 *    first 8 bytes; the bytes count each symbol as one carrying a 32-byte
 *    id sum, its 8-byte hash and a 1-byte count (41 bytes), in 1 flight
 *    (a stream: the stop signal and what is in flight meanwhile are not
 *    counted); then B sends A the ids A lacks (2 flights). Its encoder and
 *    decoder are built from the sets for every session (that is its design):
 *    the CPU time includes that.
 *  - Negentropy: B initiates, A answers, until B knows what it has and
 *    needs (every message a flight); then B sends A the ids A lacks. Its
 *    storage is built per session too (counted in its CPU time).
 *
 *   node dist/bench/reconcile.js [--n 1000000] [--d 1,50,5000] [--no-peers]
 */
import { performance } from 'perf_hooks'
import b4a from 'b4a'
import { ReconcileSet, sync, type SyncResult } from '../lib/reconcile'
import { fmtBytesSI, fmtSI, type Chart } from './plot'
import { textTable, type Column } from './harness'

export type Contender = 'nomadcore' | 'riblt' | 'negentropy'

export interface ReconcileRow {
  /** Short id, e.g. `d50`. */
  id: string
  contender: Contender
  label: string
  /** Ids in each set. */
  n: number
  /** Differences (ids missing on one side or the other); null for rows that are not a sync. */
  d: number | null
  /** Bytes and flights until one side knew the whole difference. */
  firstBytes: number | null
  firstFlights: number | null
  /** Bytes and flights until both sides knew their missing ids. */
  bytes: number | null
  flights: number | null
  /** CPU time of the sync (both sides, one process) or of building the set, in ms. */
  ms: number | null
  /** Microseconds per operation (insert/delete rows). */
  usPerOp: number | null
  /** How the sync went: coded symbols, tree walk, since path or bulk. */
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
  /** Run Rateless IBLT and Negentropy too (default true). */
  peers?: boolean
  /** Draws of the d = 50 row over many draws (default 200; 0: none). */
  draws?: number
  log?: (msg: string) => void
}

/** Bytes of a Rateless IBLT coded symbol carrying 32-byte ids: the id sum, the 8-byte hash, a count. */
const RIBLT_SYMBOL_BYTES = 32 + 8 + 1
/** Ids only in A in the one-sided pair (or n/20 when that is fewer). */
const ONE_SIDED = 5000
/** Ids of B's own in the nearly one-sided pair. */
const NEARLY_OWN = 50
/** The difference a burst is sized for in the rows with one. */
const BURST = 50

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

/** An id as hex (Negentropy reports ids as hex already). */
const hex = (id: Uint8Array | string): string => typeof id === 'string' ? id : b4a.toString(id as Buffer, 'hex')

function sameSet (got: ReadonlyArray<Uint8Array | string>, want: readonly Uint8Array[]): boolean {
  if (got.length !== want.length) return false
  const w = new Set(want.map(hex))
  return got.every(id => w.has(hex(id)))
}

function row (partial: Partial<ReconcileRow> & Pick<ReconcileRow, 'id' | 'label' | 'n'>): ReconcileRow {
  return { contender: 'nomadcore', d: null, firstBytes: null, firstFlights: null, bytes: null, flights: null, ms: null, usPerOp: null, mode: null, exact: null, ...partial }
}

function syncRow (id: string, label: string, n: number, d: number, res: SyncResult, ms: number, exact: boolean): ReconcileRow {
  return row({ id, label, n, d, firstBytes: res.firstKnows.bytes, firstFlights: res.firstKnows.rounds, bytes: res.bytes, flights: res.rounds, ms, mode: res.mode, exact })
}

/** The fastest of `k` runs of a sync that does not change the sets (its bytes are the same every time). */
function timedSync (a: ReconcileSet, b: ReconcileSet, k: number, opts?: Parameters<typeof sync>[2]): { res: SyncResult, ms: number } {
  let best = Infinity
  let res: SyncResult | null = null
  for (let i = 0; i < k; i++) {
    const t0 = performance.now()
    res = sync(a, b, opts)
    best = Math.min(best, performance.now() - t0)
  }
  return { res: res!, ms: best }
}

interface Peers {
  riblt (a: readonly Uint8Array[], b: readonly Uint8Array[], onlyA: readonly Uint8Array[], onlyB: readonly Uint8Array[]): Promise<Omit<ReconcileRow, 'id' | 'label' | 'n' | 'd' | 'contender'>>
  negentropy (a: readonly Uint8Array[], b: readonly Uint8Array[], onlyA: readonly Uint8Array[], onlyB: readonly Uint8Array[]): Promise<Omit<ReconcileRow, 'id' | 'label' | 'n' | 'd' | 'contender'>>
}

const u64 = (id: Uint8Array): bigint => Buffer.from(id.buffer, id.byteOffset, 8).readBigUInt64LE(0)

/** The two other implementations (ESM, loaded on demand). */
async function loadPeers (): Promise<Peers> {
  const riblt = await import('@peerbit/riblt')
  await riblt.ready
  const { Negentropy, NegentropyStorage } = await import('@nostr-dev-kit/sync')
  return {
    async riblt (a, b, onlyA, onlyB) {
      const t0 = performance.now()
      const enc = new riblt.EncoderWrapper()
      for (const id of a) enc.add_symbol(u64(id))
      const dec = new riblt.DecoderWrapper()
      for (const id of b) dec.add_symbol(u64(id))
      let m = 0
      for (;;) {
        dec.add_coded_symbol(enc.produce_next_coded_symbol())
        m++
        dec.try_decode()
        if (dec.decoded()) break
      }
      const remote = (dec.get_remote_symbols() as bigint[]).map(String).sort()
      const local = (dec.get_local_symbols() as bigint[]).map(String).sort()
      const ms = performance.now() - t0
      enc.free()
      dec.free()
      const exact = JSON.stringify(remote) === JSON.stringify(onlyA.map(u64).map(String).sort()) &&
        JSON.stringify(local) === JSON.stringify(onlyB.map(u64).map(String).sort())
      const first = m * RIBLT_SYMBOL_BYTES
      return { firstBytes: first, firstFlights: 1, bytes: first + onlyB.length * 32, flights: onlyB.length > 0 ? 2 : 1, ms, usPerOp: null, mode: 'stream', exact }
    },
    async negentropy (a, b, onlyA, onlyB) {
      const t0 = performance.now()
      // Each id in a buffer of its own: its fingerprint accumulator reads `id.buffer` from offset 0.
      const sa = new NegentropyStorage()
      for (const id of a) sa.insert(0, new Uint8Array(id))
      sa.seal()
      const sb = new NegentropyStorage()
      for (const id of b) sb.insert(0, new Uint8Array(id))
      sb.seal()
      const client = new Negentropy(sb, 0)
      const server = new Negentropy(sa, 0)
      let msg = await client.initiate()
      let bytes = msg.byteLength
      let flights = 1
      const have: Array<Uint8Array | string> = []
      const need: Array<Uint8Array | string> = []
      for (;;) {
        const r = await server.reconcile(msg)
        if (r.nextMessage === undefined) break
        bytes += r.nextMessage.byteLength
        flights++
        const c = await client.reconcile(r.nextMessage)
        // Copies: the ids it reports may be views of buffers it reuses.
        for (const id of c.have) have.push(typeof id === 'string' ? id : new Uint8Array(id))
        for (const id of c.need) need.push(typeof id === 'string' ? id : new Uint8Array(id))
        if (c.nextMessage === undefined) break
        bytes += c.nextMessage.byteLength
        flights++
        msg = c.nextMessage
      }
      const ms = performance.now() - t0
      const exact = sameSet(need, onlyA) && sameSet(have, onlyB)
      return { firstBytes: bytes, firstFlights: flights, bytes: bytes + have.length * 32, flights: flights + (have.length > 0 ? 1 : 0), ms, usPerOp: null, mode: 'ranges', exact }
    }
  }
}

/** Runs every row; at n = 1,000,000 the other two take minutes (they build their state per session). */
export async function reconcileBench (opts: ReconcileBenchOptions = {}): Promise<ReconcileRow[]> {
  const n = opts.n ?? 1_000_000
  const ds = opts.ds ?? [1, 50, 5000]
  const ops = opts.ops ?? 100_000
  const seed = opts.seed ?? 1
  const log = opts.log ?? (() => {})
  const peers = opts.peers === false ? null : await loadPeers()
  const rows: ReconcileRow[] = []
  const oneSided = Math.min(ONE_SIDED, Math.floor(n / 20))
  const maxD = Math.max(...ds, oneSided, 20)
  const nf = n.toLocaleString('en-US')

  const base = makeIds(n, seed)
  const extra = makeIds(maxD + ops, seed + 1)

  // Build (best of 2).
  let A: ReconcileSet | null = null
  let buildMs = Infinity
  for (let k = 0; k < 2; k++) {
    A = null
    global.gc?.()
    const t0 = performance.now()
    A = ReconcileSet.from(base)
    buildMs = Math.min(buildMs, performance.now() - t0)
  }
  rows.push(row({ id: 'build', label: `build a set of ${nf} ids`, n, ms: buildMs }))
  log(`build ${buildMs.toFixed(0)} ms`)
  const B = ReconcileSet.from(base)
  // The pair syncs once: from then on each set holds the keyed fingerprint for the other.
  sync(A!, B)

  const compare = async (id: string, label: string, d: number, a: Uint8Array[], b: Uint8Array[], onlyA: Uint8Array[], onlyB: Uint8Array[]): Promise<void> => {
    if (peers === null) return
    const r = await peers.riblt(a, b, onlyA, onlyB)
    rows.push({ ...r, id, label, n, d, contender: 'riblt' })
    log(`  riblt ${r.firstBytes} B (${(r.firstBytes! / (32 * d)).toFixed(2)}× floor), ${r.ms!.toFixed(0)} ms`)
    const g = await peers.negentropy(a, b, onlyA, onlyB)
    rows.push({ ...g, id, label, n, d, contender: 'negentropy' })
    log(`  negentropy ${g.firstBytes} B in ${g.firstFlights} flights, ${g.ms!.toFixed(0)} ms`)
  }

  // d differences: A gets the even extras, B the odd ones (d = 1: only A).
  for (const d of ds) {
    const inA = extra.slice(0, d).filter((_, i) => i % 2 === 0)
    const inB = extra.slice(0, d).filter((_, i) => i % 2 === 1)
    for (const id of inA) A!.insert(id)
    for (const id of inB) B.insert(id)
    const { res, ms } = timedSync(A!, B, 5)
    const exact = sameSet(res.missingInA, inB) && sameSet(res.missingInB, inA)
    const label = `sync, d = ${d.toLocaleString('en-US')}`
    rows.push(syncRow(`d${d}`, label, n, d, res, ms, exact))
    log(`d=${d}: first ${res.firstKnows.bytes} B (${(res.firstKnows.bytes / (d * 32)).toFixed(2)}×) in ${res.firstKnows.rounds}, both ${res.bytes} B (${(res.bytes / (d * 32)).toFixed(2)}×) in ${res.rounds}, ${ms.toFixed(1)} ms${exact ? '' : ' NOT EXACT'}`)
    await compare(`d${d}`, label, d, base.concat(inA), base.concat(inB), inA, inB)
    if (d <= BURST) {
      const b = timedSync(A!, B, 5, { burst: BURST })
      const bExact = sameSet(b.res.missingInA, inB) && sameSet(b.res.missingInB, inA)
      rows.push(syncRow(`d${d}-burst`, `${label}, with a burst for ${BURST}`, n, d, b.res, b.ms, bExact))
      log(`d=${d} with a burst: first ${b.res.firstKnows.bytes} B in ${b.res.firstKnows.rounds}, both ${b.res.bytes} B in ${b.res.rounds}, ${b.ms.toFixed(1)} ms${bExact ? '' : ' NOT EXACT'}`)
    }
    if (d === 50) {
      // The same sync under a key neither set holds a fingerprint for: both hash their whole set.
      const key = makeIds(1, seed + d)[0]!
      const t0 = performance.now()
      const cold = sync(A!, B, { sessionKey: key })
      const coldMs = performance.now() - t0
      rows.push(syncRow('d50-newkey', `${label}, under a new key`, n, d, cold, coldMs, sameSet(cold.missingInA, inB) && sameSet(cold.missingInB, inA)))
      log(`d=50 under a new key: ${coldMs.toFixed(0)} ms`)
    }
    for (const id of inA) A!.delete(id)
    for (const id of inB) B.delete(id)
  }

  // d = 50 over many draws: how often the estimate in the hello sizes the first batch well enough, and how often a burst decodes.
  if ((opts.draws ?? 200) > 0) {
    const draws = opts.draws ?? 200
    const m = 20_000
    const ids = makeIds(m + draws * 50, seed + 7)
    const X = ReconcileSet.from(ids.slice(0, m))
    const Y = ReconcileSet.from(ids.slice(0, m))
    for (const burst of [0, BURST]) {
      let first = 0
      let firstFlights = 0
      let both = 0
      let flights = 0
      let fast = 0
      let exact = true
      for (let k = 0; k < draws; k++) {
        const diff = ids.slice(m + k * 50, m + (k + 1) * 50)
        const inX = diff.filter((_, i) => i % 2 === 0)
        const inY = diff.filter((_, i) => i % 2 === 1)
        for (const id of inX) X.insert(id)
        for (const id of inY) Y.insert(id)
        const res = sync(X, Y, { burst })
        exact &&= sameSet(res.missingInA, inY) && sameSet(res.missingInB, inX)
        first += res.firstKnows.bytes
        firstFlights += res.firstKnows.rounds
        both += res.bytes
        flights += res.rounds
        // The fewest flights each can take: the cells after the hellos, or the burst with them.
        if (res.firstKnows.rounds === (burst > 0 ? 1 : 2)) fast++
        for (const id of inX) X.delete(id)
        for (const id of inY) Y.delete(id)
      }
      const mean = (x: number): number => Math.round(x / draws)
      rows.push(row({
        id: burst > 0 ? 'd50-burst-draws' : 'd50-draws',
        label: `sync, d = 50${burst > 0 ? `, with a burst for ${burst}` : ''}: mean of ${draws} draws (n = ${m.toLocaleString('en-US')})`,
        n: m,
        d: 50,
        firstBytes: mean(first),
        firstFlights: +(firstFlights / draws).toFixed(2),
        bytes: mean(both),
        flights: +(flights / draws).toFixed(2),
        mode: `${Math.round(fast * 100 / draws)}% in ${burst > 0 ? 1 : 2}`,
        exact
      }))
      log(`d=50 over ${draws} draws${burst > 0 ? ' with a burst' : ''}: first ${(first / draws / 1600).toFixed(2)}×, both ${(both / draws / 1600).toFixed(2)}×, ${fast} in ${burst > 0 ? 1 : 2} flight(s)`)
    }
  }

  // Equal sets with a burst: what it costs when there is nothing to find.
  {
    const { res, ms } = timedSync(A!, B, 3, { burst: BURST })
    rows.push(syncRow('equal-burst', `sync of equal sets, with a burst for ${BURST}`, n, 0, res, ms, res.missingInA.length === 0 && res.missingInB.length === 0))
    log(`equal sets with a burst: ${res.bytes} B in ${res.rounds}`)
  }

  // One-sided: B lacks `oneSided` of A's ids and has none of its own.
  {
    const gone = base.slice(0, oneSided)
    for (const id of gone) B.delete(id)
    const { res, ms } = timedSync(A!, B, 3)
    const exact = sameSet(res.missingInB, gone) && res.missingInA.length === 0
    const label = `sync, one-sided: B lacks ${oneSided.toLocaleString('en-US')} of A's ids`
    rows.push(syncRow('one-sided', label, n, oneSided, res, ms, exact))
    log(`one-sided: ${res.bytes} B (${(res.bytes / (oneSided * 32)).toFixed(2)}×) in ${res.rounds}, ${ms.toFixed(0)} ms`)
    await compare('one-sided', label, oneSided, base, base.slice(oneSided), gone, [])

    // Nearly one-sided: B also has a few ids of its own (a node that wrote a little while it was away).
    const own = extra.slice(0, NEARLY_OWN)
    for (const id of own) B.insert(id)
    const near = timedSync(A!, B, 3)
    const nearExact = sameSet(near.res.missingInB, gone) && sameSet(near.res.missingInA, own)
    const nearLabel = `sync, nearly one-sided: B lacks ${oneSided.toLocaleString('en-US')} of A's ids, has ${NEARLY_OWN} of its own`
    rows.push(syncRow('nearly-one-sided', nearLabel, n, oneSided + NEARLY_OWN, near.res, near.ms, nearExact))
    log(`nearly one-sided: ${near.res.bytes} B (${(near.res.bytes / ((oneSided + NEARLY_OWN) * 32)).toFixed(2)}×) in ${near.res.rounds}, ${near.ms.toFixed(0)} ms`)
    await compare('nearly-one-sided', nearLabel, oneSided + NEARLY_OWN, base, base.slice(oneSided).concat(own), gone, own)
    for (const id of own) B.delete(id)
    for (const id of gone) B.insert(id)
  }

  // Since: in sync, then 10 new ids on each side.
  {
    sync(A!, B, { remember: true, apply: true })
    const inA = extra.slice(0, 10)
    const inB = extra.slice(10, 20)
    for (const id of inA) A!.insert(id)
    for (const id of inB) B.insert(id)
    const { res, ms } = timedSync(A!, B, 3, { remember: true })
    const exact = sameSet(res.missingInA, inB) && sameSet(res.missingInB, inA)
    rows.push(syncRow('since', 'sync since the last one, 10 new ids each side', n, 20, res, ms, exact))
    log(`since: ${res.bytes} B in ${res.rounds}, ${res.mode}`)
    for (const id of inA) A!.delete(id)
    for (const id of inB) B.delete(id)
  }

  // A cold peer: empty.
  {
    const empty = new ReconcileSet()
    const t0 = performance.now()
    const res = sync(A!, empty)
    const ms = performance.now() - t0
    const exact = res.missingInB.length === n && res.missingInA.length === 0
    rows.push(syncRow('empty', 'sync with an empty peer', n, n, res, ms, exact))
    log(`empty peer: ${res.bytes} B in ${res.rounds}, ${res.mode}`)
  }

  // Insert and delete on the full set.
  {
    const ids = extra.slice(maxD, maxD + ops)
    global.gc?.()
    let t0 = performance.now()
    for (const id of ids) A!.insert(id)
    const ins = (performance.now() - t0) * 1000 / ops
    t0 = performance.now()
    for (const id of ids) A!.delete(id)
    const del = (performance.now() - t0) * 1000 / ops
    rows.push(row({ id: 'insert', label: `insert one id into ${nf}`, n, usPerOp: ins }))
    rows.push(row({ id: 'delete', label: `delete one id from ${nf}`, n, usPerOp: del }))
    log(`insert ${ins.toFixed(2)} µs, delete ${del.toFixed(2)} µs`)
  }
  return rows
}

function fmt (x: number | null, digits = 0): string {
  if (x === null) return ''
  return x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
}

function ratio (bytes: number | null, d: number | null): string {
  return bytes === null || d === null || d === 0 ? '' : (bytes / (d * 32)).toFixed(2)
}

/** The table's columns and cells (for the text and the Markdown table). */
export function reconcileCells (rows: readonly ReconcileRow[]): { head: string[], body: string[][] } {
  const head = ['row', 'with', 'n', 'first knows: bytes', '× floor', 'flights', 'both know: bytes', '× floor', 'flights', 'CPU ms', 'µs/op', 'mode', 'exact']
  const body = rows.map(r => [
    r.label,
    r.contender,
    fmt(r.n),
    fmt(r.firstBytes),
    ratio(r.firstBytes, r.d),
    r.firstFlights === null ? '' : Number.isInteger(r.firstFlights) ? fmt(r.firstFlights) : r.firstFlights.toFixed(2),
    fmt(r.bytes),
    ratio(r.bytes, r.d),
    r.flights === null ? '' : Number.isInteger(r.flights) ? fmt(r.flights) : r.flights.toFixed(2),
    fmt(r.ms, r.ms !== null && r.ms < 10 ? 1 : 0),
    fmt(r.usPerOp, 2),
    r.mode ?? '',
    r.exact === null ? '' : r.exact ? 'yes' : 'NO'
  ])
  return { head, body }
}

/** A plain-text table of the rows. */
export function formatReconcileRows (rows: readonly ReconcileRow[]): string {
  const { head, body } = reconcileCells(rows)
  return textTable(head.map((header, i): Column => ({ header, align: i <= 1 ? 'left' : 'right' })), body)
}

const COLORS: Record<Contender, string> = { nomadcore: '#1f5fbf', riblt: '#e08a00', negentropy: '#7b3fa0' }

/**
 * The plots of bench/reconcile-bytes.svg: bytes (both sides knowing their
 * missing ids) against d at one n, for every contender, and bytes against
 * n at the fixed d of the `byN` rows (nomadcore), each with the floor.
 */
export function reconcileCharts (rows: readonly ReconcileRow[], byN: readonly ReconcileRow[]): Chart[] {
  const isD = (r: ReconcileRow): boolean => /^d\d+$/.test(r.id) && r.d !== null && r.bytes !== null
  const dRows = rows.filter(isD)
  const nRows = byN.filter(r => isD(r) && r.contender === 'nomadcore')
  const n = rows[0]?.n ?? 0
  const d = nRows[0]?.d ?? 0
  const ds = [...new Set(dRows.map(r => r.d!))]
  const ns = nRows.map(r => r.n)
  const floor = '#2a9d3a'
  const contenders = [...new Set(dRows.map(r => r.contender))]
  return [
    {
      title: `Reconciliation bytes against d (n = ${n.toLocaleString('en-US')})`,
      xLabel: 'd (ids missing on one side or the other)',
      yLabel: 'bytes until both sides know',
      xFormat: fmtSI,
      yFormat: fmtBytesSI,
      series: [
        ...contenders.map(c => ({ name: c, color: COLORS[c], points: dRows.filter(r => r.contender === c).map(r => [r.d!, r.bytes!] as const) })),
        { name: 'floor d·32', color: floor, dashed: true, points: ds.map(x => [x, x * 32] as const) }
      ]
    },
    {
      title: `Reconciliation bytes against n (d = ${d.toLocaleString('en-US')})`,
      xLabel: 'n (ids in each set)',
      yLabel: 'bytes until both sides know',
      xFormat: fmtSI,
      yFormat: fmtBytesSI,
      series: [
        { name: 'nomadcore sync()', color: COLORS.nomadcore, points: nRows.map(r => [r.n, r.bytes!] as const) },
        { name: `floor d·32 (d = ${d})`, color: floor, dashed: true, points: ns.map(x => [x, d * 32] as const) }
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
    else if (argv[k] === '--no-peers') opts.peers = false
    else throw new Error(`Unknown argument ${argv[k]}`)
  }
  reconcileBench(opts).then(rows => console.log(formatReconcileRows(rows)), err => {
    console.error(err)
    process.exitCode = 1
  })
}
