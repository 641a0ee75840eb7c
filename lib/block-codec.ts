/**
 * How one session turns values into stored block bytes and back: its value
 * encoding (or batch encoder), then its block encryption with the padding
 * that reserves in front of every block. Tree hashes and proofs are over
 * the stored (encrypted) bytes, as in Hypercore 11.
 */
import b4a from 'b4a'
import { checkPadding, encryptionCore, padBlock, type CoreLike, type EncryptionProvider } from './encryption'
import { resolveEncoding, type Codec, type ValueEncoding } from './value-encoding'
import { DECODING_ERROR } from './errors'

export class BlockCodec {
  encoding: Codec
  readonly encodeBatch: ((values: unknown[]) => Uint8Array[]) | null
  encryption: EncryptionProvider | null = null

  constructor (valueEncoding: ValueEncoding | null | undefined, encodeBatch: ((values: unknown[]) => Uint8Array[]) | null) {
    this.encoding = resolveEncoding(valueEncoding)
    this.encodeBatch = encodeBatch
  }

  /** Bytes of encryption padding in front of block `index` (0 without encryption or before the manifest is known). */
  padding (core: CoreLike | null, index: number): number {
    if (this.encryption === null || core === null || core.manifest === null) return 0
    return checkPadding(this.encryption.padding(encryptionCore(core), index))
  }

  /**
   * Values as blocks to append, padding reserved: bytes pass as they are (as
   * in Hypercore 11), a padded block is a fresh buffer so in-place encryption
   * never touches the caller's bytes.
   */
  encode (values: unknown[], padding: number): Uint8Array[] {
    if (this.encodeBatch !== null) return this.encodeBatch(values)
    return values.map(value => {
      const bytes = value instanceof Uint8Array ? value : this.encoding.encode(value)
      return padding === 0 ? bytes : padBlock(bytes, padding)
    })
  }

  /** Encrypts blocks in place as blocks `start`… on `fork` (runs under the core's append lock); null without encryption. */
  encrypter (core: CoreLike): ((blocks: Uint8Array[], start: number, fork: number) => Promise<void>) | undefined {
    const encryption = this.encryption
    if (encryption === null) return undefined
    const view = encryptionCore(core)
    return async (blocks, start, fork) => {
      for (let i = 0; i < blocks.length; i++) await encryption.encrypt(start + i, blocks[i]!, fork, view)
    }
  }

  /**
   * A stored block as a value: decrypted (a copy) unless asked not to,
   * padding stripped, decoded with `enc`. Synchronous without encryption, so
   * a plain `get` makes no promise here.
   */
  decode (core: CoreLike, index: number, block: Uint8Array, enc: Codec, opts: { decrypt?: boolean }): unknown {
    const encryption = this.encryption
    if (encryption === null) return decodeValue(enc, block, core)
    return this.#decrypt(encryption, core, index, block, enc, opts.decrypt !== false)
  }

  async #decrypt (encryption: EncryptionProvider, core: CoreLike, index: number, block: Uint8Array, enc: Codec, decrypt: boolean): Promise<unknown> {
    const view = encryptionCore(core)
    if (decrypt) {
      block = b4a.from(block) // decrypted in place: never touch bytes another reader may hold
      await encryption.decrypt(index, block, view)
    }
    return decodeValue(enc, block.subarray(checkPadding(encryption.padding(view, index))), core)
  }
}

function decodeValue (enc: Codec, block: Uint8Array, core: CoreLike): unknown {
  try {
    return enc.decode(block)
  } catch (err) {
    throw DECODING_ERROR(err instanceof Error ? err.message : String(err), core.discoveryKey)
  }
}
