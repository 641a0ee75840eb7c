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
import { fullRoots, inTree, parent, leftSpan, rightSpan } from '../../lib/flat-tree'
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

  let fd: number | null = null
  try {
    fd = fs.openSync(path.join(dir, 'tree'), 'r')
  } catch {
    fd = null // no tree file: every node is missing
  }
  try {
    const buf = Buffer.alloc(CHUNK_NODES * NODE_BYTES)
    for (let base = 0; base < total; base += CHUNK_NODES) {
      const count = Math.min(CHUNK_NODES, total - base)
      let got = 0
      if (fd !== null) {
        got = fs.readSync(fd, buf, 0, count * NODE_BYTES, base * NODE_BYTES)
      }
      for (let k = 0; k < count; k++) {
        const i = base + k
        if (!inTree(i, length)) continue
        const isRoot = rootSet.has(i)
        if (!isRoot) {
          const p = parent(i)
          if (!heldIn(leftSpan(p) / 2, rightSpan(p) / 2)) continue
        }
        expectedNodes++
        const at = k * NODE_BYTES
        let zero = true
        if (at + NODE_BYTES <= got) {
          for (let j = at; j < at + NODE_BYTES; j++) {
            if (buf[j] !== 0) { zero = false; break }
          }
        }
        if (!zero) continue
        missingNodes++
        if (isRoot) missingRoots.push(i)
        if (missing.length < 1000) missing.push(i)
      }
    }
  } finally {
    if (fd !== null) fs.closeSync(fd)
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

/** "3/3 roots present, 0 of 1999 nodes missing" */
export function describeHealth (h: TreeHealth): string {
  const roots = `${h.roots.length - h.missingRoots.length}/${h.roots.length} roots present`
  const nodes = `${h.missingNodes} of ${h.expectedNodes} expected nodes missing`
  const list = h.missing.length > 0 ? ` (${h.missing.slice(0, 8).join(', ')}${h.missingNodes > 8 ? ', …' : ''})` : ''
  return `${roots}, ${nodes}${list}`
}
