// The parts of sodium-universal nomadcore calls; the package ships no types.
declare module 'sodium-universal' {
  export const crypto_sign_PUBLICKEYBYTES: number
  export const crypto_sign_SECRETKEYBYTES: number
  export const crypto_sign_SEEDBYTES: number
  export const crypto_sign_BYTES: number
  export const crypto_generichash_BYTES: number
  export const crypto_generichash_KEYBYTES: number
  export function crypto_generichash (out: Uint8Array, input: Uint8Array, key?: Uint8Array): void
  export function crypto_generichash_batch (out: Uint8Array, inputs: Uint8Array[], key?: Uint8Array): void
  export function crypto_sign_keypair (publicKey: Uint8Array, secretKey: Uint8Array): void
  export function crypto_sign_seed_keypair (publicKey: Uint8Array, secretKey: Uint8Array, seed: Uint8Array): void
  export function crypto_sign_detached (signature: Uint8Array, message: Uint8Array, secretKey: Uint8Array): void
  export function crypto_sign_verify_detached (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean
  export function crypto_sign_ed25519_sk_to_pk (publicKey: Uint8Array, secretKey: Uint8Array): void
  export const crypto_stream_KEYBYTES: number
  export const crypto_stream_NONCEBYTES: number
  /** XSalsa20: `out` = `input` XOR keystream(`nonce`, `key`); `out` may be `input`. */
  export function crypto_stream_xor (out: Uint8Array, input: Uint8Array, nonce: Uint8Array, key: Uint8Array): void
  export function randombytes_buf (buf: Uint8Array): void
  export function sodium_memcmp (a: Uint8Array, b: Uint8Array): boolean
}
