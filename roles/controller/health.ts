/**
 * Asking nats-server's HTTP monitor whether it is healthy. nats-server 2.9.10 answers `/healthz`
 * with 200 `{"status":"ok"}` or 503 and an error, and takes two narrowing flags: `js-enabled-only`
 * (the server runs with JetStream on: what a config apply must prove, whatever the peers do) and
 * `js-server-only` (and, when clustered, it is in contact with a JetStream meta leader: what the
 * hosted services need before they create streams). Without a flag it also waits for every stream
 * replica to be current, which a peer being down would hold up.
 */

/** One GET of a monitor URL: the HTTP status and body, or a rejection when nothing answered. */
export type MonitorProbe = (url: string) => Promise<{ readonly status: number; readonly body: string }>;

/** The two checks the role makes. */
export const HEALTHZ = {
  /** The server runs and JetStream is enabled. */
  running: '/healthz?js-enabled-only=true',
  /** JetStream can serve requests (standalone, or clustered with a meta leader). */
  jetstream: '/healthz?js-server-only=true',
} as const;

/** The default probe: Node's fetch, two seconds per attempt. */
export const fetchProbe: MonitorProbe = async (url) => {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return { status: res.status, body: await res.text() };
};

/** Options for {@link waitHealthy}. */
export interface WaitOptions {
  readonly timeoutMs: number;
  /** Pause between attempts. */
  readonly intervalMs?: number;
  /** Checked between attempts: a reason here (the server died) ends the wait at once. */
  readonly abort?: () => string | undefined;
}

/**
 * Polls `url` until it answers 200, or throws after `timeoutMs` with the last answer or error, so
 * the role's error names what nats-server said (`JetStream has not established contact with a meta
 * leader`, `connect ECONNREFUSED`, …).
 */
export async function waitHealthy(probe: MonitorProbe, url: string, opts: WaitOptions): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let last: string;
  for (;;) {
    try {
      const { status, body } = await probe(url);
      if (status === 200) return;
      last = `HTTP ${status} ${describe(body)}`;
    } catch (err) {
      last = messageOf(err);
    }
    const aborted = opts.abort?.();
    if (aborted) throw new Error(`${aborted} (monitor: ${last})`);
    if (Date.now() >= deadline) throw new Error(`${url} not healthy after ${Math.round(opts.timeoutMs / 1000)}s: ${last}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 200));
  }
}

/** The `error` of a healthz answer, else the body (short). */
function describe(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: unknown };
    if (typeof parsed.error === 'string') return parsed.error;
  } catch {
    // not JSON: show it as it is
  }
  return body.trim().slice(0, 200);
}

function messageOf(err: unknown): string {
  const e = err as { message?: string; cause?: { code?: string; message?: string } };
  // fetch hides the socket error (ECONNREFUSED) in `cause`.
  return e.cause?.code ?? e.cause?.message ?? e.message ?? String(err);
}
