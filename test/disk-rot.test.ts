/**
 * Disk rot, as a property: random damage to a ~500-block core's four files
 * (flipped bits, garbled runs, truncation, garbage appended), then open,
 * read, audit, read. Every read returns the right bytes, null, or a coded
 * error — never wrong bytes — compared against a pristine copy. A few
 * hundred trials here; `npm run soak` runs many more.
 */
import test from 'brittle'
import * as path from 'path'
import { freshDir } from './helpers/core'
import { rotBlocks, pristineCore, readFiles, rotTrial, describeTrial } from './helpers/disk-rot'

const TRIALS = 400
const BLOCKS = 500

test('a damaged core never returns wrong bytes: not before an audit, not after, not unverified after', async t => {
  const blocks = rotBlocks(BLOCKS)
  const root = freshDir(t, 'rot')
  await pristineCore(path.join(root, 'pristine'), blocks)
  const pristine = readFiles(path.join(root, 'pristine'))
  const failures: string[] = []
  let opened = 0
  let goodAfter = 0
  for (let seed = 1; seed <= TRIALS; seed++) {
    // Most trials in memory (fast); every tenth on real files.
    const r = await rotTrial(pristine, blocks, seed, seed % 10 === 0 ? path.join(root, 'trial') : null)
    if (r.wrong.length > 0 || r.uncoded.length > 0) failures.push(describeTrial(seed, r))
    if (r.opened) opened++
    goodAfter += r.good[1]
  }
  t.alike(failures, [], `${TRIALS} trials: no wrong bytes, no uncoded error`)
  // The damage must leave most cores openable and most blocks readable, or the property says little.
  t.ok(opened > TRIALS / 2, `${opened} of ${TRIALS} damaged cores opened`)
  t.ok(goodAfter > opened * BLOCKS / 2, `${goodAfter} good reads after audits`)
})
