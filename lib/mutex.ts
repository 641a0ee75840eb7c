/** A FIFO lock: every tree mutation runs under one, one at a time. */
export class Mutex {
  private locked = false
  private waiting: Array<() => void> = []

  lock (): Promise<void> {
    if (!this.locked) {
      this.locked = true
      return Promise.resolve()
    }
    return new Promise(resolve => this.waiting.push(resolve))
  }

  unlock (): void {
    const next = this.waiting.shift()
    if (next) next()
    else this.locked = false
  }

  /** Runs `fn` holding the lock. */
  async run<T> (fn: () => Promise<T>): Promise<T> {
    await this.lock()
    try {
      return await fn()
    } finally {
      this.unlock()
    }
  }
}
