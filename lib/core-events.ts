/**
 * What a core tells its owner: the events it raises, and where they go.
 * Apart from the core so that what listens (the shared core, healing) needs
 * only these types.
 */
/** Events a core raises; the public class turns them into emitter events. */
export interface CoreEvents {
  append (): void
  /** The manifest became known (from a peer). */
  manifest (): void
  /** Blocks [start, start + length) became available locally (internal). */
  have (start: number, length: number): void
  truncate (length: number, fork: number): void
  repairing (proof: unknown): void
  repaired (proof: unknown): void
  'repair-failed' (err: Error): void
  /**
   * Blocks [start, start + length) are no longer served from here (cleared,
   * or found rotten); `refetch`: fetch them back from peers (internal).
   */
  drop (start: number, length: number, refetch: boolean): void
}

export type Emit = <K extends keyof CoreEvents>(name: K, ...args: Parameters<CoreEvents[K]>) => void

/**
 * Where a core's events go: an object's method, not a closure made per core
 * (see `AnswersHost` for why).
 */
export interface CoreEventSink {
  oncoreevent<K extends keyof CoreEvents> (name: K, args: Parameters<CoreEvents[K]>): void
}
