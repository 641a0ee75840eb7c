/**
 * A reader downloads every block, each as written, whatever order a peer
 * answers in and whichever blocks it refuses on the way: answers that wait
 * for the one they lean on (`ParkedAnswers`) never wait for ever. One peer
 * or two answer each batch of requests they receive in order, in reverse or
 * shuffled, sometimes after a pause, with the writer itself connected or
 * not; a few blocks are refused once and announced again at once, a little
 * later, or once all else is stored. A stall shows as a test that does not
 * end (nothing left in flight, nothing to wait for).
 *
 * `npm run fuzz` runs many more cases (FUZZ_RUNS). A stall cannot report
 * its case: FUZZ_LOG=file keeps the case under way in that file, and
 * FUZZ_CASE='<its JSON>' runs it first.
 */
import { writeFileSync } from 'node:fs'
import test from 'brittle'
import fc from 'fast-check'
import b4a from 'b4a'
import { blocks } from './helpers/core'
import { ramCore, replicate, FakePeer, honestAnswer } from './helpers/replication'
import { rng } from './helpers/disk-rot'
import type { RequestMessage } from '../lib/messages'

const RUNS = Number(process.env.FUZZ_RUNS ?? 25)
const LOG = process.env.FUZZ_LOG
const REPLAY = process.env.FUZZ_CASE

interface Case {
  n: number
  order: 'in order' | 'reverse' | 'shuffled'
  /** Two such peers, each refusing what the other has not refused yet. */
  peers: 1 | 2
  /** The writer itself connected too, answering as it does. */
  writer: boolean
  refuse: Array<{ at: number, announceAfterMs: number }>
  /** Drives the shuffles and pauses. */
  seed: number
}

const cases: fc.Arbitrary<Case> = fc.record({
  n: fc.integer({ min: 300, max: 3000 }),
  order: fc.constantFrom('in order' as const, 'reverse' as const, 'shuffled' as const),
  peers: fc.constantFrom(1 as const, 2 as const),
  writer: fc.boolean(),
  refuse: fc.array(fc.record({ at: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), announceAfterMs: fc.constantFrom(-1, 0, 5, 30) }), { maxLength: 5 }),
  seed: fc.integer({ min: 1, max: 0x7fffffff })
})

test('a reader downloads every block as written, whatever order the peer answers in and whatever it refuses once', async t => {
  await fc.assert(fc.asyncProperty(cases, async c => {
    // The case under way, for a run that stalls (FUZZ_CASE replays it).
    if (LOG !== undefined) writeFileSync(LOG, JSON.stringify(c))
    const closing: Array<() => Promise<void> | void> = []
    const local = { teardown: (fn: () => Promise<void> | void) => { closing.push(fn) } }
    try {
      const w = await ramCore(local)
      await w.append(blocks(c.n))
      const r = await ramCore(local, w.key)
      const rand = rng(c.seed)
      const refusing = new Map(c.refuse.map(x => [Math.floor(x.at * c.n), x.announceAfterMs]))
      // -1: announced again only once everything else is here.
      const late = [...refusing].filter(([, after]) => after === -1).map(([i]) => i)
      const lateRefused: number[] = []
      let progress = (): void => {}
      const answer = async (p: FakePeer, m: RequestMessage): Promise<void> => {
        const index = m.block?.index ?? -1
        const after = refusing.get(index)
        if (after !== undefined) {
          refusing.delete(index)
          p.sendNoData({ request: m.id, reason: 0 })
          if (after === 0) p.sendRange({ drop: false, start: index, length: 1 })
          else if (after > 0) setTimeout(() => p.sendRange({ drop: false, start: index, length: 1 }), after)
          else {
            lateRefused.push(index)
            progress()
          }
          return
        }
        p.sendData(await honestAnswer(w, m) as never)
      }
      const fakes: FakePeer[] = []
      for (let k = 0; k < c.peers; k++) {
        let batch: RequestMessage[] = []
        const fake = new FakePeer(local, w.key!, {
          onopen: p => {
            p.sendSync({ length: c.n })
            p.sendRange({ drop: false, start: 0, length: c.n })
          },
          onrequest: (p, m) => {
            if (batch.push(m) > 1) return
            setImmediate(() => {
              let b = batch
              batch = []
              if (c.order === 'reverse') b.reverse()
              else if (c.order === 'shuffled') b = b.map(m => ({ k: rand(), m })).sort((x, y) => x.k - y.k).map(x => x.m)
              const pause = rand() < 0.3 ? Math.floor(rand() * 5) : 0
              setTimeout(() => { void (async () => { for (const m of b) await answer(p, m) })() }, pause)
            })
          }
        })
        r.replicate(fake.stream)
        await fake.open()
        fakes.push(fake)
      }
      if (c.writer) replicate(local, w, r)
      const stored = new Set<number>()
      r.on('download', (i: number) => stored.add(i))
      const all = r.download({ start: 0, end: c.n })
      if (late.length > 0) {
        // Refused, each of them, and everything else stored: then announced
        // (the writer, if connected, may have given them all meanwhile).
        r.on('download', () => progress())
        while (stored.size < c.n && (lateRefused.length < late.length || stored.size < c.n - late.length)) await new Promise<void>(resolve => { progress = resolve })
        for (const i of late) for (const fake of fakes) fake.sendRange({ drop: false, start: i, length: 1 })
      }
      await all.done()
      if (r.contiguousLength !== c.n) return false
      if (!b4a.equals(await r.treeHash(), await w.treeHash())) return false
      for (const i of [0, Math.floor(c.n / 2), c.n - 1]) {
        if (!b4a.equals((await r.get(i))!, (await w.get(i))!)) return false
      }
      return true
    } finally {
      for (const fn of closing.reverse()) await fn()
    }
  }), { numRuns: RUNS, ...(REPLAY !== undefined ? { examples: [[JSON.parse(REPLAY) as Case]], numRuns: 1 } : {}) })
  t.pass(`${RUNS} readers, every download complete and as written`)
})
