/**
 * One run at a time, none lost: the shape of every "reconcile on change" loop in the agent.
 */

/**
 * Wraps `work` so that calls never overlap: a call while it runs asks for one more run after the
 * current one (any number of such calls make one), and returns the promise of the whole loop, so
 * a caller waits until a run that started after its call has finished. A rejection of `work` ends
 * the loop and rejects that promise; the next call starts afresh.
 */
export function coalesce(work: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let again = false;
  return () => {
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
}
