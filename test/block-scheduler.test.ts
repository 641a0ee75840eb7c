/**
 * Which blocks a scheduling pass asks for. Pinned here: a block a `get` waits
 * for is never forgotten while an answer for it is checked and then not stored
 * (a stale fork, a lost node of ours): the `get` would wait for nothing.
 */
import test from 'brittle'
import { BlockScheduler } from '../lib/block-scheduler'
import type { BlockSchedulerHost } from '../lib/block-scheduler'

interface Sent { index: number }

/** A scheduler over one peer that holds every block, with what it sent. */
function scheduler (): { blocks: BlockScheduler, sent: Sent[], stored: Set<number>, answer (index: number): void } {
  const stored = new Set<number>()
  const inflight = new Map<number, Sent>()
  const sent: Sent[] = []
  const core = {
    length: 10,
    fork: 0,
    epoch: 0,
    has: (i: number) => stored.has(i),
    isStoring: () => false,
    tree: { length: 10, hasVerified: () => true }
  }
  const peer = {
    remoteOpened: true,
    removed: false,
    inflight: 0,
    remoteFork: 0,
    remoteLength: 10,
    has: () => true,
    wantAround: () => {},
    lastBlockAsked: -1
  }
  const host = {
    core,
    peers: [peer],
    inflight: {
      block: (i: number) => inflight.get(i),
      send: (_peer: unknown, _kind: string, index: number) => {
        const req = { index, sent: Date.now() }
        inflight.set(index, req)
        sent.push(req)
        return req
      }
    },
    ranges: { fill: () => {}, rescan: () => {}, firstFrom: () => -1 },
    sizing: { nodes: () => 0 }
  } as unknown as BlockSchedulerHost
  const blocks = new BlockScheduler(host, 16)
  // The request for `index` ends with an answer: out of flight, looked at again.
  const answer = (index: number): void => {
    inflight.delete(index)
    blocks.requeue(index)
  }
  return { blocks, sent, stored, answer }
}

test('a wanted block is asked for once, and not again while its answer is being checked', t => {
  const { blocks, sent, answer } = scheduler()
  blocks.want(3)
  blocks.pass()
  blocks.pass()
  t.alike(sent.map(s => s.index), [3], 'one request while it is in flight')
  answer(3)
  blocks.onverifying(3)
  blocks.pass()
  t.is(sent.length, 1, 'none while the answer is checked')
})

test('a wanted block whose answer was checked but not stored is asked for again', t => {
  const { blocks, sent, answer } = scheduler()
  blocks.want(3)
  blocks.pass()
  answer(3)
  blocks.onverifying(3)
  blocks.pass() // finds it being verified and lets it go
  blocks.onverified(3) // not stored: say, answered for a fork we just left
  blocks.pass()
  t.alike(sent.map(s => s.index), [3, 3], 'asked again, so the get waiting for it is answered')
})

test('a wanted block that was stored is not asked for again', t => {
  const { blocks, sent, stored, answer } = scheduler()
  const release = blocks.want(3)
  blocks.pass()
  answer(3)
  blocks.onverifying(3)
  blocks.pass()
  stored.add(3)
  blocks.onverified(3)
  blocks.pass()
  t.is(sent.length, 1)
  release()
  blocks.onverified(3)
  blocks.pass()
  t.is(sent.length, 1, 'nor once no get waits for it')
})
