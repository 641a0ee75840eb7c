declare module 'hypercore-id-encoding' {
  /** A 32-byte key as 52 z32 characters. Throws on anything but 32 bytes. */
  export function encode (key: Uint8Array): string
  /** A key from 32 bytes, 64 hex characters, 52 z32 characters or a pear:// link. Throws on anything else. */
  export function decode (id: Uint8Array | string): Uint8Array
  /** Any accepted form, as z32. */
  export function normalize (id: Uint8Array | string): string
  export function isValid (id: unknown): boolean
}
