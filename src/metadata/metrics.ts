/**
 * The metadata service's metrics (docs/monitoring.md, Controller): requests by kind and HTTP
 * status, and their latency. The service answers tens of thousands of requests a second from
 * memory (docs/benchmarks.md), where prom-client's labelled `inc` (~0.4 µs: it hashes the labels)
 * would be a visible share of a request: requests are tallied in a plain array here and added to
 * the counter at each scrape; the latency histogram has no labels (its `observe` is the cheap one).
 */
import { counter, gauge, histogram, onCollect, REQUEST_SECONDS } from '../../core/metrics.js';

/** What a request asked for (a bounded set: the path a caller sends never becomes a label). */
export const METADATA_KINDS = ['meta-data', 'user-data', 'vendor-data', 'identity', 'token', 'nocloud', 'host', 'other'] as const;
export type MetadataKind = (typeof METADATA_KINDS)[number];

const KIND_INDEX = new Map<MetadataKind, number>(METADATA_KINDS.map((k, i) => [k, i]));

/**
 * The kind of a request: the IMDSv2 token (`PUT`), user-data, vendor-data, the EC2 identity
 * document, other EC2 meta-data, the NoCloud and OpenStack seeds' other files, planned hosts'
 * paths (`/mammatus/…`), anything else.
 */
export function metadataKind(method: string | undefined, url: string): MetadataKind {
  if (method === 'PUT') return 'token';
  if (url.includes('user-data') || url.includes('user_data')) return 'user-data';
  if (url.includes('vendor-data') || url.includes('vendor_data')) return 'vendor-data';
  const path = url.replace(/^\/+/, '');
  if (path.startsWith('nocloud') || path.startsWith('openstack')) return 'nocloud';
  if (path.startsWith('mammatus/')) return 'host';
  if (url.includes('/dynamic/instance-identity')) return 'identity';
  if (url.includes('/meta-data')) return 'meta-data';
  return 'other';
}

const STATUSES = 600;
const tally = new Float64Array(METADATA_KINDS.length * STATUSES);
const flushed = new Float64Array(tally.length);

const requests = counter<'kind' | 'outcome'>({
  name: 'mammatus_metadata_requests_total',
  help: 'Metadata service requests, by kind and outcome (the HTTP status answered).',
  labelNames: ['kind', 'outcome'],
});

const seconds = histogram({
  name: 'mammatus_metadata_request_seconds',
  help: 'Metadata service request time, from the request read to the answer written.',
  buckets: REQUEST_SECONDS,
});

/** Counts one answer; `startedAt` from `performance.now()` when the request arrived. */
export function countMetadataRequest(method: string | undefined, url: string | undefined, status: number, startedAt: number): void {
  seconds.observe((performance.now() - startedAt) / 1000);
  const kind = KIND_INDEX.get(metadataKind(method, url ?? '/')) ?? 0;
  tally[kind * STATUSES + (status >= 100 && status < STATUSES ? status : 0)] += 1;
}

/** Adds what was tallied since the last scrape to the counter. */
function flush(): void {
  for (let i = 0; i < tally.length; i += 1) {
    const delta = tally[i] - flushed[i];
    if (delta === 0) continue;
    flushed[i] = tally[i];
    const kind = METADATA_KINDS[Math.floor(i / STATUSES)];
    requests.inc({ kind, outcome: String(i % STATUSES) }, delta);
  }
}

// The tally is the process's: the counter follows it at every scrape, whether a service runs or not.
onCollect('metadata-requests', flush);

const instances = gauge({
  name: 'mammatus_registry_instances',
  help: 'Instance records in the registry, as the metadata service watching it last saw them (0 before it first loaded).',
});

const registries = new Set<() => number | undefined>();

/**
 * Exports `size` (a registry view's record count; undefined while it is not available) as
 * `mammatus_registry_instances` until the returned function is called.
 */
export function exportRegistrySize(size: () => number | undefined): () => void {
  registries.add(size);
  const remove = onCollect('registry-instances', () => {
    // Every view watches the same bucket: the largest loaded one (a view still loading reads low).
    // None loaded (NATS unreachable): the last known size stays, rather than a false 0.
    const sizes = [...registries].map((f) => f()).filter((n): n is number => n !== undefined);
    if (sizes.length > 0) instances.set(Math.max(...sizes));
  });
  return () => {
    registries.delete(size);
    if (registries.size === 0) {
      remove();
      instances.reset();
    }
  };
}
