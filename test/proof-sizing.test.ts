/**
 * How many tree nodes a reader asks for with each block. A proof need only
 * climb to a node the answer for the block asked just before (of the same
 * peer) brings; an answer that overtakes that one waits for it. Pinned here
 * against a model of what the reader knows when each answer comes: every
 * answer anchors, at once or once the answer it leans on came (no block is
 * asked twice), and a download block after block asks one node a block, the
 * fewest there are (each right-hand node of the tree comes once).
 */
import test from 'brittle'
import fc from 'fast-check'
import { ProofSizing, missingNodeCount } from '../lib/proof-sizing'
import { fullRoots, parent, sibling } from '../lib/flat-tree'
import type { MerkleTree } from '../lib/merkle-tree'
import type { Peer } from '../lib/peer'

interface Asked {
  index: number
  nodes: number
  sized: boolean
  /** The block asked just before it, whose answer its proof leans on. */
  after: number
}

interface Outcome {
  /** Proof nodes asked for, over all requests. */
  nodes: number
  /** Answers whose proof did not reach a node known when they were checked (asked again). */
  unanchored: number
  /** Answers that came before the one they lean on and waited for it. */
  parked: number
}

/**
 * A reader of a `length`-block core (roots known) asking one peer for
 * `order`, at most `window` requests out; the peer answers the oldest first.
 * Each answer makes its leaf, its nodes and the nodes they hash to known,
 * as verifying it does. A sized answer that does not anchor while the
 * answer it leans on is still out waits for it, and is checked again when
 * that one anchors (as `ParkedAnswers` does, unless `park` is false); else
 * it is asked again, as the replicator does. A peer that reorders its first
 * `reorderFirst` answers gives each of them for any request out (a fixed
 * pseudo-random pick) instead of the oldest.
 */
function download (length: number, order: number[], window: number, { reorderFirst = 0, park = true } = {}): Outcome {
  const known = new Set<number>(fullRoots(2 * length))
  const tree = { length, hasVerified: (i: number) => known.has(i) } as unknown as MerkleTree
  const peer = { lastBlockAsked: -1, sizedProofs: 0, shortProofs: 0, fullAsked: 0 } as unknown as Peer
  const sizing = new ProofSizing()
  const queue = order.slice()
  const out: Asked[] = []
  const parked = new Map<number, Asked>()
  const outcome: Outcome = { nodes: 0, unanchored: 0, parked: 0 }

  const ask = (index: number): void => {
    const sized = sizing.nodes(peer, index)
    const missing = missingNodeCount(tree, 2 * index, sized + 1)
    const n = Math.min(missing, sized)
    out.push({ index, nodes: n, sized: n < missing, after: peer.lastBlockAsked })
    peer.lastBlockAsked = index
    outcome.nodes += n
  }
  // The proof: the leaf, then `nodes` siblings on the way up. Checking it
  // stops at the first node on the way that is known (the rest of the proof
  // is not looked at); it does not anchor if there is none.
  const anchors = (req: Asked): boolean => {
    let at = 2 * req.index
    const siblings: number[] = []
    while (siblings.length < req.nodes && !known.has(at)) {
      siblings.push(sibling(at))
      at = parent(at)
    }
    if (!known.has(at)) return false
    sizing.answered(req.index)
    for (let i = 2 * req.index; i !== at; i = parent(i)) known.add(i)
    for (const i of siblings) known.add(i)
    return true
  }
  const askAgain = (req: Asked): void => {
    outcome.unanchored++
    sizing.short(peer, req.index)
    queue.unshift(req.index)
  }
  const awaited = (index: number): boolean => out.some(r => r.index === index) || parked.has(index)
  const unpark = (): void => {
    for (let changed = true; changed;) {
      changed = false
      for (const req of [...parked.values()]) {
        if (!known.has(2 * req.after) && awaited(req.after)) continue
        parked.delete(req.index)
        if (anchors(req)) changed = true
        else askAgain(req)
      }
    }
  }
  const answer = (req: Asked): void => {
    if (req.sized) peer.sizedProofs++
    if (anchors(req)) {
      unpark()
    } else if (park && req.sized && req.after !== -1 && awaited(req.after)) {
      parked.set(req.index, req)
      outcome.parked++
    } else {
      askAgain(req)
    }
  }

  let answers = 0
  let seed = 7
  while (queue.length > 0 || out.length > 0) {
    while (queue.length > 0 && out.length < window) ask(queue.shift()!)
    seed = (seed * 1103515245 + 12345) % 2147483648
    const pick = answers++ < reorderFirst ? seed % out.length : 0
    answer(out.splice(pick, 1)[0]!)
    if (out.length === 0) unpark()
  }
  return outcome
}

const inOrder = (length: number): number[] => Array.from({ length }, (_, i) => i)

test('a download block after block asks one node a block, and every answer anchors', t => {
  for (const length of [1, 2, 3, 1000, 1024, 4097, 100_000]) {
    for (const window of [1, 16, 256, 2048]) {
      const { nodes, unanchored } = download(length, inOrder(length), window)
      t.is(unanchored, 0, `${length} blocks, ${window} in flight: no block asked twice`)
      // One a block (the right-hand nodes), and the first block's way up.
      const bound = length + Math.ceil(Math.log2(length + 1))
      if (nodes > bound) t.fail(`${length} blocks, ${window} in flight: ${nodes} nodes asked, more than ${bound}`)
    }
  }
  const { nodes } = download(100_000, inOrder(100_000), 256)
  t.ok(nodes < 100_000 * 1.01, `100,000 blocks with 256 in flight: ${nodes} nodes (climbing to where the ways meet, about 200,000)`)
})

test('any order of blocks asked of one peer answering in order: every answer anchors', t => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 3000 }),
    fc.array(fc.nat(), { minLength: 1, maxLength: 400 }),
    fc.integer({ min: 1, max: 300 }),
    (length, picks, window) => {
      const order = [...new Set(picks.map(p => p % length))]
      const outcome = download(length, order, window)
      return outcome.unanchored === 0 && outcome.parked === 0
    }
  ), { numRuns: 300 })
  t.pass('300 random orders, lengths and windows')
})

test('the ways down from the end asked in reverse anchor too, each asking what it lacks', t => {
  const length = 5000
  const reverse = inOrder(length).reverse()
  const { nodes, unanchored } = download(length, reverse, 256)
  t.is(unanchored, 0)
  t.ok(nodes <= 2 * length, `${nodes} nodes for ${length} blocks`)
})

test('answers that overtake the one they lean on wait for it: no block is asked twice', t => {
  // Any order of answers, any blocks asked, any window: each answer anchors
  // at once or when the answer it leans on came.
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 3000 }),
    fc.array(fc.nat(), { minLength: 1, maxLength: 400 }),
    fc.integer({ min: 1, max: 300 }),
    fc.nat({ max: 400 }),
    (length, picks, window, reorderFirst) => {
      const order = [...new Set(picks.map(p => p % length))]
      return download(length, order, window, { reorderFirst }).unanchored === 0
    }
  ), { numRuns: 300 })
  // A peer that never answers in order still costs one node a block.
  const length = 20_000
  const shuffled = download(length, inOrder(length), 256, { reorderFirst: length })
  t.is(shuffled.unanchored, 0, `${shuffled.parked} of ${length} answers waited; none asked again`)
  t.ok(shuffled.parked > length / 10, 'many answers overtook the one they lean on')
  t.ok(shuffled.nodes < length * 1.01, `${shuffled.nodes} proof nodes for ${length} blocks`)
  // Without waiting, the same answers came short and were asked again (the fallback below kicks in).
  const asked = download(length, inOrder(length), 256, { reorderFirst: length, park: false })
  t.ok(asked.unanchored > 100, `without waiting: ${asked.unanchored} answers asked again`)
})

test('a peer whose answer once came short is asked up to where the ways meet, not one level short', t => {
  const sizing = new ProofSizing()
  const peer = { lastBlockAsked: 4, sizedProofs: 64, shortProofs: 0, fullAsked: 0 } as unknown as Peer
  // Blocks 4 and 5 meet one level up: block 5's own leaf (the proof of 4 brought it) is enough.
  t.is(sizing.nodes(peer, 5), 0, 'no short answer so far: no node for block 5')
  t.is(sizing.nodes(peer, 6), 1, 'block 6 meets block 4 two levels up: one node')
  sizing.short(peer, 9)
  t.is(sizing.nodes(peer, 5), 1, 'after a short answer: the sibling leaf too')
  t.is(sizing.nodes(peer, 6), 2, 'and two for block 6')
  t.is(sizing.nodes(peer, 9), Infinity, 'and the block that came short, in full')
})

test('a peer whose answers come short often is asked in full, but for one block in 16', t => {
  const sizing = new ProofSizing()
  const peer = { lastBlockAsked: 0, sizedProofs: 100, shortProofs: 20, fullAsked: 0 } as unknown as Peer
  const sized = Array.from({ length: 64 }, (_, k) => sizing.nodes(peer, 100 + 2 * k)).filter(n => n !== Infinity)
  t.is(sized.length, 4, 'four of 64 blocks sized')
  // Once the sized ones come in whole, the short ones are few again: sized from then on.
  peer.sizedProofs = 200
  t.ok(sizing.nodes(peer, 300) < Infinity)
})
