/**
 * Flat-tree index arithmetic. Leaves (blocks) sit at even indices, parents at
 * odd ones: block i is node 2i and a node at depth d covers 2^d blocks. The
 * whole tree shape follows from the index, so nothing about shape is stored.
 *
 * Indices stay below 2^53, so `& 1` (exact on the low bit) is safe but shifts
 * are not: powers of two go through `pow2`.
 */

function pow2 (n: number): number {
  return n < 31 ? 1 << n : 2 ** n
}

/** Number of trailing one-bits: 0 for leaves. */
export function depth (index: number): number {
  let d = 0
  let i = index + 1
  while (i % 2 === 0) {
    d++
    i /= 2
  }
  return d
}

/** Position of `index` among the nodes of its depth. */
export function offset (index: number, d: number = depth(index)): number {
  if ((index & 1) === 0) return index / 2
  return ((index + 1) / pow2(d) - 1) / 2
}

/** The node at `depth` and `offset`. */
export function index (d: number, off: number): number {
  return (1 + 2 * off) * pow2(d) - 1
}

export function parent (i: number, d: number = depth(i)): number {
  return index(d + 1, Math.floor(offset(i, d) / 2))
}

export function sibling (i: number, d: number = depth(i)): number {
  const o = offset(i, d)
  return index(d, (o & 1) === 1 ? o - 1 : o + 1)
}

/** Left child, or -1 for a leaf. */
export function leftChild (i: number, d: number = depth(i)): number {
  if ((i & 1) === 0) return -1
  return index(d - 1, offset(i, d) * 2)
}

/** Right child, or -1 for a leaf. */
export function rightChild (i: number, d: number = depth(i)): number {
  if ((i & 1) === 0) return -1
  return index(d - 1, offset(i, d) * 2 + 1)
}

/** Leftmost leaf below `i`. */
export function leftSpan (i: number, d: number = depth(i)): number {
  if ((i & 1) === 0) return i
  return offset(i, d) * pow2(d + 1)
}

/** Rightmost leaf below `i`. */
export function rightSpan (i: number, d: number = depth(i)): number {
  if ((i & 1) === 0) return i
  return (offset(i, d) + 1) * pow2(d + 1) - 2
}

/** Number of nodes in the subtree rooted at `i`. */
export function count (i: number, d: number = depth(i)): number {
  return pow2(d + 1) - 1
}

/** Number of leaves (blocks) below `i`. */
export function countLeaves (i: number): number {
  return pow2(depth(i))
}

/**
 * Roots of the complete subtrees that together cover the leaves before leaf
 * index `head` (= 2 · length), left to right.
 */
export function fullRoots (head: number): number[] {
  if ((head & 1) === 1) throw new RangeError('fullRoots takes a leaf index')
  const roots: number[] = []
  let remaining = head / 2
  let start = 0
  while (remaining > 0) {
    let factor = 1
    while (factor * 2 <= remaining) factor *= 2
    roots.push(start + factor - 1)
    start += 2 * factor
    remaining -= factor
  }
  return roots
}

/** Whether the subtree at `root` contains node `i`. */
export function contains (root: number, i: number): boolean {
  return i >= leftSpan(root) && i <= rightSpan(root)
}

/** Whether node `i` is fully inside a tree of `length` blocks. */
export function inTree (i: number, length: number): boolean {
  return rightSpan(i) < 2 * length
}

/**
 * A cursor that walks the tree without recomputing depth on every step.
 * `factor` is twice the number of leaves below the current node.
 */
export class Iterator {
  index = 0
  offset = 0
  factor = 2

  /**
   * One iterator that lives as long as the class. V8 drops the hidden class
   * of a class's instances when none is alive at a full collection, and
   * with it the optimised code of every function that used them. Iterators
   * live for one call, so each full collection between two downloads sent
   * every tree walk (proof checks, node climbs, proof sizing) back to the
   * interpreter.
   */
  static readonly #shape = new Iterator()

  constructor (i = 0) {
    this.seek(i)
  }

  seek (i: number): number {
    this.index = i
    if ((i & 1) === 1) {
      const d = depth(i)
      this.offset = offset(i, d)
      this.factor = pow2(d + 1)
    } else {
      this.offset = i / 2
      this.factor = 2
    }
    return i
  }

  isLeft (): boolean {
    return (this.offset & 1) === 0
  }

  isRight (): boolean {
    return (this.offset & 1) === 1
  }

  contains (i: number): boolean {
    const half = this.factor / 2
    return i > this.index - half && i < this.index + half
  }

  countLeaves (): number {
    return this.factor / 2
  }

  prev (): number {
    if (this.offset === 0) return this.index
    this.offset--
    this.index -= this.factor
    return this.index
  }

  next (): number {
    this.offset++
    this.index += this.factor
    return this.index
  }

  sibling (): number {
    return this.isLeft() ? this.next() : this.prev()
  }

  parent (): number {
    if ((this.offset & 1) === 1) {
      this.index -= this.factor / 2
      this.offset = (this.offset - 1) / 2
    } else {
      this.index += this.factor / 2
      this.offset /= 2
    }
    this.factor *= 2
    return this.index
  }

  leftChild (): number {
    if (this.factor === 2) return this.index
    this.factor /= 2
    this.index -= this.factor / 2
    this.offset *= 2
    return this.index
  }

  rightChild (): number {
    if (this.factor === 2) return this.index
    this.factor /= 2
    this.index += this.factor / 2
    this.offset = 2 * this.offset + 1
    return this.index
  }

  leftSpan (): number {
    return this.index - this.factor / 2 + 1
  }

  rightSpan (): number {
    return this.index + this.factor / 2 - 1
  }

  /** Move to the leaf right after the current subtree. */
  nextTree (): number {
    return this.seek(this.index + this.factor / 2 + 1)
  }

  /**
   * Grow the current leaf into the largest complete subtree that ends before
   * leaf index `head`; false when there is no such subtree left.
   */
  fullRoot (head: number): boolean {
    if (head <= this.index || (this.index & 1) === 1) return false
    while (head > this.index + this.factor + this.factor / 2) {
      this.index += this.factor / 2
      this.factor *= 2
      this.offset /= 2
    }
    return true
  }
}
