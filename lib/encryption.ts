/**
 * Block encryption, byte-compatible with Hypercore 11.35.1.
 *
 * A block is encrypted after it is encoded and before it is hashed, so the
 * Merkle tree, signatures and proofs are over ciphertext and a peer without
 * the key still verifies, stores and serves it. Each stored block carries
 * `padding` bytes in front of the ciphertext; the default scheme puts an
 * 8-byte blinded fork id there:
 *
 *     stored = blind(fork) ‖ XSalsa20(block key, nonce)(plaintext)
 *     nonce  = uint64le(index) ‖ blind(fork) ‖ 0⁸                  (24 bytes)
 *     blind(fork) = uint64le(fork) ⊕ XSalsa20(blinding key, uint64le(index) ‖ 0¹⁶)
 *
 * The fork id is blinded so a reader without the key cannot tell which fork a
 * block was written on; (index, fork) is unique per core, so the nonce is
 * never reused under one block key except across a truncation to a fork id
 * used before, which Hypercore 11 accepts and so do we.
 *
 * Keys (`deriveKeys`):
 *   - default: block key = BLAKE2b(caps.DEFAULT_ENCRYPTION ‖ core key ‖ encryption key)
 *   - compat (a Hypercore 10 core, whose key is its signer's public key):
 *     block key = BLAKE2b-keyed(key = core key)(encryption key)
 *   - block (`{ block: true }` / `isBlockKey`): the encryption key is the block key
 *   - blinding key = BLAKE2b(block key), always.
 *
 * Other schemes plug in as an `EncryptionProvider` (Hypercore 11's
 * "HypercoreEncryption" interface).
 */
import sodium from 'sodium-universal'
import b4a from 'b4a'
import { caps } from './crypto'
import { writeU64 } from './uint-le'
import { isCompat } from './manifest'
import { ASSERTION, BAD_ARGUMENT } from './errors'
import type { Manifest } from './messages'

const KEY_BYTES = 32 // sodium.crypto_stream_KEYBYTES
const NONCE_BYTES = 24 // sodium.crypto_stream_NONCEBYTES

// One scratch nonce: encrypt and decrypt are synchronous, so no two calls
// share it at once, and small blocks skip an allocation each (about 2x).
const nonce = b4a.alloc(NONCE_BYTES)

/**
 * What a provider is told about the core it encrypts for (Hypercore 11 hands
 * providers its internal core; these are the fields providers read).
 */
export interface EncryptionCore {
  readonly key: Uint8Array
  readonly discoveryKey: Uint8Array
  /** The core's manifest; null on a reader that has not received it yet. */
  readonly manifest: Manifest | null
  /** True for a Hypercore 10 ("compat") core: its key is its signer's public key. */
  readonly compat: boolean
  readonly length: number
  readonly fork: number
}

/**
 * A block encryption scheme (Hypercore 11's HypercoreEncryption interface).
 * `encrypt` and `decrypt` work in place on a block whose first
 * `padding(core, index)` bytes are the scheme's own; they may be async.
 */
export interface EncryptionProvider {
  /** Bytes reserved in front of block `index`. */
  padding (core: EncryptionCore, index: number): number
  /** Encrypts `block` (padding included) in place, as block `index` on `fork`. */
  encrypt (index: number, block: Uint8Array, fork: number, core: EncryptionCore): void | Promise<void>
  /** Decrypts `block` (padding included) in place; the padding bytes may be left as they are. */
  decrypt (index: number, block: Uint8Array, core: EncryptionCore): void | Promise<void>
}

/** An encryption key, and whether it is already the block key. */
export interface EncryptionKeyOptions {
  key: Uint8Array | null
  /** The key is used as the block key as is (no derivation from the core key). */
  block?: boolean
}

/** The `encryption` option: a key, a key with options, or a provider. */
export type EncryptionOption = Uint8Array | EncryptionKeyOptions | EncryptionProvider | null

/** The encryption-related constructor options, as Hypercore 11 takes them. */
export interface EncryptionOptions {
  encryption?: EncryptionOption
  /** Older form of `encryption: { key }`; wins over `encryption` when set. */
  encryptionKey?: Uint8Array | null
  /** With `encryptionKey`: the key is the block key. */
  isBlockKey?: boolean
}

export interface DerivedKeys {
  block: Uint8Array
  blinding: Uint8Array
}

export interface DeriveOptions {
  block?: boolean
  compat?: boolean
}

/** Hypercore 11's default scheme: XSalsa20 with a blinded fork id as padding. */
export class DefaultEncryption implements EncryptionProvider {
  static readonly PADDING = 8

  readonly #key: Uint8Array
  readonly #isBlockKey: boolean
  #compat: boolean
  #blockKey: Uint8Array
  #blindingKey: Uint8Array

  /**
   * @param encryptionKey the shared secret (or, with `block`, the block key itself)
   * @param hypercoreKey the key of the core it encrypts
   */
  constructor (encryptionKey: Uint8Array, hypercoreKey: Uint8Array, opts: DeriveOptions = {}) {
    const keys = DefaultEncryption.deriveKeys(encryptionKey, hypercoreKey, opts)
    this.#key = encryptionKey
    this.#isBlockKey = opts.block === true
    this.#compat = opts.compat === true
    this.#blockKey = keys.block
    this.#blindingKey = keys.blinding
  }

  /** The encryption key it was made with. */
  get key (): Uint8Array { return this.#key }
  get compat (): boolean { return this.#compat }
  get blockKey (): Uint8Array { return this.#blockKey }
  get blindingKey (): Uint8Array { return this.#blindingKey }

  /** The block and blinding keys of `encryptionKey` for the core `hypercoreKey`. */
  static deriveKeys (encryptionKey: Uint8Array, hypercoreKey: Uint8Array, opts: DeriveOptions = {}): DerivedKeys {
    const block = opts.block === true
    assertKey(encryptionKey, block)
    if (!block) assertBytes(hypercoreKey, 32, 'A core key is 32 bytes')

    let blockKey: Uint8Array
    if (block) {
      blockKey = b4a.from(encryptionKey)
    } else if (opts.compat === true) {
      blockKey = b4a.alloc(KEY_BYTES)
      sodium.crypto_generichash(blockKey, encryptionKey, hypercoreKey)
    } else {
      blockKey = DefaultEncryption.blockEncryptionKey(hypercoreKey, encryptionKey)
    }
    const blinding = b4a.alloc(KEY_BYTES)
    sodium.crypto_generichash(blinding, blockKey)
    return { block: blockKey, blinding }
  }

  /**
   * The block key the default (non-compat) derivation gives: pass it with
   * `{ block: true }` to encrypt without handing out the encryption key.
   */
  static blockEncryptionKey (hypercoreKey: Uint8Array, encryptionKey: Uint8Array): Uint8Array {
    assertBytes(hypercoreKey, 32, 'A core key is 32 bytes')
    assertKey(encryptionKey, false)
    const out = b4a.alloc(KEY_BYTES)
    sodium.crypto_generichash_batch(out, [caps.DEFAULT_ENCRYPTION, hypercoreKey, encryptionKey])
    return out
  }

  /** Encrypts `block` (its first PADDING bytes reserved) in place. */
  static encrypt (index: number, block: Uint8Array, fork: number, blockKey: Uint8Array, blindingKey: Uint8Array): void {
    const P = DefaultEncryption.PADDING
    assertPadded(block, P)
    const padding = block.subarray(0, P)
    nonce.fill(0)
    writeU64(nonce, 0, index)
    writeU64(padding, 0, fork)
    // Blinding reuses a nonce on a reorg back to a fork id seen before; the
    // blinding is best effort (the current fork is public on the wire anyway).
    sodium.crypto_stream_xor(padding, padding, nonce, blindingKey)
    nonce.set(padding, 8)
    const body = block.subarray(P)
    sodium.crypto_stream_xor(body, body, nonce, blockKey)
  }

  /** Decrypts `block` in place; its padding (the blinded fork) is left as it is. */
  static decrypt (index: number, block: Uint8Array, blockKey: Uint8Array): void {
    const P = DefaultEncryption.PADDING
    assertPadded(block, P)
    nonce.fill(0)
    writeU64(nonce, 0, index)
    nonce.set(block.subarray(0, P), 8)
    const body = block.subarray(P)
    sodium.crypto_stream_xor(body, body, nonce, blockKey)
  }

  padding (_core?: EncryptionCore, _index?: number): number {
    return DefaultEncryption.PADDING
  }

  encrypt (index: number, block: Uint8Array, fork: number, core: EncryptionCore): void {
    this.#follow(core)
    DefaultEncryption.encrypt(index, block, fork, this.#blockKey, this.#blindingKey)
  }

  decrypt (index: number, block: Uint8Array, core: EncryptionCore): void {
    this.#follow(core)
    DefaultEncryption.decrypt(index, block, this.#blockKey)
  }

  /**
   * A reader made before the manifest arrived assumed a non-compat core; when
   * the manifest says otherwise, the block key is derived again. (Hypercore
   * 11.35.1 tries the same but loses the keys, so its reader of an encrypted
   * compat core fails unless opened with `compat: true`.)
   */
  #follow (core: EncryptionCore): void {
    if (core.compat === this.#compat) return
    const keys = DefaultEncryption.deriveKeys(this.#key, core.key, { block: this.#isBlockKey, compat: core.compat })
    this.#compat = core.compat
    this.#blockKey = keys.block
    this.#blindingKey = keys.blinding
  }
}

/** Whether `value` has the three functions of an encryption provider. */
export function isEncryptionProvider (value: unknown): value is EncryptionProvider {
  if (value === null || typeof value !== 'object') return false
  const v = value as Record<string, unknown>
  return typeof v.padding === 'function' && typeof v.encrypt === 'function' && typeof v.decrypt === 'function'
}

/**
 * The encryption the options ask for, as Hypercore 11 reads them:
 * `encryptionKey` (+ `isBlockKey`) first, then `encryption` as bytes, as
 * `{ key, block }`, or as a provider. Null when none.
 */
export function encryptionOption (opts: EncryptionOptions): EncryptionKeyOptions | EncryptionProvider | null {
  if (opts.encryptionKey) {
    assertKey(opts.encryptionKey, opts.isBlockKey === true)
    return { key: opts.encryptionKey, block: opts.isBlockKey === true }
  }
  const e = opts.encryption
  if (e === undefined || e === null) return null
  if (e instanceof Uint8Array) return { key: e }
  if (isEncryptionProvider(e)) return e
  if (typeof e !== 'object') throw BAD_ARGUMENT('encryption is a key, { key, block } or a provider with padding, encrypt and decrypt')
  // As Hypercore 11: an object without a key means no encryption.
  const { key = null, block = false } = e
  if (key !== null) assertKey(key, block === true)
  return { key, block: block === true }
}

/**
 * A provider for an option: a provider as is, a key turned into the default
 * scheme for `core`, or null for no key.
 */
export function resolveEncryption (option: EncryptionKeyOptions | EncryptionProvider | null, core: EncryptionCore): EncryptionProvider | null {
  if (option === null) return null
  if (isEncryptionProvider(option)) return option
  if (!option.key) return null
  return new DefaultEncryption(option.key, core.key, { block: option.block === true, compat: core.compat })
}

/** Checks a value handed to `setEncryption`; throws ASSERTION as Hypercore 11 does. */
export function assertProvider (value: unknown): asserts value is EncryptionProvider | null {
  if (value !== null && !isEncryptionProvider(value)) {
    throw ASSERTION('Provider does not satisfy HypercoreEncryption interface')
  }
}

/** The shared parts of a core a provider may read. */
export interface CoreLike {
  readonly key: Uint8Array
  readonly discoveryKey: Uint8Array
  readonly manifest: Manifest | null
  readonly length: number
  readonly fork: number
}

const views = new WeakMap<CoreLike, EncryptionCore>()

/** A live, read-only view of `core` for providers (one per core). */
export function encryptionCore (core: CoreLike): EncryptionCore {
  let view = views.get(core)
  if (view === undefined) {
    view = Object.freeze({
      get key () { return core.key },
      get discoveryKey () { return core.discoveryKey },
      get manifest () { return core.manifest },
      get compat () { return isCompat(core.key, core.manifest) },
      get length () { return core.length },
      get fork () { return core.fork }
    })
    views.set(core, view)
  }
  return view
}

/**
 * `block` encoded with `padding` free bytes in front: a fresh buffer, so
 * in-place encryption never touches the caller's bytes.
 */
export function padBlock (block: Uint8Array, padding: number): Uint8Array {
  const out = b4a.allocUnsafe(padding + block.byteLength)
  out.fill(0, 0, padding)
  out.set(block, padding)
  return out
}

/** Checks a provider's padding: a small non-negative integer. */
export function checkPadding (padding: unknown): number {
  if (typeof padding !== 'number' || !Number.isSafeInteger(padding) || padding < 0 || padding > 0xffff) {
    throw ASSERTION('Encryption padding must be a non-negative integer, got ' + String(padding))
  }
  return padding
}

function assertKey (key: Uint8Array, block: boolean): void {
  if (!(key instanceof Uint8Array)) throw BAD_ARGUMENT('An encryption key is a byte array')
  if (block && key.byteLength !== KEY_BYTES) throw BAD_ARGUMENT('A block encryption key is 32 bytes')
}

function assertBytes (b: Uint8Array, size: number, msg: string): void {
  if (!(b instanceof Uint8Array) || b.byteLength !== size) throw BAD_ARGUMENT(msg)
}

function assertPadded (block: Uint8Array, padding: number): void {
  if (!(block instanceof Uint8Array) || block.byteLength < padding) throw BAD_ARGUMENT('A block is shorter than its encryption padding')
}
