/**
 * Value encodings, resolved by `codecs` — the library Hyperbee and Corestore
 * use — so every encoding name behaves as it does under Hypercore 11:
 * 'binary', 'utf-8'/'utf8', 'json', 'ndjson', 'ascii', 'hex', 'base64',
 * 'ucs2', 'utf16le', any abstract-encoding ({ encode, decode }) and any
 * compact-encoding codec.
 */
import codecs from 'codecs'
import type c from 'compact-encoding'
import { BAD_ARGUMENT } from './errors'

/** How block values map to bytes. */
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

export type ValueEncoding =
  | 'binary' | 'utf-8' | 'utf8' | 'json' | 'ndjson' | 'ascii' | 'hex' | 'base64' | 'ucs2' | 'ucs-2' | 'utf16le' | 'utf16-le'
  | Codec | CompactCodec

const KNOWN = new Set(['binary', 'utf-8', 'utf8', 'json', 'ndjson', 'ascii', 'hex', 'base64', 'ucs2', 'ucs-2', 'utf16le', 'utf16-le'])

/** Resolves a `valueEncoding` option to a codec; unknown names are a BAD_ARGUMENT. */
export function resolveEncoding (enc: ValueEncoding | null | undefined): Codec {
  if (enc === undefined || enc === null) return codecs.binary as Codec
  if (typeof enc === 'string') {
    if (!KNOWN.has(enc)) throw BAD_ARGUMENT('Unknown value encoding: ' + enc)
    return codecs(enc) as Codec
  }
  if (typeof enc === 'object' && typeof enc.encode === 'function' && typeof enc.decode === 'function') return codecs(enc) as Codec
  throw BAD_ARGUMENT('A value encoding is a name, an abstract-encoding or a compact-encoding')
}
