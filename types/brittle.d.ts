// Small typing of the parts of brittle our tests use (brittle ships no types).
declare module 'brittle' {
  interface Assert {
    is (actual: unknown, expected: unknown, message?: string): void
    not (actual: unknown, expected: unknown, message?: string): void
    ok (value: unknown, message?: string): void
    absent (value: unknown, message?: string): void
    alike (actual: unknown, expected: unknown, message?: string): void
    unlike (actual: unknown, expected: unknown, message?: string): void
    pass (message?: string): void
    fail (message?: string): void
    exception: ExceptionAssert
    execution (fn: Promise<unknown> | (() => unknown), message?: string): Promise<void>
    comment (...message: unknown[]): void
    plan (n: number): void
    teardown (fn: () => unknown, opts?: { order?: number }): void
    timeout (ms: number): void
    tmp (): Promise<string>
    test (name: string, fn: (t: Test) => unknown): Promise<void>
  }
  interface ExceptionAssert {
    (fn: Promise<unknown> | (() => unknown), expected?: RegExp | Error | (new (...args: any[]) => Error), message?: string): Promise<void>
    all (fn: Promise<unknown> | (() => unknown), expected?: RegExp | Error | (new (...args: any[]) => Error), message?: string): Promise<void>
  }
  interface Test extends Assert {
    readonly name: string
  }
  interface TestOpts { timeout?: number, skip?: boolean, todo?: boolean, solo?: boolean }
  interface TestFn {
    (name: string, fn: (t: Test) => unknown): void
    (name: string, opts: TestOpts, fn: (t: Test) => unknown): void
    skip (name: string, fn: (t: Test) => unknown): void
    solo (name: string, fn: (t: Test) => unknown): void
  }
  const test: TestFn
  namespace test {
    /** The `t` a test function receives. */
    type Context = Test
  }
  export = test
}
