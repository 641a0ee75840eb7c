/**
 * Wire and storage encodings of Hypercore 11, byte for byte: the one module
 * the rest of nomadcore imports codecs from.
 *
 * Every codec is a compact-encoding triple (`preencode`/`encode`/`decode`).
 * Encoders trust their input (it comes from us); decoders treat their bytes as
 * hostile: integers must be safe, arrays are bounded both by a fixed limit and
 * by the bytes actually left, unknown ids are refused. Use `decode` /
 * `decodeExact` to turn every decoding failure into `INVALID_MESSAGE`.
 *
 * Decoded buffers are views into the input (no copies), except the handshake
 * capability, which is copied so a 32-byte value does not pin a large frame.
 *
 * The codecs live by group; this module gathers them and holds the protocol's
 * message table:
 *   codec-primitives.ts  bounded primitives, tree nodes, encode/decode
 *   manifest-codec.ts    manifests and multi-signatures
 *   data-messages.ts     request, cancel, data, noData
 *   control-messages.ts  handshake, sync, want/unwant, range, bitfield,
 *                        reorgHint, extension
 */
import type { Codec } from './codec-primitives'
import { request, cancel, data, noData } from './data-messages'
import type { RequestMessage, CancelMessage, DataMessage, NoDataMessage } from './data-messages'
import { handshake, want, range, bitfield, sync, reorgHint, extension } from './control-messages'
import type {
  HandshakeMessage, WantMessage, UnwantMessage, RangeMessage, BitfieldMessage, SyncMessage,
  ReorgHintMessage, ExtensionMessage
} from './control-messages'

export type { Codec, State } from './codec-primitives'
export { MAX_NODES, MAX_ARRAY, node, nodeArray, encode, decode, decodeExact } from './codec-primitives'
export type {
  HashAlgorithm, SignatureAlgorithm, ManifestSigner, Prologue, Manifest,
  MultiSignatureProof, MultiSignature, MultiSignaturePatchV0, MultiSignatureProofV0, MultiSignatureV0
} from './manifest-codec'
export { signer, prologue, manifest, multiSignature, multiSignaturev0 } from './manifest-codec'
export type {
  RequestBlock, RequestSeek, RequestUpgrade, RequestMessage, CancelMessage,
  DataBlock, DataHash, DataSeek, DataUpgrade, DataMessage, NoDataMessage
} from './data-messages'
export { MAX_SIGNATURE_BYTES, shapedAsDecoded } from './data-messages'
export type {
  HandshakeMessage, WantMessage, UnwantMessage, RangeMessage, BitfieldMessage, SyncMessage,
  ReorgHintMessage, ExtensionMessage
} from './control-messages'

/** The messages of the replication protocol, one per protomux message type. */
export const wire: {
  readonly handshake: Codec<HandshakeMessage>
  readonly request: Codec<RequestMessage>
  readonly cancel: Codec<CancelMessage>
  readonly data: Codec<DataMessage>
  readonly noData: Codec<NoDataMessage>
  readonly want: Codec<WantMessage>
  readonly unwant: Codec<UnwantMessage>
  readonly range: Codec<RangeMessage>
  readonly bitfield: Codec<BitfieldMessage>
  readonly sync: Codec<SyncMessage>
  readonly reorgHint: Codec<ReorgHintMessage>
  readonly extension: Codec<ExtensionMessage>
} = {
  handshake,
  request,
  cancel,
  data,
  noData,
  want,
  unwant: want,
  range,
  bitfield,
  sync,
  reorgHint,
  extension
}
