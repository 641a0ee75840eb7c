import test from 'brittle'
import b4a from 'b4a'
import { blocks, text } from './helpers/core'
import { ramCore, replicate } from './helpers/replication'

test('smoke', async t => {
  const w = await ramCore(t)
  await w.append(blocks(10))
  const r = await ramCore(t, w.key)
  replicate(t, w, r)
  t.ok(await r.update())
  t.is(r.length, 10)
  t.is(text(await r.get(3)), text(blocks(1, 3)[0]))
  t.ok(await r.has(3))
  t.absent(await r.has(2))
  t.is(b4a.byteLength(b4a.from('x')), 1)
})
