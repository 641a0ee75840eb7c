/**
 * The codecs of what a core's key commits to (the manifest: hash, signers,
 * quorum, prologue, linked cores) and of the multi-signatures its signers
 * produce, byte for byte as Hypercore 11.
 *
 * Apart from the replication messages because they are not only sent: the
 * manifest is hashed into the key and stored in the header, and signatures
 * are checked by lib/manifest.ts with no peer in sight.
 */
import c from 'compact-encoding'
import { INVALID_MESSAGE, BAD_ARGUMENT } from './errors'
import type { TreeNode } from './tree-node'
import { type Codec, MAX_ARRAY, MAX_NODES, uint, fixed32, fixed64, buffer, array, nodeArray } from './codec-primitives'

// ---------------------------------------------------------------------------
// Manifest

export type HashAlgorithm = 'blake2b'
export type SignatureAlgorithm = 'ed25519'

export interface ManifestSigner {
  signature: SignatureAlgorithm
  /** 32 bytes; `caps.DEFAULT_NAMESPACE` unless chosen otherwise. */
  namespace: Uint8Array
  /** 32-byte ed25519 public key. */
  publicKey: Uint8Array
}

/** A fixed first `length` blocks whose tree hash is `hash`. */
export interface Prologue {
  hash: Uint8Array
  length: number
}

export interface Manifest {
  /** 0, 1 or 2. */
  version: number
  hash: HashAlgorithm
  allowPatch: boolean
  quorum: number
  signers: ManifestSigner[]
  prologue: Prologue | null
  /** Version 2 only: keys of linked cores (32 bytes each). */
  linked: Uint8Array[] | null
  /** Version 2 only. */
  userData: Uint8Array | null
}

const MANIFEST_PATCH = 1
const MANIFEST_PROLOGUE = 2
const MANIFEST_LINKED = 4
const MANIFEST_USER_DATA = 8

const hashAlgorithm: Codec<HashAlgorithm> = {
  preencode (state) {
    state.end++
  },
  encode (state, h) {
    if (h !== 'blake2b') throw BAD_ARGUMENT('Unknown hash: ' + String(h))
    c.uint.encode(state, 0)
  },
  decode (state) {
    const id = c.uint.decode(state)
    if (id !== 0) throw INVALID_MESSAGE('Unknown hash id: ' + id)
    return 'blake2b'
  }
}

const signatureAlgorithm: Codec<SignatureAlgorithm> = {
  preencode (state) {
    state.end++
  },
  encode (state, s) {
    if (s !== 'ed25519') throw BAD_ARGUMENT('Unknown signature: ' + String(s))
    c.uint.encode(state, 0)
  },
  decode (state) {
    const id = c.uint.decode(state)
    if (id !== 0) throw INVALID_MESSAGE('Unknown signature id: ' + id)
    return 'ed25519'
  }
}

export const signer: Codec<ManifestSigner> = {
  preencode (state, s) {
    signatureAlgorithm.preencode(state, s.signature)
    fixed32.preencode(state, s.namespace)
    fixed32.preencode(state, s.publicKey)
  },
  encode (state, s) {
    signatureAlgorithm.encode(state, s.signature)
    fixed32.encode(state, s.namespace)
    fixed32.encode(state, s.publicKey)
  },
  decode (state) {
    return {
      signature: signatureAlgorithm.decode(state),
      namespace: fixed32.decode(state),
      publicKey: fixed32.decode(state)
    }
  }
}

const signerArray = array(signer, MAX_ARRAY, 65)
const fixed32Array = array(fixed32, MAX_ARRAY, 32)

export const prologue: Codec<Prologue> = {
  preencode (state, p) {
    fixed32.preencode(state, p.hash)
    uint.preencode(state, p.length)
  },
  encode (state, p) {
    fixed32.encode(state, p.hash)
    uint.encode(state, p.length)
  },
  decode (state) {
    return {
      hash: fixed32.decode(state),
      length: uint.decode(state)
    }
  }
}

// Version 0 layout: hash, type, then by type
//   0: prologue hash only (no signers), 1: a single signer, 2: flags, quorum, signers.
function manifestv0Type (m: Manifest): 0 | 1 | 2 {
  if (m.prologue && m.signers.length === 0) return 0
  if (m.quorum === 1 && m.signers.length === 1 && !m.allowPatch) return 1
  return 2
}

const manifestv0: Codec<Manifest> = {
  preencode (state, m) {
    hashAlgorithm.preencode(state, m.hash)
    state.end++ // type
    const type = manifestv0Type(m)
    if (type === 0) {
      fixed32.preencode(state, m.prologue!.hash)
    } else if (type === 1) {
      signer.preencode(state, m.signers[0]!)
    } else {
      state.end++ // flags
      uint.preencode(state, m.quorum)
      signerArray.preencode(state, m.signers)
    }
  },
  encode (state, m) {
    hashAlgorithm.encode(state, m.hash)
    const type = manifestv0Type(m)
    c.uint.encode(state, type)
    if (type === 0) {
      fixed32.encode(state, m.prologue!.hash)
    } else if (type === 1) {
      signer.encode(state, m.signers[0]!)
    } else {
      c.uint.encode(state, m.allowPatch ? 1 : 0)
      uint.encode(state, m.quorum)
      signerArray.encode(state, m.signers)
    }
  },
  decode (state) {
    const hash = hashAlgorithm.decode(state)
    const type = c.uint.decode(state)

    if (type === 0) {
      return {
        version: 0,
        hash,
        allowPatch: false,
        quorum: 0,
        signers: [],
        prologue: { hash: fixed32.decode(state), length: 0 },
        linked: null,
        userData: null
      }
    }

    if (type === 1) {
      return {
        version: 0,
        hash,
        allowPatch: false,
        quorum: 1,
        signers: [signer.decode(state)],
        prologue: null,
        linked: null,
        userData: null
      }
    }

    if (type !== 2) throw INVALID_MESSAGE('Unknown manifest type: ' + type)

    const flags = c.uint.decode(state)
    return {
      version: 0,
      hash,
      allowPatch: (flags & 1) !== 0,
      quorum: uint.decode(state),
      signers: signerArray.decode(state),
      prologue: null,
      linked: null,
      userData: null
    }
  }
}

function checkVersion (version: number): void {
  if (version !== 0 && version !== 1 && version !== 2) {
    throw BAD_ARGUMENT('Unknown manifest version: ' + String(version))
  }
}

export const manifest: Codec<Manifest> = {
  preencode (state, m) {
    checkVersion(m.version)
    state.end++ // version
    if (m.version === 0) return manifestv0.preencode(state, m)

    state.end++ // flags
    hashAlgorithm.preencode(state, m.hash)
    uint.preencode(state, m.quorum)
    signerArray.preencode(state, m.signers)
    if (m.prologue) prologue.preencode(state, m.prologue)
    if (m.linked) fixed32Array.preencode(state, m.linked)
    if (m.userData) buffer.preencode(state, m.userData)
  },
  encode (state, m) {
    c.uint.encode(state, m.version)
    if (m.version === 0) return manifestv0.encode(state, m)

    const flags =
      (m.allowPatch ? MANIFEST_PATCH : 0) |
      (m.prologue ? MANIFEST_PROLOGUE : 0) |
      (m.linked ? MANIFEST_LINKED : 0) |
      (m.userData ? MANIFEST_USER_DATA : 0)

    c.uint.encode(state, flags)
    hashAlgorithm.encode(state, m.hash)
    uint.encode(state, m.quorum)
    signerArray.encode(state, m.signers)
    if (m.prologue) prologue.encode(state, m.prologue)
    if (m.linked) fixed32Array.encode(state, m.linked)
    if (m.userData) buffer.encode(state, m.userData)
  },
  decode (state) {
    const version = c.uint.decode(state)
    if (version === 0) return manifestv0.decode(state)
    if (version > 2) throw INVALID_MESSAGE('Unknown manifest version: ' + version)

    const flags = c.uint.decode(state)
    const hash = hashAlgorithm.decode(state)
    const quorum = uint.decode(state)
    const signers = signerArray.decode(state)

    return {
      version,
      hash,
      allowPatch: (flags & MANIFEST_PATCH) !== 0,
      quorum,
      signers,
      prologue: (flags & MANIFEST_PROLOGUE) !== 0 ? prologue.decode(state) : null,
      linked: (flags & MANIFEST_LINKED) !== 0 ? fixed32Array.decode(state) : null,
      userData: (flags & MANIFEST_USER_DATA) !== 0 ? buffer.decode(state) : null
    }
  }
}

// ---------------------------------------------------------------------------
// Multi-signatures

export interface MultiSignatureProof {
  /** Index into the manifest's signers. */
  signer: number
  /** 64 bytes. */
  signature: Uint8Array
  /** How many blocks the signer's tree is behind (0: none). */
  patch: number
}

export interface MultiSignature {
  proofs: MultiSignatureProof[]
  /** Nodes shared by the proofs' patches. */
  patch: TreeNode[]
}

export interface MultiSignaturePatchV0 {
  start: number
  length: number
  /** Indices into the multi-signature's `patch`. */
  nodes: number[]
}

export interface MultiSignatureProofV0 {
  signer: number
  signature: Uint8Array
  patch: MultiSignaturePatchV0 | null
}

export interface MultiSignatureV0 {
  proofs: MultiSignatureProofV0[]
  patch: TreeNode[]
}

const multisigProof: Codec<MultiSignatureProof> = {
  preencode (state, p) {
    uint.preencode(state, p.signer)
    fixed64.preencode(state, p.signature)
    uint.preencode(state, p.patch)
  },
  encode (state, p) {
    uint.encode(state, p.signer)
    fixed64.encode(state, p.signature)
    uint.encode(state, p.patch)
  },
  decode (state) {
    return {
      signer: uint.decode(state),
      signature: fixed64.decode(state),
      patch: uint.decode(state)
    }
  }
}

const patchIndexArray = array(uint, MAX_NODES, 1)

const patchv0: Codec<MultiSignaturePatchV0> = {
  preencode (state, p) {
    uint.preencode(state, p.start)
    uint.preencode(state, p.length)
    patchIndexArray.preencode(state, p.nodes)
  },
  encode (state, p) {
    uint.encode(state, p.start)
    uint.encode(state, p.length)
    patchIndexArray.encode(state, p.nodes)
  },
  decode (state) {
    return {
      start: uint.decode(state),
      length: uint.decode(state),
      nodes: patchIndexArray.decode(state)
    }
  }
}

const multisigProofv0: Codec<MultiSignatureProofV0> = {
  preencode (state, p) {
    state.end++ // flags
    uint.preencode(state, p.signer)
    fixed64.preencode(state, p.signature)
    if (p.patch) patchv0.preencode(state, p.patch)
  },
  encode (state, p) {
    c.uint.encode(state, p.patch ? 1 : 0)
    uint.encode(state, p.signer)
    fixed64.encode(state, p.signature)
    if (p.patch) patchv0.encode(state, p.patch)
  },
  decode (state) {
    const flags = c.uint.decode(state)
    return {
      signer: uint.decode(state),
      signature: fixed64.decode(state),
      patch: (flags & 1) !== 0 ? patchv0.decode(state) : null
    }
  }
}

const multisigProofArray = array(multisigProof, MAX_ARRAY, 66)
const multisigProofArrayv0 = array(multisigProofv0, MAX_ARRAY, 66)

export const multiSignature: Codec<MultiSignature> = {
  preencode (state, s) {
    multisigProofArray.preencode(state, s.proofs)
    nodeArray.preencode(state, s.patch)
  },
  encode (state, s) {
    multisigProofArray.encode(state, s.proofs)
    nodeArray.encode(state, s.patch)
  },
  decode (state) {
    return { proofs: multisigProofArray.decode(state), patch: nodeArray.decode(state) }
  }
}

export const multiSignaturev0: Codec<MultiSignatureV0> = {
  preencode (state, s) {
    multisigProofArrayv0.preencode(state, s.proofs)
    nodeArray.preencode(state, s.patch)
  },
  encode (state, s) {
    multisigProofArrayv0.encode(state, s.proofs)
    nodeArray.encode(state, s.patch)
  },
  decode (state) {
    return { proofs: multisigProofArrayv0.decode(state), patch: nodeArray.decode(state) }
  }
}
