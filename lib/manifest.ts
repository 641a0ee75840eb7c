/**
 * Manifests of Hypercore 11: who may sign a core, and how signatures over a
 * tree (tree hash, length, fork) are produced and checked.
 *
 * A core's key is `manifestHash(manifest)`, except for "compat" cores made by
 * Hypercore 10, whose key is the single signer's public key. Everything here is
 * pure; `verify` treats signature bytes as hostile and only ever answers.
 *
 * Not supported: patched multi-signatures (`allowPatch` signers that signed an
 * older length); such a proof makes `verify` return false. Legacy (header-less)
 * compat signables are not supported either.
 */
import b4a from 'b4a'
import * as crypto from './crypto'
import type { KeyPair } from './crypto'
import { writeU64 } from './uint-le'
import { BAD_ARGUMENT } from './errors'
import * as m from './messages'
import type { Manifest, ManifestSigner, Prologue, MultiSignatureProof } from './messages'

export type { Manifest, ManifestSigner, Prologue }

export interface ManifestSignerInput {
  signature?: string
  namespace?: Uint8Array
  publicKey: Uint8Array
}

/** What `createManifest` accepts: a partial manifest, as Hypercore does. */
export interface ManifestInput {
  version?: number
  hash?: string
  allowPatch?: boolean
  quorum?: number
  signers?: ManifestSignerInput[]
  prologue?: Prologue | null
  linked?: Uint8Array[] | null
  userData?: Uint8Array | null
}

/** A signer's contribution to a multi-signature (no patch support). */
export interface PartialSignature {
  signer: number
  signature: Uint8Array
}

/** The manifest of a new single-writer core (Hypercore 11 default). */
export function defaultManifest (publicKey: Uint8Array): Manifest {
  if (!isBytes(publicKey, 32)) throw BAD_ARGUMENT('A public key is 32 bytes')
  return {
    version: 1,
    hash: 'blake2b',
    allowPatch: false,
    quorum: 1,
    signers: [{ signature: 'ed25519', namespace: crypto.caps.DEFAULT_NAMESPACE, publicKey }],
    prologue: null,
    linked: null,
    userData: null
  }
}

/**
 * Normalises user input into a full manifest, as Hypercore's
 * `Verifier.createManifest`; bytes are decoded as an encoded manifest.
 * Throws `BAD_ARGUMENT` for input Hypercore refuses or could not encode.
 */
export function createManifest (input: ManifestInput | Uint8Array): Manifest
export function createManifest (input: ManifestInput | Uint8Array | null | undefined): Manifest | null
export function createManifest (input: ManifestInput | Uint8Array | null | undefined): Manifest | null {
  if (!input) return null
  if (input instanceof Uint8Array) return m.decode(m.manifest, input)
  if (typeof input !== 'object') throw BAD_ARGUMENT('A manifest is an object')

  const signers = input.signers ?? []
  if (!Array.isArray(signers)) throw BAD_ARGUMENT('Signers must be an array')

  if (input.quorum !== undefined && input.quorum !== null) {
    if (typeof input.quorum !== 'number' || !Number.isSafeInteger(input.quorum)) {
      throw BAD_ARGUMENT('Quorum must be an integer')
    }
    if (input.quorum < 0) throw BAD_ARGUMENT('Quorum cannot be negative')
    if (input.quorum > signers.length) {
      throw BAD_ARGUMENT('Quorum should not be higher than the number of signers')
    }
  }

  const version = manifestVersion(input)
  if (version !== 0 && version !== 1 && version !== 2) throw BAD_ARGUMENT('Unknown manifest version')
  if (input.hash && input.hash !== 'blake2b') throw BAD_ARGUMENT('Only Blake2b hashes are supported')

  const userData = input.userData ?? null
  if (userData !== null) {
    if (!(userData instanceof Uint8Array)) throw BAD_ARGUMENT('Invalid field: userData')
    if (version < 2) throw BAD_ARGUMENT('Invalid field: userData')
  }

  const manifest: Manifest = {
    version,
    hash: 'blake2b',
    allowPatch: !!input.allowPatch,
    quorum: defaultQuorum(input.quorum, signers.length),
    signers: signers.map(parseSigner),
    prologue: null,
    linked: null,
    userData
  }

  if (input.prologue) {
    const p = input.prologue
    if (!isBytes(p.hash, 32) || !(typeof p.length === 'number' && Number.isSafeInteger(p.length) && p.length >= 0)) {
      throw BAD_ARGUMENT('Invalid prologue')
    }
    manifest.prologue = { hash: copy(p.hash), length: p.length }
  }

  if (input.linked && input.linked.length) {
    if (version < 2) throw BAD_ARGUMENT('Invalid field: linked')
    for (const key of input.linked) {
      if (!isBytes(key, 32)) throw BAD_ARGUMENT('Invalid key')
    }
    manifest.linked = input.linked.slice()
  }

  return manifest
}

/** The key of a (non-compat) core: BLAKE2b(caps.MANIFEST ‖ encode(manifest)). */
export function manifestHash (manifest: Manifest): Uint8Array {
  return crypto.hash([crypto.caps.MANIFEST, m.encode(m.manifest, manifest)])
}

/** Whether `key` is the hash of `manifest`. */
export function isValidManifest (key: Uint8Array, manifest: Manifest): boolean {
  return b4a.equals(key, manifestHash(manifest))
}

/** Whether `key` is a Hypercore 10 key: the public key of the single signer. */
export function isCompat (key: Uint8Array, manifest: Manifest | null): boolean {
  return manifest !== null &&
    manifest.signers.length === 1 &&
    b4a.equals(key, manifest.signers[0]!.publicKey)
}

/**
 * Signs the tree (`treeHash`, `length`, `fork`) of the core `key` as the
 * signer of `manifest` holding `keyPair`. For a v1+ manifest with one signer
 * the result is the complete multi-signature; with several signers it is this
 * signer's raw 64-byte part (see `assembleSignature`); v0 and compat cores
 * get raw signatures. Throws `BAD_ARGUMENT` if `keyPair` is no signer.
 */
export function sign (
  manifest: Manifest,
  key: Uint8Array,
  treeHash: Uint8Array,
  length: number,
  fork: number,
  keyPair: KeyPair
): Uint8Array {
  if (!keyPair || !keyPair.secretKey) throw BAD_ARGUMENT('No key pair was passed')

  const compat = isCompat(key, manifest)
  const version = effectiveVersion(manifest, compat)

  for (let i = 0; i < manifest.signers.length; i++) {
    const s = manifest.signers[i]!
    if (!b4a.equals(s.publicKey, keyPair.publicKey)) continue

    const signable = compat
      ? treeSignableCompat(treeHash, length, fork)
      : crypto.treeSignable(version === 0 ? s.namespace : key, treeHash, length, fork)
    const signature = crypto.sign(signable, keyPair.secretKey)

    if (manifest.signers.length !== 1 || version === 0) return signature
    return m.encode(m.multiSignature, { proofs: [{ signer: 0, signature, patch: 0 }], patch: [] })
  }

  throw BAD_ARGUMENT('Public key is not a declared signer')
}

/** Combines raw signatures from several signers into the manifest's multi-signature format. */
export function assembleSignature (manifest: Manifest, parts: readonly PartialSignature[]): Uint8Array {
  if (manifest.version === 0) {
    return m.encode(m.multiSignaturev0, {
      proofs: parts.map(p => ({ signer: p.signer, signature: p.signature, patch: null })),
      patch: []
    })
  }
  return m.encode(m.multiSignature, {
    proofs: parts.map(p => ({ signer: p.signer, signature: p.signature, patch: 0 })),
    patch: []
  })
}

/**
 * Whether `signature` proves the tree (`treeHash`, `length`, `fork`) of core
 * `key` under `manifest`. Never throws on hostile signature bytes.
 */
export function verify (
  manifest: Manifest,
  key: Uint8Array,
  treeHash: Uint8Array,
  length: number,
  fork: number,
  signature: Uint8Array | null
): boolean {
  const compat = isCompat(key, manifest)
  const version = effectiveVersion(manifest, compat)

  if (version === 0) {
    if (!signature) return false
    if (compat) {
      return crypto.verify(treeSignableCompat(treeHash, length, fork), signature, manifest.signers[0]!.publicKey)
    }
    if (!manifest.allowPatch && manifest.signers.length === 1) {
      const s = manifest.signers[0]!
      return crypto.verify(crypto.treeSignable(s.namespace, treeHash, length, fork), signature, s.publicKey)
    }
    return verifyMulti(manifest, key, 0, treeHash, length, fork, signature)
  }

  const prologue = manifest.prologue
  if (prologue !== null && length <= prologue.length) {
    return length === prologue.length && b4a.equals(treeHash, prologue.hash)
  }

  return verifyMulti(manifest, key, version, treeHash, length, fork, signature)
}

function verifyMulti (
  manifest: Manifest,
  key: Uint8Array,
  version: number,
  treeHash: Uint8Array,
  length: number,
  fork: number,
  signature: Uint8Array | null
): boolean {
  const quorum = manifest.quorum
  if (!signature || quorum === 0) return false

  const proofs = inflate(version, signature)
  if (proofs === null || proofs.length < quorum) return false

  const tried = new Uint8Array(manifest.signers.length)
  let signable: Uint8Array | null = version === 0 ? null : crypto.treeSignable(key, treeHash, length, fork)

  for (let i = 0; i < quorum; i++) {
    const p = proofs[i]!
    if (p.patch !== 0) return false
    if (p.signer >= manifest.signers.length || tried[p.signer] === 1) return false
    tried[p.signer] = 1

    const s = manifest.signers[p.signer]!
    if (version === 0) signable = crypto.treeSignable(s.namespace, treeHash, length, fork)
    if (!crypto.verify(signable!, p.signature, s.publicKey)) return false
  }

  return true
}

function inflate (version: number, signature: Uint8Array): MultiSignatureProof[] | null {
  try {
    if (version >= 1) return m.decode(m.multiSignature, signature).proofs
    return m.decode(m.multiSignaturev0, signature).proofs.map(p => ({
      signer: p.signer,
      signature: p.signature,
      patch: p.patch ? p.patch.length : 0
    }))
  } catch {
    return null
  }
}

/** Hypercore 10 signable: caps.TREE ‖ tree hash ‖ uint64 length ‖ uint64 fork. */
function treeSignableCompat (treeHash: Uint8Array, length: number, fork: number): Uint8Array {
  const out = b4a.allocUnsafe(80)
  out.set(crypto.caps.TREE, 0)
  out.set(treeHash, 32)
  writeU64(out, 64, length)
  writeU64(out, 72, fork)
  return out
}

function effectiveVersion (manifest: Manifest, compat: boolean): number {
  if (compat) return 0
  return typeof manifest.version === 'number' ? manifest.version : 1
}

function manifestVersion (input: ManifestInput): number {
  if (typeof input.version === 'number') return input.version
  if (input.linked && input.linked.length) return 2
  if (input.userData) return 2
  return 1
}

function defaultQuorum (quorum: number | undefined | null, signers: number): number {
  if (typeof quorum === 'number') return quorum
  if (signers === 0) return 0
  return (signers >> 1) + 1
}

function parseSigner (s: ManifestSignerInput): ManifestSigner {
  if (!s || !s.publicKey) throw BAD_ARGUMENT('Signer missing public key')
  if (s.signature && s.signature !== 'ed25519') throw BAD_ARGUMENT('Only Ed25519 signatures are supported')
  if (!isBytes(s.publicKey, 32)) throw BAD_ARGUMENT('A signer public key is 32 bytes')
  if (s.namespace && !isBytes(s.namespace, 32)) throw BAD_ARGUMENT('A signer namespace is 32 bytes')
  return {
    signature: 'ed25519',
    namespace: copy(s.namespace || crypto.caps.DEFAULT_NAMESPACE),
    publicKey: copy(s.publicKey)
  }
}

function isBytes (b: unknown, size: number): b is Uint8Array {
  return b instanceof Uint8Array && b.byteLength === size
}

/** An unpooled copy, so a small key does not pin a large buffer. */
function copy (b: Uint8Array): Uint8Array {
  const out = b4a.allocUnsafeSlow(b.byteLength)
  out.set(b)
  return out
}
