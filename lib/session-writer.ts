/**
 * How one session changes the core: the appends and truncations it signs
 * (whether it was opened read-only, the key pair it signs with, the checks
 * a commit must pass), the blocks it clears, the user data it sets, and
 * purging the core. Apart from the public class because this is the
 * write-side state of a session, and one place decides who may commit.
 */
import * as fs from 'node:fs'
import b4a from 'b4a'
import type { Hypercore } from './hypercore'
import type { Core } from './core'
import type { KeyPair } from './crypto'
import type { BlockCodec } from './block-codec'
import type { SessionBinding } from './session-binding'
import { BAD_ARGUMENT, SESSION_NOT_WRITABLE } from './errors'
import { assertIndex, type AppendOptions, type TruncateOptions } from './session-options'

/** Hypercore 11 enforces nothing, but suggests blocks of at most 15 MiB (each goes over the wire whole). */
export const MAX_SUGGESTED_BLOCK_SIZE = 15 * 1024 * 1024

export class SessionWriter {
  readonly #session: Hypercore
  readonly #binding: SessionBinding
  readonly #codec: BlockCodec
  readonly #readonly: boolean
  #keyPair: KeyPair | null

  constructor (session: Hypercore, binding: SessionBinding, codec: BlockCodec, readonly: boolean, keyPair: KeyPair | null) {
    this.#session = session
    this.#binding = binding
    this.#codec = codec
    this.#readonly = readonly
    this.#keyPair = keyPair
  }

  /** Opened with `writable: false`. */
  get readonly (): boolean { return this.#readonly }

  /** The key pair this session signs with, if it has one of its own. */
  get keyPair (): KeyPair | null { return this.#keyPair }
  set keyPair (keyPair: KeyPair | null) { this.#keyPair = keyPair }

  /** As the session opens: without a key pair of its own it signs with its parent's, else the core's. */
  inherit (parent: SessionWriter | null, core: Core): void {
    if (this.#keyPair === null) this.#keyPair = (parent !== null ? parent.#keyPair : null) ?? core.keyPair
  }

  /** Whether this session could append now (closing aside). */
  get canWrite (): boolean {
    if (this.#readonly || this.#binding.snapshot !== null) return false
    const core = this.#binding.shared?.core ?? null
    return core === null ? false : core.canSign(this.#keyPair ?? core.keyPair)
  }

  async append (blocks: unknown, opts: AppendOptions): Promise<{ length: number, byteLength: number }> {
    const core = await this.#binding.live('Cannot append to a closed session')
    const s = this.#session
    const keyPair = opts.keyPair ?? this.#keyPair ?? core.keyPair
    const signature = opts.signature ?? null
    const canCommit = signature !== null || core.canSign(keyPair) || opts.writable === true
    if (this.#readonly || this.#binding.snapshot !== null || !canCommit) {
      throw SESSION_NOT_WRITABLE('cannot append to a readonly core', s.discoveryKey)
    }
    const list = Array.isArray(blocks) ? blocks : [blocks]
    const buffers = this.#codec.encode(list, s.padding)
    for (const b of buffers) {
      if (b.byteLength > MAX_SUGGESTED_BLOCK_SIZE) throw BAD_ARGUMENT('Appended block exceeds the maximum suggested block size', s.discoveryKey)
    }
    // As in Hypercore 11, the byte length returned counts the encryption padding.
    return core.append(buffers, { keyPair, signature, maxLength: opts.maxLength, preappend: this.#codec.encrypter(core) })
  }

  /** Without a signer, only clearing the core on its current fork is allowed. */
  async truncate (newLength: number, opts: number | TruncateOptions): Promise<void> {
    const core = await this.#binding.live('Cannot truncate a closed session')
    const o = typeof opts === 'number' ? { fork: opts } : opts
    const fork = o.fork ?? core.fork + 1
    const keyPair = o.keyPair ?? this.#keyPair ?? core.keyPair
    const signature = o.signature ?? null
    const canCommit = signature !== null || core.canSign(keyPair)
    if (this.#readonly || this.#binding.snapshot !== null || (!canCommit && (newLength > 0 || fork !== core.fork))) {
      throw SESSION_NOT_WRITABLE('cannot truncate a non-writable core', this.#session.discoveryKey)
    }
    await core.truncate(newLength, fork, { keyPair, signature })
  }

  async clear (start: number, end: number | { diff?: boolean } | undefined, opts: { diff?: boolean }): Promise<{ blocks: number } | null> {
    const s = this.#session
    const core = await this.#binding.live('cannot clear on a closed session')
    if (typeof end === 'object' && end !== null) {
      opts = end
      end = undefined
    }
    const stop = end ?? start + 1
    assertIndex(start, 'clear range', s.discoveryKey)
    assertIndex(stop, 'clear range', s.discoveryKey)
    const diff = opts.diff === true
    if (start >= stop || start >= s.length) return diff ? { blocks: 0 } : null
    const freed = await core.clear(start, stop)
    return diff ? { blocks: freed ?? 0 } : null
  }

  async purge (): Promise<void> {
    const s = this.#session
    if (!s.opened) await s.opening.catch(noop)
    const shared = this.#binding.openShared
    await shared.closeAllSessions()
    await shared.storage.unlink().catch(noop)
    if (shared.directory !== null) await fs.promises.rm(shared.directory, { recursive: true, force: true }).catch(noop)
  }

  async setUserData (key: string, value: Uint8Array | string | null): Promise<void> {
    const core = await this.#binding.live()
    const bytes = value === null ? null : typeof value === 'string' ? b4a.from(value) : value
    const existing = core.getUserData(key)
    if (existing !== null && bytes !== null && b4a.equals(existing, bytes)) return
    await core.setUserData(key, bytes)
  }

  async getUserData (key: string): Promise<Uint8Array | null> {
    const s = this.#session
    if (!s.opened) await s.opening
    const value = this.#binding.core.getUserData(key)
    return value === null ? null : b4a.from(value)
  }
}

function noop (): void {}
