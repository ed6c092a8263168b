/**
 * What the dispatcher counts (docs/monitoring.md): events and queries by handler and outcome, and
 * how long handlers take. Label values come from the handlers registered on this agent, never from
 * the names senders choose, so a flood of made-up names adds no series.
 */
import { REQUEST_SECONDS, counter, histogram } from '../../core/metrics.js';

/** How a handled event or query ended. */
export type DispatchOutcome = 'ok' | 'failed' | 'timeout' | 'refused' | 'duplicate' | 'dropped';

const events = counter<'name' | 'outcome'>({
  name: 'mammatus_serf_events_total',
  help: 'Serf user and member events by handler (or `other`) and outcome.',
  labelNames: ['name', 'outcome'],
});
const queries = counter<'name' | 'outcome'>({
  name: 'mammatus_serf_queries_total',
  help: 'Serf queries answered by handler and outcome.',
  labelNames: ['name', 'outcome'],
});
const seconds = histogram<'kind'>({
  name: 'mammatus_dispatch_seconds',
  help: 'Time handlers took, by kind (event, query).',
  labelNames: ['kind'],
  buckets: REQUEST_SECONDS,
});

/** Counts one event (`kind` event) or query under `name` (a registration's filter text, or `other`). */
export function countDispatch(kind: 'event' | 'query', name: string, outcome: DispatchOutcome): void {
  (kind === 'event' ? events : queries).inc({ name, outcome });
}

/** Observes how long one handler took. */
export function observeHandler(kind: 'event' | 'query', startedMs: number): void {
  seconds.observe({ kind }, (Date.now() - startedMs) / 1000);
}
