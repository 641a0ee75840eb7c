/**
 * Reconciliation against hostile bytes: random, truncated and corrupted
 * messages, absurd counts and requests, in every phase of the exchange,
 * give coded errors (or decode as some other valid message), never a
 * crash, a hang or memory out of proportion to what we accept.
 */
import test from 'brittle'
import fc from 'fast-check'
import b4a from 'b4a'
import { isCoded } from '../lib/errors'
import { ReconcileSet, Session, sync } from '../lib/reconcile'
import { Writer } from '../lib/reconcile/wire'
import { pair, randomId, feed, transcript, thrown, tamperedExchange, reply } from './helpers/reconcile'

const KEY = randomId()

/** A hello as a peer with a shared key would send it. */
function hello (fields: { count: number, limit?: number, est?: Uint8Array, since?: Uint8Array[], flags?: number }): Uint8Array {
  const w = new Writer()
  const flags = (fields.flags ?? 1) | (fields.since !== undefined ? 2 : 0) | (fields.limit !== undefined ? 4 : 0)
  w.u8(0x20 | flags)
  w.uint(fields.count)
  if (fields.limit !== undefined) w.uint(fields.limit)
  w.fp(1, 2)
  if (fields.count > 0) w.fixed(fields.est ?? new Uint8Array(8))
  if (fields.since !== undefined) {
    w.uint(fields.since.length)
    for (const id of fields.since) w.fixed(id)
  }
  return w.finish()
}

/** Runs an honest exchange until round `k`, then hands a's side the remote's message `fn` makes of b's. */
function tamper (A: ReconcileSet, B: ReconcileSet, opts: { sessionKey?: Uint8Array }, k: number, fn: (m: Uint8Array) => Uint8Array): 'ok' | 'coded' | 'over' {
  const sa = new Session(A, opts)
  const sb = new Session(B, opts)
  let ma: Uint8Array | null = sa.start()
  let mb: Uint8Array | null = sb.start()
  for (let i = 0; i < k && ma !== null && mb !== null; i++) {
    const na = reply(sa, mb)
    const nb = reply(sb, ma)
    ma = na
    mb = nb
  }
  if (ma === null || mb === null) return 'over'
  const res = feed(sa, fn(mb))
  if (res === 'coded') {
    try {
      sa.receive(mb)
      throw new Error('a failed session took another message')
    } catch (err) {
      if (!isCoded(err, 'INVALID_OPERATION')) throw err
    }
  }
  return res
}

test('hostile: random bytes as a hello give coded errors, never a crash', async t => {
  const A = ReconcileSet.from(pair(500, 0, 0, 50).a)
  for (const opts of [{ sessionKey: KEY }, {}]) {
    await t.execution(() => fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), bytes => {
      const s = new Session(A, opts)
      s.start()
      feed(s, bytes) // 'ok' or 'coded'; anything else throws
    }), { numRuns: 300 }))
  }
})

test('hostile: truncated and corrupted messages in every phase give coded errors, never a crash', async t => {
  // Coded symbols with a shared key, the walk, coded symbols without a key, and the one-sided path.
  const cases = [
    { p: pair(2000, 30, 20, 51), opts: { sessionKey: KEY } },
    { p: pair(100, 2500, 2500, 52), opts: { sessionKey: KEY } },
    { p: pair(2000, 300, 200, 53), opts: {} },
    // One-sided: counts, power sums, ids, the verdict.
    { p: pair(3000, 400, 0, 54), opts: { sessionKey: KEY } }
  ]
  for (const { p, opts } of cases) {
    const A = ReconcileSet.from(p.a)
    const B = ReconcileSet.from(p.b)
    const rounds = transcript(A, B, opts).rounds.length
    let coded = 0
    let runs = 0
    await t.execution(() => fc.assert(fc.property(
      fc.integer({ min: 0, max: rounds - 1 }),
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      fc.boolean(),
      (k, pos, flip, truncate) => {
        const res = tamper(A, B, opts, k, m => {
          if (m.byteLength === 0) return truncate ? m : new Uint8Array([flip])
          const bad = m.slice()
          if (truncate) return bad.subarray(0, pos % bad.byteLength)
          bad[pos % bad.byteLength] ^= flip
          return bad
        })
        runs++
        if (res === 'coded') coded++
      }
    ), { numRuns: 150 }))
    t.ok(coded > runs / 3, `${coded} of ${runs} caught as malformed (the rest decode as other valid messages)`)
  }
})

test('hostile: malformed hellos', t => {
  const A = ReconcileSet.from(pair(300, 0, 0, 54).a)
  const good = new Session(ReconcileSet.from(pair(300, 0, 0, 54).a), { sessionKey: KEY }).start()
  const mutate = (fn: (m: Uint8Array) => Uint8Array, opts: { sessionKey?: Uint8Array } = { sessionKey: KEY }): 'ok' | 'coded' => {
    const s = new Session(A, opts)
    s.start()
    return feed(s, fn(good.slice()))
  }
  t.is(mutate(m => m), 'ok', 'the real hello is fine')
  t.is(mutate(m => { m[0] = 9; return m }), 'coded', 'unknown message type')
  t.is(mutate(m => { m[0] = 0x28; return m }), 'coded', 'unknown flags')
  t.is(mutate(m => b4a.concat([m, new Uint8Array(1)])), 'coded', 'trailing bytes')
  t.is(mutate(m => m.subarray(0, 10)), 'coded', 'cut short')
  t.is(mutate(() => new Uint8Array(0)), 'coded', 'empty')
  t.is(mutate(() => 'not bytes' as unknown as Uint8Array), 'coded', 'not even bytes')
  t.is(mutate(m => m, {}), 'coded', 'a side with a key and one without')
  t.is(mutate(() => hello({ count: 2 ** 40 })), 'coded', 'a count beyond 2^32')
  t.is(mutate(() => hello({ count: 5, limit: 0 })), 'coded', 'a peer that accepts no ids')
  t.is(mutate(() => b4a.concat([new Uint8Array([0x21]), new Uint8Array(9).fill(0xff)])), 'coded', 'a number that never ends')
  const ids = [randomId(), randomId()].sort(b4a.compare)
  t.is(mutate(() => hello({ count: 300, since: ids })), 'ok', 'a sorted since list')
  t.is(mutate(() => hello({ count: 300, since: [ids[1]!, ids[0]!] })), 'coded', 'since ids not sorted')
  t.is(mutate(() => hello({ count: 300, since: [ids[0]!, ids[0]!] })), 'coded', 'since ids twice')
})

test('hostile: absurd counts and requests cost no memory out of proportion, and give coded errors', t => {
  const p = pair(20_000, 0, 0, 55)
  const A = ReconcileSet.from(p.a)
  const before = process.memoryUsage().heapUsed
  // A peer claiming 4 billion ids: we list ours (the bulk path), in chunks of what it accepts.
  const s = new Session(A, { sessionKey: KEY })
  s.start()
  const reply = s.receive(hello({ count: 0xffffffff, limit: 1000 }))!
  t.ok(reply.byteLength < 1000 * 32 + 64, `our answer: ${reply.byteLength} bytes`)
  t.is(feed(s, new Uint8Array(64).fill(0xfe)), 'coded', 'then garbage')
  t.ok(process.memoryUsage().heapUsed - before < 64 * 1024 * 1024, 'no giant allocation')

  // The decoder asks the encoder for more cells than there are, or for none more.
  const q = pair(5000, 30, 10, 56)
  const encoder = (): Session => {
    const e = new Session(q.a, { sessionKey: KEY })
    const d = new Session(q.b, { sessionKey: KEY })
    const he = e.start()
    e.receive(d.start())
    d.receive(he)
    e.receive(new Uint8Array(0))
    return e
  }
  const more = (S: number, L: number): Uint8Array => {
    const w = new Writer()
    w.u8(0x33)
    w.uint(S)
    w.uint(L)
    return w.finish()
  }
  t.is(feed(encoder(), more(1 << 20, 10)), 'coded', 'more cells than the sets have')
  t.is(feed(encoder(), more(10, 1)), 'coded', 'no more cells than sent')
  t.is(feed(encoder(), more(200, 300)), 'coded', 'more long cells than cells')
  t.is(feed(encoder(), more(200, 100)), 'ok', 'a sound request')
  const e = encoder()
  for (let i = 0; i < 6; i++) {
    t.is(feed(e, more(300 + i * 10, 100 + i)), 'ok')
    feed(e, new Uint8Array(0))
  }
  t.is(feed(e, more(400, 120)), 'coded', 'a request too many')
  t.is(feed(encoder(), new Uint8Array([0x34, 0xff, 0xff, 0xff, 0x0f])), 'coded', 'more ids back than the message holds')
  t.is(feed(encoder(), new Uint8Array([0x30])), 'coded', 'a message out of place')
})

test('hostile: a bulk transfer bigger than announced, more ids than a session may learn, too many open prefixes', t => {
  // A bulk transfer bigger than the receiver announced (made for a receiver with the default limit).
  const big = pair(3000, 0, 0, 57).a
  const victim = new Session([], { maxIdsPerMessage: 100, sessionKey: KEY })
  victim.start()
  const liar = new Session(big, { sessionKey: KEY })
  const liarHello = liar.start()
  const bulk = liar.receive(new Session([], { sessionKey: KEY }).start())!
  t.is(feed(victim, liarHello), 'ok')
  t.is(feed(victim, bulk), 'coded', 'more ids in one message than announced')

  // More ids than the session may learn.
  const capped = new Session([], { maxLearned: 500, sessionKey: KEY })
  const sender = new Session(big, { sessionKey: KEY })
  const cappedHello = capped.start()
  capped.receive(sender.start())
  t.is(feed(capped, sender.receive(cappedHello)!), 'coded', 'more ids than maxLearned')
  t.ok(isCoded(thrown(() => {
    const q = pair(2000, 400, 100, 58)
    sync(q.a, q.b, { maxLearned: 50 })
  }), 'INVALID_MESSAGE'), 'decoded ids count against maxLearned too')

  // Too many open prefixes in the tree walk.
  t.ok(isCoded(thrown(() => {
    const q = pair(100, 3000, 3000, 59)
    sync(q.a, q.b, { maxOpen: 16 })
  }), 'INVALID_MESSAGE'), 'more open prefixes than maxOpen')
})

test('hostile: cells corrupted on the way never make the decoder report a wrong difference', async t => {
  const p = pair(3000, 20, 12, 60)
  const A = ReconcileSet.from(p.b) // the smaller side decodes
  const B = ReconcileSet.from(p.a)
  let tree = 0
  await t.execution(() => fc.assert(fc.property(fc.nat(), fc.integer({ min: 1, max: 255 }), (pos, flip) => {
    const sa = new Session(A, { sessionKey: KEY })
    const sb = new Session(B, { sessionKey: KEY })
    let flipped = false
    const res = tamperedExchange(sa, sb, (m, fromA) => {
      if (flipped || fromA || m[0] !== 0x32) return m
      // The encoder's cells: one byte flipped past the type.
      const bad = m.slice()
      bad[1 + (pos % (bad.byteLength - 1))] ^= flip
      flipped = true
      return bad
    })
    if (res === 'coded') return // refused outright: fine too
    if (!flipped) throw new Error('no cells to corrupt')
    if (sa.mode === 'tree') tree++
    const got = sa.missing().map(x => b4a.toString(x, 'hex')).sort()
    const want = p.onlyA.map(x => b4a.toString(x, 'hex')).sort()
    if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error('a wrong difference')
  }), { numRuns: 100 }))
  t.ok(tree > 50, `${tree} of 100 decodes refused by the fingerprints, then the walk`)
})
