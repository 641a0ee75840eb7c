/**
 * Which trees this core's key signs: its manifest (once known), checking a
 * signature against it, signing with one of its signers' key pairs. Apart
 * from the core because it is one concept with state of its own: the
 * manifest and a memo of the last signature that verified. Nothing here
 * touches storage (adopting a manifest durably is the core's job).
 */
import b4a from 'b4a'
import * as crypto from './crypto'
import * as manifests from './manifest'
import { verifyFullyRemote, type Proof } from './proof'
import { INVALID_SIGNATURE, SESSION_NOT_WRITABLE } from './errors'
import type { TreeBatch } from './tree-batch'
import type { TreeNode } from './tree-node'
import type { Manifest } from './messages'

/** Who signs a commit: a key pair of a signer, or a ready signature. */
export interface CommitOptions {
  keyPair?: crypto.KeyPair | null
  signature?: Uint8Array | null
}

/** A signed tree: what a signature is checked against. */
interface Signed {
  readonly length: number
  readonly fork: number
  readonly signature: Uint8Array | null
}

export class Verifier {
  readonly key: Uint8Array
  #manifest: Manifest | null
  #lastVerified: { manifest: Manifest, treeHash: Uint8Array, length: number, fork: number, signature: Uint8Array } | null = null

  constructor (key: Uint8Array, manifest: Manifest | null) {
    this.key = key
    this.#manifest = manifest
  }

  get manifest (): Manifest | null {
    return this.#manifest
  }

  /** Takes a manifest checked to hash to our key (see `manifestFor`). */
  adopt (manifest: Manifest): void {
    this.#manifest = manifest
  }

  /** Our manifest, or else `offered` if it hashes to our key, or else null. */
  manifestFor (offered: Manifest | null): Manifest | null {
    if (this.#manifest !== null) return this.#manifest
    if (offered !== null && manifests.isValidManifest(this.key, offered)) return offered
    return null
  }

  /**
   * Signature check with a memo of the last tree that verified: proofs that
   * share one signed length (several blocks proven against the same upgrade)
   * pay for Ed25519 once. The memo holds the exact signed values.
   */
  verify (manifest: Manifest, treeHash: Uint8Array, length: number, fork: number, signature: Uint8Array | null): boolean {
    const memo = this.#lastVerified
    if (signature === null) return false
    if (memo !== null && memo.length === length && memo.fork === fork && memo.manifest === manifest &&
        b4a.equals(memo.treeHash, treeHash) && b4a.equals(memo.signature, signature)) return true
    if (!manifests.verify(manifest, this.key, treeHash, length, fork, signature)) return false
    this.#lastVerified = { manifest, treeHash: b4a.from(treeHash), length, fork, signature: b4a.from(signature) }
    return true
  }

  /** Whether `roots` are the roots `signed` signs (false without a manifest). */
  signs (roots: TreeNode[], signed: Signed): boolean {
    const manifest = this.#manifest
    return manifest !== null && this.verify(manifest, crypto.treeHash(roots), signed.length, signed.fork, signed.signature)
  }

  /**
   * Verifies a proof that needs nothing local (upgrade from 0) against our
   * key. Returns the tree it proves.
   */
  verifyFullyRemote (proof: Proof): TreeBatch {
    const batch = verifyFullyRemote(proof)
    const manifest = this.manifestFor(proof.manifest)
    if (manifest === null) throw INVALID_SIGNATURE('The manifest of this core is not known')
    if (!this.verify(manifest, batch.hash(), batch.length, batch.fork, batch.signature)) {
      throw INVALID_SIGNATURE('Proof signature does not verify')
    }
    return batch
  }

  /** Whether `keyPair` can sign: its secret key is there and it is a declared signer. */
  canSign (keyPair: crypto.KeyPair | null | undefined): boolean {
    if (!keyPair || !keyPair.secretKey || this.#manifest === null) return false
    return this.#manifest.signers.some(s => b4a.equals(s.publicKey, keyPair.publicKey))
  }

  /** The signature of `batch`: the one given (checked), or one made with a key pair (`ours` by default). */
  sign (batch: TreeBatch, opts: CommitOptions, ours: crypto.KeyPair | null): Uint8Array {
    if (opts.signature) {
      if (this.#manifest === null || !this.verify(this.#manifest, batch.hash(), batch.length, batch.fork, opts.signature)) {
        throw INVALID_SIGNATURE('The signature does not sign this tree')
      }
      return opts.signature
    }
    const keyPair = opts.keyPair ?? ours
    if (!this.canSign(keyPair)) throw SESSION_NOT_WRITABLE('Cannot sign this core without one of its signing keys')
    return manifests.sign(this.#manifest!, this.key, batch.hash(), batch.length, batch.fork, keyPair!)
  }
}
