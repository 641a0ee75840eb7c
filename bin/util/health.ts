/**
 * Tree health as it is on disk: which roots are there and how many nodes the
 * core ought to hold are missing. Reads the tree file directly (node i at
 * byte 40·i, 40 zero bytes = missing) and never writes.
 *
 * A node "ought to be held" when it is a root, or when its parent covers a
 * block this core holds (a sparse clone lacks the rest by design) — the same
 * rule the replicator uses to decide a lost node is worth fetching.
 */
import * as fs from 'fs'
import * as path from 'path'
import { fullRoots, inTree, parent, sibling, leftSpan, rightSpan } from '../../lib/flat-tree'
import type { Hypercore } from '../../lib/hypercore'

const NODE_BYTES = 40
const CHUNK_NODES = 1 << 16

export interface TreeHealth {
  length: number
  /** Blocks held locally. */
  blocks: number
  roots: number[]
  missingRoots: number[]
  /** Nodes this core ought to hold. */
  expectedNodes: number
  /** How many of them are missing on disk. */
  missingNodes: number
  /** The first missing ones (up to 1000), roots included. */
  missing: number[]
  healthy: boolean
}

/** Which blocks are held: a prefix count, so "any held in [a, b]" is O(1). */
async function heldPrefix (core: Hypercore, length: number): Promise<{ prefix: Uint32Array, blocks: number }> {
  const prefix = new Uint32Array(length + 1)
  let n = 0
  for (let i = 0; i < length; i++) {
    if (await core.has(i)) n++
    prefix[i + 1] = n
  }
  return { prefix, blocks: n }
}

/**
 * Which of the tree nodes [0, total) are on disk (not all zero), as a bitset.
 * No tree file means none are.
 */
export function nodesPresent (dir: string, total: number): Uint8Array {
  const present = new Uint8Array(Math.ceil(total / 8))
  let fd: number | null = null
  try {
    fd = fs.openSync(path.join(dir, 'tree'), 'r')
  } catch {
    return present
  }
  try {
    const buf = Buffer.alloc(CHUNK_NODES * NODE_BYTES)
    for (let base = 0; base < total; base += CHUNK_NODES) {
      const count = Math.min(CHUNK_NODES, total - base)
      const got = fs.readSync(fd, buf, 0, count * NODE_BYTES, base * NODE_BYTES)
      for (let k = 0; k < count && (k + 1) * NODE_BYTES <= got; k++) {
        const at = k * NODE_BYTES
        for (let j = at; j < at + NODE_BYTES; j++) {
          if (buf[j] !== 0) {
            const i = base + k
            present[i >> 3]! |= 1 << (i & 7)
            break
          }
        }
      }
    }
  } finally {
    fs.closeSync(fd)
  }
  return present
}

function isPresent (present: Uint8Array, i: number): boolean {
  return (present[i >> 3]! & (1 << (i & 7))) !== 0
}

export async function treeHealth (core: Hypercore, dir: string): Promise<TreeHealth> {
  const length = core.length
  const roots = fullRoots(2 * length)
  const rootSet = new Set(roots)
  const { prefix, blocks } = await heldPrefix(core, length)
  const heldIn = (first: number, last: number): boolean => {
    const a = Math.max(0, first)
    const b = Math.min(length - 1, last)
    return b >= a && prefix[b + 1]! - prefix[a]! > 0
  }

  const missing: number[] = []
  const missingRoots: number[] = []
  let missingNodes = 0
  let expectedNodes = 0
  const total = length === 0 ? 0 : 2 * length - 1
  const present = nodesPresent(dir, total)
  for (let i = 0; i < total; i++) {
    if (!inTree(i, length)) continue
    const isRoot = rootSet.has(i)
    if (!isRoot) {
      const p = parent(i)
      if (!heldIn(leftSpan(p) / 2, rightSpan(p) / 2)) continue
    }
    expectedNodes++
    if (isPresent(present, i)) continue
    missingNodes++
    if (isRoot) missingRoots.push(i)
    if (missing.length < 1000) missing.push(i)
  }
  return {
    length,
    blocks,
    roots,
    missingRoots,
    expectedNodes,
    missingNodes,
    missing,
    healthy: missingNodes === 0 && !core.repairMode
  }
}

/**
 * Held blocks whose proof needs no missing node: every sibling on the way
 * from the block's leaf up to its root is on disk. The most a core in repair
 * mode can serve, and only to a peer that already knows its signed length.
 */
export async function servableBlocks (core: Hypercore, dir: string): Promise<number> {
  const length = core.length
  if (length === 0) return 0
  const roots = new Set(fullRoots(2 * length))
  const present = nodesPresent(dir, 2 * length - 1)
  let n = 0
  for (let b = 0; b < length; b++) {
    if (!(await core.has(b))) continue
    let node = 2 * b
    let ok = isPresent(present, node)
    while (ok && !roots.has(node)) {
      ok = isPresent(present, sibling(node))
      node = parent(node)
    }
    if (ok) n++
  }
  return n
}

/** "3/3 roots present, 0 of 1999 nodes missing" */
export function describeHealth (h: TreeHealth): string {
  const roots = `${h.roots.length - h.missingRoots.length}/${h.roots.length} roots present`
  const nodes = `${h.missingNodes} of ${h.expectedNodes} expected nodes missing`
  const list = h.missing.length > 0 ? ` (${h.missing.slice(0, 8).join(', ')}${h.missingNodes > 8 ? ', …' : ''})` : ''
  return `${roots}, ${nodes}${list}`
}
