import test from 'brittle'
import fc from 'fast-check'
import * as flat from '../lib/flat-tree'
import { flatTree as ref, type FlatTreeIterator } from './helpers/oracle'

// Our lib/flat-tree.ts against the `flat-tree` package Hypercore itself uses.
// Exhaustive over small indices, property-based for large ones (up to 2^40,
// and a band just below 2^52, where doubles still represent every result).

const SMALL = 5000
const BIG = 2 ** 40
const HUGE_LO = 2 ** 52 - 2 ** 24
const HUGE_HI = 2 ** 52 - 1
const RUNS = 2000

interface Asserts {
  alike (actual: unknown, expected: unknown, message?: string): void
  pass (message?: string): void
  fail (message?: string): void
}

type Mismatch = [number, ...unknown[]]

/** Collects disagreements so one assertion covers thousands of indices. */
function agreeOn (t: Asserts, name: string, inputs: Iterable<number>, ours: (i: number) => unknown, theirs: (i: number) => unknown): void {
  const bad: Mismatch[] = []
  let n = 0
  for (const i of inputs) {
    n++
    const a = ours(i)
    const b = theirs(i)
    if (!sameValue(a, b) && bad.length < 5) bad.push([i, a, b])
  }
  t.alike(bad, [], `${name} agrees for ${n} inputs (mismatches shown as [input, ours, flat-tree])`)
}

function sameValue (a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, k) => sameValue(x, b[k]))
  return Object.is(a, b)
}

function * range (from: number, to: number, step = 1): Generator<number> {
  for (let i = from; i <= to; i += step) yield i
}

/** Runs a fast-check property, turning its counterexample report into one assertion. */
function property (t: Asserts, name: string, prop: fc.IProperty<any> | fc.IAsyncProperty<any>, numRuns = RUNS): void {
  try {
    fc.assert(prop as fc.IProperty<unknown>, { numRuns })
    t.pass(name)
  } catch (err) {
    t.fail(`${name}\n${(err as Error).message}`)
  }
}

// Arbitrary node indices. Plain random integers are mostly shallow nodes, so
// also build nodes from (depth, offset) to reach deep ones.
function nodeBelow (limit: number): fc.Arbitrary<number> {
  const byDepth = fc.integer({ min: 0, max: Math.floor(Math.log2(limit)) - 1 }).chain(d =>
    fc.integer({ min: 0, max: Math.floor((limit / 2 ** d - 1) / 2) }).map(o => (1 + 2 * o) * 2 ** d - 1))
  return fc.oneof(fc.integer({ min: 0, max: limit - 1 }), byDepth)
}
const bigNode = nodeBelow(BIG)
const hugeNode = fc.oneof(
  fc.integer({ min: HUGE_LO, max: HUGE_HI }),
  // deep nodes whose whole subtree still lies below 2^52
  fc.integer({ min: 20, max: 50 }).chain(d =>
    fc.integer({ min: Math.min(Math.ceil((HUGE_LO / 2 ** d - 1) / 2), 2 ** (51 - d) - 1), max: 2 ** (51 - d) - 1 })
      .map(o => (1 + 2 * o) * 2 ** d - 1)))
const anyNode = fc.oneof(fc.integer({ min: 0, max: SMALL }), bigNode, hugeNode)

/** Every per-index function, ours vs theirs. */
const scalar: Array<[string, (i: number) => unknown, (i: number) => unknown]> = [
  ['depth', flat.depth, ref.depth],
  ['offset', i => flat.offset(i), i => ref.offset(i)],
  ['parent', i => flat.parent(i), i => ref.parent(i)],
  ['sibling', i => flat.sibling(i), i => ref.sibling(i)],
  ['leftChild', i => flat.leftChild(i), i => ref.leftChild(i)],
  ['rightChild', i => flat.rightChild(i), i => ref.rightChild(i)],
  ['leftSpan', i => flat.leftSpan(i), i => ref.leftSpan(i)],
  ['rightSpan', i => flat.rightSpan(i), i => ref.rightSpan(i)],
  ['count', i => flat.count(i), i => ref.count(i)],
  ['countLeaves', i => flat.countLeaves(i), i => ref.countLeaves(i)],
  ['index(depth, offset)', i => flat.index(flat.depth(i), flat.offset(i)), i => ref.index(ref.depth(i), ref.offset(i))],
  // the optional depth argument, when given correctly, changes nothing
  ['offset with depth', i => flat.offset(i, flat.depth(i)), i => ref.offset(i)],
  ['parent with depth', i => flat.parent(i, flat.depth(i)), i => ref.parent(i)],
  ['sibling with depth', i => flat.sibling(i, flat.depth(i)), i => ref.sibling(i)],
  ['leftChild with depth', i => flat.leftChild(i, flat.depth(i)), i => ref.leftChild(i)],
  ['rightChild with depth', i => flat.rightChild(i, flat.depth(i)), i => ref.rightChild(i)],
  ['leftSpan with depth', i => flat.leftSpan(i, flat.depth(i)), i => ref.leftSpan(i)],
  ['rightSpan with depth', i => flat.rightSpan(i, flat.depth(i)), i => ref.rightSpan(i)],
  ['count with depth', i => flat.count(i, flat.depth(i)), i => ref.count(i)]
]

test('every index function agrees with flat-tree for all indices 0..5000', (t) => {
  for (const [name, ours, theirs] of scalar) agreeOn(t, name, range(0, SMALL), ours, theirs)
})

test('index(depth, offset) agrees with flat-tree for every depth 0..12 and offset 0..400', (t) => {
  const bad: Mismatch[] = []
  for (let d = 0; d <= 12; d++) {
    for (let o = 0; o <= 400; o++) {
      const a = flat.index(d, o)
      const b = ref.index(d, o)
      if (a !== b && bad.length < 5) bad.push([d, o, a, b])
      // and it inverts depth/offset
      if ((flat.depth(a) !== d || flat.offset(a) !== o) && bad.length < 5) bad.push([d, o, 'not inverted'])
    }
  }
  t.alike(bad, [])
})

test('every index function agrees with flat-tree for random indices up to 2^40', (t) => {
  for (const [name, ours, theirs] of scalar) {
    property(t, `${name} (< 2^40)`, fc.property(bigNode, i => sameValue(ours(i), theirs(i))))
  }
})

test('every index function agrees with flat-tree just below 2^52', (t) => {
  for (const [name, ours, theirs] of scalar) {
    property(t, `${name} (near 2^52)`, fc.property(hugeNode, i => sameValue(ours(i), theirs(i))), 500)
  }
})

test('index(depth, offset) agrees with flat-tree for large depths and offsets', (t) => {
  const arb = fc.integer({ min: 0, max: 51 }).chain(d =>
    fc.tuple(fc.constant(d), fc.integer({ min: 0, max: Math.max(0, Math.floor((2 ** 52 / 2 ** d - 1) / 2)) })))
  property(t, 'index', fc.property(arb, ([d, o]) => {
    const i = flat.index(d, o)
    return i === ref.index(d, o) && flat.depth(i) === d && flat.offset(i) === o
  }))
})

test('fullRoots agrees with flat-tree for every length 0..5000', (t) => {
  agreeOn(t, 'fullRoots', range(0, 2 * SMALL, 2), i => flat.fullRoots(i), i => ref.fullRoots(i))
})

test('fullRoots agrees with flat-tree for random lengths up to 2^40 and near 2^51', (t) => {
  const head = fc.oneof(fc.integer({ min: 0, max: BIG / 2 }), fc.integer({ min: 2 ** 51 - 2 ** 30, max: 2 ** 51 - 1 })).map(n => 2 * n)
  property(t, 'fullRoots', fc.property(head, h => sameValue(flat.fullRoots(h), ref.fullRoots(h))))
})

test('fullRoots rejects an odd (non-leaf) index like flat-tree does', async (t) => {
  for (const i of [1, 3, 7, 2 ** 40 + 1]) {
    await t.exception.all(() => flat.fullRoots(i), RangeError, `ours throws for ${i}`)
    await t.exception.all(() => ref.fullRoots(i), undefined, `flat-tree throws for ${i}`)
  }
})

// contains / inTree have no direct flat-tree counterpart: check them against
// the flat-tree spans and against an independent ancestor walk.
function isAncestorOrSelf (root: number, i: number): boolean {
  const rd = ref.depth(root)
  while (ref.depth(i) < rd) i = ref.parent(i)
  return i === root
}

test('contains(root, i) holds exactly when i is root or below it, for all root, i < 1024', (t) => {
  const bad: Mismatch[] = []
  for (let root = 0; root < 1024; root++) {
    for (let i = 0; i < 1024; i++) {
      const a = flat.contains(root, i)
      const b = isAncestorOrSelf(root, i)
      if (a !== b && bad.length < 5) bad.push([root, i, a, b])
    }
  }
  t.alike(bad, [])
})

test('contains(root, i) matches the flat-tree spans and iterator for large indices', (t) => {
  const pair = fc.oneof(
    fc.tuple(anyNode, anyNode),
    // i inside or near root's span
    anyNode.chain(root => fc.tuple(fc.constant(root),
      fc.integer({ min: Math.max(0, ref.leftSpan(root) - 3), max: Math.min(HUGE_HI, ref.rightSpan(root) + 3) }))))
  property(t, 'contains vs spans', fc.property(pair, ([root, i]) =>
    flat.contains(root, i) === (i >= ref.leftSpan(root) && i <= ref.rightSpan(root)) &&
    flat.contains(root, i) === ref.iterator(root).contains(i)))
  property(t, 'contains vs ancestor walk', fc.property(pair, ([root, i]) => flat.contains(root, i) === isAncestorOrSelf(root, i)), 500)
})

test('inTree(i, length) holds exactly when every leaf below i is before length', (t) => {
  const bad: Mismatch[] = []
  for (let i = 0; i <= 2048; i++) {
    for (let length = 0; length <= 1100; length++) {
      const a = flat.inTree(i, length)
      const b = ref.rightSpan(i) / 2 < length
      if (a !== b && bad.length < 5) bad.push([i, length, a, b])
    }
  }
  t.alike(bad, [])
  property(t, 'inTree large', fc.property(anyNode, fc.integer({ min: 0, max: 2 ** 51 }), (i, length) =>
    flat.inTree(i, length) === (ref.rightSpan(i) / 2 < length)))
})

test('fullRoots are exactly the full-tree roots (children in tree, parent not) for every length 0..600', (t) => {
  const bad: Mismatch[] = []
  for (let length = 0; length <= 600; length++) {
    const roots = new Set(flat.fullRoots(2 * length))
    for (let i = 0; i < 4 * length; i++) {
      const isRoot = flat.inTree(i, length) && !flat.inTree(flat.parent(i), length)
      if (isRoot !== roots.has(i) && bad.length < 5) bad.push([length, i, roots.has(i), isRoot])
    }
  }
  t.alike(bad, [])
})

// ---------------------------------------------------------------------------
// Iterator
// ---------------------------------------------------------------------------

interface State { index: number, offset: number, factor: number }

function state (ite: State): State {
  return { index: ite.index, offset: ite.offset, factor: ite.factor }
}

test('a new Iterator(i) has the same state as flat-tree.iterator(i) for all i 0..5000', (t) => {
  agreeOn(t, 'new Iterator', range(0, SMALL), i => Object.values(state(new flat.Iterator(i))), i => Object.values(state(ref.iterator(i))))
  agreeOn(t, 'seek', range(0, SMALL), i => {
    const it = new flat.Iterator(17)
    it.seek(i)
    return Object.values(state(it))
  }, i => {
    const it = ref.iterator(17)
    it.seek(i)
    return Object.values(state(it))
  })
  t.alike(state(new flat.Iterator()), state(ref.iterator()), 'default start is node 0')
})

test('seek returns the index it moved to', (t) => {
  const it = new flat.Iterator()
  t.is(it.seek(41), 41)
  t.is(it.index, 41)
})

// One step of a walk. `ours` returns what our iterator returns; `theirs`
// the flat-tree equivalent. Span peeks: our leftSpan()/rightSpan() only
// report the span leaf (flat-tree's peekLeftSpan/peekRightSpan); flat-tree's
// leftSpan()/rightSpan() also move the cursor there.
type Move =
  | { op: 'prev' | 'next' | 'sibling' | 'parent' | 'leftChild' | 'rightChild' | 'nextTree' | 'leftSpan' | 'rightSpan' | 'isLeft' | 'isRight' | 'countLeaves' }
  | { op: 'seek', to: number }
  | { op: 'contains', delta: number }
  | { op: 'fullRoot', delta: number }

const moveArb: fc.Arbitrary<Move> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('prev', 'next', 'sibling', 'nextTree', 'leftSpan', 'rightSpan', 'isLeft', 'isRight', 'countLeaves').map(op => ({ op }) as Move) },
  { weight: 4, arbitrary: fc.constantFrom('parent', 'leftChild', 'rightChild').map(op => ({ op }) as Move) },
  { weight: 1, arbitrary: anyNode.map(to => ({ op: 'seek', to }) as Move) },
  { weight: 1, arbitrary: fc.integer({ min: -70, max: 70 }).map(delta => ({ op: 'contains', delta }) as Move) },
  { weight: 1, arbitrary: fc.integer({ min: -4, max: 5000 }).map(delta => ({ op: 'fullRoot', delta }) as Move) }
)

const LIMIT = 2 ** 52

/** Applies a move to both iterators; null if the move would leave safe-integer land. */
function step (ours: flat.Iterator, theirs: FlatTreeIterator, m: Move): [unknown, unknown] | null {
  switch (m.op) {
    case 'parent':
      if (theirs.index + theirs.factor >= LIMIT) return null
      return [ours.parent(), theirs.parent()]
    case 'next':
    case 'sibling':
    case 'nextTree':
      if (theirs.index + 2 * theirs.factor >= LIMIT) return null
      return [ours[m.op](), theirs[m.op]()]
    case 'prev': return [ours.prev(), theirs.prev()]
    case 'leftChild': return [ours.leftChild(), theirs.leftChild()]
    case 'rightChild': return [ours.rightChild(), theirs.rightChild()]
    case 'leftSpan': return [ours.leftSpan(), theirs.peekLeftSpan()]
    case 'rightSpan': return [ours.rightSpan(), theirs.peekRightSpan()]
    case 'isLeft': return [ours.isLeft(), theirs.isLeft()]
    case 'isRight': return [ours.isRight(), theirs.isRight()]
    case 'countLeaves': return [ours.countLeaves(), theirs.countLeaves()]
    case 'seek':
      ours.seek(m.to)
      theirs.seek(m.to)
      return [m.to, m.to]
    case 'contains': {
      const x = Math.max(0, theirs.index + m.delta * Math.max(1, Math.floor(theirs.factor / 64)))
      return [ours.contains(x), theirs.contains(x)]
    }
    case 'fullRoot': {
      // heads are even; negative deltas exercise the "head <= index" refusal
      const head = theirs.index + 2 * m.delta
      if (head < 0 || head + 4 * theirs.factor >= LIMIT) return null
      return [ours.fullRoot(head), theirs.fullRoot(head)]
    }
  }
}

function walk (start: number, moves: Move[]): string | null {
  const ours = new flat.Iterator(start)
  const theirs = ref.iterator(start)
  for (let k = 0; k < moves.length; k++) {
    const m = moves[k]!
    const before = state(theirs)
    const r = step(ours, theirs, m)
    if (r === null) continue
    const [a, b] = r
    if (!Object.is(a, b)) return `step ${k} ${JSON.stringify(m)} from ${JSON.stringify(before)}: ours returned ${String(a)}, flat-tree ${String(b)}`
    if (!sameValue(Object.values(state(ours)), Object.values(state(theirs)))) {
      return `step ${k} ${JSON.stringify(m)} from ${JSON.stringify(before)}: ours at ${JSON.stringify(state(ours))}, flat-tree at ${JSON.stringify(state(theirs))}`
    }
  }
  return null
}

test('every single iterator move agrees with flat-tree from every node 0..5000', (t) => {
  const single: Move[] = [
    { op: 'prev' }, { op: 'next' }, { op: 'sibling' }, { op: 'parent' }, { op: 'leftChild' }, { op: 'rightChild' },
    { op: 'nextTree' }, { op: 'leftSpan' }, { op: 'rightSpan' }, { op: 'isLeft' }, { op: 'isRight' }, { op: 'countLeaves' },
    { op: 'contains', delta: -1 }, { op: 'contains', delta: 0 }, { op: 'contains', delta: 1 },
    { op: 'fullRoot', delta: 0 }, { op: 'fullRoot', delta: 1 }, { op: 'fullRoot', delta: 7 }, { op: 'fullRoot', delta: 100 }
  ]
  for (const m of single) {
    const bad: string[] = []
    for (let i = 0; i <= SMALL; i++) {
      const err = walk(i, [m])
      if (err !== null && bad.length < 3) bad.push(`from ${i}: ${err}`)
    }
    t.alike(bad, [], `${m.op}${'delta' in m ? `(${m.delta})` : ''}`)
  }
})

test('iterator contains(x) agrees with flat-tree for every node and x in 0..300', (t) => {
  const bad: Mismatch[] = []
  for (let i = 0; i <= 300; i++) {
    const ours = new flat.Iterator(i)
    const theirs = ref.iterator(i)
    for (let x = 0; x <= 300; x++) {
      if (ours.contains(x) !== theirs.contains(x) && bad.length < 5) bad.push([i, x, ours.contains(x), theirs.contains(x)])
    }
  }
  t.alike(bad, [])
})

test('random iterator walks agree with flat-tree step by step', (t) => {
  const walkArb = fc.tuple(anyNode, fc.array(moveArb, { minLength: 1, maxLength: 60 }))
  property(t, 'walks', fc.property(walkArb, ([start, moves]) => {
    const err = walk(start, moves)
    if (err !== null) throw new Error(err)
    return true
  }), 3000)
})

test('random iterator walks from small nodes agree with flat-tree step by step', (t) => {
  const walkArb = fc.tuple(fc.integer({ min: 0, max: 64 }), fc.array(moveArb, { minLength: 1, maxLength: 100 }))
  property(t, 'small walks', fc.property(walkArb, ([start, moves]) => {
    const err = walk(start, moves)
    if (err !== null) throw new Error(err)
    return true
  }), 3000)
})

test('iterator leftSpan()/rightSpan() report the span leaves without moving (flat-tree moves there)', (t) => {
  property(t, 'spans', fc.property(anyNode, i => {
    const ours = new flat.Iterator(i)
    const l = ours.leftSpan()
    const r = ours.rightSpan()
    const movedL = ref.iterator(i)
    const movedR = ref.iterator(i)
    return ours.index === i && // ours stays put
      l === flat.leftSpan(i) && r === flat.rightSpan(i) &&
      l === movedL.leftSpan() && r === movedR.rightSpan() && // same value flat-tree moves to
      movedL.index === l && movedR.index === r
  }))
})

test('walking fullRoot/nextTree from leaf 0 visits exactly the fullRoots, as in flat-tree', (t) => {
  function viaOurs (head: number): number[] {
    const out: number[] = []
    for (const ite = new flat.Iterator(0); ite.fullRoot(head); ite.nextTree()) out.push(ite.index)
    return out
  }
  function viaTheirs (head: number): number[] {
    const out: number[] = []
    for (const ite = ref.iterator(0); ite.fullRoot(head); ite.nextTree()) out.push(ite.index)
    return out
  }
  agreeOn(t, 'fullRoot walk (small)', range(0, 2 * SMALL, 2), viaOurs, viaTheirs)
  agreeOn(t, 'fullRoot walk = fullRoots (small)', range(0, 2 * SMALL, 2), viaOurs, h => ref.fullRoots(h))
  const head = fc.oneof(fc.integer({ min: 0, max: BIG / 2 }), fc.integer({ min: 2 ** 50, max: 2 ** 51 - 1 })).map(n => 2 * n)
  property(t, 'fullRoot walk (large)', fc.property(head, h =>
    sameValue(viaOurs(h), viaTheirs(h)) && sameValue(viaOurs(h), flat.fullRoots(h))))
})

test('iterator fullRoot refuses non-leaf positions and heads at or before the cursor', (t) => {
  const ours = new flat.Iterator(3)
  const theirs = ref.iterator(3)
  t.is(ours.fullRoot(100), theirs.fullRoot(100), 'odd index: both refuse')
  t.is(ours.fullRoot(100), false)
  ours.seek(10)
  theirs.seek(10)
  t.is(ours.fullRoot(10), false, 'head equal to index')
  t.is(theirs.fullRoot(10), false)
  t.is(ours.fullRoot(4), false, 'head before index')
  t.is(ours.fullRoot(12), true, 'one leaf left: stays a leaf')
  t.is(ours.index, 10)
})

// Inputs where flat-tree's answer is not meaningful: document ours.
test('leaf children and the first node\'s prev are no-ops', (t) => {
  t.is(flat.leftChild(6), -1, 'leftChild of a leaf is -1 (as flat-tree)')
  t.is(flat.rightChild(6), -1, 'rightChild of a leaf is -1 (as flat-tree)')
  const it = new flat.Iterator(6)
  t.is(it.leftChild(), 6, 'iterator leftChild on a leaf stays')
  t.is(it.rightChild(), 6, 'iterator rightChild on a leaf stays')
  it.seek(7)
  t.is(it.prev(), 7, 'prev at offset 0 stays')
  t.alike(state(it), state(ref.iterator(7)))
})

test('an explicit depth of 0 is taken literally (flat-tree recomputes it)', (t) => {
  // flat-tree treats a falsy depth as "unknown"; ours only defaults on undefined.
  // Passing 0 for an odd index is a caller error; leaves are unaffected.
  t.is(flat.parent(4, 0), ref.parent(4, 0), 'leaf with depth 0: same')
  t.is(ref.parent(5, 0), 3, 'flat-tree recomputes depth for parent(5, 0)')
  t.not(flat.parent(5, 0), 3, 'ours uses depth 0 as given')
})
