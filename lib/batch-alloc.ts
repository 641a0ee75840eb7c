/**
 * Buffers for the messages a protomux sends while corked.
 *
 * Why: corked, protomux encodes each message into a buffer of its own and,
 * at uncork, copies them all into one frame. By default that buffer comes
 * from the secret stream's `alloc`, which makes a fresh buffer with room for
 * the frame's header and tag (about 1 µs a message: most of what sending an
 * answer cost besides copying its block). A buffer that is only copied
 * from, once, can be a slice of one slab reused from batch to batch.
 *
 * Safe because a corked mux only ever queues what it is handed (messages
 * and control messages alike) and copies the queue, synchronously, into the
 * frame it allocates once uncorked; nothing else is allocated between the
 * last slice and that copy. Uncorked, every buffer is the stream's own, as
 * before: those are written as they are.
 */

export interface Allocating {
  alloc (n: number): Uint8Array
}

/** Slices no bigger than this share the slab; a batch that outgrows it spills into fresh buffers. */
const SLAB = 256 * 1024
const MAX_SLICE = 16 * 1024

/**
 * An `alloc` for `new Protomux(stream, { alloc })`: slices of a reused slab
 * while `corked()` says the mux queues, the stream's own buffers otherwise.
 */
export function batchAlloc (stream: Allocating, corked: () => boolean): (n: number) => Uint8Array {
  let slab: ArrayBuffer | null = null
  let used = 0
  return n => {
    if (!corked()) {
      // A frame, or a message sent as it is: whatever the slab held was copied or is about to be.
      used = 0
      return stream.alloc(n)
    }
    if (n > MAX_SLICE) return Buffer.allocUnsafe(n)
    if (slab === null || used + n > slab.byteLength) {
      // A fresh slab: the old one holds this batch's earlier messages.
      slab = new ArrayBuffer(SLAB)
      used = 0
    }
    // A plain view, not a Buffer: nothing but encoders writing into it and
    // the copy into the frame ever sees it, and a Buffer's subarray costs
    // several times as much (17 ms of a 100,000-block download's profile).
    const out = new Uint8Array(slab, used, n)
    used += n
    return out
  }
}
