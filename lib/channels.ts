/**
 * The connections one core replicates over: its channel paired on each
 * protomux (opened once the stream is, and again after a Store closed it
 * for idleness), and the channels we opened that the remote has not
 * answered yet. Apart from the replicator because it is connection plumbing
 * with its own state; the replicator hears of a channel once the remote
 * answers (`PeerHost.onopen`) and asks here only whether any is still
 * coming (for `settled()`).
 */
import type Protomux from 'protomux'
import { Peer, PROTOCOL, type PeerHost } from './peer'

export class Channels {
  readonly #host: PeerHost
  /** Each mux attached, with its stream's close listener. */
  readonly #muxes = new Map<Protomux, () => void>()
  /** Channels we opened whose remote side has not answered yet. */
  readonly #opening = new Set<Peer>()
  #destroyed = false

  constructor (host: PeerHost) {
    this.#host = host
  }

  /** Replicates over `mux` (one channel for this core; other cores share the mux). */
  attach (mux: Protomux): void {
    if (this.#destroyed) return
    const id = this.#host.core.discoveryKey
    if (this.#muxes.has(mux)) {
      // Attached before and its channel closed since (a Store closes idle channels): open it again.
      if (mux.stream.handshakeHash !== null && !mux.opened({ protocol: PROTOCOL, id })) this.#open(mux)
      return
    }
    const open = (): void => {
      if (this.#destroyed || !this.#muxes.has(mux)) return
      this.#open(mux)
    }
    const onclose = (): void => this.#detach(mux)
    this.#muxes.set(mux, onclose)
    mux.pair({ protocol: PROTOCOL, id }, open)
    mux.stream.setMaxListeners?.(0)
    mux.stream.on('close', onclose)
    // Already connected: open now, so a remote channel waiting on us is taken up.
    if (mux.stream.handshakeHash !== null) open()
    else mux.stream.opened.then(opened => { if (opened) open() }, noop)
  }

  #open (mux: Protomux): void {
    const peer = Peer.open(this.#host, mux)
    if (peer !== null) this.#opening.add(peer)
  }

  #detach (mux: Protomux): void {
    const onclose = this.#muxes.get(mux)
    if (onclose === undefined) return
    this.#muxes.delete(mux)
    mux.stream.removeListener('close', onclose)
    mux.unpair({ protocol: PROTOCOL, id: this.#host.core.discoveryKey })
  }

  /** `peer`'s channel opened or closed: no longer waited for. */
  answered (peer: Peer): void {
    this.#opening.delete(peer)
  }

  /** A channel is still to open: one we opened is unanswered, or a stream is still handshaking. */
  get pending (): boolean {
    if (this.#opening.size > 0) return true
    for (const mux of this.#muxes.keys()) if (!mux.stream.destroyed && mux.stream.handshakeHash === null) return true
    return false
  }

  /** Closes `peers` and every channel still opening, and lets go of every mux. */
  destroy (peers: readonly Peer[]): void {
    this.#destroyed = true
    // Channels the remote has not answered yet close too: a later instance of the core must be able to open its own.
    for (const peer of [...peers, ...this.#opening]) peer.close()
    for (const mux of [...this.#muxes.keys()]) this.#detach(mux)
  }
}

/** Runs `fn` with every peer's mux corked, so what it sends leaves in one frame per connection. */
export function corked (peers: readonly Peer[], fn: () => void): void {
  const muxes: Protomux[] = []
  for (const p of peers) {
    if (muxes.includes(p.mux)) continue
    p.mux.cork()
    muxes.push(p.mux)
  }
  try {
    fn()
  } finally {
    for (const mux of muxes) mux.uncork()
  }
}

function noop (): void {}
