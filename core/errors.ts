/** What to say about something thrown, whatever it is. */

/** The message of an `Error`, or the thrown value as text: for replies and status lines (logs take `{ err }`). */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** `err` as an `Error`: itself when it is one, else one whose message is its text. */
export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** The `code` of a Node.js system error (`ENOENT`, `EADDRINUSE`, …), or undefined. */
export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Lets `work` run on its own: a failure goes to `onError` (a log line), never becomes an unhandled
 * rejection, which would end the process. For work nobody waits for: a reconcile a handler queues,
 * a timer's tick, a stream's consumer.
 */
export function detach(work: Promise<unknown>, onError: (err: unknown) => void): void {
  work.then(undefined, onError);
}
