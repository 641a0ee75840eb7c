/**
 * Typed access to Hypercore 11's block encryption: the constructor options,
 * `setEncryption` / `setEncryptionKey`, `padding`, the `raw` / `decrypt` get
 * options and the `DefaultEncryption` statics. Kept apart from oracle.ts,
 * which types the unencrypted surface.
 */
import { tmpDir, type Hypercore as Plain11, type HypercoreOptions, type GetOptions, type Teardownable } from './oracle'

/** The `core` Hypercore 11 hands a provider (its internal core; opaque here). */
export type ProviderCore = unknown

/** Hypercore 11's HypercoreEncryption interface. */
export interface Provider11 {
  padding (core: ProviderCore, index: number): number
  encrypt (index: number, block: Uint8Array, fork: number, core: ProviderCore): void | Promise<void>
  decrypt (index: number, block: Uint8Array, core: ProviderCore): void | Promise<void>
}

export interface EncryptionOptions11 extends HypercoreOptions {
  encryption?: Uint8Array | { key: Uint8Array | null, block?: boolean } | Provider11 | null
  encryptionKey?: Uint8Array | null
  isBlockKey?: boolean
}

export interface EncryptedGetOptions extends GetOptions {
  decrypt?: boolean
}

export interface EncryptedHypercore11 extends Plain11 {
  readonly padding: number
  readonly encryption: Provider11 | null
  get<T = Buffer> (index: number, opts?: EncryptedGetOptions): Promise<T | null>
  seek (bytes: number): Promise<[number, number] | null>
  info (): Promise<{ byteLength: number, padding: number, length: number }>
  setEncryption (encryption: Provider11 | null): Promise<void>
  setEncryptionKey (key: Uint8Array | null, opts?: { block?: boolean }): Promise<void>
  createReadStream (opts?: { start?: number, end?: number }): AsyncIterable<Buffer>
}

export interface DefaultEncryption11 {
  readonly PADDING: number
  deriveKeys (encryptionKey: Uint8Array, hypercoreKey: Uint8Array, opts?: { block?: boolean, compat?: boolean }): { block: Buffer, blinding: Buffer }
  blockEncryptionKey (hypercoreKey: Uint8Array, encryptionKey: Uint8Array): Buffer
  encrypt (index: number, block: Uint8Array, fork: number, blockKey: Uint8Array, blindingKey: Uint8Array): void
  decrypt (index: number, block: Uint8Array, blockKey: Uint8Array): void
}

interface Hypercore11Class {
  new (storage: string, key: Uint8Array | null, opts?: EncryptionOptions11): EncryptedHypercore11
  readonly DefaultEncryption: DefaultEncryption11
  blockEncryptionKey (key: Uint8Array, encryptionKey: Uint8Array): Buffer
}

export const Hypercore11 = require('hypercore') as Hypercore11Class

/** A ready Hypercore 11 core in a temp dir, closed at teardown. */
export async function hc11 (t: Teardownable, key: Uint8Array | null, opts: EncryptionOptions11 = {}): Promise<EncryptedHypercore11> {
  const core = new Hypercore11(await tmpDir(t), key, opts)
  t.teardown(() => core.close(), { order: 0 })
  await core.ready()
  return core
}
