declare module 'codecs' {
  interface Codec<T = any> {
    name?: string
    encode (value: T): Uint8Array
    decode (bytes: Uint8Array): T
  }
  /** A codec for an encoding name ('binary', 'utf-8', 'json', 'ndjson', 'hex', 'base64', 'ascii', 'ucs2', 'utf16le'), an abstract-encoding or a compact-encoding; unknown names fall back to binary (or `fallback`). */
  function codecs (fmt?: string | object | null, fallback?: Codec): Codec
  namespace codecs {
    export type { Codec }
    export const binary: Codec<Uint8Array>
    export const json: Codec
    export const ndjson: Codec
    export const utf8: Codec<string>
  }
  export = codecs
}
