/**
 * What a set keeps for reconciliation, and how the coded symbols decode:
 * cached cells and keyed fingerprints stay equal to ones computed afresh
 * under any inserts and deletes; ids crafted to collide in the code make
 * the session fall back to the tree walk, which still finds everything;
 * the long cells solve, or say they cannot; the estimates are unbiased.
 */
import test from 'brittle'
import fc from 'fast-check'
import { ReconcileSet, CellWalk, encodeIds, cellsFor, KeyedHash, sync, type SymbolTable } from '../lib/reconcile'
import { fingerprintOf } from '../lib/reconcile/fingerprint'
import { solveLong, LONG_WORDS } from '../lib/reconcile/long-solve'
import { estimate } from '../lib/reconcile/plan'
import { prng, makeIds, randomId, hex, hexes, exact } from './helpers/reconcile'

function sameTable (a: SymbolTable, b: SymbolTable): boolean {
  const eq = (x: Int32Array, y: Int32Array): boolean => x.length === y.length && x.every((v, i) => v === y[i])
  return a.cells === b.cells && eq(a.xor, b.xor) && eq(a.chk, b.chk) && eq(a.cnt, b.cnt) && eq(a.est1, b.est1) && eq(a.est2, b.est2)
}

/** A pool of ids crowded under a few prefixes (so the tree splits and collapses), some sharing their first 8 bytes. */
function crowdedPool (n: number, seed: number): Uint8Array[] {
  const rand = prng(seed)
  const pool = makeIds(n, rand)
  const deep = makeIds(1, rand)[0]!
  for (let i = 0; i < pool.length; i++) {
    // Random, sharing 2 bytes, 5 bytes, 9 bytes (a short id twin) with `deep`.
    const shared = [0, 2, 5, 9][i % 4]!
    pool[i]!.set(deep.subarray(0, shared))
  }
  return pool
}

/**
 * Replays inserts ([true, i]) and deletes ([false, i]) of pool ids on a set
 * of the first `initial`, beside a map of the ids it should hold. `each`
 * sees every insert's or delete's result and whether the id was there;
 * `halfway` runs once, after the middle op (not at all when there are none).
 */
function replay<T> (pool: Uint8Array[], ops: Array<[boolean, number]>, initial: number, halfway: (s: ReconcileSet, present: Map<string, Uint8Array>) => T,
  each: (ins: boolean, result: boolean, was: boolean) => void = () => {}): { s: ReconcileSet, present: Map<string, Uint8Array>, snap: T | null } {
  const s = ReconcileSet.from(pool.slice(0, initial))
  const present = new Map<string, Uint8Array>()
  for (const id of pool.slice(0, initial)) present.set(hex(id), id)
  let snap: T | null = null
  ops.forEach(([ins, i], k) => {
    const id = pool[i]!
    const was = present.has(hex(id))
    if (ins) {
      each(true, s.insert(id), was)
      present.set(hex(id), id)
    } else {
      each(false, s.delete(id), was)
      present.delete(hex(id))
    }
    if (k === ops.length >> 1) snap = halfway(s, present)
  })
  return { s, present, snap }
}

// ---------------------------------------------------------------------------
// What the set keeps

test('insert and delete keep the cached coded symbols equal to symbols built from scratch (property)', async t => {
  const pool = crowdedPool(300, 40)
  await t.execution(() => fc.assert(fc.property(
    fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: pool.length - 1 })), { maxLength: 400 }),
    fc.integer({ min: 0, max: 100 }),
    (ops, initial) => {
      const { s, present, snap } = replay(pool, ops, initial, (s, present) => ({ ids: [...present.values()], table: s.symbols() }))
      // The cells as kept equal the cells of the ids there are, coded afresh.
      if (!sameTable(s.symbols(), encodeIds([...present.values()], s.symbols().cells))) return false
      if (s.symbols().cells < cellsFor(s.size)) return false
      // A snapshot taken halfway still codes the ids of then (copy on write).
      if (snap !== null) {
        const { ids, table } = snap
        if (!sameTable(table, encodeIds(ids, table.cells))) return false
      }
      return true
    }
  ), { numRuns: 150 }))
})

test('the cells grow with the set, and a set rebuilt from its ids codes them the same', t => {
  const ids = makeIds(3000, prng(41))
  const s = new ReconcileSet()
  for (const id of ids) s.insert(id)
  t.is(s.symbols().cells, cellsFor(3000))
  t.ok(sameTable(s.symbols(), ReconcileSet.from(ids).symbols()), 'one by one and in bulk: the same cells')
  for (const id of ids.slice(0, 2900)) s.delete(id)
  t.is(s.symbols().cells, cellsFor(3000), 'the cells do not shrink')
  t.ok(sameTable(s.symbols(), encodeIds(ids.slice(2900), cellsFor(3000))))
  s.clear()
  t.is(s.symbols().cells, cellsFor(0))
  s.verifyIntegrity()
})

test('the keyed fingerprint a set keeps up to date equals one computed afresh, past the journal too', t => {
  const ids = makeIds(6000, prng(42))
  const s = ReconcileSet.from(ids.slice(0, 1000))
  const k1 = randomId().subarray(0, 16)
  const k2 = randomId().subarray(0, 16)
  const fresh = (key: Uint8Array): [number, number] => fingerprintOf(s.snapshot(), new KeyedHash(key))
  t.alike(s.fingerprint(k1), fresh(k1))
  // A few changes: caught up from the journal.
  for (const id of ids.slice(1000, 1100)) s.insert(id)
  for (const id of ids.slice(0, 50)) s.delete(id)
  t.alike(s.fingerprint(k1), fresh(k1), 'after inserts and deletes')
  t.alike(s.fingerprint(k2), fresh(k2), 'a second key')
  // More changes than the journal holds: hashed afresh.
  for (const id of ids.slice(1100, 6000)) s.insert(id)
  t.alike(s.fingerprint(k1), fresh(k1), 'past the journal')
  t.unlike(s.fingerprint(k1), s.fingerprint(k2), 'keys give different fingerprints')
  // Many keys: the oldest are forgotten, and computed again when asked.
  const keys = Array.from({ length: 12 }, () => randomId().subarray(0, 16))
  for (const k of keys) s.fingerprint(k)
  s.delete(ids[3000]!)
  for (const k of [k1, ...keys]) t.alike(s.fingerprint(k), fresh(k))
})

test('cells: every id is in cell 0, its cells only increase, and about 1 + 2 ln(cells) hold it', t => {
  const walk = new CellWalk()
  const rand = prng(43)
  let total = 0
  const N = 2000
  const limit = 65536
  for (let i = 0; i < N; i++) {
    let last = -1
    let k = 0
    for (let c = walk.start(rand(), rand()); c < limit; c = walk.next()) {
      if (k === 0 && c !== 0) t.fail('the first cell is not 0')
      if (c <= last) t.fail('cells do not increase')
      last = c
      k++
    }
    total += k
  }
  const mean = total / N
  const expect = 1 + 2 * Math.log(limit / 1.5)
  t.ok(Math.abs(mean - expect) < 2, `${mean.toFixed(1)} cells per id, about ${expect.toFixed(1)}`)
})

// ---------------------------------------------------------------------------
// Crafted ids

test('ids crafted to collide in the code fall back to the tree walk and still finish exactly', t => {
  const rand = prng(44)
  const common = makeIds(4000, rand)
  const twin = (id: Uint8Array): Uint8Array => {
    const x = makeIds(1, rand)[0]!
    x.set(id.subarray(0, 8))
    return x
  }
  // a and b each hold an id the other lacks, with the same first 8 bytes: they cancel in every cell.
  {
    const [x] = makeIds(1, rand)
    const y = twin(x!)
    const extraA = makeIds(10, rand)
    const p = { a: common.concat([x!], extraA), b: common.concat([y]), onlyA: [x!, ...extraA], onlyB: [y] }
    const res = sync(p.a, p.b)
    t.ok(exact(res, p), 'twins across the sides: exact')
    t.is(res.mode, 'tree', 'the fingerprints did not confirm the decode')
  }
  // a alone holds two twins: their cells never empty.
  {
    const [x] = makeIds(1, rand)
    const y = twin(x!)
    const p = { a: common.concat([x!, y]), b: common, onlyA: [x!, y], onlyB: [] as Uint8Array[] }
    const res = sync(p.a, p.b)
    t.ok(exact(res, p), 'twins on one side: exact')
    t.is(res.mode, 'tree', 'peeling stalled for good')
  }
  // b (the smaller side, which decodes) holds twins, one of which a lacks: which one is it?
  {
    const [x] = makeIds(1, rand)
    const y = twin(x!)
    const extraA = makeIds(40, rand)
    const p = { a: common.concat([x!], extraA), b: common.concat([x!, y]), onlyA: extraA, onlyB: [y] }
    const res = sync(p.a, p.b)
    t.ok(exact(res, p), 'twins on the decoding side: exact')
  }
  // Many crafted twins in a clustered set, with random differences besides.
  {
    const base = makeIds(2000, rand, true)
    const xs = makeIds(30, rand)
    const ys = xs.map(twin)
    const p = { a: base.concat(xs), b: base.concat(ys), onlyA: xs, onlyB: ys }
    const res = sync(p.a, p.b)
    t.ok(exact(res, p), 'thirty twin pairs in a clustered set: exact')
  }
})

// ---------------------------------------------------------------------------
// Decoding pieces

test('the long cells solve for the remote ids\' last bytes, or say they cannot', t => {
  const rand = prng(45)
  const walk = new CellWalk()
  const system = (u: number, rows: number): { payload: Int32Array, colStart: Int32Array, colRows: Int32Array, values: Int32Array } => {
    const values = new Int32Array(u * LONG_WORDS).map(() => rand() | 0)
    const payload = new Int32Array(rows * LONG_WORDS)
    const colStart = new Int32Array(u + 1)
    const cols: number[] = []
    for (let j = 0; j < u; j++) {
      for (let c = walk.start(rand(), rand()); c < rows; c = walk.next()) {
        cols.push(c)
        for (let w = 0; w < LONG_WORDS; w++) payload[c * LONG_WORDS + w] ^= values[j * LONG_WORDS + w]!
      }
      colStart[j + 1] = cols.length
    }
    return { payload, colStart, colRows: Int32Array.from(cols), values }
  }
  for (const [u, rows] of [[1, 1], [5, 14], [25, 45], [300, 360], [1500, 1700]] as const) {
    const s = system(u, rows)
    const got = solveLong(rows, s.payload, u, s.colStart, s.colRows)
    t.ok(got instanceof Int32Array && got.every((v, i) => v === s.values[i]), `${u} ids from ${rows} cells`)
  }
  const few = system(40, 20)
  t.is(solveLong(20, few.payload, 40, few.colStart, few.colRows), 'under', 'fewer cells than ids: not determined')
  const s = system(25, 60)
  s.payload[59 * LONG_WORDS] ^= 1
  const r = solveLong(60, s.payload, 25, s.colStart, s.colRows)
  t.ok(r === 'bad' || (r instanceof Int32Array && !r.every((v, i) => v === s.values[i])) || r === 'under', 'a corrupted cell is caught or gives other values (which the fingerprints then refuse)')
})

test('estimates of the difference from the two histograms are about right', t => {
  const rand = prng(46)
  const run = (da: number, db: number, buckets: number, mod: number): { mean: number, saturated: number } => {
    let sum = 0
    let saturated = 0
    let runs = 0
    for (let k = 0; k < 400; k++) {
      const mine = new Int32Array(buckets).fill(5000)
      const theirs = new Array<number>(buckets).fill(5000)
      for (let i = 0; i < da; i++) theirs[rand() % buckets]!++
      for (let i = 0; i < db; i++) mine[rand() % buckets]!++
      const e = estimate(mine, theirs.map(x => x % mod), mod, da - db)
      if (e === null) {
        saturated++
        continue
      }
      if (e < Math.abs(da - db)) t.fail('below the count difference')
      sum += e
      runs++
    }
    return { mean: sum / runs, saturated }
  }
  for (const [da, db, b, mod] of [[25, 25, 16, 16], [40, 0, 16, 16], [2500, 2500, 128, 256], [5000, 0, 128, 256]] as const) {
    const { mean, saturated } = run(da, db, b, mod)
    t.ok(Math.abs(mean / (da + db) - 1) < 0.2, `${da} + ${db} differences: ${mean.toFixed(0)} on average`)
    t.ok(saturated < 20, `${saturated} of 400 too wrapped to tell`)
  }
  const { saturated } = run(500, 500, 16, 16)
  t.ok(saturated > 390, 'the 16 buckets of the hello say when they cannot tell')
  t.is(estimate(new Int32Array(16), new Array(16).fill(0), 16, 0), 2, 'equal counts: sets that differ differ in two ids at least')
  t.is(estimate(new Int32Array(16), new Array(16).fill(0), 16, 1), 1)
})

// ---------------------------------------------------------------------------
// The tree itself

test('insert and delete keep the tree equal to a fresh build of the same ids (property)', async t => {
  const pool = crowdedPool(400, 29)
  const prefixes = pool.slice(0, 20)
  await t.execution(() => fc.assert(fc.property(
    fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: pool.length - 1 })), { maxLength: 600 }),
    fc.integer({ min: 0, max: 120 }),
    (ops, initial) => {
      const { s, present, snap } = replay(pool, ops, initial, (s, present) => ({ ids: [...present.keys()].sort(), tree: s.snapshot() }),
        (ins, result, was) => {
          if (ins && result === was) throw new Error('insert result')
          if (!ins && result !== was) throw new Error('delete result')
        })
      s.verifyIntegrity()
      const fresh = ReconcileSet.from([...present.values()])
      if (JSON.stringify(hexes(s.all())) !== JSON.stringify(hexes(fresh.all()))) return false
      if (s.size !== present.size) return false
      for (const id of prefixes) {
        for (const depth of [0, 1, 2, 3, 4, 5, 8, 9, 64]) {
          if (JSON.stringify(s.summary(id, depth)) !== JSON.stringify(fresh.summary(id, depth))) return false
        }
      }
      for (const id of pool) if (s.has(id) !== present.has(hex(id))) return false
      // A snapshot taken halfway still shows the set as it was then (copy on write).
      if (snap !== null) {
        const { ids, tree } = snap
        const flat = tree.flat()
        const got: string[] = []
        for (let i = 0; i < flat.length; i += 32) got.push(hex(flat.subarray(i, i + 32)))
        if (JSON.stringify(got) !== JSON.stringify(ids)) return false
      }
      return true
    }
  ), { numRuns: 150 }))
})

test('ids sharing a long prefix split a full leaf as deep as it takes', t => {
  const ids = makeIds(200, prng(31))
  for (const id of ids) id.fill(0x5a, 0, 10) // 20 shared hex digits, and the same short id
  const s = new ReconcileSet()
  for (const id of ids) s.insert(id)
  s.verifyIntegrity()
  t.is(s.size, 200)
  t.ok(ids.every(id => s.has(id)), 'every id is there')
  for (const id of ids.slice(0, 190)) s.delete(id)
  s.verifyIntegrity()
  t.alike(hexes(s.all()), hexes(ids.slice(190)))
  const other = ReconcileSet.from(ids.slice(5))
  const res = sync(s, other)
  t.alike(hexes(res.missingInA), hexes(ids.slice(5, 190)))
  t.is(res.missingInB.length, 0)
})

test('a bulk-built set and one built id by id are the same, and summaries add up', t => {
  const ids = makeIds(5000, prng(30))
  const bulk = ReconcileSet.from(ids)
  const one = new ReconcileSet()
  for (const id of ids) one.insert(id)
  bulk.verifyIntegrity()
  one.verifyIntegrity()
  t.alike(bulk.summary(), one.summary())
  t.is(bulk.size, 5000)
  t.alike(hexes(bulk.all()), hexes(ids))
  t.is(ReconcileSet.from(ids.concat(ids.slice(0, 100))).size, 5000, 'duplicates are dropped')
  let count = 0
  for (let v = 0; v < 16; v++) count += bulk.summary(new Uint8Array([v << 4]), 1).count
  t.is(count, 5000, 'the 16 top-level prefixes hold every id once')
  for (const id of ids.slice(0, 2500)) one.delete(id)
  one.verifyIntegrity()
  t.alike(one.summary(), ReconcileSet.from(ids.slice(2500)).summary())
  one.clear()
  t.is(one.size, 0)
  one.verifyIntegrity()
})
