/**
 * How one session reads: blocks through its value encoding and encryption,
 * with its wait, timeout and verify defaults; what it holds and where bytes
 * are, through its snapshot if it has one; and the reads it remembers while
 * marking for a sweep. Apart from the public class because it owns the
 * read-side state of a session (its read hooks and marks) and everything
 * that reads through it, while the class keeps the Hypercore 11 surface.
 */
import type { Hypercore } from './hypercore'
import type { SessionBinding } from './session-binding'
import type { BlockCodec } from './block-codec'
import { Marks } from './marks'
import { CoreStorage } from './storage'
import { resolveEncoding } from './value-encoding'
import * as crypto from './crypto'
import { ASSERTION, SESSION_CLOSED, missingNodeOf } from './errors'
import { assertIndex, type GetOptions, type HypercoreOptions, type Info, type SeekOptions } from './session-options'

export class SessionReader {
  readonly #session: Hypercore
  readonly #binding: SessionBinding
  readonly #codec: BlockCodec
  readonly #onwait: HypercoreOptions['onwait']
  readonly #onseq: HypercoreOptions['onseq']
  #marks: Marks | null = null

  constructor (session: Hypercore, binding: SessionBinding, codec: BlockCodec, opts: HypercoreOptions) {
    this.#session = session
    this.#binding = binding
    this.#codec = codec
    this.#onwait = opts.onwait ?? null
    this.#onseq = opts.onseq ?? null
  }

  /** Called when a `get` has to wait for the network (a session made from this one inherits it). */
  get onwait (): HypercoreOptions['onwait'] { return this.#onwait }
  /** Called on every `get` (a session made from this one inherits it). */
  get onseq (): HypercoreOptions['onseq'] { return this.#onseq }

  async get (index: number, opts: GetOptions): Promise<any> {
    const s = this.#session
    if (!s.opened) await s.opening
    assertIndex(index, 'block index', s.discoveryKey)
    if (s.closing !== null) throw SESSION_CLOSED('cannot get on a closed session', s.discoveryKey)
    const enc = opts.valueEncoding ? resolveEncoding(opts.valueEncoding) : this.#codec.encoding
    this.#onseq?.(index, s)
    this.#marks?.mark(index)

    const block = await this.#read(index, opts)
    if (block === null) return null
    if (opts.raw === true) return block
    return this.#codec.decode(this.#binding.core, index, block, enc, opts)
  }

  /** The stored bytes of block `index` as this session sees them, waiting for them if asked to. */
  #read (index: number, opts: GetOptions): Promise<Uint8Array | null> {
    const s = this.#session
    return this.#binding.openShared.readBlock(index, {
      link: this.#binding.link,
      verify: opts.verify ?? s.verify,
      wait: opts.wait ?? s.wait,
      timeout: opts.timeout ?? s.timeout,
      inside: index < s.length,
      closed: () => s.closing !== null,
      onwait: () => {
        opts.onwait?.(index, s)
        this.#onwait?.(index, s)
      }
    })
  }

  async has (start: number, end: number): Promise<boolean> {
    const s = this.#session
    if (!s.opened) await s.opening
    assertIndex(start, 'has range', s.discoveryKey)
    assertIndex(end, 'has range', s.discoveryKey)
    const core = this.#binding.core
    const snap = this.#binding.snapshot
    for (let i = start; i < end; i++) {
      if (snap !== null && i >= snap.compatLength) {
        if (snap.retained(i) === undefined) return false
        continue
      }
      if (!core.has(i)) return false
    }
    return true
  }

  async seek (bytes: number, opts: SeekOptions): Promise<[number, number] | null> {
    const s = this.#session
    if (!s.opened) await s.opening
    assertIndex(bytes, 'seek', s.discoveryKey)
    if (s.closing !== null) throw SESSION_CLOSED('cannot seek on a closed session', s.discoveryKey)
    return this.#binding.openShared.replicator!.seek(bytes, { wait: opts.wait ?? s.wait, timeout: opts.timeout ?? s.timeout, padding: s.padding })
  }

  async treeHash (length: number): Promise<Uint8Array> {
    const s = this.#session
    if (!s.opened) await s.opening
    if (length === -1) length = s.length
    const snap = this.#binding.snapshot
    if (snap !== null && length === snap.length) return crypto.treeHash(snap.roots)
    try {
      return await this.#binding.core.treeHash(length)
    } catch (err) {
      // A replica lacks the roots of an older length: the proof of its last block brings them.
      if (missingNodeOf(err) === null || length === 0 || await this.has(length - 1, length)) throw err
    }
    await this.get(length - 1, { raw: true })
    return this.#binding.core.treeHash(length)
  }

  async signable (length: number, fork: number): Promise<Uint8Array> {
    const s = this.#session
    if (!s.opened) await s.opening
    if (length === -1) length = s.length
    if (fork === -1) fork = s.fork
    return crypto.treeSignable(s.key!, await this.treeHash(length), length, fork)
  }

  async info (opts: { storage?: boolean }): Promise<Info> {
    const core = await this.#binding.live()
    const s = this.#session
    return {
      key: core.key,
      discoveryKey: core.discoveryKey,
      length: s.length,
      contiguousLength: s.contiguousLength,
      byteLength: s.byteLength,
      fork: s.fork,
      padding: s.padding,
      storage: opts.storage === true ? await storageUse(this.#binding.openShared.directory) : null,
      writable: s.writable,
      repairMode: core.repairMode,
      blocks: core.storageInfo().blocks
    }
  }

  // -------------------------------------------------------------------------
  // Mark and sweep: clear every block not read or marked since startMarking()

  async startMarking (): Promise<void> {
    const s = this.#session
    if (this.#marks !== null) throw ASSERTION("Hypercore cannot be gc'ed when already in gc mode", s.discoveryKey)
    if (!s.opened) await s.opening
    this.#marks = new Marks()
  }

  async markBlock (start: number, end: number): Promise<void> {
    const s = this.#session
    if (!s.opened) await s.opening
    this.#marks ??= new Marks()
    this.#marks.mark(start, end)
  }

  async clearMarkings (): Promise<void> {
    const s = this.#session
    if (!s.opened) await s.opening
    this.#marks = null
  }

  async sweep (): Promise<void> {
    const s = this.#session
    if (!s.opened) await s.opening
    if (this.#binding.snapshot !== null) throw ASSERTION('Cannot sweep a snapshot', s.discoveryKey)
    for (const [from, to] of (this.#marks ?? new Marks()).unmarked(s.length)) await s.clear(from, to)
    this.#marks = null
  }
}

/** Disk space a directory core's files take (null for other storage): what `info({ storage: true })` reports. */
async function storageUse (dir: string | null): Promise<Info['storage']> {
  if (dir === null) return null
  const use = await CoreStorage.diskUse(dir)
  // Named as Hypercore 11's info() names them: its oplog is our header.
  return { oplog: use.header, tree: use.tree, blocks: use.data, bitfield: use.bitfield }
}
