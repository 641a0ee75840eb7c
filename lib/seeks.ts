/**
 * Byte-offset seeks that use the network, as Hypercore 11's do. A seek walks
 * our tree down from the roots; where it needs a node we lack, a peer on our
 * fork is asked for a hash proof anchored at the node above it, with the
 * request's `seek` field so the proof follows the byte offset down. The
 * answer is verified and its nodes stored like any other (by the replicator
 * and the core), and the seek walks again. A seek past our byte length waits
 * for an upgrade. Each wait ends on a change (nodes stored, an upgrade, a
 * peer's sync), a timeout (REQUEST_TIMEOUT) or close.
 */
import { depth, fullRoots, leftSpan, parent, rightSpan } from './flat-tree'
import { REQUEST_TIMEOUT, SESSION_CLOSED, missingNodeOf } from './errors'
import type { Core } from './core'
import type { Peer, RequestBody } from './peer'

/** What seeks need from the replicator. */
export interface SeekHost {
  readonly core: Core
  readonly peers: readonly Peer[]
  /** The least loaded peer that passes `ok`, or null. */
  pickPeer (ok: (p: Peer) => boolean): Peer | null
  /** Sends a seek request to `peer`; returns the request id. */
  request (peer: Peer, body: RequestBody): number
}

export interface SeekOptions {
  /** Wait for the network (default true); false resolves null when the answer is not local. */
  wait?: boolean
  /** Give up after this many milliseconds with REQUEST_TIMEOUT (0 = never). */
  timeout?: number
  /** Bytes of encryption padding in front of every block, not counted as data. */
  padding?: number
}

export class Seeks {
  readonly #host: SeekHost
  /** Bumped on every change that could let a seek go further. */
  #version = 0
  readonly #wakers = new Set<() => void>()
  /** Requests out, by the tree node each should bring. */
  readonly #out = new Map<number, number>()
  /** Peers asked for a node already (forgotten when peers sync again). */
  readonly #tried = new Map<number, Set<Peer>>()
  /** Closed; the error seeks get then is made on first need (see DownloadRanges.remove). */
  #closed = false
  #closedError: Error | null = null

  constructor (host: SeekHost) {
    this.#host = host
  }

  /** [block index, offset inside it] of byte `bytes`, fetching the proof it needs. */
  async seek (bytes: number, opts: SeekOptions = {}): Promise<[number, number] | null> {
    const wait = opts.wait !== false
    const timeout = opts.timeout ?? 0
    const padding = opts.padding ?? 0
    const deadline = timeout > 0 ? Date.now() + timeout : Infinity
    for (;;) {
      if (this.#closed) throw this.#closeError()
      const version = this.#version
      const step = await this.#local(bytes, padding)
      if (Array.isArray(step)) return step
      if (!wait) return null
      if (step !== 'beyond') this.#ask(step, bytes, padding)
      await this.#change(version, deadline)
    }
  }

  /** Something changed (nodes, length, peers): waiting seeks look again. */
  nudge (): void {
    this.#version++
    for (const wake of [...this.#wakers]) wake()
  }

  /** Peers synced or came: ask anyone again. */
  onpeers (): void {
    this.#tried.clear()
    this.nudge()
  }

  /** Whether request `id` is a seek's. */
  owns (id: number): boolean {
    for (const v of this.#out.values()) if (v === id) return true
    return false
  }

  /** Request `id` was answered (its nodes are stored or refused), refused, or gave up. */
  onsettled (id: number): void {
    for (const [node, v] of this.#out) if (v === id) this.#out.delete(node)
    this.nudge()
  }

  destroy (): void {
    this.#closed = true
    this.nudge()
  }

  #closeError (): Error {
    return this.#closedError ??= SESSION_CLOSED('The core was closed')
  }

  /** The answer from local nodes; else the node we lack, or 'beyond' our byte length. */
  async #local (bytes: number, padding: number): Promise<[number, number] | number | 'beyond'> {
    const core = this.#host.core
    if (bytes > core.byteLength - core.length * padding) return 'beyond'
    try {
      return await core.seek(bytes, padding)
    } catch (err) {
      const missing = missingNodeOf(err)
      if (missing === null) throw err
      return missing
    }
  }

  /** Asks a peer for a proof that brings `missing` (the node we lack on the way to `bytes`). */
  #ask (missing: number, bytes: number, padding: number): void {
    const core = this.#host.core
    if (this.#out.has(missing)) return
    // A lost root comes back through repair, which is running; nothing above it to anchor a proof.
    if (core.length === 0 || fullRoots(2 * core.length).includes(missing)) return
    const above = parent(missing)
    const first = leftSpan(above) / 2
    const last = rightSpan(above) / 2
    let tried = this.#tried.get(missing)
    if (tried === undefined) this.#tried.set(missing, tried = new Set())
    const skip = tried
    // A peer on our fork at least as long as we are has our tree; one that
    // holds a block below the node holds the nodes on its path (a sparse
    // relay holds little else). Ask one of those for that block's path; if
    // none is known, ask peers which blocks they hold there (as Hypercore 11
    // does) and look again when they say.
    const ok = (p: Peer): boolean => p.remoteFork === core.fork && p.remoteLength >= core.length && !skip.has(p)
    const peer = this.#host.pickPeer(p => ok(p) && heldLeaf(p, first, last) !== -1)
    if (peer === null) {
      for (const p of this.#host.peers) if (ok(p) && p.remoteOpened) p.wantAround(first)
      return
    }
    tried.add(peer)
    const leaf = heldLeaf(peer, first, last)
    const id = this.#host.request(peer, {
      block: null,
      hash: { index: 2 * leaf, nodes: depth(above) },
      seek: peer.remoteSupportsSeeks ? { bytes, padding } : null,
      upgrade: null,
      manifest: false
    })
    this.#out.set(missing, id)
  }

  /** Resolves on the next change after `version`; rejects at `deadline` or on close. */
  #change (version: number, deadline: number): Promise<void> {
    if (this.#version !== version) return Promise.resolve()
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | null = null
      const wake = (): void => {
        this.#wakers.delete(wake)
        if (timer !== null) clearTimeout(timer)
        if (this.#closed) reject(this.#closeError())
        else resolve()
      }
      this.#wakers.add(wake)
      if (deadline !== Infinity) {
        timer = setTimeout(() => {
          this.#wakers.delete(wake)
          reject(REQUEST_TIMEOUT())
        }, Math.max(0, deadline - Date.now()))
      }
    })
  }
}

/** A block in [first, last] the peer said it has, or -1. */
function heldLeaf (p: Peer, first: number, last: number): number {
  if (p.remoteContiguous > first) return first
  const i = p.remoteBitfield.firstSet(first)
  return i !== -1 && i <= last ? i : -1
}
