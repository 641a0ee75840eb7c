/**
 * The block proof a server builds without waiting (index arithmetic over the
 * nodes at hand) against the general proof generator: the same nodes in the
 * same order, and the same refusal when the asked levels climb past a root.
 */
import test from 'brittle'
import fc from 'fast-check'
import { fullRoots } from '../lib/flat-tree'
import { generateProof } from '../lib/proof'
import { blockProofNow } from '../lib/block-proof'
import type { TreeNode } from '../lib/tree-node'
import { internals } from '../lib/hypercore'
import { ramCore } from './helpers/replication'

/** Node `i` of a tree whose node contents do not matter here, only which ones are picked. */
function node (i: number): TreeNode {
  const hash = new Uint8Array(32)
  new DataView(hash.buffer).setFloat64(0, i)
  return { index: i, size: i + 1, hash }
}

function treeOf (length: number, held: (i: number) => boolean = () => true): Parameters<typeof blockProofNow>[0] & { getNode (i: number): Promise<TreeNode | null> } {
  return {
    roots: fullRoots(2 * length).map(node),
    length,
    byteLength: 0,
    fork: 3,
    signature: null,
    peekNode: i => held(i) ? node(i) : undefined,
    getNode: async i => node(i)
  }
}

async function outcome<T> (f: () => T | Promise<T>): Promise<T | string> {
  try {
    return await f()
  } catch (err) {
    return (err as { code?: string }).code ?? String(err)
  }
}

test('the quick block proof picks the nodes the full generator picks, and refuses what it refuses', async t => {
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 1, max: 5000 }),
    fc.nat(),
    fc.oneof(fc.integer({ min: 0, max: 16 }), fc.integer({ min: 17, max: 70 }), fc.constant(2 ** 32)),
    async (length, at, levels) => {
      const src = treeOf(length)
      const req = { block: { index: at % length, nodes: levels } }
      const full = await outcome(() => generateProof(src, req))
      const quick = await outcome(() => blockProofNow(src, req))
      if (typeof full === 'string' || typeof quick === 'string' || quick === null) {
        return typeof full === 'string' && quick === full
      }
      const picked = (p: typeof full): number[] => p.block!.nodes.map(n => n.index)
      return quick.fork === 3 && quick.block!.index === req.block.index && JSON.stringify(picked(quick)) === JSON.stringify(picked(full))
    }
  ), { numRuns: 3000 })
  t.pass('3,000 random trees, blocks and levels agree')
})

test('the quick block proof gives way when a node it needs is not at hand', async t => {
  const length = 64
  // Block 0 is proven by leaf 2, then node 5 (blocks 2-3), then node 11 (blocks 4-7).
  const src = treeOf(length, i => i !== 5)
  const wanted = await generateProof(treeOf(length), { block: { index: 0, nodes: 3 } })
  t.alike(wanted.block!.nodes.map(n => n.index), [2, 5, 11], 'the full proof of block 0')
  t.is(blockProofNow(src, { block: { index: 0, nodes: 3 } }), null, 'the quick one, lacking node 5, says so')
  t.alike(blockProofNow(src, { block: { index: 40, nodes: 3 } })!.block!.nodes.map(n => n.index), [82, 85, 91], 'a block whose path skips node 5 is proven at once')
})

test('the quick block proof takes only plain block requests', t => {
  const src = treeOf(32)
  t.is(blockProofNow(src, { block: { index: 1, nodes: 2 }, upgrade: { start: 0, length: 32 } }), null)
  t.is(blockProofNow(src, { block: { index: 1, nodes: 2 }, seek: { bytes: 10 } }), null)
  t.is(blockProofNow(src, { hash: { index: 1, nodes: 2 } }), null)
  t.is(blockProofNow(src, { block: { index: 32, nodes: 0 } }), null, 'past the length')
})

test('served proof nodes are copies of the tree\'s own, reused by the next answer', async t => {
  const w = await ramCore(t)
  const blocks: Uint8Array[] = []
  for (let i = 0; i < 700; i++) blocks.push(new TextEncoder().encode('block ' + i))
  await w.append(blocks)
  const core = internals(w).core!
  const seen = (nodes: TreeNode[]): string => JSON.stringify(nodes.map(n => [n.index, n.size, Array.from(n.hash)]))
  let compared = 0
  let refused = 0
  let slow = 0
  // Blocks over the whole tree (roots, cached and staged nodes alike), every level count that fits.
  for (let index = 0; index < 700; index += 7) {
    for (let levels = 0; levels <= 10; levels++) {
      const req = { block: { index, nodes: levels } }
      const full = await outcome(() => generateProof(core.tree, req))
      const now = await outcome(() => core.blockProofNodesNow(req))
      if (typeof full === 'string') {
        if (now !== full) t.fail(`block ${index}, ${levels} levels: ${String(now)}, not the generator's refusal ${full}`)
        refused++
        continue
      }
      if (now === null) { // a node not at hand: served the long way
        slow++
        continue
      }
      if (typeof now === 'string') {
        t.fail(`block ${index}, ${levels} levels: refused with ${now}, the generator did not`)
        continue
      }
      if (seen(now) !== seen(full.block!.nodes)) t.fail(`block ${index}, ${levels} levels: other nodes than the generator's`)
      compared++
    }
  }
  t.ok(compared > 500, `${compared} quick answers, each the generator's nodes`)
  t.ok(refused > 100, `${refused} requests past a root, each refused as the generator refuses`)
  // The append sized the node cache before it put the new nodes in: none was pushed out.
  t.is(slow, 0, 'every proof of a 700-block tree appended at once made from nodes at hand')

  // Blocks whose nodes are at hand (the cache, sized by the append, holds the whole 700-block tree).
  const first = core.blockProofNodesNow({ block: { index: 600, nodes: 3 } })!
  const kept = seen(first)
  const second = core.blockProofNodesNow({ block: { index: 690, nodes: 3 } })!
  t.not(seen(first), kept, 'the next answer reuses the nodes (so each is encoded before another is made)')
  t.is(seen(first), seen(second))
})
