/**
 * The verified tree-node cache: sized by the core's length, it keeps every
 * node of a tree of up to 131,072 blocks (so a writer serving such a core
 * to one reader after another never reads its tree from disk again), and
 * no more than that however long the core grows.
 */
import test from 'brittle'
import { NodeCache, VERIFIED, STORED, slotsFor } from '../lib/node-cache'
import type { TreeNode } from '../lib/tree-node'

function nodeAt (index: number): TreeNode {
  const hash = new Uint8Array(32)
  new DataView(hash.buffer).setUint32(0, index)
  return { index, size: index + 1, hash }
}

/** How many of the nodes of a `blocks`-block tree the cache still holds after all were put in, in order. */
function kept (cache: NodeCache, blocks: number): number {
  const nodes = 2 * blocks - 1
  for (let i = 0; i < nodes; i++) cache.set(nodeAt(i), VERIFIED)
  let held = 0
  for (let i = 0; i < nodes; i++) {
    const node = cache.get(i, VERIFIED)
    if (node !== undefined && node.size === i + 1 && node.hash[3] === (i & 0xff)) held++
  }
  return held
}

test('a cache sized for 131,072 blocks keeps every node of that tree', (t) => {
  const blocks = 131_072
  t.is(kept(new NodeCache(blocks), blocks), 2 * blocks - 1)
})

test('a cache grown to fit a 131,072-block tree keeps every node of it', (t) => {
  const cache = new NodeCache(16)
  cache.fit(131_072)
  t.is(kept(cache, 131_072), 2 * 131_072 - 1)
})

test('a longer core does not grow the cache past its bound: the tree of twice as many blocks wraps', (t) => {
  const blocks = 262_144
  const held = kept(new NodeCache(blocks), blocks)
  t.ok(held < 2 * blocks - 1, `${held} of ${2 * blocks - 1} nodes held`)
  // The low table's bound (262,144 slots) plus the high table, which covers such a tree.
  t.ok(held <= 262_144 + blocks / 8, `${held} held`)
})

test('a cache that starts small keeps what it holds as it grows with its tree', (t) => {
  const cache = new NodeCache(1)
  let put = 0
  for (const length of [1, 8, 9, 100, 1000, 5000]) {
    cache.fit(length)
    for (; put < 2 * length - 1; put++) cache.set(nodeAt(put), VERIFIED)
  }
  let held = 0
  for (let i = 0; i < put; i++) {
    const node = cache.get(i, VERIFIED)
    if (node !== undefined && node.size === i + 1 && node.hash[3] === (i & 0xff)) held++
  }
  t.is(held, 2 * 5000 - 1, 'every node put in before and after each growth')
})

test('slots are powers of two within the bound given', (t) => {
  t.is(slotsFor(0, 1 << 18), 16)
  t.is(slotsFor(20, 1 << 18), 32)
  t.is(slotsFor(3000, 1 << 18), 4096)
  t.is(slotsFor(262_144, 1 << 18), 262_144)
  t.is(slotsFor(1_000_000, 1 << 18), 262_144)
  t.is(slotsFor(1_000_000, 1 << 16), 65_536)
})

test('a stored node is not taken for a verified one', (t) => {
  const cache = new NodeCache(1024)
  cache.set(nodeAt(10), STORED)
  t.is(cache.get(10, VERIFIED), undefined)
  t.ok(cache.has(10, STORED))
})
