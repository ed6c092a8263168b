/**
 * Waiting for a condition, the one way the local cluster, the benchmarks and the tests poll: every
 * loop bounded in time, every timeout naming what was awaited.
 */

/** How long and how often to poll. */
export interface WaitOptions {
  readonly timeoutMs?: number;
  readonly everyMs?: number;
}

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `check` until it gives a value (`undefined`, `false` or a throw mean "not yet"); throws
 * naming `what` after the timeout (default 10 s; a number is the timeout), with the last error as
 * cause. Polls every 100 ms unless told otherwise.
 */
export async function until<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  opts: WaitOptions | number = {},
): Promise<T> {
  const { timeoutMs = 10_000, everyMs = 100 } = typeof opts === 'number' ? { timeoutMs: opts } : opts;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, last === undefined ? undefined : { cause: last });
    await sleep(everyMs);
  }
}

/** Retries `check` (an assertion) until it passes; rethrows its last error after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 15_000, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > end) throw err;
      await sleep(everyMs);
    }
  }
}

/** Like {@link until}, but resolves false on timeout instead of throwing (benchmarks report a miss). */
export function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 50): Promise<boolean> {
  return until('condition', check, { timeoutMs, everyMs }).then(
    () => true,
    () => false,
  );
}
