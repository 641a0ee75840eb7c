/**
 * BLAKE2b-256 of a range of bytes, for the hot hashes: leaves and parents of
 * the tree, which the audit, verified reads and every replicated block spend
 * most of their time on.
 *
 * Why not only `sodium.crypto_generichash`: its JavaScript wrapper checks its
 * arguments with `node:assert` before the native call, about 180 ns a call on
 * this project's bench machine, 40% of hashing a parent node. Under Node,
 * sodium-universal is sodium-native, whose binding takes the output and input
 * as ArrayBuffer ranges and checks them itself. So when the binding is the
 * one sodium-universal loads, of the major version whose signature this
 * module was written against, and it hashes known inputs exactly as the
 * wrapper does, hashes go to it directly; otherwise (browsers, another
 * sodium-native) through the wrapper. Ranges are bounds-checked here first:
 * the binding aborts the process on a bad range instead of throwing.
 */
import path from 'path'
import sodium from 'sodium-universal'

/** sodium-native 5's `crypto_generichash`: out, input and key each as (ArrayBuffer, offset, length); 0 on success. */
type NativeHash = (
  out: ArrayBufferLike, outOffset: number, outLength: number,
  input: ArrayBufferLike, inOffset: number, inLength: number,
  key: ArrayBufferLike, keyOffset: number, keyLength: number
) => number

const NO_KEY = new ArrayBuffer(0)

function loadNative (): NativeHash | null {
  try {
    // The copy of sodium-native that sodium-universal itself requires, not whichever a bundler hoists.
    const from = { paths: [path.dirname(require.resolve('sodium-universal'))] }
    const pkg = require(require.resolve('sodium-native/package.json', from)) as { version?: unknown }
    if (typeof pkg.version !== 'string' || !pkg.version.startsWith('5.')) return null
    const binding = require(require.resolve('sodium-native/binding', from)) as { crypto_generichash?: unknown }
    if (typeof binding.crypto_generichash !== 'function') return null
    const native = binding.crypto_generichash as NativeHash
    return agrees(native) ? native : null
  } catch {
    return null
  }
}

/** Whether `native` hashes ranges of a buffer exactly as the wrapper hashes copies of them. */
function agrees (native: NativeHash): boolean {
  const input = new Uint8Array(300)
  for (let i = 0; i < input.length; i++) input[i] = (i * 151 + 7) & 0xff
  const got = new Uint8Array(40)
  const want = new Uint8Array(32)
  for (const [at, length] of [[0, 0], [0, 1], [3, 73], [5, 128], [17, 129], [1, 299]] as const) {
    if (native(got.buffer, 5, 32, input.buffer, at, length, NO_KEY, 0, 0) !== 0) return false
    sodium.crypto_generichash(want, input.slice(at, at + length))
    for (let k = 0; k < 32; k++) if (got[5 + k] !== want[k]) return false
  }
  return true
}

const native = loadNative()

/** Whether hashes take the direct path (the tests check it does under Node). */
export const directHashing = native !== null

/**
 * An input buffer and a digest buffer with the hash between them: what the
 * tree's hashes are built in. Both buffers are its own, so the call passes
 * their ranges as they are (reading `.buffer` off a typed array on each call
 * costs a third of the saving).
 */
export class ScratchHasher {
  /** Bytes to hash are written here, from 0. */
  readonly input: Uint8Array
  /** BLAKE2b-256 of the last `hash(length)`. */
  readonly digest: Uint8Array
  readonly #inBuffer: ArrayBuffer
  readonly #outBuffer: ArrayBuffer
  /** Views of `input` by length, for the wrapper (no native binding). */
  readonly #views: Uint8Array[] = []

  constructor (capacity: number) {
    this.#inBuffer = new ArrayBuffer(capacity)
    this.#outBuffer = new ArrayBuffer(32)
    this.input = new Uint8Array(this.#inBuffer)
    this.digest = new Uint8Array(this.#outBuffer)
  }

  /** Hashes `input[0, length)` into `digest`. */
  hash (length: number): void {
    if (!(length >= 0 && length <= this.#inBuffer.byteLength)) throw new RangeError('Hash range out of bounds')
    if (native === null) {
      let view = this.#views[length]
      if (view === undefined) view = this.#views[length] = this.input.subarray(0, length)
      sodium.crypto_generichash(this.digest, view)
    } else if (native(this.#outBuffer, 0, 32, this.#inBuffer, 0, length, NO_KEY, 0, 0) !== 0) {
      throw new Error('BLAKE2b failed')
    }
  }

  /** Hashes `bytes[at, at + length)` where they are into `digest`. */
  hashOf (bytes: Uint8Array, at: number, length: number): void {
    if (!(at >= 0 && length >= 0 && at + length <= bytes.byteLength)) throw new RangeError('Hash range out of bounds')
    if (native === null) {
      sodium.crypto_generichash(this.digest, bytes.subarray(at, at + length))
    } else if (native(this.#outBuffer, 0, 32, bytes.buffer, bytes.byteOffset + at, length, NO_KEY, 0, 0) !== 0) {
      throw new Error('BLAKE2b failed')
    }
  }
}
