import type { Command } from 'commander'
import * as fs from 'fs'
import b4a from 'b4a'
import type { Hypercore } from '../../lib/hypercore'
import { decodeFullyRemote } from '../../lib/fully-remote-proof'
import { CliError, describeError, errorCode, reason } from '../util/errors'
import { openExisting, closeQuietly, parseSeconds, hex } from '../util/core'
import { openAlone } from '../util/access'
import { announcedLength, writeRemote } from '../util/remote'
import { treeHealth, describeHealth, type TreeHealth } from '../util/health'
import { peerTarget, dial, awaitPeer, describeTarget, type PeerLink, type PeerOptions } from '../util/peers'
import { runAudit, describeAudit, type AuditSummary } from './audit'
import { progressBar, showProgress } from '../util/progress'
import { report, formatMs } from '../util/output'
import { action, withJson, withPeerOptions, withProgress } from '../util/run'

interface Options extends PeerOptions { json?: boolean, progress?: boolean, proof?: string, timeout: string, audit?: boolean, sparse?: boolean }

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** Applies a fully remote proof file; one clear line for whatever does not fit. */
export async function repairFromProof (core: Hypercore, dir: string, file: string): Promise<void> {
  let bytes: Uint8Array
  try {
    bytes = fs.readFileSync(file)
  } catch (err) {
    throw new CliError(errorCode(err), `cannot read ${file}: ${reason(err)}`)
  }
  let discoveryKey: Uint8Array
  const notAProof = new CliError('BAD_PROOF', `${file} is not a proof (expected what \`nomadcore proof\` writes)`)
  try {
    const decoded = decodeFullyRemote(bytes)
    // A fully remote proof always upgrades from length 0, signed.
    const up = decoded.proof.upgrade
    if (up === null || up.start !== 0 || up.length === 0 || up.signature === null) throw notAProof
    discoveryKey = decoded.discoveryKey
  } catch {
    throw notAProof
  }
  if (!b4a.equals(discoveryKey, core.discoveryKey!)) {
    throw new CliError('BAD_PROOF', `${file} is a proof for another core (discovery key ${hex(discoveryKey).slice(0, 16)}…, ${dir} has ${hex(core.discoveryKey).slice(0, 16)}…)`)
  }
  let why = ''
  const onfail = (err: Error): void => { why = describeError(err) }
  core.on('repair-failed', onfail)
  let ok: boolean
  try {
    ok = await core.recoverFromRemoteProof(bytes)
  } catch (err) {
    throw new CliError(errorCode(err), `the proof in ${file} could not be applied: ${describeError(err, dir)}`)
  } finally {
    core.off('repair-failed', onfail)
  }
  if (!ok) throw new CliError('BAD_PROOF', `the proof in ${file} does not fit the signed tree of ${dir}; nothing was written${why ? ' (' + why + ')' : ''}`)
}

export interface PeerRepairResult {
  steps: Array<{ step: string, ms: number }>
  audit: AuditSummary | null
  /** Blocks that were missing (cleared by the audit, or lacking with `fill`) and came back. */
  refetchedBlocks: number
  health: TreeHealth
}

export interface PeerRepairOptions {
  /** Audit once the roots are back (finds corrupt blocks and rotten nodes). */
  audit: boolean
  /** Also fetch every block of [0, length) this core lacks (a full copy); else only what the audit cleared. */
  fill: boolean
  timeoutMs: number
  onstep?: (step: string, ms: number) => void
}

/**
 * Heals `core` from the peers it replicates with: missing roots (repair
 * mode), then an audit that clears corrupt blocks and drops rotten nodes,
 * then every lost node and missing block fetched back, verified. Resolves
 * once the tree is whole and every wanted block is held.
 */
export async function repairFromPeers (core: Hypercore, dir: string, opts: PeerRepairOptions): Promise<PeerRepairResult> {
  const steps: PeerRepairResult['steps'] = []
  let t = Date.now()
  const step = (name: string): void => {
    const ms = Date.now() - t
    steps.push({ step: name, ms })
    opts.onstep?.(name, ms)
    t = Date.now()
  }
  // The timeout policy of clone: give up only when nothing new arrives for timeoutMs.
  let lastProgress = Date.now()
  const onprogress = (): void => { lastProgress = Date.now() }
  core.on('download', onprogress)
  core.on('repaired', onprogress)
  const expired = (): boolean => opts.timeoutMs > 0 && Date.now() - lastProgress > opts.timeoutMs
  let cleared: number[] = []
  const lacking = async (): Promise<number[]> => {
    const out: number[] = []
    if (opts.fill) {
      for (let i = 0; i < core.length; i++) if (!(await core.has(i))) out.push(i)
    } else {
      for (const i of cleared) if (!(await core.has(i))) out.push(i)
    }
    return out
  }
  const stuck = async (what: string): Promise<never> => {
    const h = await treeHealth(core, dir)
    const blocks = (await lacking()).length
    const peer = announcedLength(core)
    const short = peer !== null && peer.length < core.length ? ` (the peer announced only ${peer.length} blocks, fewer than the ${core.length} here: it cannot prove this length)` : ''
    throw new CliError('TIMEOUT', `${what}: nothing new for ${Math.round(opts.timeoutMs / 1000)} s${short}; still damaged: ${describeHealth(h)}` +
      `${blocks > 0 ? `, ${blocks} block${blocks === 1 ? '' : 's'} missing` : ''}${core.repairMode ? ', repair mode ON' : ''}`)
  }
  try {
    // 1. Roots: a core in repair mode asks its peers for a proof of its length on connect.
    if (core.repairMode) {
      core.recoverTreeNodeFromPeers()
      while (core.repairMode) {
        if (expired()) await stuck('the peer did not send the missing roots')
        await sleep(50)
      }
      step('roots restored from the peer (repair mode off)')
    }

    // 2. Audit: corrupt blocks are cleared and rotten nodes dropped; both are asked of the peer.
    let audit: AuditSummary | null = null
    if (opts.audit) {
      audit = await runAudit(core, dir, progressBar('audit', false))
      cleared = audit.cleared
      step(`audit: ${audit.corruptBlocks} corrupt block${audit.corruptBlocks === 1 ? '' : 's'} cleared, ${audit.droppedNodes} rotten node${audit.droppedNodes === 1 ? '' : 's'} dropped`)
      onprogress() // the audit is local work: the peer's time starts now
    }

    // 3. Lost nodes and missing blocks back from the peer.
    const asked = new Map<number, number>()
    let health = await treeHealth(core, dir)
    let missing = await lacking()
    const hadMissingNodes = health.missingNodes
    const refetch = missing.length
    let lastAsk = 0
    let left = health.missingNodes + missing.length
    for (;;) {
      if (health.healthy && missing.length === 0) break
      if (health.missingNodes + missing.length < left) {
        left = health.missingNodes + missing.length
        onprogress()
      }
      if (expired()) await stuck('the peer did not send everything back')
      if (core.repairMode) core.recoverTreeNodeFromPeers()
      const now = Date.now()
      for (const i of health.missing.slice(0, 256)) {
        if (health.missingRoots.includes(i)) continue
        const at = asked.get(i)
        if (at !== undefined && now - at < 5000) continue
        asked.set(i, now)
        core.recoverTreeNodeFromPeers(i)
      }
      if (missing.length > 0 && now - lastAsk > 5000) {
        // (Asked again every few seconds, in case an answer got lost.)
        core.download({ blocks: missing })
        lastAsk = now
      }
      await sleep(Math.min(1000, 50 + health.expectedNodes / 2000))
      health = await treeHealth(core, dir)
      missing = await lacking()
    }
    if (hadMissingNodes > 0 || refetch > 0) {
      step(`fetched back from the peer: ${hadMissingNodes} tree node${hadMissingNodes === 1 ? '' : 's'}, ${refetch} block${refetch === 1 ? '' : 's'}`)
    }
    return { steps, audit, refetchedBlocks: refetch, health }
  } finally {
    core.off('download', onprogress)
    core.off('repaired', onprogress)
  }
}

export function register (program: Command): void {
  withProgress(withJson(withPeerOptions(program.command('repair')
    .argument('<dir>', 'directory of a damaged core')
    .option('--proof <file>', 'apply a fully remote proof file (from `nomadcore proof`) instead of asking a live peer')
    .option('--no-audit', 'skip the audit of every block and node (then "healthy" is never claimed: blocks were not checked)')
    .option('--sparse', 'with a peer: fetch back only blocks this run\'s audit cleared, not every block the core lacks')
    .description('repair a damaged core from a live peer (--connect / --swarm) or from a proof file (--proof)')
    .addHelpText('after', `
From a peer: restores missing roots (leaving repair mode), audits every block
and node, and fetches back what is lost or corrupt, all verified against the
core's own signed tree, and every block the core lacks (--sparse: only the
blocks its audit cleared). From a proof: restores the nodes the proof carries,
then, once the tree is whole, audits every block.

"healthy" is reported only after the blocks were checked too. With --no-audit
the JSON has "healthy": null and "blocksChecked": false.

Exit status: 0 healthy (with --no-audit: the tree is whole, blocks not
checked), 2 repaired what it could but damage remains, 1 error.`))))
    .action(action(async (dir: string, opts: Options) => {
      const target = peerTarget(opts, opts.proof === undefined)
      if (target !== null && opts.proof !== undefined) throw new CliError('USAGE', 'give either --proof FILE or a peer (--connect / --swarm), not both')
      const timeoutMs = parseSeconds(opts.timeout, '--timeout')
      const checkBlocks = opts.audit !== false
      const started = Date.now()

      if (opts.proof !== undefined) {
        const core = await openAlone(dir, 'a repair', () => openExisting(dir))
        try {
          const before = await treeHealth(core, dir)
          const wasRepairMode = core.repairMode
          await repairFromProof(core, dir, opts.proof)
          const applied = await treeHealth(core, dir)
          const restored = Math.max(0, before.missingNodes - applied.missingNodes)
          // The tree is whole: now the blocks, or the word "healthy" would be a guess.
          const audit = applied.healthy && checkBlocks ? await runAudit(core, dir, progressBar('audit', false)) : null
          const after = audit?.health ?? applied
          const blocksDamaged = audit !== null && (audit.corruptBlocks > 0 || audit.droppedNodes > 0)
          const healthy = !after.healthy || blocksDamaged ? false : audit !== null ? true : null
          const lines = [
            `applied ${opts.proof}: ${restored} tree node${restored === 1 ? '' : 's'} restored; repair mode ${wasRepairMode ? 'ON → ' : ''}${core.repairMode ? 'ON' : 'off'}`
          ]
          if (audit !== null) lines.push(...describeAudit(audit).map(l => 'audit ' + l))
          lines.push(`tree: ${describeHealth(after)}`)
          if (healthy === true) lines.push('healthy: tree whole, every block checked')
          else if (healthy === null) lines.push(`tree whole; blocks NOT checked (--no-audit): run \`nomadcore audit ${dir}\``)
          else if (blocksDamaged) lines.push(`still damaged: the audit cleared what was corrupt; fetch it back with \`nomadcore repair ${dir} --connect HOST:PORT\``)
          else lines.push('still damaged: apply more proofs, or `nomadcore repair DIR --connect HOST:PORT`')
          report(opts, {
            dir,
            source: 'proof',
            restoredNodes: restored,
            repairModeBefore: wasRepairMode,
            repairMode: core.repairMode,
            tree: { missingRoots: after.missingRoots, missingNodes: after.missingNodes, missing: after.missing },
            blocksChecked: audit !== null,
            corruptBlocks: audit?.corruptBlocks ?? null,
            droppedNodes: audit?.droppedNodes ?? null,
            healthy,
            ms: Date.now() - started
          }, lines)
          return healthy === false ? 2 : 0
        } finally {
          await closeQuietly(core)
        }
      }

      const core = await openAlone(dir, 'a repair', () => openExisting(dir))
      let link: PeerLink | null = null
      try {
        const before = await treeHealth(core, dir)
        const wasRepairMode = core.repairMode
        link = await dial(target!, timeoutMs)
        link.attach(core)
        await awaitPeer(core, link, timeoutMs)
        const bar = progressBar('repair', showProgress(opts) && opts.json !== true)
        bar.start(1, 0, { phase: 'repairing' })
        let result: PeerRepairResult
        try {
          result = await repairFromPeers(core, dir, {
            audit: checkBlocks,
            fill: opts.sparse !== true,
            timeoutMs,
            onstep: (s) => bar.update(0, { phase: s })
          })
        } finally {
          bar.update(1, { phase: 'done' })
          bar.stop()
          const peer = announcedLength(core)
          if (peer !== null) writeRemote(dir, peer, describeTarget(target!))
        }
        const healthy = result.audit !== null ? result.health.healthy : null
        const lines = [`before: ${describeHealth(before)}; repair mode ${wasRepairMode ? 'ON' : 'off'}`]
        for (const s of result.steps) lines.push(`${s.step} (${formatMs(s.ms)})`)
        if (result.audit !== null) lines.push(...describeAudit(result.audit).map(l => 'audit ' + l))
        lines.push(`after: ${describeHealth(result.health)}, ${result.health.blocks} of ${result.health.length} blocks held; ` +
          `${healthy === null ? 'tree whole, blocks NOT checked (--no-audit)' : 'healthy'} (${formatMs(Date.now() - started)} from ${describeTarget(target!)})`)
        report(opts, {
          dir,
          source: describeTarget(target!),
          before: { repairMode: wasRepairMode, missingRoots: before.missingRoots, missingNodes: before.missingNodes },
          steps: result.steps,
          blocksChecked: result.audit !== null,
          corruptBlocks: result.audit?.corruptBlocks ?? null,
          droppedNodes: result.audit?.droppedNodes ?? null,
          refetchedBlocks: result.refetchedBlocks,
          repairMode: core.repairMode,
          healthy,
          ms: Date.now() - started
        }, lines)
        return 0
      } finally {
        await link?.close()
        await closeQuietly(core)
      }
    }))
}
