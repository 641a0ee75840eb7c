/**
 * The burst: one side follows its hello with coded cells it sends blind, so
 * a small difference is known by the other side after one flight and by
 * both after two. Whatever the burst meets (equal sets, the since path, a
 * difference too large for it, one-sided sets), the sync ends exact.
 */
import test from 'brittle'
import { isCoded } from '../lib/errors'
import { ReconcileSet, Session, sync } from '../lib/reconcile'
import { Writer } from '../lib/reconcile/wire'
import { pair, exact, randomId, thrown, tamperedExchange } from './helpers/reconcile'

const KEY = randomId()
const MSG_BURST = 0x3d

test('a difference the burst covers: the receiver knows it after one flight, both sides after two', t => {
  let once = 0
  const draws = 20
  for (let seed = 1; seed <= draws; seed++) {
    const p = pair(20_000, 25, 25, seed)
    const res = sync(p.a, p.b, { burst: 50 })
    t.ok(exact(res, p), `seed ${seed}: exact`)
    if (res.firstKnows.rounds === 1 && res.rounds === 2) once++
  }
  // The burst is sized to decode 50 differences about 19 times in 20; these seeds are fixed.
  t.ok(once >= 17, `${once} of ${draws} in one flight (and both sides in two)`)
  const p = pair(20_000, 25, 25, 1)
  const res = sync(p.a, p.b, { burst: 50 })
  t.ok(res.firstKnows.bytes < 1.6 * 50 * 32, `the receiver needed ${res.firstKnows.bytes} B of it`)
  t.ok(res.bytes < 2.2 * 50 * 32, `${res.bytes} B in all, the whole burst counted`)
})

test('the side that sends the burst may hold more or fewer ids, and one id of difference needs one or two packets', t => {
  for (const [da, db] of [[0, 40], [40, 0], [30, 5], [1, 0], [0, 1]] as const) {
    const p = pair(5000, da, db, 40 + da + db)
    const res = sync(p.a, p.b, { burst: 50 })
    t.ok(exact(res, p), `a +${da}, b +${db}: exact (${res.firstKnows.rounds} / ${res.rounds} flights)`)
  }
  const p = pair(5000, 0, 1, 9)
  const res = sync(p.a, p.b, { burst: 50 })
  t.is(res.firstKnows.rounds, 1, 'one id only the receiver holds: known after one flight')
  t.ok(res.firstKnows.bytes < 80, `from ${res.firstKnows.bytes} B (two hellos and one whole cell)`)
})

test('a burst too small for the difference is the first batch of the cells, not sent again', t => {
  const p = pair(20_000, 250, 250, 77)
  const plain = sync(p.a, p.b)
  const sa = new Session(ReconcileSet.from(p.a), { sessionKey: KEY, burst: 50 })
  sa.start()
  const burstBytes = sa.burst().reduce((n, m) => n + m.byteLength, 0)
  const res = sync(p.a, p.b, { burst: 50 })
  t.ok(exact(res, p), 'exact')
  t.is(res.mode, 'symbols')
  t.ok(res.bytes < plain.bytes + burstBytes * 0.8, `${res.bytes} B with a burst of ${burstBytes} B, ${plain.bytes} B without`)
})

test('with a burst, every other path still ends exact: equal sets, since, one-sided, bulk, a large difference', t => {
  const eq = pair(3000, 0, 0, 5)
  const same = sync(eq.a, eq.b, { burst: 50 })
  t.ok(exact(same, eq) && same.rounds === 1, 'equal sets: done after the hellos (and the burst)')

  const common = pair(2000, 0, 0, 6)
  const A = ReconcileSet.from(common.a)
  const B = ReconcileSet.from(common.b)
  sync(A, B, { remember: true })
  const x = randomId()
  const y = randomId()
  A.insert(x)
  B.insert(y)
  const since = sync(A, B, { remember: true, burst: 50 })
  t.is(since.mode, 'since', 'the since path settles it before the burst is read')
  t.is(since.missingInA.length, 1)
  t.is(since.missingInB.length, 1)

  for (const [n, da, db, mode] of [[20_000, 0, 800, 'subset'], [20_000, 800, 0, 'subset'], [0, 300, 0, 'bulk'], [20_000, 1500, 1500, 'symbols']] as const) {
    const p = pair(n, da, db, n + da + 3 * db)
    const res = sync(p.a, p.b, { burst: 50 })
    t.ok(exact(res, p), `n=${n} a +${da} b +${db}: exact`)
    t.is(res.mode, mode, `by ${mode}`)
  }
})

test('crafted: ids that collide in the cells, with a burst, fall back to the walk and end exact', t => {
  // Ids sharing their first 8 bytes share every cell: peeling cannot separate them, the fingerprints catch it.
  const p = pair(5000, 3, 3, 88)
  for (const id of [...p.onlyA, ...p.onlyB]) id.set(p.onlyA[0]!.subarray(0, 8))
  const res = sync(p.a, p.b, { burst: 50 })
  t.ok(exact(res, p), `exact, by ${res.mode}`)
})

test('a receiver needs no option, and the remote learns of the burst from the hello', t => {
  const p = pair(3000, 10, 10, 21)
  const sa = new Session(ReconcileSet.from(p.a), { sessionKey: KEY, burst: 30 })
  const sb = new Session(ReconcileSet.from(p.b), { sessionKey: KEY })
  t.is(tamperedExchange(sa, sb), 'done')
  t.ok(exact({ missingInA: sa.missing(), missingInB: sb.missing() }, p), 'exact')
  t.is(sb.knowsAllAfter, 1, 'the receiver knew after the first flight')
  t.is(sa.knowsAllAfter, 2, 'the sender after the second')
})

test('no burst without a shared key or ids, and never from both sides', t => {
  const unkeyed = new Session(ReconcileSet.from(pair(100, 0, 0, 3).a), { burst: 50 })
  unkeyed.start()
  t.is(unkeyed.burst().length, 0, 'without a session key the hello goes alone')
  const empty = new Session(new ReconcileSet(), { sessionKey: KEY, burst: 50 })
  empty.start()
  t.is(empty.burst().length, 0, 'an empty set has no cells to send')

  const p = pair(1000, 5, 5, 4)
  const sa = new Session(ReconcileSet.from(p.a), { sessionKey: KEY, burst: 20 })
  const sb = new Session(ReconcileSet.from(p.b), { sessionKey: KEY, burst: 20 })
  t.is(tamperedExchange(sa, sb), 'coded', 'two bursts: INVALID_MESSAGE')
})

test('hostile bursts: cut, flipped, extended, missing or extra packets, absurd covers give coded errors or an exact result', t => {
  const p = pair(4000, 20, 20, 31)
  const fresh = (): [Session, Session] => [
    new Session(ReconcileSet.from(p.a), { sessionKey: KEY, burst: 50 }),
    new Session(ReconcileSet.from(p.b), { sessionKey: KEY })
  ]
  const outcomes = { coded: 0, exact: 0 }
  for (let k = 0; k < 14; k++) {
    for (const how of ['cut', 'flip', 'extend', 'zero'] as const) {
      let seen = 0
      const [sa, sb] = fresh()
      const res = tamperedExchange(sa, sb, (m, fromA) => {
        if (!fromA || m[0] !== MSG_BURST || seen++ !== k) return m
        const c = m.slice()
        if (how === 'cut') return c.subarray(0, c.byteLength - 1)
        if (how === 'extend') return Uint8Array.from([...c, 0])
        if (how === 'zero') return c.fill(0, 1)
        c[c.byteLength >> 1] ^= 0x40
        return c
      })
      if (res === 'coded') outcomes.coded++
      else {
        t.ok(exact({ missingInA: sa.missing(), missingInB: sb.missing() }, p), `packet ${k} ${how}: exact`)
        outcomes.exact++
      }
    }
  }
  t.ok(outcomes.coded > 0 && outcomes.coded + outcomes.exact === 56, `${outcomes.coded} refused, ${outcomes.exact} exact anyway`)

  // Packets the hello did not announce, or fewer than it did.
  const [sa, sb] = fresh()
  const hello = sa.start()
  const packets = sa.burst()
  t.is(sb.start() !== null, true)
  t.is(sb.receive(hello), undefined, 'no answer to the hello while a burst is due')
  for (const m of packets.slice(0, -1)) sb.receive(m)
  t.ok(isCoded(thrown(() => sb.receive(new Uint8Array([0x33, 1, 1]))), 'INVALID_MESSAGE'), 'another message where a packet is due')

  // A hello announcing a burst larger than any sender makes, or one for no difference.
  for (const cover of [1 << 20, 0]) {
    const [sa2, sb2] = fresh()
    sb2.start()
    const hello = sa2.start().slice()
    const w = new Writer()
    w.uint(cover)
    const tail = w.finish()
    // The cover is the hello's last field: 50 is one byte.
    const forged = new Uint8Array(hello.byteLength - 1 + tail.byteLength)
    forged.set(hello.subarray(0, hello.byteLength - 1))
    forged.set(tail, hello.byteLength - 1)
    t.ok(isCoded(thrown(() => sb2.receive(forged)), 'INVALID_MESSAGE'), `a burst for ${cover}: refused`)
  }
})
