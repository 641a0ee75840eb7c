/**
 * What to do with a core the destination already holds. Nothing the
 * destination holds is ever lost: an import replaces a destination copy only
 * when the source holds everything it does (and more), and leaves it alone
 * when it holds everything the source does. When each holds something the
 * other lacks, the core is reported, not touched.
 */
import b4a from 'b4a'
import type { Bitfield } from '../bitfield'
import type { UserDataEntry } from '../storage'

/** One side's state of a core, as far as the decision needs it. */
export interface CoreState {
  fork: number
  length: number
  /** Blocks held, below `length`. */
  held: Bitfield
  userData: UserDataEntry[]
}

export type Decision =
  /** The destination already holds everything the source has: nothing to import. */
  | { action: 'keep' }
  /**
   * The destination copy is older: import, and replace it once the source
   * verified. With `prefix` set, only if the destination's tree at that
   * length is part of the source's (its roots are nodes of the new tree).
   */
  | { action: 'replace', prefix: number | null }
  /** Keep, but only if the source's tree at `prefix` is part of the destination's. */
  | { action: 'keep-if-prefix', prefix: number }
  | { action: 'conflict', why: string }

/**
 * Compares the source and destination states of one core. Trees of the same
 * fork and length are assumed equal only after the caller has compared their
 * tree hashes (`sameTree`); shorter ones are checked by their roots.
 */
export function decide (src: CoreState, dst: CoreState, sameTree: boolean | null): Decision {
  if (src.fork !== dst.fork) {
    return { action: 'conflict', why: `the destination holds fork ${dst.fork} of this core, the source fork ${src.fork}` }
  }
  const srcInDst = isSubset(src.held, dst.held) && userDataSubset(src.userData, dst.userData)
  const dstInSrc = isSubset(dst.held, src.held) && userDataSubset(dst.userData, src.userData)
  if (src.length === dst.length) {
    if (sameTree === false) return { action: 'conflict', why: `the destination holds a different tree at length ${dst.length}` }
    if (srcInDst) return { action: 'keep' }
    if (dstInSrc) return { action: 'replace', prefix: null }
    return both(src, dst)
  }
  if (dst.length < src.length) {
    return dstInSrc ? { action: 'replace', prefix: dst.length } : both(src, dst)
  }
  return srcInDst ? { action: 'keep-if-prefix', prefix: src.length } : both(src, dst)
}

/** Each side holds something the other lacks: say what. */
function both (src: CoreState, dst: CoreState): Decision {
  const what: string[] = []
  if (!isSubset(dst.held, src.held)) what.push('blocks')
  if (!userDataSubset(dst.userData, src.userData)) {
    const byKey = new Map(src.userData.map(e => [e.key, e.value]))
    const changed = dst.userData.filter(e => byKey.has(e.key) && !b4a.equals(byKey.get(e.key)!, e.value)).map(e => e.key)
    what.push(changed.length > 0 ? `other values of user data ${changed.map(k => `'${k}'`).join(', ')}` : 'user data')
  }
  return {
    action: 'conflict',
    why: `the destination copy (length ${dst.length}) holds ${what.join(' and ')} the source does not, and the source holds what it does not: left as it is`
  }
}

/** Whether every bit set in `a` is set in `b`. */
export function isSubset (a: Bitfield, b: Bitfield): boolean {
  const last = a.lastSet()
  const WORDS = 1024
  for (let start = 0; start <= last; start += WORDS * 32) {
    const wa = a.words(start, WORDS)
    const wb = b.words(start, WORDS)
    for (let k = 0; k < WORDS; k++) if ((wa[k]! & ~wb[k]!) !== 0) return false
  }
  return true
}

/** Whether every entry of `a` is in `b` with the same value. */
export function userDataSubset (a: UserDataEntry[], b: UserDataEntry[]): boolean {
  const byKey = new Map(b.map(e => [e.key, e.value]))
  return a.every(e => {
    const v = byKey.get(e.key)
    return v !== undefined && b4a.equals(v, e.value)
  })
}
