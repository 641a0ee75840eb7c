/**
 * `npm run soak`: the disk-rot property over many more trials than `npm test`
 * runs. Usage: node dist/test/soak/disk-rot.js [trials=5000] [first seed=1].
 * Prints progress, each failing seed with its damage (replay it by seed), and
 * exits non-zero if any trial returned wrong bytes or an uncoded error.
 */
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { rotBlocks, pristineCore, readFiles, rotTrial, describeTrial } from '../helpers/disk-rot'

async function main (): Promise<void> {
  const trials = Number(process.argv[2] ?? 5000)
  const first = Number(process.argv[3] ?? 1)
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nomadcore-soak-'))
  try {
    const blocks = rotBlocks(500)
    await pristineCore(path.join(root, 'pristine'), blocks)
    const pristine = readFiles(path.join(root, 'pristine'))
    let failed = 0
    let opened = 0
    const started = Date.now()
    for (let seed = first; seed < first + trials; seed++) {
      // Odd seeds on real files, even ones in memory.
      const r = await rotTrial(pristine, blocks, seed, seed % 2 === 1 ? path.join(root, 'trial') : null)
      if (r.opened) opened++
      if (r.wrong.length > 0 || r.uncoded.length > 0) {
        failed++
        console.log('FAIL ' + describeTrial(seed, r))
      }
      const done = seed - first + 1
      if (done % 250 === 0 || done === trials) {
        console.log(`${done}/${trials} trials, ${opened} opened, ${failed} failed, ${((Date.now() - started) / 1000).toFixed(0)} s`)
      }
    }
    process.exitCode = failed > 0 ? 1 : 0
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
}

main().catch(err => {
  console.error(err)
  process.exitCode = 1
})
