/**
 * Set reconciliation: two sets of 32-byte ids learn exactly what each lacks,
 * by the tree walk, the since fast path, bulk transfer and through views;
 * fingerprints are keyed per session; hostile bytes give coded errors; and
 * the tree stays equal to a fresh build under any inserts and deletes.
 */
import test from 'brittle'
import fc from 'fast-check'
import b4a from 'b4a'
import sodium from 'sodium-universal'
import { isCoded } from '../lib/errors'
import {
  ReconcileSet, Session, sync, KeyedHash, deriveSessionKey,
  type SyncResult, type SessionOptions
} from '../lib/reconcile'

// ---------------------------------------------------------------------------
// Helpers

/** A small deterministic PRNG (xorshift32), so failures reproduce from the seed. */
function prng (seed: number): () => number {
  let x = (seed >>> 0) || 0x9e3779b9
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x
  }
}

/** `n` ids; with `cluster`, about half share a 6-digit prefix (a deep, skewed tree). */
function makeIds (n: number, rand: () => number, cluster = false): Uint8Array[] {
  const buf = new Uint8Array(n * 32)
  const w = new Uint32Array(buf.buffer)
  for (let i = 0; i < w.length; i++) w[i] = rand()
  const out: Uint8Array[] = []
  for (let i = 0; i < n; i++) {
    const id = buf.subarray(i * 32, i * 32 + 32)
    if (cluster && (rand() & 1) === 1) {
      id[0] = 0xab
      id[1] = 0xcd
      id[2] = 0xe0 | (rand() & 1)
    }
    out.push(id)
  }
  return out
}

function randomId (): Uint8Array {
  const id = new Uint8Array(32)
  sodium.randombytes_buf(id)
  return id
}

const hex = (id: Uint8Array): string => b4a.toString(id as Buffer, 'hex')
const hexes = (ids: readonly Uint8Array[]): string[] => ids.map(hex).sort()

interface Pair { a: Uint8Array[], b: Uint8Array[], onlyA: Uint8Array[], onlyB: Uint8Array[] }

/** Two sets sharing `n` ids, with `da` ids only in a and `db` only in b. */
function pair (n: number, da: number, db: number, seed: number, cluster = false): Pair {
  const rand = prng(seed)
  const all = makeIds(n + da + db, rand, cluster)
  const common = all.slice(0, n)
  const onlyA = all.slice(n, n + da)
  const onlyB = all.slice(n + da)
  return { a: common.concat(onlyA), b: common.concat(onlyB), onlyA, onlyB }
}

function exact (res: SyncResult, p: { onlyA: Uint8Array[], onlyB: Uint8Array[] }): boolean {
  const a = hexes(res.missingInA)
  const b = hexes(res.missingInB)
  return JSON.stringify(a) === JSON.stringify(hexes(p.onlyB)) && JSON.stringify(b) === JSON.stringify(hexes(p.onlyA))
}

function roundBound (n: number): number {
  return Math.ceil(Math.log(Math.max(n, 2)) / Math.log(16)) + 2
}

/** The messages of a full exchange between two sessions, in order: [from A, from B] per round. */
function transcript (a: ReconcileSet | Uint8Array[], b: ReconcileSet | Uint8Array[], opts: SessionOptions = {}): { sa: Session, sb: Session, rounds: Array<[Uint8Array, Uint8Array]> } {
  const sa = new Session(a, opts)
  const sb = new Session(b, opts)
  let ma: Uint8Array | null = sa.start()
  let mb: Uint8Array | null = sb.start()
  const rounds: Array<[Uint8Array, Uint8Array]> = []
  while (ma !== null && mb !== null) {
    rounds.push([ma, mb])
    const na: Uint8Array | null = sa.receive(mb)
    const nb: Uint8Array | null = sb.receive(ma)
    ma = na
    mb = nb
  }
  return { sa, sb, rounds }
}

/** Feeds `msg` to `s`: 'ok' (a reply or done) or 'coded' (a coded error); anything else fails the test. */
function feed (s: Session, msg: Uint8Array): 'ok' | 'coded' {
  try {
    s.receive(msg)
    return 'ok'
  } catch (err) {
    if (isCoded(err)) return 'coded'
    throw err
  }
}

// ---------------------------------------------------------------------------
// The tree walk

test('sync finds exactly the symmetric difference for sets of 0, 1, 2, 100 and 10k ids', t => {
  let cases = 0
  let seed = 1
  for (const n of [0, 1, 2, 100, 10_000]) {
    const diffs: Array<[number, number]> = [[0, 0], [1, 0], [0, 1], [1, 1], [2, 3], [7, 0], [n >> 3, n >> 4], [n, 0], [0, n], [n, n]]
    for (const [da, db] of diffs) {
      const p = pair(n, da, db, seed++)
      const res = sync(p.a, p.b)
      if (!exact(res, p)) t.fail(`n=${n} da=${da} db=${db}: wrong difference`)
      // No id reported twice.
      if (new Set(hexes(res.missingInA)).size !== res.missingInA.length) t.fail(`n=${n} da=${da} db=${db}: duplicates`)
      cases++
    }
  }
  t.pass(`${cases} pairs reconciled exactly`)
})

test('differences of random sizes, also in clustered (deep) trees, are found exactly (property)', async t => {
  await t.execution(() => fc.assert(fc.property(
    fc.integer({ min: 0, max: 400 }),
    fc.integer({ min: 0, max: 60 }),
    fc.integer({ min: 0, max: 60 }),
    fc.boolean(),
    fc.integer({ min: 1, max: 0x7fffffff }),
    (n, da, db, cluster, seed) => {
      const p = pair(n, da, db, seed, cluster)
      const res = sync(p.a, p.b)
      return exact(res, p)
    }
  ), { numRuns: 150 }))
})

test('the tree walk stays within ⌈log16 n⌉ + 2 round trips and a few times the information floor', t => {
  for (const [n, d, seed] of [[10_000, 50, 7], [10_000, 500, 8], [1000, 20, 9]] as const) {
    const p = pair(n, d >> 1, d - (d >> 1), seed)
    const res = sync(p.a, p.b)
    t.ok(exact(res, p), `n=${n} d=${d}: exact`)
    t.is(res.mode, 'tree')
    t.ok(res.rounds <= roundBound(n + d), `n=${n} d=${d}: ${res.rounds} round trips ≤ ${roundBound(n + d)}`)
    t.ok(res.bytes <= 8 * d * 32, `n=${n} d=${d}: ${res.bytes} bytes ≤ 8 × ${d * 32}`)
  }
  // One id apart: decoded from the XOR of the two roots, in 2 round trips.
  const p = pair(10_000, 1, 0, 10)
  const res = sync(p.a, p.b)
  t.ok(exact(res, p))
  t.is(res.rounds, 2, 'one missing id: 2 round trips')
  t.ok(res.bytes < 8 * 32, `one missing id: ${res.bytes} bytes`)
  // Equal sets: counts, then fingerprints.
  const same = pair(10_000, 0, 0, 11)
  const eq = sync(same.a, same.b)
  t.is(eq.missingInA.length + eq.missingInB.length, 0)
  t.is(eq.rounds, 2, 'equal sets: 2 round trips')
})

test('a 200k-id set with random differences on both sides is reconciled exactly', t => {
  const p = pair(200_000, 150, 150, 12)
  const A = ReconcileSet.from(p.a)
  const B = ReconcileSet.from(p.b)
  const res = sync(A, B)
  t.ok(exact(res, p), 'exact')
  t.ok(res.rounds <= roundBound(A.size), `${res.rounds} round trips ≤ ${roundBound(A.size)}`)
  t.ok(res.bytes <= 8 * 300 * 32, `${res.bytes} bytes ≤ 8× the floor`)
  t.ok(res.bytes < A.size * 32 / 100, 'under 1% of the naive full list')
  t.comment(`200k, d=300: ${res.bytes} bytes (${(res.bytes / (300 * 32)).toFixed(2)}× floor), ${res.rounds} round trips`)
})

test('sessions speak real bytes: driven one message at a time they agree on when they are done', t => {
  const p = pair(3000, 40, 25, 13)
  const { sa, sb, rounds } = transcript(p.a, p.b)
  t.ok(sa.done && sb.done, 'both done')
  t.is(sa.messages, rounds.length)
  for (const [ma, mb] of rounds) t.ok(ma instanceof Uint8Array && mb instanceof Uint8Array)
  t.alike(hexes(sa.missing()), hexes(p.onlyB))
  t.alike(hexes(sb.missing()), hexes(p.onlyA))
  t.exception(() => sa.receive(rounds[0]![1]), /INVALID_OPERATION/, 'a done session takes no more messages')
  t.exception(() => new Session(p.a).receive(rounds[0]![1]), /INVALID_OPERATION/, 'receive before start')
  const s = new Session(p.a)
  s.start()
  t.exception(() => s.start(), /INVALID_OPERATION/, 'start twice')
})

test('a set that changes during a session does not disturb it: sessions read a snapshot', t => {
  const p = pair(5000, 30, 30, 14)
  const A = ReconcileSet.from(p.a)
  const B = ReconcileSet.from(p.b)
  const sa = new Session(A)
  const sb = new Session(B)
  let ma: Uint8Array | null = sa.start()
  let mb: Uint8Array | null = sb.start()
  const added: Uint8Array[] = []
  while (ma !== null && mb !== null) {
    // Churn on both sides between every round.
    for (let i = 0; i < 20; i++) {
      const id = randomId()
      added.push(id)
      A.insert(id)
      B.insert(randomId())
    }
    A.delete(added[0]!)
    const na: Uint8Array | null = sa.receive(mb)
    const nb: Uint8Array | null = sb.receive(ma)
    ma = na
    mb = nb
  }
  t.alike(hexes(sa.missing()), hexes(p.onlyB), 'a learns what b had when it started')
  t.alike(hexes(sb.missing()), hexes(p.onlyA), 'b learns what a had when it started')
  A.verifyIntegrity()
  B.verifyIntegrity()
})

// ---------------------------------------------------------------------------
// The since fast path

test('since: after a remembered sync, ids added on both sides go straight across in 2 round trips', t => {
  const p = pair(20_000, 40, 30, 15)
  const A = ReconcileSet.from(p.a)
  const B = ReconcileSet.from(p.b)
  const first = sync(A, B, { remember: true, apply: true })
  t.ok(exact(first, p), 'first sync exact')
  t.is(first.mode, 'tree')
  t.is(A.size, B.size, 'applied: equal sizes')

  const newA = [randomId(), randomId(), randomId()]
  const newB = [randomId(), randomId(), randomId(), randomId(), randomId()]
  for (const id of newA) A.insert(id)
  for (const id of newB) B.insert(id)
  const res = sync(A, B, { remember: true, apply: true })
  t.is(res.mode, 'since')
  t.is(res.rounds, 2)
  t.alike(hexes(res.missingInA), hexes(newB))
  t.alike(hexes(res.missingInB), hexes(newA))
  t.ok(res.bytes < (newA.length + newB.length) * 32 + 160, `${res.bytes} bytes for ${newA.length + newB.length} ids`)

  // Nothing new: confirmed by fingerprints alone.
  const quiet = sync(A, B, { remember: true })
  t.is(quiet.mode, 'since')
  t.is(quiet.missingInA.length + quiet.missingInB.length, 0)
  t.ok(quiet.bytes < 120, `${quiet.bytes} bytes when nothing changed`)
})

test('since: a side that deleted ids, or lost its log, falls back to the tree and still finds everything', t => {
  const p = pair(5000, 0, 0, 16)
  const A = ReconcileSet.from(p.a, undefined, { logCapacity: 8 })
  const B = ReconcileSet.from(p.b, undefined, { logCapacity: 8 })
  sync(A, B, { remember: true, apply: true })

  // A deletes 2 ids and adds 1: its since list no longer describes its changes.
  const gone = [p.a[10]!, p.a[20]!]
  for (const id of gone) A.delete(id)
  const x = randomId()
  A.insert(x)
  const y = randomId()
  B.insert(y)
  t.is(A.addedSince(B.id, 100), null, 'a does not offer a since list after deletes')
  const res = sync(A, B, { remember: true })
  t.not(res.mode, 'since')
  t.alike(hexes(res.missingInA), hexes([y, ...gone]), 'a is missing what it deleted and what b added')
  t.alike(hexes(res.missingInB), hexes([x]))

  // More inserts than the log holds: no since list either.
  const C = ReconcileSet.from(p.a, undefined, { logCapacity: 8 })
  const D = ReconcileSet.from(p.a, undefined, { logCapacity: 8 })
  sync(C, D, { remember: true })
  const many = Array.from({ length: 12 }, randomId)
  for (const id of many) C.insert(id)
  t.is(C.addedSince(D.id, 100), null, 'log overrun')
  const res2 = sync(C, D, { remember: true })
  t.is(res2.mode, 'tree')
  t.alike(hexes(res2.missingInB), hexes(many))

  // Only one side remembers: its list alone, confirmed by fingerprints.
  const E = ReconcileSet.from(p.a)
  const F = ReconcileSet.from(p.a)
  sync(E, F, { remember: true })
  F.forgetPeer(E.id)
  const z = randomId()
  E.insert(z)
  const res3 = sync(E, F, { remember: true })
  t.is(res3.mode, 'since')
  t.alike(hexes(res3.missingInB), hexes([z]))
  t.is(res3.missingInA.length, 0)
})

test('since: ids the other side already has are not reported, and a wrong sync point is caught', t => {
  const p = pair(3000, 0, 0, 17)
  const A = ReconcileSet.from(p.a)
  const B = ReconcileSet.from(p.b)
  sync(A, B, { remember: true })
  // Both got the same id from a third party, and b another one only it has.
  const shared = randomId()
  A.insert(shared)
  B.insert(shared)
  const onlyB = randomId()
  B.insert(onlyB)
  const res = sync(A, B, { remember: true })
  t.is(res.mode, 'since')
  t.alike(hexes(res.missingInA), hexes([onlyB]))
  t.is(res.missingInB.length, 0)

  // Sync points recorded while the sets differed: both offer empty lists,
  // the keyed fingerprints disagree, and the tree finds the real difference.
  const q = pair(3000, 5, 4, 18)
  const C = ReconcileSet.from(q.a)
  const D = ReconcileSet.from(q.b)
  C.markSynced(D.id)
  D.markSynced(C.id)
  const res2 = sync(C, D, { remember: true })
  t.is(res2.mode, 'tree', 'fell back to the tree')
  t.ok(exact(res2, q), 'exact')
})

// ---------------------------------------------------------------------------
// Bulk

test('bulk: an empty peer gets everything in one round, a cold peer gets the rest in bulk', t => {
  const p = pair(10_000, 0, 0, 18)
  const A = ReconcileSet.from(p.a)
  const empty = new ReconcileSet()
  const res = sync(A, empty)
  t.is(res.mode, 'bulk')
  t.is(res.rounds, 2, 'hello, then all the ids')
  t.is(res.missingInB.length, 10_000)
  t.alike(hexes(res.missingInB), hexes(p.a))
  t.ok(res.bytes < 10_000 * 32 + 100, `${res.bytes} bytes: the ids and little else`)
  const back = sync(empty, A)
  t.is(back.missingInA.length, 10_000, 'either way round')

  // A cold peer holding 2% of the ids (and 3 of its own).
  const cold = p.a.filter((_, i) => i % 50 === 0).concat([randomId(), randomId(), randomId()])
  const res2 = sync(A, cold)
  t.is(res2.mode, 'bulk')
  t.ok(res2.rounds <= 3, `${res2.rounds} round trips`)
  t.is(res2.missingInB.length, 10_000 - 200)
  t.is(res2.missingInA.length, 3)
  t.ok(res2.bytes < (10_000 + 200) * 32 + 200, `${res2.bytes} bytes`)

  // Under a prefix one side lacks entirely, the other sends it all at once.
  const q = pair(20_000, 0, 0, 19)
  const withHole = q.b.filter(id => (id[0]! >>> 4) !== 3)
  const res3 = sync(q.a, withHole)
  t.alike(hexes(res3.missingInB), hexes(q.a.filter(id => (id[0]! >>> 4) === 3)))
  t.ok(res3.rounds <= 3, `a missing top-level prefix: ${res3.rounds} round trips`)
})

test('bulk transfers are chunked to what the receiver accepts per message', t => {
  const p = pair(5000, 0, 0, 20)
  const res = sync(p.a, [], { maxIdsPerMessage: 1000 })
  t.is(res.rounds, 6, 'hello and 5 chunks of 1000')
  t.is(res.missingInB.length, 5000)
  t.alike(hexes(res.missingInB), hexes(p.a))
})

// ---------------------------------------------------------------------------
// Views

interface Meta { ns: string, time: number }

test('views: only the ids matching a predicate are reconciled, and views follow inserts and deletes', t => {
  const rand = prng(21)
  const DAY = 86_400_000
  const now = 100 * DAY
  const cutoff = now - 10 * DAY
  const common = makeIds(3000, rand)
  const metas: Meta[] = common.map((_, i) => ({ ns: i % 3 === 0 ? 'chat' : 'files', time: now - (i % 30) * DAY }))
  const A = ReconcileSet.from<Meta>(common, metas)
  const B = ReconcileSet.from<Meta>(common, metas)
  const chatA = A.view('chat', (_id, m) => m?.ns === 'chat')
  const chatB = B.view('chat', (_id, m) => m?.ns === 'chat')
  const recentA = A.view('recent', (_id, m) => (m?.time ?? 0) >= cutoff)
  const recentB = B.view('recent', (_id, m) => (m?.time ?? 0) >= cutoff)
  t.is(chatA.size, 1000)
  t.is(recentA.size, common.filter((_, i) => i % 30 <= 10).length)

  // Differences of every kind, on both sides.
  const extra = makeIds(40, rand)
  const metaOf = (i: number): Meta => ({ ns: i % 2 === 0 ? 'chat' : 'files', time: now - (i % 20) * DAY })
  for (let i = 0; i < 40; i++) (i < 20 ? A : B).insert(extra[i]!, metaOf(i))
  const dropped = common[3]! // chat, recent: deleted on b only
  B.delete(dropped)
  t.absent(chatB.has(dropped), 'a delete reaches the views')
  t.ok(chatA.has(extra[0]!), 'an insert reaches the matching views')
  t.absent(chatA.has(extra[1]!), '... and only those')

  const want = (side: 'A' | 'B', pred: (m: Meta) => boolean): string[] => hexes(extra.filter((_, i) => (i < 20) === (side === 'A') && pred(metaOf(i))))
  const isChat = (m: Meta): boolean => m.ns === 'chat'
  const isRecent = (m: Meta): boolean => m.time >= cutoff

  const chat = sync(chatA, chatB)
  t.alike(hexes(chat.missingInA), want('B', isChat), 'chat view: what a lacks')
  t.alike(hexes(chat.missingInB), [...want('A', isChat), hex(dropped)].sort(), 'chat view: what b lacks')
  const recent = sync(recentA, recentB)
  t.alike(hexes(recent.missingInA), want('B', isRecent), 'recent view: what a lacks')
  t.alike(hexes(recent.missingInB), [...want('A', isRecent), hex(dropped)].sort(), 'recent view: what b lacks')
  const d = chat.missingInA.length + chat.missingInB.length
  t.ok(chat.bytes <= 8 * d * 32, `the chat view (${chatA.size} ids, ${d} differences) costs ${chat.bytes} bytes`)

  // A view built now from the set equals the one kept up to date.
  const again = A.view('chat2', (_id, m) => m?.ns === 'chat')
  t.alike(hexes(again.all()), hexes(chatA.all()))
  t.alike(again.summary(), chatA.summary())
  A.verifyIntegrity()
  B.verifyIntegrity()
  t.exception(() => chatA.insert(randomId()), /INVALID_OPERATION/, 'a view changes only with its set')
  t.alike(A.views().sort(), ['chat', 'chat2', 'recent'])
})

test('views: the since fast path works per view', t => {
  const rand = prng(22)
  const ids = makeIds(2000, rand)
  const metas = ids.map((_, i) => (i % 2 === 0 ? 'even' : 'odd'))
  const A = ReconcileSet.from<string>(ids, metas)
  const B = ReconcileSet.from<string>(ids, metas)
  const va = A.view('even', (_id, m) => m === 'even')
  const vb = B.view('even', (_id, m) => m === 'even')
  t.is(sync(va, vb, { remember: true }).mode, 'tree')
  const x = randomId()
  const y = randomId()
  A.insert(x, 'even')
  A.insert(randomId(), 'odd')
  B.insert(y, 'even')
  const res = sync(va, vb, { remember: true })
  t.is(res.mode, 'since')
  t.alike(hexes(res.missingInA), hexes([y]))
  t.alike(hexes(res.missingInB), hexes([x]))
})

// ---------------------------------------------------------------------------
// Keyed fingerprints

test('fingerprints are keyed per session: nobody can pick the key, and unkeyed collisions do not fool it', t => {
  const n1 = randomId().subarray(0, 16)
  const n2 = randomId().subarray(0, 16)
  const k = deriveSessionKey(n1, n2, null)
  t.alike(k, deriveSessionKey(n2, n1, null), 'both sides derive the same key')
  t.unlike(k, deriveSessionKey(n1, randomId().subarray(0, 16), null), 'a peer replaying a fixed nonce gets a fresh key every time')
  t.unlike(k, deriveSessionKey(n1, n2, randomId()), 'a shared transport secret changes it too')

  // The same id hashes differently under every session key.
  const id = randomId()
  const h1 = new Uint32Array(2)
  const h2 = new Uint32Array(2)
  new KeyedHash(k).one(id, 0, h1, 0)
  new KeyedHash(deriveSessionKey(n1, randomId().subarray(0, 16), null)).one(id, 0, h2, 0)
  t.unlike([...h1], [...h2])
  // Batch and single hashing agree.
  const ids = makeIds(100, prng(23))
  const flat = new Uint8Array(100 * 32)
  ids.forEach((x, i) => flat.set(x, i * 32))
  const many = new Uint32Array(200)
  const hk = new KeyedHash(k)
  hk.many(new Uint32Array(flat.buffer), 0, 100, many, 0)
  const one = new Uint32Array(2)
  hk.one(ids[57]!, 0, one, 0)
  t.alike([many[114], many[115]], [one[0], one[1]])

  // Two different sets with the same count and the same XOR of their ids
  // (what an unkeyed XOR accumulator compares): still told apart.
  const rand = prng(24)
  const common = makeIds(5000, rand)
  const [a1, a2, a3, b1, b2] = makeIds(5, rand)
  const b3 = new Uint8Array(32)
  for (let i = 0; i < 32; i++) b3[i] = a1![i]! ^ a2![i]! ^ a3![i]! ^ b1![i]! ^ b2![i]!
  const A = ReconcileSet.from(common.concat([a1!, a2!, a3!]))
  const B = ReconcileSet.from(common.concat([b1!, b2!, b3]))
  t.is(A.size, B.size)
  t.alike(A.summary().xor, B.summary().xor, 'same count, same XOR')
  const res = sync(A, B)
  t.alike(hexes(res.missingInA), hexes([b1!, b2!, b3]))
  t.alike(hexes(res.missingInB), hexes([a1!, a2!, a3!]))

  // Each session's first message carries a fresh nonce.
  const s1 = new Session(A).start()
  const s2 = new Session(A).start()
  t.unlike(s1.subarray(1, 17), s2.subarray(1, 17))
})

// ---------------------------------------------------------------------------
// Hostile bytes

test('hostile: random bytes, truncated and corrupted messages give coded errors, never a crash', async t => {
  const p = pair(2000, 30, 20, 25)
  const A = ReconcileSet.from(p.a)
  const B = ReconcileSet.from(p.b)
  const { rounds } = transcript(A, B)
  t.ok(rounds.length >= 3, `${rounds.length} rounds to corrupt`)

  await t.execution(() => fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), bytes => {
    const s = new Session(A)
    s.start()
    feed(s, bytes) // 'ok' or 'coded'; anything else throws
  }), { numRuns: 300 }), 'random bytes as a hello')

  // A live exchange in which b's k-th message is corrupted on the way to a.
  let coded = 0
  await t.execution(() => fc.assert(fc.property(
    fc.integer({ min: 0, max: rounds.length - 1 }),
    fc.nat(),
    fc.integer({ min: 1, max: 255 }),
    fc.boolean(),
    (k, pos, flip, truncate) => {
      const sa = new Session(A)
      const sb = new Session(B)
      let ma: Uint8Array | null = sa.start()
      let mb: Uint8Array | null = sb.start()
      for (let i = 0; i < k && ma !== null && mb !== null; i++) {
        const na: Uint8Array | null = sa.receive(mb)
        const nb: Uint8Array | null = sb.receive(ma)
        ma = na
        mb = nb
      }
      if (ma === null || mb === null) return
      const bad = mb.slice()
      const msg = truncate ? bad.subarray(0, pos % bad.byteLength) : bad
      if (!truncate) bad[pos % bad.byteLength] ^= flip
      if (feed(sa, msg) === 'coded') {
        coded++
        try {
          sa.receive(msg)
          throw new Error('a failed session took another message')
        } catch (err) {
          if (!isCoded(err, 'INVALID_OPERATION')) throw err
        }
      }
    }
  ), { numRuns: 400 }), 'corrupted and truncated messages')
  t.ok(coded > 200, `${coded} of 400 corruptions caught as malformed (the rest decode as other valid messages)`)

  // Specific malformations of a hello.
  const good = rounds[0]![1]
  const mutate = (fn: (m: Uint8Array) => Uint8Array): 'ok' | 'coded' => {
    const s = new Session(A)
    s.start()
    return feed(s, fn(good.slice()))
  }
  t.is(mutate(m => m), 'ok', 'the real hello is fine')
  t.is(mutate(m => { m[0] = 9; return m }), 'coded', 'unknown message type')
  t.is(mutate(m => { m[17] = 0x40; return m }), 'coded', 'unknown flags')
  t.is(mutate(m => b4a.concat([m, new Uint8Array(1)])), 'coded', 'trailing bytes')
  t.is(mutate(m => m.subarray(0, 10)), 'coded', 'cut short')
  t.is(mutate(() => new Uint8Array(0)), 'coded', 'empty')
  t.is(mutate(m => { m[m.length - 1] ^= 0x80; return m }), 'coded', 'top-level counts that do not add up')
  t.is(mutate(() => 'not bytes' as unknown as Uint8Array), 'coded', 'not even bytes')
})

test('hostile: unsorted since ids, oversized messages and runaway state are refused', t => {
  const p = pair(300, 0, 0, 26)
  // A since list that is not sorted.
  const A = ReconcileSet.from(p.a)
  const B = ReconcileSet.from(p.b)
  sync(A, B, { remember: true })
  B.insert(randomId())
  B.insert(randomId())
  const hello = new Session(B, { peer: A.id }).start()
  const ids = hello.subarray(hello.length - 64)
  const swapped = b4a.concat([hello.subarray(0, hello.length - 64), ids.subarray(32), ids.subarray(0, 32)])
  const sa = new Session(A)
  sa.start()
  t.is(feed(sa, swapped), 'coded', 'unsorted since ids')

  // A bulk transfer bigger than the receiver announced (made for a receiver with the default limit).
  const big = pair(3000, 0, 0, 27).a
  const victim = new Session([], { maxIdsPerMessage: 100 })
  victim.start()
  const liar = new Session(big)
  const liarHello = liar.start()
  const bulk = liar.receive(new Session([]).start())!
  t.is(feed(victim, liarHello), 'ok')
  t.is(feed(victim, bulk), 'coded', 'more ids in one message than announced')

  // More ids than the session may learn.
  const capped = new Session([], { maxLearned: 500 })
  const sender = new Session(big)
  const cappedHello = capped.start()
  capped.receive(sender.start())
  t.is(feed(capped, sender.receive(cappedHello)!), 'coded', 'more ids than maxLearned')

  // Too many open prefixes.
  const q = pair(20_000, 300, 300, 28)
  let err: unknown = null
  try {
    sync(q.a, q.b, { maxOpen: 16 })
  } catch (e) {
    err = e
  }
  t.ok(isCoded(err, 'INVALID_MESSAGE'), 'more open prefixes than maxOpen')
})

test('ids must be 32-byte Uint8Arrays', t => {
  const s = new ReconcileSet()
  t.exception(() => s.insert(new Uint8Array(31)), /BAD_ARGUMENT/)
  t.exception(() => s.insert('x' as unknown as Uint8Array), /BAD_ARGUMENT/)
  t.exception(() => sync([new Uint8Array(33)], []), /BAD_ARGUMENT/)
  t.exception(() => s.has(new Uint8Array(0)), /BAD_ARGUMENT/)
})

// ---------------------------------------------------------------------------
// The tree itself

test('insert and delete keep the tree equal to a fresh build of the same ids (property)', async t => {
  // A pool of ids crowded under a few prefixes, so leaves split deep and collapse again.
  const rand = prng(29)
  const pool = makeIds(400, rand)
  const deep = makeIds(1, rand)[0]!
  for (let i = 0; i < pool.length; i++) {
    // A quarter each: random, sharing 2 bytes, 5 bytes, 9 bytes with `deep`.
    const shared = [0, 2, 5, 9][i % 4]!
    pool[i]!.set(deep.subarray(0, shared))
  }
  const prefixes = pool.slice(0, 20)
  await t.execution(() => fc.assert(fc.property(
    fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: pool.length - 1 })), { maxLength: 600 }),
    fc.integer({ min: 0, max: 120 }),
    (ops, initial) => {
      const s = ReconcileSet.from(pool.slice(0, initial))
      const present = new Map<string, Uint8Array>()
      for (const id of pool.slice(0, initial)) present.set(hex(id), id)
      let snap: { ids: string[], tree: ReturnType<ReconcileSet['snapshot']> } | null = null
      ops.forEach(([ins, i], k) => {
        const id = pool[i]!
        if (ins) {
          if (s.insert(id) === present.has(hex(id))) throw new Error('insert result')
          present.set(hex(id), id)
        } else {
          if (s.delete(id) !== present.has(hex(id))) throw new Error('delete result')
          present.delete(hex(id))
        }
        if (k === ops.length >> 1) snap = { ids: [...present.keys()].sort(), tree: s.snapshot() }
      })
      s.verifyIntegrity()
      const fresh = ReconcileSet.from([...present.values()])
      fresh.verifyIntegrity()
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
        const { ids, tree } = snap as { ids: string[], tree: ReturnType<ReconcileSet['snapshot']> }
        const flat = tree.flat()
        const got: string[] = []
        for (let i = 0; i < flat.length; i += 32) got.push(hex(flat.subarray(i, i + 32)))
        if (JSON.stringify(got) !== JSON.stringify(ids)) return false
      }
      return true
    }
  ), { numRuns: 200 }))
})

test('ids sharing a long prefix split a full leaf as deep as it takes', t => {
  const rand = prng(31)
  const ids = makeIds(200, rand)
  for (const id of ids) id.fill(0x5a, 0, 10) // 20 shared hex digits
  const s = new ReconcileSet()
  for (const id of ids) t.ok(s.insert(id) || true)
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

test('a bulk-built tree and one built id by id are the same, and summaries add up', t => {
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
