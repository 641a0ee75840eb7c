import c from 'compact-encoding'
import b4a from 'b4a'
import { BAD_ARGUMENT } from './errors'

/** How block values map to bytes: Hypercore's named encodings or any codec. */
export interface Codec<T = unknown> {
  encode (value: T): Uint8Array
  decode (bytes: Uint8Array): T
}

/** A compact-encoding codec, as `valueEncoding` accepts. */
export interface CompactCodec<T = unknown> {
  preencode (state: c.State, value: T): void
  encode (state: c.State, value: T): void
  decode (state: c.State): T
}

export type ValueEncoding = 'binary' | 'utf-8' | 'utf8' | 'json' | Codec | CompactCodec

const binary: Codec = {
  encode (value) {
    if (typeof value === 'string') return b4a.from(value)
    if (value instanceof Uint8Array) return value
    throw BAD_ARGUMENT('A binary block is a Uint8Array or a string')
  },
  decode: bytes => bytes
}

const utf8: Codec = {
  encode (value) {
    if (typeof value === 'string') return b4a.from(value)
    if (value instanceof Uint8Array) return value
    throw BAD_ARGUMENT('A utf-8 block is a string')
  },
  decode: bytes => b4a.toString(bytes as Buffer, 'utf-8')
}

const json: Codec = {
  encode: value => b4a.from(JSON.stringify(value)),
  decode: bytes => JSON.parse(b4a.toString(bytes as Buffer, 'utf-8'))
}

function isCompact (enc: object): enc is CompactCodec {
  return 'preencode' in enc
}

/** Resolves a `valueEncoding` option to a codec; unknown names are a BAD_ARGUMENT. */
export function resolveEncoding (enc: ValueEncoding | null | undefined): Codec {
  if (enc === undefined || enc === null || enc === 'binary') return binary
  if (enc === 'utf-8' || enc === 'utf8') return utf8
  if (enc === 'json') return json
  if (typeof enc === 'object' && isCompact(enc)) {
    return { encode: v => c.encode(enc, v), decode: b => c.decode(enc, b) }
  }
  if (typeof enc === 'object' && typeof enc.encode === 'function' && typeof enc.decode === 'function') return enc
  throw BAD_ARGUMENT('Unknown value encoding: ' + String(enc))
}
