/**
 * One run at a time, none lost: the shape of every "reconcile on change" loop in the agent.
 */

/** A coalesced run: call it to ask for a run; `settled` waits for the loop in flight, asking for none. */
export type Coalesced = (() => Promise<void>) & { settled(): Promise<void> };

/**
 * Wraps `work` so that calls never overlap: a call while it runs asks for one more run after the
 * current one (any number of such calls make one), and returns the promise of the whole loop, so
 * a caller waits until a run that started after its call has finished. A rejection of `work` ends
 * the loop and rejects that promise; the next call starts afresh.
 */
export function coalesce(work: () => Promise<void>): Coalesced {
  let running: Promise<void> | undefined;
  let again = false;
  const call = () => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await work();
        } while (again);
      } finally {
        running = undefined;
      }
    })();
    return running;
  };
  return Object.assign(call, { settled: () => (running ?? Promise.resolve()).catch(() => undefined) });
}
