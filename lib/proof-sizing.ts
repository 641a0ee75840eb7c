/**
 * How many tree nodes to ask for with a block. A proof must reach a node we
 * hold; while a download runs hundreds of requests deep, the answers ahead
 * of a block's will have brought most of its way up, so asking for all we
 * lack now would fetch the same nodes many times over. Apart from the
 * scheduler because it is a policy of its own, with its own memory (blocks
 * whose sized proof came short) and its own per-peer trust (`Peer`'s
 * `sized*`/`shortProofs` counters).
 */
import { Iterator } from './flat-tree'
import type { MerkleTree } from './merkle-tree'
import type { Peer } from './peer'

/** One block in this many is still sized for a peer asked in full. */
const PROBE = 16

/** Blocks remembered as needing a full proof (then forgotten). */
const MAX_FULL_PROOFS = 4096

export class ProofSizing {
  /** Blocks whose sized proof came short: asked for again with every node we lack. */
  readonly #full = new Set<number>()

  /**
   * At most how many nodes to ask `peer` for with block `index` (we ask for
   * fewer when we lack fewer). A peer answers in order, so by the time this
   * block's answer comes, the answer for the block last asked of the same
   * peer has made its way up known (a verified leaf's ancestors are
   * verified): the child on its side of the node where the two ways meet.
   * And the other child, on this block's way, with it: a node is only ever
   * verified along with its sibling (a proof brings the sibling of each node
   * it climbs through, and a climb stops only at a node held already). So
   * the proof need only climb to that child, one level short of where the
   * ways meet. A download block after block then asks one node a block on
   * average, the fewest there are (each right-hand node of the tree once);
   * climbing to the meeting node itself takes two, and is what a peer whose
   * answers ever came short is asked. Infinity when no earlier answer is to
   * be counted on. An answer that overtakes the one it leans on (Hypercore
   * 11 writers answer out of order now and then) waits for it
   * (`ParkedAnswers`); one that comes short anyway (the earlier one failed,
   * the node left memory) is asked again in full (`short`); a peer whose
   * answers come short often is asked in full from then on, but for one
   * block in PROBE.
   */
  nodes (peer: Peer, index: number): number {
    const last = peer.lastBlockAsked
    if (last === -1 || last === index || (this.#full.size > 0 && this.#full.has(index))) return Infinity
    if (peer.shortProofs > 16 && peer.shortProofs * 8 > peer.sizedProofs) {
      // A peer whose answers come short often is asked in full, all but one
      // block in PROBE: those sized still, so a peer whose short answers came
      // in a burst (a Hypercore 11 writer's first answers, out of order while
      // it warms up) earns its sized proofs back as the probes come in whole.
      peer.fullAsked++
      if (peer.fullAsked % PROBE !== 0) return Infinity
    }
    // Levels up to the node where the two ways meet (at least one: the blocks differ).
    let a = last
    let b = index
    let levels = 0
    while (a !== b) {
      a = Math.floor(a / 2)
      b = Math.floor(b / 2)
      levels++
    }
    return peer.shortProofs === 0 ? levels - 1 : levels
  }

  /** The sized proof `peer` sent for block `index` came short: next time, ask for every node we lack. */
  short (peer: Peer, index: number): void {
    peer.shortProofs++
    this.inFull(index)
  }

  /** Block `index` is asked for next with every node we lack (no fault of the peer's: see `ParkedAnswers`). */
  inFull (index: number): void {
    if (this.#full.size >= MAX_FULL_PROOFS) this.#full.clear()
    this.#full.add(index)
  }

  /** Block `index` came with a proof that sufficed. */
  answered (index: number): void {
    this.#full.delete(index)
  }
}

/** How many nodes from leaf `leaf` up `tree` lacks (what a block proof must include), at most `limit`. */
export function missingNodeCount (tree: MerkleTree, leaf: number, limit = Infinity): number {
  const head = 2 * tree.length
  const ite = new Iterator(leaf)
  let count = 0
  while (count < limit && !ite.contains(head) && !tree.hasVerified(ite.index)) {
    // A root we lack (repair mode) is not asked for: a block proof never carries one.
    ite.parent()
    if (ite.contains(head)) break
    count++
  }
  return count
}
