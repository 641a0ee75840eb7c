/**
 * When `update()` has nothing left to wait for: no channel still opening,
 * no upgrade or fork switch under way, and no peer offering a longer tree
 * or a higher fork that we have not tried; while sessions are finding
 * peers, not before one came. Apart from the replicator because the waiters
 * and the count of sessions finding peers are state of their own; the
 * replicator calls `wake()` whenever one of those conditions may have ended.
 */
import type { Peer } from './peer'
import type { Channels } from './channels'
import type { Upgrades } from './upgrades'
import type { ForkSwitch } from './fork-switch'

/** What the settled check reads of the replicator. */
export interface SettledHost {
  readonly peers: readonly Peer[]
  readonly channels: Channels
  readonly upgrades: Upgrades
  readonly forks: ForkSwitch
}

export class Settled {
  readonly #host: SettledHost
  readonly #waiters: Array<() => void> = []
  /** Sessions finding peers (`findingPeers()` not yet released). */
  #finding = 0
  #closed = false

  constructor (host: SettledHost) {
    this.#host = host
  }

  /** Resolves once settled (at once if settled now). */
  wait (): Promise<void> {
    if (this.#isSettled()) return Promise.resolve()
    return new Promise(resolve => this.#waiters.push(resolve))
  }

  /** Something that kept us unsettled may have ended: resolves the waiters if settled now. */
  wake (): void {
    if (this.#waiters.length === 0 || !this.#isSettled()) return
    for (const w of this.#waiters.splice(0)) w()
  }

  /** A session is finding peers: not settled without one until the release is called. */
  findingPeers (): () => void {
    this.#finding++
    let done = false
    return () => {
      if (done) return
      done = true
      this.#finding--
      this.wake()
    }
  }

  get finding (): boolean {
    return this.#finding > 0
  }

  /** The replicator is closing: settled from now on (waiters resolve with the next `wake`). */
  close (): void {
    this.#closed = true
  }

  #isSettled (): boolean {
    if (this.#closed) return true
    const { peers, channels, upgrades, forks } = this.#host
    if (this.#finding > 0 && peers.length === 0) return false
    if (channels.pending) return false
    if (upgrades.busy) return false
    if (forks.busy || forks.available) return false
    for (const p of peers) {
      if (!p.remoteSynced) return false
      if (upgrades.offers(p)) return false
    }
    return true
  }
}
