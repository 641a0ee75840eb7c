/**
 * Set reconciliation: two sets of 32-byte ids learn exactly what each lacks
 * — by coded symbols, the tree walk they fall back to, the since path, bulk
 * transfer, and through views; with a shared key or with nonces.
 */
import test from 'brittle'
import fc from 'fast-check'
import { ReconcileSet, Session, sync } from '../lib/reconcile'
import { prng, makeIds, randomId, hex, hexes, pair, exact, transcript, resultOf, reply } from './helpers/reconcile'

// ---------------------------------------------------------------------------
// Coded symbols

test('sync finds exactly the symmetric difference for sets of 0, 1, 2, 100 and 3,000 ids', t => {
  let cases = 0
  let seed = 1
  const modes = new Set<string>()
  for (const n of [0, 1, 2, 100, 3000]) {
    const diffs: Array<[number, number]> = [[0, 0], [1, 0], [0, 1], [1, 1], [2, 3], [7, 0], [n >> 3, n >> 4], [n, 0], [0, n], [n, n]]
    for (const [da, db] of diffs) {
      const p = pair(n, da, db, seed++)
      const res = sync(p.a, p.b)
      if (!exact(res, p)) t.fail(`n=${n} da=${da} db=${db}: wrong difference (${res.mode})`)
      if (new Set(hexes(res.missingInA)).size !== res.missingInA.length) t.fail(`n=${n} da=${da} db=${db}: duplicates`)
      modes.add(res.mode)
      cases++
    }
  }
  t.pass(`${cases} pairs reconciled exactly`)
  t.alike([...modes].sort(), ['bulk', 'subset', 'symbols', 'tree'], 'by coded symbols, in bulk, one-sided by power sums, and by the tree walk (sets too different for the cells)')
})

test('differences of random sizes, also in clustered trees, are found exactly, with a shared key or with nonces (property)', async t => {
  await t.execution(() => fc.assert(fc.property(
    fc.integer({ min: 0, max: 400 }),
    fc.integer({ min: 0, max: 60 }),
    fc.integer({ min: 0, max: 60 }),
    fc.boolean(),
    fc.boolean(),
    fc.integer({ min: 1, max: 0x7fffffff }),
    (n, da, db, cluster, keyed, seed) => {
      const p = pair(n, da, db, seed, cluster)
      if (keyed) return exact(sync(p.a, p.b), p)
      return exact(resultOf(transcript(p.a, p.b)), p)
    }
  ), { numRuns: 150 }))
})

test('coded symbols: the decoding side knows the difference after the hello and one batch of cells, most of the time', t => {
  // Per seed the estimate in the hello may fall short; then the decoder asks for more cells.
  let oneBatch = 0
  let firstBytes = 0
  let bytes = 0
  const runs = 20
  for (let seed = 0; seed < runs; seed++) {
    const p = pair(5000, 25, 25, 100 + seed)
    const res = sync(p.a, p.b)
    t.ok(exact(res, p), `seed ${seed}: exact`)
    t.is(res.mode, 'symbols')
    if (res.firstKnows.rounds === 2) oneBatch++
    firstBytes += res.firstKnows.bytes
    bytes += res.bytes
  }
  t.ok(oneBatch >= runs / 2, `${oneBatch} of ${runs} decoded after one batch`)
  t.ok(firstBytes / runs < 2.5 * 50 * 32, `decoding side: ${(firstBytes / runs / 1600).toFixed(2)}× the floor on average`)
  t.comment(`d = 50: ${(firstBytes / runs / 1600).toFixed(2)}× the floor until the decoder knows, ${(bytes / runs / 1600).toFixed(2)}× until both do`)

  // One id apart: one cell, then the decoder says it is done.
  const one = pair(10_000, 1, 0, 10)
  const r1 = sync(one.a, one.b)
  t.ok(exact(r1, one))
  t.is(r1.firstKnows.rounds, 2)
  t.ok(r1.bytes <= 80, `one missing id: ${r1.bytes} bytes`)
  // Equal sets: the hellos carry the keyed fingerprints, one round.
  const same = pair(10_000, 0, 0, 11)
  const eq = sync(same.a, same.b)
  t.is(eq.missingInA.length + eq.missingInB.length, 0)
  t.is(eq.rounds, 1, 'equal sets: the hellos settle it')
})

test('a 100k-id set with 2,000 differences on both sides is reconciled exactly, near the floor', t => {
  const p = pair(100_000, 1000, 1000, 12)
  const A = ReconcileSet.from(p.a)
  const B = ReconcileSet.from(p.b)
  const res = sync(A, B)
  t.ok(exact(res, p), 'exact')
  t.is(res.mode, 'symbols')
  t.ok(res.bytes < 3 * 2000 * 32, `${res.bytes} bytes (${(res.bytes / (2000 * 32)).toFixed(2)}× the floor), ${res.rounds} rounds`)
})

test('sessions speak real bytes: driven one message at a time they agree on when they are done', t => {
  const p = pair(3000, 40, 25, 13)
  const { sa, sb, rounds } = transcript(p.a, p.b, { sessionKey: randomId() })
  t.ok(sa.done && sb.done, 'both done')
  t.is(sa.messages, rounds.length)
  t.is(sb.messages, rounds.length)
  t.alike(hexes(sa.missing()), hexes(p.onlyB))
  t.alike(hexes(sb.missing()), hexes(p.onlyA))
  t.exception(() => sa.receive(rounds[0]![1]), /INVALID_OPERATION/, 'a done session takes no more messages')
  t.exception(() => new Session(p.a).receive(rounds[0]![1]), /INVALID_OPERATION/, 'receive before start')
  const s = new Session(p.a)
  s.start()
  t.exception(() => s.start(), /INVALID_OPERATION/, 'start twice')
  // A side with a shared key and one without cannot talk.
  const keyed = new Session(p.a, { sessionKey: randomId() })
  keyed.start()
  t.exception(() => keyed.receive(new Session(p.b).start()), /INVALID_MESSAGE/)
})

test('a set that changes during a session does not disturb it: sessions read a snapshot', t => {
  for (const [da, db, seed] of [[30, 30, 14], [300, 200, 15], [5000, 0, 16]] as const) {
    const p = pair(5000, da, db, seed)
    const A = ReconcileSet.from(p.a)
    const B = ReconcileSet.from(p.b)
    const key = randomId()
    const sa = new Session(A, { sessionKey: key })
    const sb = new Session(B, { sessionKey: key })
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
      B.delete(p.b[7]!)
      const na = reply(sa, mb)
      const nb = reply(sb, ma)
      ma = na
      mb = nb
    }
    t.alike(hexes(sa.missing()), hexes(p.onlyB), `${sa.mode}: a learns what b had when it started`)
    t.alike(hexes(sb.missing()), hexes(p.onlyA), `${sa.mode}: b learns what a had when it started`)
    A.verifyIntegrity()
    B.verifyIntegrity()
  }
})

// ---------------------------------------------------------------------------
// The since path

test('since: after a remembered sync, ids added on both sides go straight across in one round', t => {
  const p = pair(20_000, 40, 30, 15)
  const A = ReconcileSet.from(p.a)
  const B = ReconcileSet.from(p.b)
  const first = sync(A, B, { remember: true, apply: true })
  t.ok(exact(first, p), 'first sync exact')
  t.is(first.mode, 'symbols')
  t.is(A.size, B.size, 'applied: equal sizes')

  const newA = [randomId(), randomId(), randomId()]
  const newB = [randomId(), randomId(), randomId(), randomId(), randomId()]
  for (const id of newA) A.insert(id)
  for (const id of newB) B.insert(id)
  const res = sync(A, B, { remember: true, apply: true })
  t.is(res.mode, 'since')
  t.is(res.rounds, 1, 'the hellos carry the ids and the fingerprints that confirm them')
  t.alike(hexes(res.missingInA), hexes(newB))
  t.alike(hexes(res.missingInB), hexes(newA))
  t.ok(res.bytes < (newA.length + newB.length) * 32 + 64, `${res.bytes} bytes for ${newA.length + newB.length} ids`)

  // Nothing new: confirmed by fingerprints alone.
  const quiet = sync(A, B, { remember: true })
  t.is(quiet.missingInA.length + quiet.missingInB.length, 0)
  t.is(quiet.rounds, 1)
  t.ok(quiet.bytes < 64, `${quiet.bytes} bytes when nothing changed`)

  // Without a shared key the fingerprints take a round of their own.
  const z = randomId()
  A.insert(z)
  const sa = new Session(A, { peer: B.id })
  const sb = new Session(B, { peer: A.id })
  const ha = sa.start()
  const hb = sb.start()
  const fa = sa.receive(hb)!
  const fb = sb.receive(ha)!
  t.is(sa.receive(fb), null)
  t.is(sb.receive(fa), null)
  t.is(sa.mode, 'since', 'without a shared key: hellos, then fingerprints')
  t.alike(hexes(sb.missing()), hexes([z]))
})

test('since: a side that deleted ids, or lost its log, or forgot the peer, still gets everything', t => {
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
  t.is(res2.mode, 'symbols')
  t.alike(hexes(res2.missingInB), hexes(many))

  // Only one side remembers: the other paths take over.
  const E = ReconcileSet.from(p.a)
  const F = ReconcileSet.from(p.a)
  sync(E, F, { remember: true })
  F.forgetPeer(E.id)
  const z = randomId()
  E.insert(z)
  const res3 = sync(E, F, { remember: true })
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
  // the keyed fingerprints disagree, and the other paths find the real difference.
  const q = pair(3000, 5, 4, 18)
  const C = ReconcileSet.from(q.a)
  const D = ReconcileSet.from(q.b)
  C.markSynced(D.id)
  D.markSynced(C.id)
  const res2 = sync(C, D, { remember: true })
  t.not(res2.mode, 'since', 'not taken for the since path')
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
  t.alike(hexes(res.missingInB), hexes(p.a))
  t.ok(res.bytes < 10_000 * 32 + 100, `${res.bytes} bytes: the ids and little else`)
  const back = sync(empty, A)
  t.is(back.missingInA.length, 10_000, 'either way round')

  // A cold peer holding 2% of the ids (and 3 of its own).
  const cold = p.a.filter((_, i) => i % 50 === 0).concat([randomId(), randomId(), randomId()])
  const res2 = sync(A, cold)
  t.is(res2.mode, 'bulk')
  t.ok(res2.rounds <= 3, `${res2.rounds} rounds`)
  t.is(res2.missingInB.length, 10_000 - 200)
  t.is(res2.missingInA.length, 3)
  t.ok(res2.bytes < (10_000 + 200) * 32 + 200, `${res2.bytes} bytes`)
})

test('bulk transfers, and the ids the decoder sends back, are chunked to what the receiver accepts per message', t => {
  const p = pair(5000, 0, 0, 20)
  const res = sync(p.a, [], { maxIdsPerMessage: 1000 })
  t.is(res.rounds, 6, 'hello and 5 chunks of 1000')
  t.alike(hexes(res.missingInB), hexes(p.a))

  // The decoder (the smaller side, a) sends its 300 ids back in chunks of 100.
  const q = pair(20_000, 300, 1200, 21)
  const tr = transcript(q.a, q.b, { maxIdsPerMessage: 100, sessionKey: randomId() })
  t.ok(exact(resultOf(tr), q), 'exact')
  const chunks = tr.rounds.map(([ma]) => ma).filter(m => m[0] === 0x34)
  t.is(chunks.length, 3, 'three chunks')
  t.ok(chunks.every(m => m.byteLength <= 100 * 32 + 8), 'of at most 100 ids each')
})

// ---------------------------------------------------------------------------
// The tree walk

test('the tree walk finds the exact difference when sets differ in more than the cells can take', t => {
  // 3,000 ids against 3,000 others: more differences than the 4,096 cells of such sets decode.
  for (const cluster of [false, true]) {
    const p = pair(0, 3000, 3000, 22, cluster)
    const res = sync(p.a, p.b)
    t.is(res.mode, 'tree')
    t.ok(exact(res, p), `exact${cluster ? ', clustered' : ''}`)
  }
  // And without a shared key.
  const p = pair(100, 3000, 3000, 23)
  const r = resultOf(transcript(p.a, p.b))
  t.is(r.mode, 'tree')
  t.ok(exact(r, p))
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

  // A view built now from the set equals the one kept up to date, coded symbols included.
  const again = A.view('chat2', (_id, m) => m?.ns === 'chat')
  t.alike(hexes(again.all()), hexes(chatA.all()))
  t.alike(again.summary(), chatA.summary())
  A.verifyIntegrity()
  B.verifyIntegrity()
  t.exception(() => chatA.insert(randomId()), /INVALID_OPERATION/, 'a view changes only with its set')
  t.alike(A.views().sort(), ['chat', 'chat2', 'recent'])
})

test('views: the since path works per view', t => {
  const rand = prng(22)
  const ids = makeIds(2000, rand)
  const metas = ids.map((_, i) => (i % 2 === 0 ? 'even' : 'odd'))
  const A = ReconcileSet.from<string>(ids, metas)
  const B = ReconcileSet.from<string>(ids, metas)
  const va = A.view('even', (_id, m) => m === 'even')
  const vb = B.view('even', (_id, m) => m === 'even')
  sync(va, vb, { remember: true })
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

test('ids must be 32-byte Uint8Arrays', t => {
  const s = new ReconcileSet()
  t.exception(() => s.insert(new Uint8Array(31)), /BAD_ARGUMENT/)
  t.exception(() => s.insert('x' as unknown as Uint8Array), /BAD_ARGUMENT/)
  t.exception(() => sync([new Uint8Array(33)], []), /BAD_ARGUMENT/)
  t.exception(() => s.has(new Uint8Array(0)), /BAD_ARGUMENT/)
})
