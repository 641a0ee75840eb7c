// hypercore-id-encoding 1.3: Hypercore keys to and from z-base-32 or hex. The package ships no types.
declare module 'hypercore-id-encoding' {
  /** A 32-byte key as 52 z-base-32 characters (Hypercore's `id`). Throws on anything else. */
  export function encode (key: Uint8Array): string
  /**
   * A key from 64 hex characters, 52 z-base-32 characters, a `pear://` link
   * or 32 bytes (returned as is). Throws 'Invalid Hypercore key' otherwise.
   */
  export function decode (id: string | Uint8Array): Uint8Array
  /** Any accepted form, as z-base-32. */
  export function normalize (id: string | Uint8Array): string
  export function isValid (id: unknown): boolean
}
