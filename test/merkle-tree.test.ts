/**
 * How the local tree trusts what it reads from disk: a 16-leaf window that
 * agrees with itself and with a verified top is trusted whole after one
 * read; a window with a lost or rotten node is left to the climbs from each
 * leaf, and no rotten node is ever trusted.
 */
import test from 'brittle'
import b4a from 'b4a'
import { MerkleTree, type NodeStorage } from '../lib/merkle-tree'
import { leafNode, parentNode } from '../lib/crypto'
import { fullRoots, leftChild, leftSpan, rightChild, rightSpan, sibling } from '../lib/flat-tree'
import type { TreeNode } from '../lib/tree-node'

/** Every node of a tree of `length` blocks (block i holds `length - i` bytes, so sizes differ). */
function treeOf (length: number): Map<number, TreeNode> {
  const nodes = new Map<number, TreeNode>()
  for (let i = 0; i < length; i++) nodes.set(2 * i, leafNode(2 * i, b4a.alloc(length - i, i)))
  for (let width = 2; width <= length; width *= 2) {
    for (let first = 0; first + width <= length; first += width) {
      const index = first * 2 + width - 1
      nodes.set(index, parentNode(index, nodes.get(leftChild(index))!, nodes.get(rightChild(index))!))
    }
  }
  return nodes
}

/** A tree file in memory whose nodes a test can rot, counting the reads made of it. */
function disk (nodes: Map<number, TreeNode>): NodeStorage & { reads: number, stored: Map<number, TreeNode>, rot (index: number, how: 'hash' | 'size'): void } {
  const stored = new Map([...nodes].map(([i, n]) => [i, { index: i, size: n.size, hash: b4a.from(n.hash) }]))
  const copy = (i: number): TreeNode | null => {
    const n = stored.get(i)
    return n === undefined ? null : { index: i, size: n.size, hash: b4a.from(n.hash) }
  }
  return {
    reads: 0,
    stored,
    async getNode (i) { this.reads++; return copy(i) },
    async getNodes (indices) { this.reads++; return indices.map(copy) },
    rot (i, how) {
      const n = stored.get(i)!
      if (how === 'hash') n.hash[7] ^= 0x10
      else n.size += 1
    }
  }
}

function open (length: number, nodes: Map<number, TreeNode>, storage: NodeStorage): MerkleTree {
  const roots = fullRoots(2 * length).map(i => nodes.get(i)!)
  const byteLength = roots.reduce((sum, r) => sum + r.size, 0)
  return new MerkleTree(storage, { roots, length, byteLength, fork: 0, signature: null })
}

const same = (a: TreeNode | undefined | null, b: TreeNode): boolean =>
  a !== undefined && a !== null && a.index === b.index && a.size === b.size && b4a.equals(a.hash, b.hash)

test('reading through the tree, a window that follows one just read is verified whole with one read', async t => {
  const nodes = treeOf(64)
  const storage = disk(nodes)
  const tree = open(64, nodes, storage)
  t.ok(same(await tree.verifiedNode(2 * 3), nodes.get(6)!), 'a leaf of the first window')
  const leaf = await tree.verifyNode(2 * 17)
  t.ok(same(leaf as TreeNode, nodes.get(34)!), 'a leaf of the next one')
  const reads = storage.reads
  let atHand = 0
  for (let i = 32; i <= 62; i++) if (same(tree.peekNode(i), nodes.get(i)!)) atHand++
  t.is(atHand, 31, 'all 31 nodes of the window verified, without another read')
  for (let b = 16; b < 32; b++) t.ok(same(await tree.verifiedNode(2 * b), nodes.get(2 * b)!))
  t.is(storage.reads, reads, 'the other 15 leaves of the window need no read')
})

test('a stream through a large tree reads the rest of each group of four windows at once, and verifies every window in it whole', async t => {
  const nodes = treeOf(256) // sixteen windows, in four groups of four
  const storage = disk(nodes)
  const tree = open(256, nodes, storage)
  for (let b = 0; b < 256; b++) t.ok(same(await tree.verifiedNode(2 * b), nodes.get(2 * b)!), `leaf of block ${b}`)
  // The first window alone (nothing read before it), the other three of its group, then each group whole.
  t.is(storage.reads, 5, 'five reads, not one a window')
  let atHand = 0
  for (let i = 0; i < 511; i++) if (same(tree.peekNode(i), nodes.get(i)!)) atHand++
  t.is(atHand, 511, 'every node of the tree is verified')
})

test('a stream reading ahead: a window with a rotten node is left to the climbs, the windows around it are trusted', async t => {
  for (const rotten of [2 * 72, 2 * 75 + 1, 2 * 64 + 15]) { // a leaf, a parent and the top of the window of blocks 64 to 79
    const nodes = treeOf(256)
    const storage = disk(nodes)
    storage.rot(rotten, 'hash')
    const tree = open(256, nodes, storage)
    for (let b = 0; b < 64; b++) await tree.verifiedNode(2 * b) // the group before: the next one is read ahead whole
    await tree.verifiedNode(2 * 64)
    // Blocks 96 to 127: their windows' ways up do not take the rotten node.
    for (let b = 96; b < 128; b++) t.ok(same(tree.peekNode(2 * b), nodes.get(2 * b)!), `block ${b}, read ahead, verified before it is asked for`)
    const reads = storage.reads
    for (let b = 64; b < 128; b++) {
      const got = await tree.verifiedNode(2 * b)
      if (got === null) {
        // Only a leaf whose way up takes the rotten node: which of two siblings rotted, a climb cannot tell.
        const s = sibling(rotten)
        const under = (i: number): boolean => 2 * b >= leftSpan(i) && 2 * b <= rightSpan(i)
        t.ok(under(rotten) || under(s), `block ${b} unverified only beside node ${rotten}`)
        continue
      }
      t.ok(same(got, nodes.get(2 * b)!), `block ${b}`)
    }
    t.is(storage.reads, reads, `the climbs around node ${rotten} read nothing more: the group's read brought every node they take`)
    const held = tree.peekNode(rotten)
    t.ok(held === undefined || same(held, nodes.get(rotten)!), `node ${rotten}: unknown or the genuine one, never what the disk holds`)
  }
})

test('a read of one leaf, away from the windows read lately, verifies its own way up only', async t => {
  const nodes = treeOf(64)
  const tree = open(64, nodes, disk(nodes))
  t.ok(same(await tree.verifiedNode(2 * 37), nodes.get(74)!))
  t.ok(same(tree.peekNode(72), nodes.get(72)!), 'its sibling is verified with it')
  t.is(tree.peekNode(2 * 45), undefined, 'a leaf elsewhere in its window is not hashed for it')
})

test('a window with a rotten parent: leaves whose way up takes it as a sibling are not verified, the others are, the parent never is', async t => {
  for (const how of ['hash', 'size'] as const) {
    for (const rotten of [37, 43, 39, 55]) { // depths 1, 2, 3 and 3, in the window of blocks 16 to 31
      const nodes = treeOf(64)
      const storage = disk(nodes)
      storage.rot(rotten, how)
      const tree = open(64, nodes, storage)
      await tree.verifiedNode(2 * 3) // the window before, so this one is read as a stream reads it
      // A climb hashes a leaf with the stored siblings on its way up: with one of them rotten it cannot
      // tell which node is (null: repair asks peers), unless an earlier climb computed that sibling.
      const s = sibling(rotten)
      for (let b = 16; b < 32; b++) {
        const got = await tree.verifiedNode(2 * b)
        const underSibling = 2 * b >= leftSpan(s) && 2 * b <= rightSpan(s)
        if (underSibling && got === null) continue
        t.ok(same(got, nodes.get(2 * b)!), `block ${b} verified (node ${rotten}'s ${how} rotten)`)
      }
      const held = tree.peekNode(rotten)
      t.ok(held === undefined || same(held, nodes.get(rotten)!), 'the parent is unknown or the genuine one, never what the disk holds')
    }
  }
})

test('a rotten leaf in a window is not verified; the other leaves are', async t => {
  for (const how of ['hash', 'size'] as const) {
    const nodes = treeOf(64)
    const storage = disk(nodes)
    storage.rot(2 * 21, how)
    const tree = open(64, nodes, storage)
    await tree.verifiedNode(2 * 3) // the window before, so this one is read as a stream reads it
    t.is(await tree.verifiedNode(2 * 21), null, `the leaf whose ${how} rotted`)
    for (let b = 16; b < 32; b++) {
      if (b === 21) continue
      const got = await tree.verifiedNode(2 * b)
      if (b === 20 && got === null) continue // its sibling is the rotten leaf: which of the two rotted, the climb cannot tell
      t.ok(same(got, nodes.get(2 * b)!), `leaf of block ${b}`)
    }
    t.is(tree.peekNode(2 * 21), undefined, 'the rotten leaf is never at hand as verified')
  }
})

test('a window with a node lost, or not whole in the tree, is verified leaf by leaf', async t => {
  const nodes = treeOf(64)
  nodes.delete(45) // the parent of blocks 22 and 23: the sibling on the way up from blocks 20 and 21
  const tree = open(64, nodes, disk(nodes))
  await tree.verifiedNode(2 * 3) // the window before, so this one is read as a stream reads it
  t.alike(await tree.verifyNode(2 * 20), { missing: 45 }, 'a leaf whose way up lacks a sibling says which node')
  t.ok(same(await tree.verifiedNode(2 * 22) as TreeNode, nodes.get(44)!), 'a leaf under the lost node (its climb makes it)')
  t.ok(same(await tree.verifiedNode(2 * 16) as TreeNode, nodes.get(32)!), 'a leaf of the same window whose way is whole')

  const length = 40 // blocks 32 to 39: half a window, under a root of 8 blocks
  const partial = treeOf(length)
  t.is(rightSpan(fullRoots(2 * length)[1]!), 78)
  const storage = disk(partial)
  const short = open(length, partial, storage)
  for (let b = 32; b < length; b++) t.ok(same(await short.verifiedNode(2 * b) as TreeNode, partial.get(2 * b)!), `leaf of block ${b}`)
})

test('a window that agrees with itself but not with the signed tree (another fork\'s) is not trusted', async t => {
  const nodes = treeOf(64)
  const storage = disk(nodes)
  const other = treeOf(80) // other blocks: every node differs
  for (let i = 32; i <= 62; i++) storage.stored.set(i, { ...other.get(i)!, hash: b4a.from(other.get(i)!.hash) })
  const tree = open(64, nodes, storage)
  await tree.verifiedNode(2 * 3) // the window before, so this one is read as a stream reads it
  for (let b = 16; b < 32; b++) t.is(await tree.verifiedNode(2 * b), null, `block ${b}`)
  for (let i = 32; i <= 62; i++) if (tree.peekNode(i) !== undefined) t.fail(`node ${i} trusted`)
})
