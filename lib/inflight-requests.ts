/**
 * The requests one core has sent and not yet heard back on: each by id, the
 * block and tree-node requests also by what they ask for (so a block is not
 * asked twice, a lost node not chased twice), the one upgrade request, and
 * their deadlines. Apart from the replicator because it is pure bookkeeping:
 * whoever decides to ask (block scheduling, repair, fork switches, seeks)
 * sends through here, and whoever hears an answer looks the request up here.
 */
import { Deadlines } from './deadlines'
import { KeyRing } from './key-ring'
import type { Core } from './core'
import type { Peer, RequestBody } from './peer'

export type RequestKind = 'block' | 'upgrade' | 'repair' | 'node' | 'fork' | 'seek'

export interface Request {
  id: number
  peer: Peer
  sent: number
  kind: RequestKind
  /** Block index ('block'; for 'upgrade', the block asked for with it, or -1) or tree node index ('node'). */
  index: number
  /** The fork asked about (ours, except when following a peer to its fork). */
  fork: number
  /** The core's epoch when asked: an answer from before a truncation is stale. */
  epoch: number
  /** A block request whose proof was sized to what earlier answers of its peer will bring (see `ProofSizing`). */
  sized: boolean
  /** For a sized block request: the block asked of the same peer just before, whose answer its proof leans on (else -1). */
  after: number
  /** Neighbours in the list of requests in flight, oldest first (see `Deadlines`). */
  older: Request | null
  newer: Request | null
}

export class InflightRequests {
  readonly #core: Core
  #nextId = 1
  readonly #byId = new KeyRing<Request>()
  readonly #blocks = new KeyRing<Request>()
  readonly #nodes = new Map<number, Request>()
  #upgrade: Request | null = null
  readonly #deadlines: Deadlines<Request>

  /** `onexpired` as `Deadlines` calls it: requests past the timeout, and whether a block request passed HOTSWAP_MS. */
  constructor (core: Core, onexpired: (timedOut: Request[], hotswap: boolean) => void) {
    this.#core = core
    this.#deadlines = new Deadlines<Request>(onexpired)
  }

  /** Sends `body` to `peer` as a request of `kind` and keeps it until `remove`. */
  send (peer: Peer, kind: RequestKind, index: number, body: RequestBody, fork = this.#core.fork): Request {
    const id = this.#nextId++
    const req: Request = { id, peer, sent: Date.now(), kind, index, fork, epoch: this.#core.epoch, sized: false, after: -1, older: null, newer: null }
    this.#deadlines.add(req)
    this.#byId.set(id, req)
    if (kind === 'block') this.#blocks.set(index, req)
    else if (kind === 'upgrade') this.#upgrade = req
    else if (kind === 'node') this.#nodes.set(index, req)
    peer.sendRequest({ id, fork, block: body.block, hash: body.hash, seek: body.seek, upgrade: body.upgrade, manifest: body.manifest, priority: 0 })
    return req
  }

  get (id: number): Request | undefined {
    return this.#byId.get(id)
  }

  /** The latest request for block `index` still in flight. */
  block (index: number): Request | undefined {
    return this.#blocks.get(index)
  }

  hasNode (index: number): boolean {
    return this.#nodes.has(index)
  }

  /** The upgrade request in flight (one at a time), or null. */
  get upgrade (): Request | null {
    return this.#upgrade
  }

  values (): IterableIterator<Request> {
    return this.#byId.values()
  }

  /** Forgets `req` (answered or given up on); false if it was gone already. */
  remove (req: Request): boolean {
    if (!this.#byId.delete(req.id)) return false
    this.#deadlines.remove(req)
    req.peer.inflight--
    if (req.kind === 'block') {
      if (this.#blocks.get(req.index) === req) this.#blocks.delete(req.index)
    }
    else if (req.kind === 'upgrade') this.#upgrade = null
    else if (req.kind === 'node') this.#nodes.delete(req.index)
    return true
  }

  destroy (): void {
    this.#deadlines.destroy()
  }
}
