/**
 * The SQS/SNS API's metrics (docs/monitoring.md, Controller): requests by action and outcome,
 * their latency, and the depth of the queues this controller owns. Label values come from bounded
 * sets only: an action the API does not know is `unknown` (a tenant chooses the `Action=` string),
 * an outcome is `ok` or one of the error codes of errors.ts, a queue is one this controller owns
 * or let go while idle (at most {@link MAX_EXPORTED_QUEUES} of them).
 */
import { counter, gauge, histogram, onCollect, REQUEST_SECONDS } from '../../core/metrics.js';
import type { Service } from './errors.js';
import { isSnsAction } from './protocol/sns-query.js';
import { isSqsAction } from './protocol/sqs-types.js';

const requests = {
  sqs: counter<'action' | 'outcome'>({
    name: 'mammatus_sqs_requests_total',
    help: 'SQS API requests, by action and outcome (ok or the error code answered).',
    labelNames: ['action', 'outcome'],
  }),
  sns: counter<'action' | 'outcome'>({
    name: 'mammatus_sns_requests_total',
    help: 'SNS API requests, by action and outcome (ok or the error code answered).',
    labelNames: ['action', 'outcome'],
  }),
};

const seconds = {
  sqs: histogram<'action'>({
    name: 'mammatus_sqs_request_seconds',
    help: 'SQS API request time, from the request read to the answer built, by action.',
    labelNames: ['action'],
    buckets: REQUEST_SECONDS,
  }),
  sns: histogram<'action'>({
    name: 'mammatus_sns_request_seconds',
    help: 'SNS API request time, from the request read to the answer built, by action.',
    labelNames: ['action'],
    buckets: REQUEST_SECONDS,
  }),
};

/** The action label: the action when the service knows it, else `unknown` (never the string sent). */
export function actionLabel(service: Service, action: string | undefined): string {
  if (action === undefined) return 'unknown';
  return (service === 'sns' ? isSnsAction(action) : isSqsAction(action)) ? action : 'unknown';
}

/** What one request was, as the pipeline learns it. */
export interface RequestSeen {
  service: Service;
  action: string | undefined;
  /** `ok`, or the error code answered. */
  outcome: string;
}

/** Counts one answered request; `startedAt` from `performance.now()`, or undefined for a refusal with no time worth measuring. */
export function countRequest(seen: RequestSeen, startedAt?: number): void {
  const action = actionLabel(seen.service, seen.action);
  requests[seen.service].inc({ action, outcome: seen.outcome });
  if (startedAt !== undefined) seconds[seen.service].observe({ action }, (performance.now() - startedAt) / 1000);
}

/** One queue's depth, as its owner knows it. */
export interface QueueDepth {
  readonly queue: string;
  readonly visible: number;
  readonly inflight: number;
  readonly delayed: number;
}

/**
 * The most queues exported per controller (the deepest first): a scrape stays bounded however many
 * queues tenants create.
 */
export const MAX_EXPORTED_QUEUES = 1000;

const depth = gauge<'queue' | 'state'>({
  name: 'mammatus_sqs_queue_messages',
  help: `Messages in the queues this controller owns (or let go while idle: their last counts), by state (visible, inflight, delayed); the ${MAX_EXPORTED_QUEUES} deepest queues.`,
  labelNames: ['queue', 'state'],
});

const sources = new Set<() => QueueDepth[]>();

/** The rows to export from every source: summed per queue name, the deepest {@link MAX_EXPORTED_QUEUES}. */
export function deepest(rows: readonly QueueDepth[], max = MAX_EXPORTED_QUEUES): QueueDepth[] {
  const byName = new Map<string, QueueDepth>();
  for (const r of rows) {
    const had = byName.get(r.queue);
    byName.set(
      r.queue,
      had ? { queue: r.queue, visible: had.visible + r.visible, inflight: had.inflight + r.inflight, delayed: had.delayed + r.delayed } : r,
    );
  }
  const total = (d: QueueDepth) => d.visible + d.inflight + d.delayed;
  return [...byName.values()].sort((a, b) => total(b) - total(a) || (a.queue < b.queue ? -1 : 1)).slice(0, max);
}

function collectDepths(): void {
  // Reset first: a queue given up or deleted since the last scrape must not stay at its old depth.
  depth.reset();
  for (const d of deepest([...sources].flatMap((source) => source()))) {
    depth.set({ queue: d.queue, state: 'visible' }, d.visible);
    depth.set({ queue: d.queue, state: 'inflight' }, d.inflight);
    depth.set({ queue: d.queue, state: 'delayed' }, d.delayed);
  }
}

/**
 * Exports the depths `source` reports (a running engine's owned queues, read from memory) at each
 * scrape, until the returned function is called. Several engines in one process (tests) add up.
 */
export function exportQueueDepths(source: () => QueueDepth[]): () => void {
  sources.add(source);
  const removeCollector = onCollect('sqs-queue-depths', collectDepths);
  return () => {
    sources.delete(source);
    if (sources.size === 0) {
      removeCollector();
      depth.reset();
    }
  };
}
