/**
 * What the answers to our requests mean: data (a block checked at once and
 * queued for disk, held until the answer it leans on came, or the slow way:
 * a fork switch's tree, a conflict, a repair, an upgrade) and noData. Apart
 * from the replicator, which owns the parts these answers report to
 * (requests in flight, block scheduling, upgrades, repairs, the fork
 * switch: `AnswerParts`) and is the host.
 */
import type { Peer } from './peer'
import { unslabProof } from './unslab'
import { ParkedAnswers, type ParkedAnswer } from './parked-answers'
import type { ForkSwitch } from './fork-switch'
import type { InflightRequests, Request } from './inflight-requests'
import type { ProofSizing } from './proof-sizing'
import type { BlockScheduler } from './block-scheduler'
import type { RepairRequests } from './repair-requests'
import type { Upgrades } from './upgrades'
import { isCoded, missingNodeOf } from './errors'
import type { Core, VerifiedData } from './core'
import type { DataMessage, NoDataMessage } from './messages'
import type { Proof } from './proof'
import type { ReplicatorEmit } from './replicator'

/**
 * What the answers report to: the replicator itself, not an object of
 * closures made per core. Every round of the bench's downloads makes a new
 * core, so such closures made the calls every block takes polymorphic:
 * 10,000-block downloads ran 7% slower (6 of 8 interleaved pairs); with the
 * replicator's own methods they are as fast as before the split.
 */
export interface AnswersHost {
  readonly core: Core
  readonly peers: readonly Peer[]
  readonly emit: ReplicatorEmit
  /** Whether a retry after I/O is due. */
  readonly retryQueued: boolean
  /** `req` was answered: it is no longer in flight. */
  finish (req: Request): void
  /** `req` ended, answered or not: forgotten, and its owner (fork switch, seek) told. */
  giveUp (req: Request): void
  /** A request of the fork switch or of a seek ended: tell its owner. */
  settleSide (req: Request): void
  /** `peer` sent what no honest peer sends: it is dropped. */
  hostile (peer: Peer, err: Error): void
  /** Ask again once I/O has had a turn (a node of ours was missing). */
  retryAfterIo (): void
  scheduleUpdate (): void
}

/** The replicator's parts the answers report to. */
export interface AnswerParts {
  readonly inflight: InflightRequests
  readonly blocks: BlockScheduler
  readonly sizing: ProofSizing
  readonly upgrades: Upgrades
  readonly repair: RepairRequests
  readonly forks: ForkSwitch
}

export class Answers {
  readonly #h: AnswersHost
  readonly #inflight: InflightRequests
  readonly #blocks: BlockScheduler
  readonly #sizing: ProofSizing
  readonly #upgrades: Upgrades
  readonly #repair: RepairRequests
  readonly #forks: ForkSwitch
  readonly #parked = new ParkedAnswers()
  /** Blocks whose answer was let go (or refused) and that are to be asked again: answers leaning on them wait (see `passed`). */
  readonly #reasking = new Set<number>()
  /** Parked answers are being checked again (their stores do not start another round). */
  #retrying = false

  constructor (host: AnswersHost, parts: AnswerParts) {
    this.#h = host
    this.#inflight = parts.inflight
    this.#blocks = parts.blocks
    this.#sizing = parts.sizing
    this.#upgrades = parts.upgrades
    this.#repair = parts.repair
    this.#forks = parts.forks
  }

  /**
   * A data message. The common one, a block on our tree whose proof ends in
   * a node at hand, is checked at once and queued for disk with no promise
   * of its own; anything else takes `handleData`.
   */
  ondata (peer: Peer, data: DataMessage): void {
    const h = this.#h
    const req = data.request !== 0 ? this.#inflight.get(data.request) ?? null : null
    if (req !== null && req.kind === 'block' && req.peer === peer && req.epoch === h.core.epoch && data.block?.index === req.index) {
      let verified
      try {
        verified = h.core.verifyBlockNow(data)
      } catch (err) {
        h.finish(req)
        if (!isCoded(err)) throw err
        this.#blocks.rescan()
        h.hostile(peer, err)
        return
      }
      if (req.sized) {
        peer.sizedProofs++
        if (verified === 'unanchored') {
          h.finish(req)
          // It overtook the answer it leans on: it waits for that one.
          const parked = this.#park(peer, req, data)
          if (parked === 'parked') return
          // Asked again, with every node we lack; a circle is our sizing's doing, not the peer's.
          if (parked === 'circle') this.#sizing.inFull(req.index)
          else this.#sizing.short(peer, req.index)
          this.#askAgain([req.index])
          return
        }
      }
      if (verified !== null && verified !== 'unanchored') {
        h.finish(req)
        this.#sizing.answered(req.index)
        this.#storeVerified(peer, verified)
        return
      }
    }
    // Long-lived parts (roots, signature, manifest) must not pin the receive buffer.
    unslabProof(data)
    this.#handleData(peer, data, req).catch(err => {
      // Nothing a peer sends may take us down: drop it instead.
      h.hostile(peer, err as Error)
    })
  }

  /** Parks a sized answer that came short while the answer it leans on is still to come ('full' if that one is not). */
  #park (peer: Peer, req: Request, data: DataMessage): 'parked' | 'full' | 'circle' {
    if (req.after === -1 || !this.#awaited(req.after)) return 'full'
    const parked = this.#parked.park(peer, data, req.index, req.after, this.#h.core.epoch)
    if (parked === 'parked') this.#blocks.onverifying(req.index)
    return parked
  }

  /**
   * On every scheduling pass: checks parked answers whose awaited block is
   * here (stored the slow way), and lets go of those that wait in vain (its
   * request failed or was given up, the peer left, the tree changed): their
   * blocks are asked again. Those whose awaited block came the common way
   * were checked as it was queued (`#retryLeaningOn`).
   */
  unpark (): void {
    if (this.#parked.size === 0) return
    const core = this.#h.core
    const done = this.#parked.take(p => {
      if (p.epoch !== core.epoch || p.peer.removed) return 'stale'
      if (core.has(p.after) || core.isStoring(p.after)) return 'retry'
      return this.#awaited(p.after) ? 'wait' : 'short'
    })
    const retry: ParkedAnswer[] = []
    const letGo: number[] = []
    for (const [p, verdict] of done) {
      if (verdict === 'retry') {
        retry.push(p)
        continue
      }
      this.#blocks.onverified(p.index)
      if (verdict === 'short') this.#sizing.short(p.peer, p.index)
      letGo.push(p.index)
    }
    this.#retryAll(retry, letGo)
    this.#askAgain(letGo)
  }

  /** Block `index` was verified and queued: the answers leaning on it are checked now, and those leaning on them. */
  #retryLeaningOn (index: number): void {
    const leaning = this.#parked.takeLeaningOn(index)
    if (leaning.length === 0) return
    const letGo: number[] = []
    this.#retryAll(leaning, letGo)
    this.#askAgain(letGo)
  }

  /**
   * Checks answers taken out of the parking again, and what leans on each
   * one stored, with a list rather than recursion (a chain may be a window
   * long); the blocks of those that fail go to `letGo`.
   */
  #retryAll (work: ParkedAnswer[], letGo: number[]): void {
    const core = this.#h.core
    this.#retrying = true
    try {
      while (work.length > 0) {
        const p = work.pop()!
        this.#blocks.onverified(p.index)
        if (p.epoch === core.epoch && !p.peer.removed && this.#retry(p)) {
          for (const next of this.#parked.takeLeaningOn(p.index)) work.push(next)
        } else {
          letGo.push(p.index)
        }
      }
    } finally {
      this.#retrying = false
    }
  }

  /** Blocks whose answers were let go are asked again; answers leaning on them wait for that (`#reasking`). */
  #askAgain (letGo: number[]): void {
    if (letGo.length === 0) return
    for (const index of letGo) this.#reasking.add(index)
    this.#blocks.rescan()
    this.#h.scheduleUpdate()
  }

  /**
   * Whether an answer for block `index` is still to come: asked (of any
   * peer: its nodes are what counts), parked itself, or let go and to be
   * asked again (`#reasking`).
   */
  #awaited (index: number): boolean {
    return this.#inflight.block(index) !== undefined || this.#parked.has(index) || this.#reasking.has(index)
  }

  /**
   * A scheduling pass asked for what it could. A block let go is counted on
   * while it is asked again (in flight) or will be (wanted, and some peer
   * has it to give once it has room), and no longer once it will not be.
   * Answers that waited for such a block are judged again on the next pass,
   * which must come even if no answer or write is left to bring it (each
   * such pass lets answers go, so this ends).
   */
  passed (): void {
    if (this.#reasking.size === 0) return
    let dropped = false
    for (const index of this.#reasking) {
      if (this.#inflight.block(index) !== undefined) {
        this.#reasking.delete(index)
      } else if (!this.#blocks.willAsk(index)) {
        this.#reasking.delete(index)
        dropped = true
      }
    }
    if (dropped && this.#parked.size > 0) this.#h.scheduleUpdate()
  }

  /** Checks a parked answer again; false when its block is to be asked again. */
  #retry (p: ParkedAnswer): boolean {
    const h = this.#h
    let verified
    try {
      verified = h.core.verifyBlockNow(p.data)
    } catch (err) {
      if (!isCoded(err)) throw err
      h.hostile(p.peer, err)
      return false
    }
    if (verified === 'unanchored') {
      this.#sizing.short(p.peer, p.index)
      return false
    }
    if (verified === null) return false
    this.#sizing.answered(p.index)
    this.#storeVerified(p.peer, verified)
    return true
  }

  /** Queues a verified block for disk; `download` when it is there. */
  #storeVerified (peer: Peer, verified: VerifiedData): void {
    const h = this.#h
    const index = verified.block!.index
    const byteLength = verified.block!.value.byteLength
    // Answered but not stored yet: not asked for again meanwhile.
    this.#blocks.onverifying(index)
    // A block a get waits for is kept in memory once stored: the get reads it next.
    const hold = this.#blocks.isWanted(index)
    h.core.queueBlock(index, verified.block!.value, verified.nodes, verified.epoch, hold, (err, stored) => {
      this.#blocks.onverified(index)
      // A failed write is our disk's fault, not the peer's: ask again later.
      if (err !== null || !stored) this.#blocks.rescan()
      else h.emit('download', index, byteLength, peer)
      h.scheduleUpdate()
    })
    // Its nodes are staged now: answers that waited for it anchor.
    if (this.#parked.size > 0 && !this.#retrying) this.#retryLeaningOn(index)
  }

  /** `req`: the request `data` answers, as `ondata` looked it up (null if none). */
  async #handleData (peer: Peer, data: DataMessage, req: Request | null): Promise<void> {
    const h = this.#h
    if (req !== null && req.peer !== peer) return
    if (req !== null) h.finish(req)
    const core = h.core

    if (req !== null && req.kind === 'fork') {
      await this.#forks.ondata(req.id, data)
      h.scheduleUpdate()
      return
    }
    if (data.fork !== core.fork || (req !== null && req.epoch !== core.epoch)) {
      // Made for a tree we are not on (we moved, or the peer did): stale, not hostile.
      if (req !== null) h.settleSide(req)
      this.#blocks.rescan()
      h.scheduleUpdate()
      return
    }

    const fullyRemote = data.upgrade !== null && data.upgrade.start === 0
    // As Hypercore 11: a fully remote proof sent unasked may show the signer signed two trees.
    if (data.request === 0 && fullyRemote && !core.repairMode) {
      const verdict = await core.checkConflict(data as Proof)
      if (verdict === 'conflict') await this.#onconflict(data)
      if (verdict !== 'none') return
    }
    if (req?.kind === 'repair' || req?.kind === 'node' || (data.request === 0 && fullyRemote && core.repairMode)) {
      if (req?.kind === 'node') this.#repair.onapplying(req.index)
      const ok = fullyRemote && await core.repair(data as Proof)
      if (req?.kind === 'node') this.#repair.onanswer(req.index, peer, ok)
      this.#afterRepair(ok)
      return
    }
    if (req === null) return // unsolicited, or answered after we gave up on it

    if (core.repairMode && data.upgrade !== null) {
      // Our roots are missing, so an upgrade cannot be checked: heal first.
      const ok = fullyRemote && await core.repair(data as Proof)
      if (!fullyRemote) this.#repair.recoverFrom(peer)
      this.#afterRepair(ok)
      return
    }

    if (data.upgrade !== null) this.#upgrades.onapplying()
    // Answered but not stored yet: not asked for again meanwhile (a sync arriving with it would).
    const block = data.block?.index ?? -1
    if (block !== -1) this.#blocks.onverifying(block)
    try {
      await this.#checkAndStore(peer, req, data)
    } finally {
      h.settleSide(req)
      if (data.upgrade !== null) this.#upgrades.onapplied()
      if (block !== -1) this.#blocks.onverified(block)
    }
    // A retry after I/O is due: that pass comes then (see `checkAndStore`).
    if (!h.retryQueued) h.scheduleUpdate()
  }

  async #checkAndStore (peer: Peer, req: Request, data: DataMessage): Promise<void> {
    const h = this.#h
    const core = h.core
    const epoch = core.epoch
    let verified
    try {
      verified = await core.verifyData(data)
    } catch (err) {
      const missing = missingNodeOf(err)
      if (missing !== null) {
        // A node of ours is gone (or, in repair mode, not yet checked): that
        // calls for a repair, not a conflict. The block was not stored: ask
        // again, but only once I/O has had a turn. Asked at once, a peer that
        // answers from memory over an in-process stream makes a loop of
        // microtasks (ask, answer, fail, ask) that starves the repair's own
        // reads, whose callbacks wait in the next-tick queue.
        this.#repair.onmissingnode(missing, false)
        h.retryAfterIo()
        return
      }
      if (!isCoded(err)) throw err
      this.#blocks.rescan()
      // Checked against a tree we left while checking: not the peer's fault.
      if (core.epoch !== epoch) return
      h.hostile(peer, err)
      return
    }
    if (req.kind === 'upgrade' && verified.upgrade === null) {
      // Neither upgrade nor block: a refusal that carries the manifest we asked for (a noData cannot), as our peers answer one.
      if (verified.block === null) this.#upgrades.onrefused(peer, req)
      else this.#upgrades.failed(peer)
    }
    let stored
    try {
      stored = await core.applyData(verified)
    } catch (err) {
      // Our disk failed us, not the peer: keep it, and ask again later.
      if (!isCoded(err)) throw err
      this.#blocks.rescan()
      return
    }
    if (!stored) {
      this.#blocks.rescan()
      return
    }
    if (verified.block !== null) h.emit('download', verified.block.index, verified.block.value.byteLength, peer)
  }

  onnodata (peer: Peer, msg: NoDataMessage): void {
    const h = this.#h
    const req = this.#inflight.get(msg.request)
    if (req === undefined || req.peer !== peer) return
    h.giveUp(req)
    this.#blocks.rescan()
    if (req.kind === 'block') {
      this.#blocks.refused(peer, req.index)
      this.#reasking.add(req.index)
      // Answers asked after it may wait on it now: asked again, it leans on none of them.
      this.#sizing.inFull(req.index)
    } else if (req.kind === 'upgrade') {
      this.#upgrades.onrefused(peer, req)
    } else if (req.kind === 'node') {
      this.#repair.onrefused(req.index, peer)
    }
    h.scheduleUpdate()
  }

  /**
   * Two signed trees at one length and fork: every peer gets our proof (so
   * it finds out too), the sessions hear `conflict`, and the channels close.
   */
  async #onconflict (theirs: DataMessage): Promise<void> {
    const h = this.#h
    const length = theirs.upgrade!.length
    for (const peer of [...h.peers]) {
      try {
        const proof = await h.core.proof({ block: null, hash: null, seek: null, upgrade: { start: 0, length } })
        peer.sendUnsolicited({ request: 0, fork: proof.fork, block: null, hash: null, seek: null, upgrade: proof.upgrade, manifest: h.core.manifest })
      } catch {
        // Our own proof could not be built: the peer still hears of the conflict when we close.
      }
      peer.close()
    }
    h.emit('conflict', length, theirs.fork, theirs)
  }

  /**
   * After a repair: tell peers, who may have been refused blocks we can prove
   * now (a sync makes them ask again), even if it says what the last one
   * said. Only after one that worked: each is progress, so this cannot loop.
   */
  #afterRepair (repaired: boolean): void {
    const h = this.#h
    if (repaired) for (const p of h.peers) p.sendSync(true)
    h.scheduleUpdate()
  }
}
