/**
 * A download as `core.download()` hands it back, in Hypercore 11's shape:
 * usable before the core is open, `done()` resolving true when every block
 * of the range is held and false when it was destroyed first.
 */
import { isCoded } from './errors'
import type { DownloadHandle } from './session-options'

/** The replicator's side of a range (`Replicator.download`). */
export interface RangeRequest {
  done (): Promise<void>
  destroy (): void
}

/**
 * Starts `start()` once `opened` resolves (unless destroyed before), and
 * calls `onend` when the handle is finished with, either way.
 */
export function downloadHandle (opened: Promise<void>, start: () => RangeRequest | null, onend: (h: DownloadHandle) => void): DownloadHandle {
  let inner: RangeRequest | null = null
  let destroyed = false
  const started = opened.then(() => {
    if (!destroyed) inner = start()
  })
  started.catch(noop)
  const finished = started.then(async () => {
    if (inner === null) return false
    try {
      await inner.done()
      return true
    } catch (err) {
      if (isCoded(err, 'REQUEST_CANCELLED')) return false
      throw err
    }
  })
  finished.catch(noop)
  const handle: DownloadHandle = {
    ready: () => started,
    done: () => finished,
    downloaded: () => finished,
    destroy: () => {
      destroyed = true
      onend(handle)
      void started.then(() => inner?.destroy(), noop)
    }
  }
  void finished.then(() => onend(handle), noop)
  return handle
}

function noop (): void {}
