/** Pieces every CLI command shares: global flags, output sink, the Serf client, flag parsers. */
import { parseDuration } from '../../core/duration.js';
import { asError, errorMessage } from '../../core/errors.js';
import type { SerfClient, QueryParams, QueryRecord } from '../serf/client.js';
import type { RecordQueue } from '../serf/queue.js';
import { detach } from '../../core/errors.js';

/** Where a command writes; tests capture it. */
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

/** Global flags, as the `serf` CLI has them. */
export interface GlobalOptions {
  rpcAddr: string;
  rpcAuth?: string;
  /** This node's credentials file (NATS commands connect with it). */
  credentials?: string;
}

/** A failure the user caused (bad flag value): exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Connects to the local serf agent named by the global flags (the client loads here: commands without RPC never load it). */
export async function connect(g: GlobalOptions): Promise<SerfClient> {
  const { SerfClient } = await import('../serf/client.js');
  return SerfClient.connect({ addr: g.rpcAddr, authKey: g.rpcAuth || undefined, connectTimeoutMs: 3000, requestTimeoutMs: 15_000 });
}

/** Parses a `--timeout` flag (Go duration) into milliseconds; absent = 0, Serf's default. */
export function parseTimeoutFlag(text: string | undefined): number {
  try {
    return text ? parseDuration(text) : 0;
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
}

/** Collects a repeatable `K=V` flag into a record. */
export function collectKeyValue(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const i = value.indexOf('=');
  if (i <= 0) throw new UsageError(`expected KEY=VALUE, got "${value}"`);
  return { ...previous, [value.slice(0, i)]: value.slice(i + 1) };
}

/** Collects a repeatable flag into a list. */
export function collectList(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Does a member's tags satisfy Serf-style tag filters (unanchored Go-like regular expressions)? */
export function tagsMatch(tags: Readonly<Record<string, string>>, filters: Readonly<Record<string, string>>): boolean {
  return Object.entries(filters).every(([k, re]) => tags[k] !== undefined && new RegExp(re).test(tags[k]));
}

/** Formats rows as aligned columns (the first row is the header). */
export function formatTable(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) =>
    r
      .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i])))
      .join('  ')
      .trimEnd(),
  );
}

/**
 * How long {@link queryUntilAnswered} waits for a node's ack before asking it again. Nodes ack on
 * receipt, before any handler runs; on a LAN that takes about one gossip round (200 ms). With ten
 * queries in flight against real serf agents, whole answers (connect included) took 0.2–0.6 s.
 */
export const ACK_WAIT_MS = 500;
/** No new ask when less than this is left of the query's timeout: the answer could not come back. */
const MIN_TIME_LEFT_MS = 300;
/** At most this many queries per call: the first one and three asks again. */
const MAX_ASKS = 4;

/** Tuning of {@link queryUntilAnswered} (tests shorten the wait). */
export interface AskAgainOptions {
  /** Base wait for acks before asking the silent nodes again (plus up to half of it at random). */
  readonly ackWaitMs?: number;
}

/**
 * Sends a query and collects each answer's text by node, returning as soon as every node in
 * `waiting` has answered (or when the first query's timeout ends it). `waiting` empty: no query
 * is sent.
 *
 * The query asks for acks, and every node in `waiting` that neither acked nor answered within
 * about {@link ACK_WAIT_MS} is asked again, with a query to just those nodes for the time left.
 * This is needed because serf stamps a query with its clock *before* advancing it, so two queries
 * sent at the same moment through one serf agent (two CLI processes, say) can get the same
 * LTime; serf keeps one pending query per LTime on the sending node, so every ack and answer to
 * the other one is dropped ("query reply ID mismatch" in serf's log) and it would wait out its
 * whole timeout with no answer. The query sent again gets a later LTime. Answers to any of the
 * queries count; asking twice is harmless for the read-only queries this serves.
 */
export async function queryUntilAnswered(
  client: SerfClient,
  params: QueryParams,
  waiting: ReadonlySet<string>,
  opts: AskAgainOptions = {},
): Promise<Map<string, string>> {
  const answers = new Map<string, string>();
  const pending = new Set(waiting);
  if (pending.size === 0) return answers;
  const ackWaitMs = opts.ackWaitMs ?? ACK_WAIT_MS;
  const deadline = params.timeoutMs ? Date.now() + params.timeoutMs : undefined;
  const heard = new Set<string>();
  const queries: RecordQueue<QueryRecord>[] = [];
  let over = false;
  let failure: unknown;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const consume = async (records: RecordQueue<QueryRecord>) => {
    for await (const r of records) {
      heard.add(r.from);
      if (r.type !== 'response' || answers.has(r.from)) continue;
      answers.set(r.from, r.payload.toString('utf8'));
      pending.delete(r.from);
      if (pending.size === 0) finish();
    }
  };
  const ask = async (p: QueryParams) => {
    const records = await client.query({ ...p, requestAck: true });
    if (over) records.stop();
    else queries.push(records);
    return records;
  };
  // The first query's end (its `done` at the timeout, or a closed connection) is the end.
  void consume(await ask(params)).then(finish, (err: unknown) => {
    failure = err;
    finish();
  });
  let asks = 1;
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    if (over || asks >= MAX_ASKS) return;
    timer = setTimeout(() => detach(askAgain(), () => undefined), ackWaitMs * (1 + Math.random() / 2));
  };
  const askAgain = async () => {
    const silent = [...pending].filter((n) => !heard.has(n));
    const left = deadline === undefined ? Infinity : deadline - Date.now();
    if (over || left < MIN_TIME_LEFT_MS) return;
    if (silent.length > 0) {
      asks++;
      try {
        const again = await ask({ ...params, filterNodes: silent, timeoutMs: deadline === undefined ? 0 : left });
        void consume(again).catch(() => undefined);
      } catch {
        return; // the first query still runs and still ends the call
      }
    }
    schedule();
  };
  schedule();
  try {
    await finished;
  } finally {
    over = true;
    clearTimeout(timer);
    for (const q of queries) q.stop();
  }
  if (failure !== undefined && pending.size > 0) throw asError(failure);
  return answers;
}
