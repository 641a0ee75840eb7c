/**
 * What a peer last said about a core's length, kept by the CLI in
 * `remote.json` next to the core's files. `clone` and `repair` write it when
 * a peer announces its length; `info` reads it, so a copy that could not get
 * what its peer announced (a peer in repair mode proves no length) is shown
 * as behind, never as healthy. The announced length is the peer's word, not
 * verified: it only ever makes `info` more cautious.
 */
import * as fs from 'fs'
import * as path from 'path'
import type { Hypercore } from '../../lib/hypercore'

export const REMOTE_FILE = 'remote.json'

export interface RemoteRecord {
  /** The longest length a peer on `fork` announced. */
  length: number
  fork: number
  /** Where it was heard ("127.0.0.1:4000", "Hyperswarm"). */
  from: string
  /** ISO time. */
  at: string
}

/** The longest length any connected peer announces on the core's fork or a later one; null with no peer. */
export function announcedLength (core: Hypercore): { length: number, fork: number } | null {
  let best: { length: number, fork: number } | null = null
  for (const p of core.peers) {
    const peer = p as unknown as { remoteLength?: unknown, remoteFork?: unknown }
    if (typeof peer.remoteLength !== 'number' || typeof peer.remoteFork !== 'number') continue
    if (peer.remoteFork < core.fork) continue
    if (best === null || peer.remoteFork > best.fork || (peer.remoteFork === best.fork && peer.remoteLength > best.length)) {
      best = { length: peer.remoteLength, fork: peer.remoteFork }
    }
  }
  return best
}

export function readRemote (dir: string): RemoteRecord | null {
  try {
    const r = JSON.parse(fs.readFileSync(path.join(dir, REMOTE_FILE), 'utf-8')) as Partial<RemoteRecord>
    if (!Number.isSafeInteger(r.length) || !Number.isSafeInteger(r.fork)) return null
    return { length: r.length!, fork: r.fork!, from: String(r.from ?? ''), at: String(r.at ?? '') }
  } catch {
    return null // none, or unreadable: nothing known
  }
}

/** Records what a peer announced; a failure to write is not worth failing a command over. */
export function writeRemote (dir: string, announced: { length: number, fork: number }, from: string): void {
  const record: RemoteRecord = { length: announced.length, fork: announced.fork, from, at: new Date().toISOString() }
  const file = path.join(dir, REMOTE_FILE)
  try {
    fs.writeFileSync(file + '.tmp', JSON.stringify(record) + '\n')
    fs.renameSync(file + '.tmp', file)
  } catch {}
}

/**
 * The length the core ought to reach, as far as anyone told us: the live
 * peers' word, else the record, when it is about the core's fork.
 */
export function knownRemoteLength (core: Hypercore, dir: string): { length: number, from: string } | null {
  const live = announcedLength(core)
  if (live !== null) return { length: live.length, from: 'a connected peer' }
  const rec = readRemote(dir)
  if (rec === null || rec.fork !== core.fork) return null
  return { length: rec.length, from: `${rec.from || 'a peer'}${rec.at ? ' at ' + rec.at : ''}` }
}
