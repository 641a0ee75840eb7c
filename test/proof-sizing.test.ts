/**
 * How many tree nodes a reader asks for with each block. A peer answers in
 * order, so a proof need only climb to a node an earlier answer of the same
 * peer brings. Pinned here against a model of what the reader knows when
 * each answer comes: every answer anchors (no block is asked twice), and a
 * download block after block asks one node a block, the fewest there are
 * (each right-hand node of the tree comes once).
 */
import test from 'brittle'
import fc from 'fast-check'
import { ProofSizing, missingNodeCount, IN_ORDER } from '../lib/proof-sizing'
import { fullRoots, parent, sibling } from '../lib/flat-tree'
import type { MerkleTree } from '../lib/merkle-tree'
import type { Peer } from '../lib/peer'

interface Asked { index: number, nodes: number }

interface Outcome {
  /** Proof nodes asked for, over all requests. */
  nodes: number
  /** Answers whose proof did not reach a node known when they came. */
  unanchored: number
}

/**
 * A reader of a `length`-block core (roots known) asking one peer for
 * `order`, at most `window` requests out; the peer answers the oldest first.
 * Each answer makes its leaf, its nodes and the nodes they hash to known,
 * as verifying it does; an answer that does not anchor is asked again, as
 * the replicator does. A `proven` peer answered IN_ORDER sized proofs in
 * order before (a new one is on trial: while many sized answers are out,
 * blocks are asked for in full; and until it has given IN_ORDER answers in
 * order, proofs climb to where the ways meet). A peer that reorders its
 * first `reorderFirst` answers gives each of them for any request out (a
 * fixed pseudo-random pick) instead of the oldest.
 */
function download (length: number, order: number[], window: number, { proven = true, reorderFirst = 0 } = {}): Outcome {
  const known = new Set<number>(fullRoots(2 * length))
  const tree = { length, hasVerified: (i: number) => known.has(i) } as unknown as MerkleTree
  const before = proven ? IN_ORDER : 0
  const peer = { lastBlockAsked: -1, sizedAsked: before, sizedProofs: before, shortProofs: 0, fullAsked: 0 } as unknown as Peer
  const sizing = new ProofSizing()
  const queue = order.slice()
  const out: Array<Asked & { sized: boolean }> = []
  let nodes = 0
  let unanchored = 0

  const ask = (index: number): void => {
    const sized = sizing.nodes(peer, index)
    const missing = missingNodeCount(tree, 2 * index, sized + 1)
    const n = Math.min(missing, sized)
    if (n < missing) peer.sizedAsked++
    peer.lastBlockAsked = index
    out.push({ index, nodes: n, sized: n < missing })
    nodes += n
  }
  const answer = (req: Asked & { sized: boolean }): void => {
    // The proof: the leaf, then `nodes` siblings on the way up. Checking it
    // stops at the first node on the way that is known (the rest of the
    // proof is not looked at); it does not anchor if there is none.
    let at = 2 * req.index
    const siblings: number[] = []
    while (siblings.length < req.nodes && !known.has(at)) {
      siblings.push(sibling(at))
      at = parent(at)
    }
    if (req.sized) peer.sizedProofs++
    if (!known.has(at)) {
      unanchored++
      sizing.short(peer, req.index)
      queue.unshift(req.index)
      return
    }
    sizing.answered(req.index)
    for (let i = 2 * req.index; i !== at; i = parent(i)) known.add(i)
    for (const i of siblings) known.add(i)
  }

  let answers = 0
  let seed = 7
  while (queue.length > 0 || out.length > 0) {
    while (queue.length > 0 && out.length < window) ask(queue.shift()!)
    seed = (seed * 1103515245 + 12345) % 2147483648
    const pick = answers++ < reorderFirst ? seed % out.length : 0
    answer(out.splice(pick, 1)[0]!)
  }
  return { nodes, unanchored }
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
  // A new peer's trial asks the first blocks in full while their answers are
  // out, and the next IN_ORDER up to where the ways meet.
  const { nodes, unanchored } = download(100_000, inOrder(100_000), 256, { proven: false })
  t.is(unanchored, 0)
  t.ok(nodes < 100_000 * 1.15, `a new peer, 100,000 blocks with 256 in flight: ${nodes} nodes (climbing to where the ways meet, about 200,000)`)
})

test('any order of blocks asked of one peer answering in order: every answer anchors', t => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 3000 }),
    fc.array(fc.nat(), { minLength: 1, maxLength: 400 }),
    fc.integer({ min: 1, max: 300 }),
    (length, picks, window) => {
      const order = [...new Set(picks.map(p => p % length))]
      return download(length, order, window).unanchored === 0
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

test('a peer whose answer once came short is asked up to where the ways meet, not one level short', t => {
  const sizing = new ProofSizing()
  const peer = { lastBlockAsked: 4, sizedAsked: IN_ORDER, sizedProofs: IN_ORDER, shortProofs: 0, fullAsked: 0 } as unknown as Peer
  // Blocks 4 and 5 meet one level up: in order, block 5's own leaf (the proof of 4 brought it) is enough.
  t.is(sizing.nodes(peer, 5), 0, 'in order so far: no node for block 5')
  t.is(sizing.nodes(peer, 6), 1, 'block 6 meets block 4 two levels up: one node')
  sizing.short(peer, 9)
  t.is(sizing.nodes(peer, 5), 1, 'after a short answer: the sibling leaf too')
  t.is(sizing.nodes(peer, 6), 2, 'and two for block 6')
  t.is(sizing.nodes(peer, 9), Infinity, 'and the block that came short, in full')
})

test('a peer whose first answers came out of order earns its sized proofs back', t => {
  // Asked in full once its answers came short often, but one block in 16
  // still sized: as those come in whole, the short ones become few again.
  // Its first 1,000 answers in any order, then in order.
  const length = 20_000
  const reordered = download(length, inOrder(length), 256, { proven: false, reorderFirst: 1000 })
  t.ok(reordered.unanchored > 16, `${reordered.unanchored} answers came short`)
  t.ok(reordered.nodes < 4 * length, `${reordered.nodes} proof nodes for ${length} blocks (asked in full to the end: 176,096)`)
  const always = download(5000, inOrder(5000), 256, { proven: false, reorderFirst: 5000 })
  t.ok(always.unanchored < 5000 / 8, `a peer that never answers in order: ${always.unanchored} of 5,000 answers short (the probes among them)`)
})
