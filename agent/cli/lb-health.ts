/**
 * Target health in `lb list` and `lb show` (core/lb-health.ts): the reports the gateways published,
 * with their age. A report older than `LB_HEALTH_STALE_MS` is marked stale (its gateway stopped
 * reporting: dead, cut off, HAProxy not answering) and does not count in the summary while a fresh
 * one exists; the bucket's TTL drops it later. Pure: the command reads the bucket (src/lb/health.ts).
 */
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { LB_HEALTH_STALE_MS, type LbHealthReport, type LbServerHealth } from '../../core/lb-health.js';
import type { LoadBalancerRecord } from '../../core/lb-record.js';
import { errorMessage } from '../../core/errors.js';
import { formatTarget } from '../../src/lb/record.js';
import { openLbHealthBucket, readLbHealth } from '../../src/lb/health.js';
import { formatTable } from './common.js';

/** What `lb` prints when no gateway reports a balancer. */
export const NO_REPORTS = 'no gateway reports';

/** One gateway's report as the CLI shows it. */
export interface ShownReport extends LbHealthReport {
  readonly age_s: number;
  readonly stale: boolean;
}

/** The reports of one balancer, with age and staleness, by gateway name. */
export function reportsOf(name: string, all: readonly LbHealthReport[], now: Date): ShownReport[] {
  return all
    .filter((r) => r.balancer === name)
    .map((r) => {
      const age = now.getTime() - Date.parse(r.at);
      return { ...r, age_s: Math.max(0, Math.round(age / 1000)), stale: age > LB_HEALTH_STALE_MS };
    })
    .sort((a, b) => (a.gateway < b.gateway ? -1 : a.gateway > b.gateway ? 1 : 0));
}

const upOf = (r: LbHealthReport): string => `${r.servers.filter((s) => s.status === 'up').length}/${r.servers.length} up`;

/**
 * The `HEALTH` column: `2/3 up` (one gateway, or all agree), `gw1 2/3 up, gw2 3/3 up` when they
 * differ, `stale: 2/3 up (95s)` when only stale reports are left, {@link NO_REPORTS} without any.
 */
export function healthSummary(reports: readonly ShownReport[]): string {
  if (!reports.length) return NO_REPORTS;
  const fresh = reports.filter((r) => !r.stale);
  if (!fresh.length) return `stale: ${reports.map((r) => `${upOf(r)} (${r.age_s}s)`).join(', ')}`;
  const seen = new Set(fresh.map(upOf));
  const text = seen.size === 1 ? upOf(fresh[0]) : fresh.map((r) => `${r.gateway} ${upOf(r)}`).join(', ');
  const stale = reports.length - fresh.length;
  return stale ? `${text} (+${stale} stale)` : text;
}

/** How long a server has been in its state now (the report's count plus the report's age). */
const since = (s: LbServerHealth, r: ShownReport): string => (s.since_s === undefined ? '-' : `${s.since_s + r.age_s}s`);

/** `lb show`'s health section: per gateway, each target's servers with their state and last check. */
export function healthLines(record: LoadBalancerRecord, reports: readonly ShownReport[]): string[] {
  if (!reports.length) return [`target health: ${NO_REPORTS}`];
  const lines = ['target health:'];
  for (const r of reports) {
    lines.push(`  gateway ${r.gateway}: ${upOf(r)}, reported ${r.age_s}s ago${r.stale ? ' (STALE: the gateway stopped reporting)' : ''}`);
    const rows = [['TARGET', 'MACHINE', 'ADDRESS', 'STATE', 'SINCE', 'LAST CHECK']];
    for (const t of record.targets) {
      const spelled = formatTarget(t);
      const mine = r.servers.filter((s) => s.target.split('|').includes(spelled));
      if (!mine.length) rows.push([spelled, '-', '-', 'no server', '-', 'selects no running machine']);
      for (const s of mine) rows.push([spelled, s.machine, `${s.addr}:${s.port}`, s.status, since(s, r), s.check ?? '-']);
    }
    // Servers the gateway attributes to no target of this record (it runs an older version of it).
    for (const s of r.servers.filter((x) => !record.targets.some((t) => x.target.split('|').includes(formatTarget(t)))))
      rows.push([s.target, s.machine, `${s.addr}:${s.port}`, s.status, since(s, r), s.check ?? '-']);
    lines.push(...formatTable(rows).map((l) => `    ${l}`));
  }
  return lines;
}

/** The JSON form: the reports with age and staleness (an empty list: no gateway reports it). */
export function healthJson(reports: readonly ShownReport[]): Record<string, unknown> {
  return { summary: healthSummary(reports), reports };
}

/**
 * Every report in the bucket, or the reason there are none (bucket missing, unreadable): health is
 * an addition to the records, never a reason for `lb list` to fail.
 */
export async function loadHealth(nc: NatsConnection, kv?: KV): Promise<{ reports: LbHealthReport[]; error?: string }> {
  try {
    const { reports, skipped } = await readLbHealth(kv ?? (await openLbHealthBucket(nc)));
    return skipped ? { reports, error: `${skipped} malformed health report(s) skipped` } : { reports };
  } catch (err) {
    return { reports: [], error: `target health not readable: ${errorMessage(err)}` };
  }
}
