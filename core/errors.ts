/** What to say about something thrown, whatever it is. */

/** The message of an `Error`, or the thrown value as text: for replies and status lines (logs take `{ err }`). */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The `code` of a Node.js system error (`ENOENT`, `EADDRINUSE`, …), or undefined. */
export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
