/**
 * The common ancestor search (`ForkPoint`, driven by `Core.verifyFork` and
 * `continueFork`), against a model: for a reader holding every block, the
 * ancestors are exactly the longest common prefix of the two forks' blocks;
 * for a sparse reader, never more. It takes at most one hash proof per tree
 * level, and the reorg leaves only blocks of the new fork.
 */
import test from 'brittle'
import fc from 'fast-check'
import b4a from 'b4a'
import { ramCore, replicate } from './helpers/replication'
import { internals, type Hypercore } from '../lib/hypercore'
import type { Core, VerifiedFork } from '../lib/core'

/** Searches `writer`'s fork from `core`, answering each probe with a hash proof of the range's first leaf. */
async function search (core: Core, writer: Hypercore): Promise<{ fork: VerifiedFork, probes: number }> {
  const proof = await writer.proof({ upgrade: { start: 0, length: writer.length } })
  const fork = await core.verifyFork({ request: 1, fork: proof.fork, block: null, hash: null, seek: null, upgrade: proof.upgrade, manifest: null })
  let probes = 0
  for (let probe = fork.point.probe; probe !== null; probe = fork.point.probe) {
    probes++
    const leaf = probe.start + ((probes * 7919) % (probe.end - probe.start)) // anywhere in the range
    const answer = await writer.proof({ hash: { index: 2 * leaf, nodes: probe.nodes } })
    await core.continueFork(fork, { request: 1, fork: answer.fork, block: null, hash: answer.hash, seek: null, upgrade: null, manifest: null })
  }
  return { fork, probes }
}

function block (tag: string, i: number): Uint8Array {
  return b4a.from(tag + ' ' + i)
}

const scenario = fc.record({
  n: fc.integer({ min: 1, max: 160 }),
  cut: fc.integer({ min: 0, max: 160 }),
  // Each appended block is the old one again (same bytes) or new.
  again: fc.array(fc.boolean(), { maxLength: 60 }),
  held: fc.option(fc.array(fc.nat(), { maxLength: 20 }), { nil: null }) // null: the reader holds every block
})

test('the common ancestor is the longest shared prefix for a full reader, and no more for a sparse one', async t => {
  let runs = 0
  await fc.assert(fc.asyncProperty(scenario, async ({ n, cut, again, held }) => {
    cut = Math.min(cut, n)
    const teardowns: Array<() => unknown> = []
    const tt = { teardown: (fn: () => unknown) => { teardowns.push(fn) } }
    try {
      const w = await ramCore(tt)
      const old = Array.from({ length: n }, (_, i) => block('old', i))
      await w.append(old)
      const r = await ramCore(tt, w.key)
      const link = replicate(tt, w, r)
      await r.update({ wait: true })
      const heldList = held === null ? null : [...new Set(held.map(h => h % n))]
      if (heldList === null) await r.download({ start: 0, end: n }).done()
      else if (heldList.length > 0) await r.download({ blocks: heldList }).done()
      link.destroy()

      await w.truncate(cut)
      const added = again.map((same, k) => same && cut + k < n ? old[cut + k]! : block('new', cut + k))
      if (added.length > 0) await w.append(added)
      const now = [...old.slice(0, cut), ...added]
      let prefix = 0
      while (prefix < Math.min(n, now.length) && b4a.equals(old[prefix]!, now[prefix]!)) prefix++

      // An empty fork has nothing to prove; no one follows it (Hypercore 11 neither).
      if (now.length === 0) {
        runs++
        return true
      }
      const core = internals(r).core!
      const { fork, probes } = await search(core, w)
      const ancestors = fork.point.ancestors
      if (heldList === null ? ancestors !== prefix : ancestors > prefix) return false
      if (probes > Math.ceil(Math.log2(n + 1)) + 1) return false

      if (!(await core.reorg(fork))) return false
      if (r.fork !== w.fork || r.length !== w.length) return false
      for (let i = 0; i < r.length; i++) {
        const got = await r.get(i, { wait: false }) as Uint8Array | null
        if (got !== null && !b4a.equals(got, now[i]!)) return false
        if (i >= ancestors && got !== null) return false // nothing past the ancestors survives
      }
      runs++
      return true
    } finally {
      for (const fn of teardowns.reverse()) await fn()
    }
  }), { numRuns: 60 })
  t.is(runs, 60)
})
