/**
 * A session's own part in replication: the `findingPeers()` holds it keeps,
 * the background downloads it started, the extensions it registered and the
 * streams it attached before its core was bound. Apart from the public class
 * because these are the only replication state a session holds (peers,
 * requests and the wire live once in the shared core), and they are released
 * together when the session closes.
 */
import type Protomux from 'protomux'
import type { Hypercore } from './hypercore'
import type { SessionBinding } from './session-binding'
import { downloadHandle } from './download'
import type { ExtensionHost } from './extension'
import type { DownloadHandle, DownloadRange, UpdateOptions } from './session-options'

export class SessionReplication {
  readonly #session: Hypercore
  readonly #binding: SessionBinding
  readonly #findingPeers: Array<() => void> = []
  /** findingPeers() calls made before the core was bound: counted once it is. */
  readonly #pendingFinding: Array<() => void> = []
  readonly #downloads = new Set<DownloadHandle>()

  constructor (session: Hypercore, binding: SessionBinding) {
    this.#session = session
    this.#binding = binding
  }

  /** Replicates the core over `mux`, now or once the core is bound. */
  attach (mux: Protomux): void {
    this.#binding.whenBound(shared => shared.attach(mux))
  }

  /** Counts the findingPeers() holds taken before the core opened. */
  opened (): void {
    for (const count of this.#pendingFinding.splice(0)) count()
  }

  /** A hold that keeps `update()` waiting for peers until the returned function is called. */
  findingPeers (): () => void {
    let release: (() => void) | null = null
    let done = false
    const finish = (): void => {
      if (done) return
      done = true
      const i = this.#findingPeers.indexOf(finish)
      if (i !== -1) this.#findingPeers.splice(i, 1)
      release?.()
    }
    this.#findingPeers.push(finish)
    // Counted at once when the core is open, so an update() right after waits; else as it opens.
    const replicator = this.#binding.shared?.replicator ?? null
    if (replicator !== null) release = replicator.findingPeers()
    else this.#pendingFinding.push(() => { if (!done) release = this.#binding.openShared.replicator!.findingPeers() })
    return finish
  }

  async update (opts: UpdateOptions): Promise<boolean> {
    const s = this.#session
    if (!s.opened) await s.opening
    if (s.closing !== null || this.#binding.snapshot !== null) return false
    const core = this.#binding.core
    if (s.writable && opts.force !== true) return false
    const replicator = this.#binding.openShared.replicator!
    const wait = opts.wait ?? replicator.isFindingPeers()
    if (!wait) return false
    const before = { length: core.length, fork: core.fork }
    await replicator.settled()
    return core.length !== before.length || core.fork !== before.fork
  }

  /** A background download of `range`, started once the session is open unless it is closing by then. */
  download (range: DownloadRange): DownloadHandle {
    const s = this.#session
    const handle = downloadHandle(s.opening, () => {
      if (s.closing !== null) return null
      const r = this.#binding.openShared.replicator!
      if (range.blocks) return r.download(0, 0, range.blocks)
      const end = range.end === undefined || range.end === -1 ? Infinity : range.end
      return r.download(range.start ?? 0, end, null)
    }, h => this.#downloads.delete(h))
    this.#downloads.add(handle)
    return handle
  }

  recoverTreeNodeFromPeers (treeIndex?: number): void {
    const r = this.#binding.openShared.replicator
    if (treeIndex === undefined) r?.recoverTreeNodeFromPeers()
    else r?.onmissingnode(treeIndex, true)
  }

  async missingNodes (index: number): Promise<number> {
    const s = this.#session
    if (!s.opened) await s.opening
    return this.#binding.openShared.replicator!.missingNodeCount(2 * index)
  }

  /** Where this session's extensions register: with the shared core, owned by this session's link. */
  extensionHost (): ExtensionHost {
    const destroyed = new Set<string>()
    return {
      register: (name, onmessage) => {
        destroyed.delete(name)
        // Hyperbee registers its extension in its constructor, before a Store's named core is bound.
        this.#binding.whenBound(shared => { if (!destroyed.has(name)) shared.registerExtension(name, this.#binding.link, onmessage) })
      },
      unregister: (name) => {
        destroyed.add(name)
        this.#binding.shared?.unregisterExtension(name, this.#binding.link)
      },
      peers: () => this.#session.peers
    }
  }

  /** Releases every findingPeers() hold and destroys every download (the session is closing). */
  release (): void {
    for (const release of [...this.#findingPeers]) release()
    for (const d of [...this.#downloads]) d.destroy()
  }
}
