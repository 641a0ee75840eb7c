/**
 * Corestore 7's key derivation, so a store moved from Corestore keeps its
 * named cores' keys: a namespace is a hash of its parent namespace and a
 * name (the root namespace is 32 zero bytes), and a named core's key pair
 * is seeded by the primary key keying a hash of that namespace and the name.
 * Pure functions of bytes.
 */
import b4a from 'b4a'
import { hash, keyedHash, keyPair, namespace, type KeyPair } from '../crypto'
import { BAD_ARGUMENT } from '../errors'

const [SEED_NS] = namespace('corestore', 1) as [Uint8Array]

/** The root namespace: 32 zero bytes, as Corestore's. */
export const DEFAULT_NAMESPACE: Uint8Array = b4a.alloc(32)

function nameBytes (name: string | Uint8Array): Uint8Array {
  if (typeof name === 'string') return b4a.from(name)
  if (name instanceof Uint8Array) return name
  throw BAD_ARGUMENT('A name is a string or bytes')
}

/** The namespace `name` under namespace `parent`. */
export function childNamespace (parent: Uint8Array, name: string | Uint8Array): Uint8Array {
  return hash([parent, nameBytes(name)])
}

/** The seed of the key pair of core `name` in namespace `ns`. */
export function deriveSeed (primaryKey: Uint8Array, ns: Uint8Array, name: string | Uint8Array): Uint8Array {
  if (!(primaryKey instanceof Uint8Array) || primaryKey.byteLength !== 32) throw BAD_ARGUMENT('A primary key is 32 bytes')
  return keyedHash([SEED_NS, ns, nameBytes(name)], primaryKey)
}

/** The key pair of core `name` in namespace `ns`: Corestore 7's `createKeyPair(name, ns)`. */
export function createKeyPair (primaryKey: Uint8Array, ns: Uint8Array, name: string | Uint8Array): KeyPair {
  return keyPair(deriveSeed(primaryKey, ns, name))
}
