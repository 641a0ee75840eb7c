/**
 * The one-sided path: when one set holds the other plus some ids, the
 * smaller side names what it lacks by bucket counts and power sums, and
 * receives only those ids — near 32 bytes a missing id. Sets that only look
 * one-sided still end exact, through coded cells.
 */
import test from 'brittle'
import fc from 'fast-check'
import { isCoded } from '../lib/errors'
import { ReconcileSet, Session, sync } from '../lib/reconcile'
import { bucketCounts, findLacking, lacking, planSubset, powerSums, SUBSET_MIN, type SubsetPlan } from '../lib/reconcile/subset'
import { Writer } from '../lib/reconcile/wire'
import { prng, makeIds, pair, exact, hexes, randomId, feed, thrown, tamperedExchange, reply } from './helpers/reconcile'

const KEY = randomId()
const MSG_SUMS = 0x38

/** The first `bits` bits of an id: its bucket. */
const bucketOf = (id: Uint8Array, bits: number): number => ((id[0]! << 16) | (id[1]! << 8) | id[2]!) >>> (24 - bits)

test('one-sided: a set holding the other plus 64 to 5,000 ids gets them for about 32 bytes each, exactly', t => {
  let seed = 100
  for (const [n, d] of [[1000, 64], [20_000, 700], [100_000, 5000], [3000, 2500]] as const) {
    for (const largerFirst of [true, false]) {
      const p = largerFirst ? pair(n, d, 0, seed++) : pair(n, 0, d, seed++)
      const res = sync(p.a, p.b)
      t.ok(exact(res, p), `n=${n} d=${d}: exact`)
      t.is(res.mode, 'subset', `n=${n} d=${d}: by power sums`)
      const ratio = res.bytes / (d * 32)
      t.ok(ratio < (d >= 500 ? 1.1 : 1.2), `n=${n} d=${d}: ${res.bytes} B, ${ratio.toFixed(3)}× the floor, in ${res.rounds} rounds`)
    }
  }
})

test('one-sided without a shared key (nonces) and with ids chunked to what the receiver accepts', t => {
  const p = pair(5000, 900, 0, 7)
  const res = sync(p.a, p.b, { maxIdsPerMessage: 100 })
  t.ok(exact(res, p), 'exact with chunks of 100 ids')
  t.is(res.mode, 'subset')
  const q = pair(5000, 0, 300, 8)
  const sa = new Session(ReconcileSet.from(q.a))
  const sb = new Session(ReconcileSet.from(q.b))
  let ma: Uint8Array | null = sa.start()
  let mb: Uint8Array | null = sb.start()
  while (ma !== null && mb !== null) {
    const na = reply(sa, mb)
    const nb = reply(sb, ma)
    ma = na
    mb = nb
  }
  t.ok(ma === null && mb === null, 'both sides end on the same round')
  t.is(sa.mode, 'subset')
  t.alike(hexes(sa.missing()), hexes(q.onlyB), 'the smaller side learned exactly what it lacked')
  t.is(sb.missing().length, 0, 'the larger side lacks nothing')
})

/**
 * A pair that looks one-sided (a has `da` ids of its own) but b has one id
 * of its own too, in a bucket where a has `near` ids of its own: 0 (the
 * counts do not add up), 1 (the bucket looks equal: only the fingerprint
 * tells) or 2 (its power sums fit no ids).
 */
function hiddenOwn (near: 0 | 1 | 2, seed: number): { a: Uint8Array[], b: Uint8Array[], onlyA: Uint8Array[], onlyB: Uint8Array[] } {
  const n = 20_000
  const da = 801
  const { bits } = planSubset(da - 1, n + da)!
  const rand = prng(seed)
  const common = makeIds(n, rand)
  const onlyA = makeIds(da, rand)
  const perBucket = new Map<number, Uint8Array[]>()
  for (const id of onlyA) {
    const b = bucketOf(id, bits)
    perBucket.set(b, [...(perBucket.get(b) ?? []), id])
  }
  let own: Uint8Array
  if (near === 0) {
    do own = makeIds(1, rand)[0]!
    while (perBucket.has(bucketOf(own, bits)))
  } else {
    const [, ids] = [...perBucket].find(([, ids]) => ids.length === near)!
    own = ids[0]!.slice()
    own[4] ^= 0x5a // another hash
    own[31] ^= 0xff
  }
  return { a: common.concat(onlyA), b: common.concat([own]), onlyA, onlyB: [own] }
}

test('an id of the smaller side\'s own, wherever it hides, costs a few cells more, not a restart', t => {
  for (const near of [0, 1, 2] as const) {
    const p = hiddenOwn(near, 30 + near)
    const res = sync(p.a, p.b)
    t.ok(exact(res, p), `own id in a bucket with ${near} of the other side's: exact`)
    t.is(res.mode, 'subset', 'still one-sided, the rest by coded cells')
    const floor = (p.onlyA.length + 1) * 32
    t.ok(res.bytes < 1.2 * floor, `${res.bytes} B, ${(res.bytes / floor).toFixed(3)}× the floor, ${res.rounds} rounds`)
  }
})

test('sets with counts far apart and a few ids of the smaller side\'s own end exact, mostly one-sided (property)', async t => {
  const modes = new Map<string, number>()
  await t.execution(() => fc.assert(fc.property(
    fc.integer({ min: 100, max: 3000 }),
    fc.integer({ min: SUBSET_MIN, max: 400 }),
    fc.integer({ min: 0, max: 6 }),
    fc.integer({ min: 1, max: 0x7fffffff }),
    (n, da, db, seed) => {
      const p = pair(n, da + db, db, seed)
      const res = sync(p.a, p.b)
      if (!exact(res, p)) throw new Error(`n=${n} da=${da + db} db=${db} seed=${seed}: wrong difference (${res.mode})`)
      modes.set(res.mode, (modes.get(res.mode) ?? 0) + 1)
    }
  ), { numRuns: 80 }))
  t.ok((modes.get('subset') ?? 0) > 40, `modes: ${JSON.stringify(Object.fromEntries(modes))}`)
})

/** A tree of ids, and the plan for `dn` missing ones. */
function setup (ids: Uint8Array[], dn: number): { plan: SubsetPlan, tree: ReturnType<ReconcileSet['snapshot']> } {
  return { plan: planSubset(dn, ids.length)!, tree: ReconcileSet.from(ids).snapshot() }
}

test('power sums point at exactly the missing ids of each bucket; a hash collision adds only the id it collides with', t => {
  const rand = prng(5)
  const common = makeIds(4000, rand)
  const missing = makeIds(100, rand)
  // Two missing ids with one hash, in one bucket: a double root.
  const twin = missing[0]!.slice()
  twin[31] ^= 1
  missing.push(twin)
  // A present id with the hash of a missing one, in its bucket: found too, and dropped by the receiver as one it has.
  const collider = missing[1]!.slice()
  collider[30] ^= 1
  common.push(collider)
  const larger = common.concat(missing)
  const { plan, tree } = setup(larger, missing.length)
  const smaller = ReconcileSet.from(common).snapshot()
  const { k, total } = lacking(bucketCounts(tree, plan.bits), bucketCounts(smaller, plan.bits))
  t.is(total, missing.length, 'the counts add up to the difference')
  const found = findLacking(tree, plan, k, powerSums(smaller, plan, k))
  t.is(found.misfit, 0, 'every bucket fits')
  const got = new Set(hexes(found.ids.list()))
  t.ok(hexes(missing).every(h => got.has(h)), 'every missing id, both twins included')
  const extra = [...got].filter(h => !hexes(missing).includes(h))
  t.ok(extra.includes(hexes([collider])[0]!), 'the colliding id is among them')
  t.ok(extra.length <= 3, `and few others (${extra.length})`)
})

test('power sums: random subsets are found, and sums that fit no subset say so (property)', async t => {
  await t.execution(() => fc.assert(fc.property(
    fc.integer({ min: 0, max: 3000 }),
    fc.integer({ min: SUBSET_MIN, max: 600 }),
    fc.integer({ min: 1, max: 0x7fffffff }),
    (n, d, seed) => {
      const rand = prng(seed)
      const common = makeIds(n, rand)
      const missing = makeIds(d, rand)
      const { plan, tree } = setup(common.concat(missing), d)
      const smaller = ReconcileSet.from(common).snapshot()
      const { k } = lacking(bucketCounts(tree, plan.bits), bucketCounts(smaller, plan.bits))
      const found = findLacking(tree, plan, k, powerSums(smaller, plan, k))
      if (found.misfit !== 0) throw new Error('a true subset did not decode')
      const got = new Set(hexes(found.ids.list()))
      // All but those in a bucket missing 12 or more, which its count modulo 16 reads as the other side holding more (left to the cells).
      for (const id of missing) if (k[bucketOf(id, plan.bits)]! > 0 && !got.has(hexes([id])[0]!)) throw new Error('a missing id was not found')
      // The smaller side with one id more than it should have, in a bucket whose sums are sent: it no longer fits.
      // (A bucket missing 12 or more sends none, so an id of the smaller side's own there is the fingerprint's to catch.)
      const near = missing.find(id => k[bucketOf(id, plan.bits)]! > 0)!
      const own = makeIds(1, rand)[0]!
      own[0] = near[0]!
      own[1] = near[1]!
      own[2] = near[2]!
      const other = ReconcileSet.from(common.concat([own])).snapshot()
      // Its bucket fits no subset (its ids are held back), or fits by chance and the fingerprint is left to tell.
      const bad = findLacking(tree, plan, k, powerSums(other, plan, k))
      if (bad.misfit !== 1 && bad.ids.n === found.ids.n) throw new Error('a foreign id went unnoticed')
      if (bad.misfit === 1 && bad.ids.n >= found.ids.n) throw new Error('the bucket that fits no subset still gave ids')
    }
  ), { numRuns: 60 }))
})

test('the plan: never more than 3 missing ids a bucket, 16-bit sums for a million ids, nothing below the minimum', t => {
  t.is(planSubset(SUBSET_MIN - 1, 1_000_000), null, 'below the minimum: coded cells')
  const big = planSubset(5000, 1_005_000)!
  t.is(big.bytes, 2, '16-bit power sums')
  t.ok(5000 / 2 ** big.bits <= 3 && 5000 / 2 ** big.bits > 1, `2^${big.bits} buckets`)
  for (const dn of [64, 1000, 100_000, 3_000_000]) {
    const plan = planSubset(dn, dn * 4)
    t.ok(plan !== null && dn <= 3 * 2 ** plan.bits, `dn=${dn}: 2^${plan?.bits} buckets`)
  }
  t.is(planSubset(5000, 4000), null, 'more missing than candidates: not one-sided')
})

/** An honest one-sided exchange up to the message from b that `pick` chooses: a's session, ready for it. */
function upTo (pick: (m: Uint8Array) => boolean): { sa: Session, mb: Uint8Array } {
  const p = pair(3000, 300, 0, 61)
  const sa = new Session(ReconcileSet.from(p.a), { sessionKey: KEY })
  const sb = new Session(ReconcileSet.from(p.b), { sessionKey: KEY })
  let ma: Uint8Array | null = sa.start()
  let mb: Uint8Array | null = sb.start()
  for (;;) {
    if (pick(mb!)) return { sa, mb: mb! }
    const na = reply(sa, mb!)
    const nb = reply(sb, ma!)
    if (na === null || nb === null) throw new Error('ended before the message')
    ma = na
    mb = nb
  }
}

test('hostile: power sums outside the field, too few or too many, a residual of more than was given, a verdict with trailing bytes', t => {
  const sums = upTo(m => m[0] === MSG_SUMS)
  const outside = sums.mb.slice()
  outside[1] = 0xff
  outside[2] = 0xff
  t.ok(isCoded(thrown(() => sums.sa.receive(outside)), 'INVALID_MESSAGE'), 'a sum of 65,535 in a field of 65,521')
  for (const cut of [sums.mb.subarray(0, sums.mb.byteLength - 1), concat(sums.mb, new Uint8Array(2))]) {
    const { sa, mb } = upTo(m => m[0] === MSG_SUMS)
    t.ok(isCoded(thrown(() => sa.receive(cut)), 'INVALID_MESSAGE'), `${cut.byteLength - mb.byteLength} bytes off`)
  }
  // The larger side, just after sending its ids: an ACK is due only once all are out.
  const early = upTo(m => m[0] === MSG_SUMS)
  const next = reply(early.sa, early.mb)
  t.ok(next !== null && next[0] === 0x3b, 'the larger side answers the sums with ids')
  const greedy = new Writer()
  greedy.u8(0x3c)
  greedy.uint(1_000_000)
  greedy.fp(1, 2)
  greedy.uint(5)
  t.is(feed(early.sa, greedy.finish()), 'coded', 'a residual of more ids than were given')
  const w = new Writer()
  w.u8(0x39)
  w.u8(0)
  const late = upTo(m => m[0] === MSG_SUMS)
  late.sa.receive(late.mb)
  t.is(feed(late.sa, w.finish()), 'coded', 'trailing bytes after a verdict')
})

function concat (a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength)
  out.set(a)
  out.set(b, a.byteLength)
  return out
}

test('hostile: an id changed on the way to the smaller side never enters the cells as one of its own', async t => {
  // B lacks 600 of A's ids and holds 3 of its own: the ids A gives are followed by coded cells for the rest.
  const p = pair(6000, 603, 3, 70)
  const A = ReconcileSet.from(p.a)
  const B = ReconcileSet.from(p.b)
  let refused = 0
  let runs = 0
  await t.execution(() => fc.assert(fc.property(fc.nat(), fc.integer({ min: 1, max: 255 }), (pos, flip) => {
    const sa = new Session(A, { sessionKey: KEY })
    const sb = new Session(B, { sessionKey: KEY })
    let flipped = false
    runs++
    const res = tamperedExchange(sa, sb, (m, fromA) => {
      if (flipped || !fromA || m[0] !== 0x3b || m.byteLength <= 64) return m
      // A's first chunk of ids: one byte flipped in its last 32 bytes (an id).
      const bad = m.slice()
      bad[bad.byteLength - 1 - (pos % 32)] ^= flip
      flipped = true
      return bad
    })
    if (res === 'coded') {
      refused++
      return // refused: fine
    }
    if (!flipped) throw new Error('no ids to change')
    if (!exact({ missingInA: sa.missing(), missingInB: sb.missing() }, p)) throw new Error('a wrong difference')
  }), { numRuns: 60 }))
  t.ok(refused > 0, `${refused} of ${runs} refused with a coded error, the rest exact`)
})
