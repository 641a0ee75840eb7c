/**
 * The self-healing story in one run: create a core, append, damage its tree
 * on disk, reopen in repair mode, repair from a fully remote proof, append.
 */
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import b4a from 'b4a'
import { Hypercore } from '../lib/hypercore'
import { fullRoots } from '../lib/flat-tree'

const hex = (b: Uint8Array | null): string => b === null ? '-' : b4a.toString(b as Buffer, 'hex').slice(0, 16) + '…'

async function main (): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nomadcore-demo-'))
  const dir = path.join(root, 'core')
  const peerDir = path.join(root, 'peer-copy')
  try {
    console.log('1. create a core in', dir)
    const core = new Hypercore(dir, { valueEncoding: 'utf-8' })
    await core.ready()
    console.log('   key', hex(core.key))

    const lines = Array.from({ length: 1000 }, (_, i) => `entry ${i}`)
    await core.append(lines)
    console.log('2. appended', core.length, 'blocks,', core.byteLength, 'bytes; tree hash', hex(await core.treeHash()))
    await core.close()
    fs.cpSync(dir, peerDir, { recursive: true })
    const peer = new Hypercore(peerDir, { valueEncoding: 'utf-8' })
    await peer.ready()
    console.log('   a peer holds an intact copy')

    const roots = fullRoots(2 * 1000)
    const lost = roots[0]!
    const fd = fs.openSync(path.join(dir, 'tree'), 'r+')
    fs.writeSync(fd, new Uint8Array(40), 0, 40, 40 * lost)
    fs.closeSync(fd)
    console.log('3. damaged the tree file: zeroed root node', lost, '(roots are', roots.join(', ') + ')')

    const damaged = new Hypercore(dir, { valueEncoding: 'utf-8' })
    damaged.on('repairing', () => console.log('   … repairing'))
    damaged.on('repaired', () => console.log('   … repaired'))
    await damaged.ready()
    console.log('4. reopened: repairMode =', damaged.repairMode, '; block 999 still reads, verified:', await damaged.get(999))
    console.log('   block 0 lies under the lost root, so it cannot be verified and reads as missing:', await damaged.get(0, { wait: false }))
    await damaged.append('refused').catch((err: Error & { code: string }) => console.log('   append refused:', err.code, '-', err.message))

    const proof = await peer.generateRemoteProofForTreeNode(lost)
    console.log('5. the peer sends a fully remote proof for node', lost + ':', proof.byteLength, 'bytes')
    const ok = await damaged.recoverFromRemoteProof(proof)
    console.log('   recoverFromRemoteProof ->', ok, '; repairMode =', damaged.repairMode)
    console.log('   tree hash', hex(await damaged.treeHash()), '(peer:', hex(await peer.treeHash()) + '); block 0 reads again:', await damaged.get(0))

    await damaged.append('written after the repair, no restart needed')
    console.log('6. appended again: length', damaged.length, '->', await damaged.get(damaged.length - 1))
    await damaged.close()
    await peer.close()
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
