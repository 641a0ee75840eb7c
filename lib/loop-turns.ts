/**
 * Replication that leaves the event loop turning. Our files are read and
 * written with system calls that return at once, so two cores replicating in
 * one process hand their work to each other in microtasks only: a pass sends
 * requests, the peer answers, the answers are verified and written, and the
 * write schedules the next pass, all without a turn of the event loop. A
 * 100,000-block download held every timer and socket of its process for two
 * seconds (a 25 ms interval did not fire once; under Hypercore 11, whose
 * storage answers asynchronously, it fired throughout).
 *
 * So passes run as microtasks for at most `BUSY_MS` in a row; the pass after
 * that waits for the event loop (`setImmediate`), which first lets the work
 * in flight drain and timers and I/O run. Whether the loop turned meanwhile
 * of its own accord is known from an immediate armed when a run starts. The
 * budget is the process's, shared by every core: a Store replicating many
 * cores yields as one, and the passes that waited run in one immediate.
 */

/** Longest run of passes, in milliseconds, without a turn of the event loop. */
export const BUSY_MS = 10

/** When the current run of back-to-back passes began (ms); -1 when the loop turned since. */
let runStart = -1
/** What waits for the turn (passes, retries), run together in one immediate. */
let waiting: Array<() => void> = []

function turned (): void {
  runStart = -1
}

function runWaiting (): void {
  turned()
  const passes = waiting
  waiting = []
  // Together, as they would have run without the wait: readers of one writer
  // that ask for the same blocks at once still share its reads of them.
  for (const pass of passes) pass()
}

/** Runs `fn` after a turn of the event loop (timers and I/O first), with the passes that wait for one. */
export function afterTurn (fn: () => void): void {
  if (waiting.length === 0) setImmediate(runWaiting)
  waiting.push(fn)
}

/** Runs `pass` soon: as a microtask within the budget, after a turn of the event loop past it. */
export function schedulePass (pass: () => void): void {
  const now = Date.now()
  if (runStart === -1) {
    runStart = now
    setImmediate(turned)
  }
  if (now - runStart < BUSY_MS) queueMicrotask(pass)
  else afterTurn(pass)
}
