/**
 * The control socket's frames (bin/util/control.ts): whatever way the bytes
 * are cut, the same frames come out; a frame over the limits or garbage is
 * refused with an error, never buffered without bound, never a crash.
 */
import test from 'brittle'
import fc from 'fast-check'
import b4a from 'b4a'
import { encodeFrame, FrameDecoder, MAX_PAYLOAD_BYTES, type Frame } from '../bin/util/control'

const frameArb = fc.record({
  header: fc.dictionary(fc.string({ maxLength: 8 }).filter(k => k !== 'sizes' && k !== '__proto__'), fc.oneof(fc.string({ maxLength: 20 }), fc.integer(), fc.boolean()), { maxKeys: 4 }),
  parts: fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 4 })
})

function concat (frames: Frame[]): Uint8Array {
  return b4a.concat(frames.map(f => encodeFrame(f.header, f.parts)))
}

test('control frames come out the same however the stream is cut', async t => {
  fc.assert(fc.property(fc.array(frameArb, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 10 }), (frames, cuts) => {
    const bytes = concat(frames)
    const points = [...new Set(cuts.map(c => c % (bytes.byteLength + 1)))].sort((a, b) => a - b)
    const decoder = new FrameDecoder()
    const out: Frame[] = []
    let at = 0
    for (const p of [...points, bytes.byteLength]) {
      out.push(...decoder.push(bytes.subarray(at, p)))
      at = p
    }
    if (out.length !== frames.length) return false
    return out.every((f, i) => {
      const { sizes, ...header } = f.header
      return JSON.stringify(header) === JSON.stringify(frames[i]!.header) &&
        f.parts.length === frames[i]!.parts.length &&
        f.parts.every((p, j) => b4a.equals(p, frames[i]!.parts[j]!))
    })
  }))
  t.pass('every cut decodes to the same frames')
})

test('a control frame over the limits is refused from its first 8 bytes', async t => {
  const head = b4a.alloc(8)
  new DataView(head.buffer, head.byteOffset, 8).setUint32(4, MAX_PAYLOAD_BYTES + 1)
  t.exception(() => new FrameDecoder().push(head), /too large/, 'a payload over the limit')
  new DataView(head.buffer, head.byteOffset, 8).setUint32(0, 0xffffffff)
  t.exception(() => new FrameDecoder().push(head), /too large/, 'a header over the limit')
})

test('garbage on the control socket is an error or an incomplete frame, never a crash', async t => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), (bytes) => {
    try {
      new FrameDecoder().push(bytes)
    } catch (err) {
      return err instanceof Error
    }
    return true
  }))
  // Sizes that do not fit the payload.
  const lying = encodeFrame({ op: 'append', sizes: [5, 5] }, [])
  t.exception(() => new FrameDecoder().push(lying), /sizes do not fit/, 'sizes larger than the payload')
})
