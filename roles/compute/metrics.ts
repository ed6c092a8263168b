/**
 * The compute role's metrics (docs/monitoring.md, "Compute"): this node's instances by status, as
 * its last reconcile pass wrote them to the registry (`running`, `stopped`, `absent`, `error`, …),
 * and how long launches took, from the record's creation to the pass that first saw the instance
 * running. The reconciler hands each pass's statuses over ({@link ComputeMetrics.passed}); the
 * gauge is set from the last pass at scrape time, so a scrape costs no LXD call.
 */
import { gauge, histogram, onCollect, WORK_SECONDS } from '../../core/metrics.js';

const instances = gauge<'status'>({
  name: 'mammatus_compute_instances',
  help: "Instances recorded for this node, by the status its last reconcile pass saw (LXD's, absent or error).",
  labelNames: ['status'],
});
const launchSeconds = histogram({
  name: 'mammatus_compute_launch_seconds',
  help: "Seconds from an instance's registration to the reconcile pass that first saw it running.",
  buckets: WORK_SECONDS,
});

/** One record's status as a pass wrote it. */
export interface ObservedRow {
  readonly id: string;
  /** What the pass saw (lower case): LXD's status, `absent` or `error`. */
  readonly status: string;
  /** What the record said before the pass (undefined: nothing yet). */
  readonly before?: string;
  /** The record's `created_at` (ISO 8601). */
  readonly createdAt?: string;
}

/** Statuses before which `running` means the instance was just launched (not restarted). */
const NOT_YET_RUN = new Set([undefined, 'absent', 'error']);

/** How many rows have each status. */
export function countByStatus(rows: readonly ObservedRow[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of rows) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
  return counts;
}

/**
 * The launch time of `row` in seconds when this pass is the first to see it running after it had
 * not run yet (nothing, `absent`, or a failed create or start), else undefined. A restarted
 * instance (`stopped` before) is no launch.
 */
export function launchSecondsOf(row: ObservedRow, nowMs: number): number | undefined {
  if (row.status !== 'running' || !NOT_YET_RUN.has(row.before)) return undefined;
  const created = row.createdAt === undefined ? Number.NaN : Date.parse(row.createdAt);
  if (!Number.isFinite(created) || created > nowMs) return undefined;
  return (nowMs - created) / 1000;
}

/** The compute role's metrics: the last pass's statuses and the launches it saw. */
export class ComputeMetrics {
  private statuses = new Map<string, number>();
  /** Records already seen running, so each launch is observed once (pruned to the current records). */
  private seenRunning = new Set<string>();
  private remove: (() => void) | undefined;

  constructor(private readonly nowMs: () => number = Date.now) {}

  /** Registers the collector (once). */
  start(): void {
    this.remove ??= onCollect('compute_instances', () => {
      instances.reset();
      for (const [status, n] of this.statuses) instances.set({ status }, n);
    });
  }

  /** One pass's statuses: kept for the gauge, and each instance's first `running` timed. */
  passed(rows: readonly ObservedRow[]): void {
    this.statuses = countByStatus(rows);
    const now = this.nowMs();
    for (const row of rows) {
      if (row.status !== 'running' || this.seenRunning.has(row.id)) continue;
      this.seenRunning.add(row.id);
      const seconds = launchSecondsOf(row, now);
      if (seconds !== undefined) launchSeconds.observe(seconds);
    }
    const ids = new Set(rows.map((r) => r.id));
    for (const id of this.seenRunning) if (!ids.has(id)) this.seenRunning.delete(id);
  }

  /** Removes the collector; the gauge's series go with it. */
  stop(): void {
    this.remove?.();
    this.remove = undefined;
    this.statuses = new Map();
    instances.reset();
  }
}
