/** Pieces every CLI command shares: global flags, output sink, the Serf client, flag parsers. */
import { parseDuration } from '../duration.js';
import { SerfClient, type QueryParams } from '../serf/client.js';

/** Where a command writes; tests capture it. */
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

/** Global flags, as the `serf` CLI has them. */
export interface GlobalOptions {
  rpcAddr: string;
  rpcAuth?: string;
}

/** A failure the user caused (bad flag value): exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Connects to the local serf agent named by the global flags. */
export function connect(g: GlobalOptions): Promise<SerfClient> {
  return SerfClient.connect({ addr: g.rpcAddr, authKey: g.rpcAuth || undefined, connectTimeoutMs: 3000, requestTimeoutMs: 15_000 });
}

/** Parses a `--timeout` flag (Go duration) into milliseconds; absent = 0, Serf's default. */
export function parseTimeoutFlag(text: string | undefined): number {
  try {
    return text ? parseDuration(text) : 0;
  } catch (err) {
    throw new UsageError((err as Error).message);
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
  return Object.entries(filters).every(([k, re]) => tags[k] !== undefined && new RegExp(re).test(tags[k]!));
}

/** Formats rows as aligned columns (the first row is the header). */
export function formatTable(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd());
}

/**
 * Sends a query and collects each answer's text by node, returning as soon as every node in
 * `waiting` has answered (or at the query's timeout). `waiting` empty: no query is sent.
 */
export async function queryUntilAnswered(client: SerfClient, params: QueryParams, waiting: ReadonlySet<string>): Promise<Map<string, string>> {
  const answers = new Map<string, string>();
  const pending = new Set(waiting);
  if (pending.size === 0) return answers;
  const records = await client.query(params);
  for await (const r of records) {
    if (r.type !== 'response') continue;
    answers.set(r.from, r.payload.toString('utf8'));
    pending.delete(r.from);
    if (pending.size === 0) {
      records.stop();
      break;
    }
  }
  return answers;
}
