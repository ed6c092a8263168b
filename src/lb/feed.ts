/**
 * The balancer feed a gateway keeps (issue 21): the load balancer records and the instances their
 * selectors look at, both watched over one NATS connection to the controllers.
 *
 * The feed resolves targets when the gateway asks, with the Serf members the gateway passes (those of
 * the state it renders; see `LbFeed` in core/contracts.ts): the role may not import the resolution
 * itself, and a member event then needs nothing of the feed. It calls `onChange` only when what it
 * holds can change that result: a record created, changed or removed, or an instance starting or
 * stopping to serve, moving, or entering or leaving a tag selector. A report that changes nothing
 * a balancer reads (a compute node rewriting `observed.at`, a tag no selector names) costs no
 * reconcile. The test is the resolution without members: members only fill names and addresses
 * the instances left free, so when the instances' servers stay the same, so does every result.
 *
 * Conflicting records (written beside the CLI, or racing it) pass through as they are: the
 * gateway's plan serves the older one and reports the other as left out (roles/gateway/lb/render-lb.ts).
 * Bursts are gathered for a quiet
 * period (as the instance feed does), and while the controllers are unreachable the last snapshot
 * stays: an outage never takes balancers or their servers away.
 */
import type { LbFeed, Logger } from '../../core/contracts.js';
import type { InstanceRecord } from '../../core/instance-record.js';
import type { LoadBalancerRecord } from '../../core/lb-record.js';
import { detach } from '../../core/errors.js';
import type { ConnectNatsOptions } from '../../core/nats.js';
import { watchRegistry } from '../registry/watched.js';
import { followLbBucket, type LbBucketCopy } from './feed-bucket.js';
import { byText } from './record.js';
import { resolveBalancers, type LbInstance } from './targets.js';

/** How long changes are gathered before one snapshot (a burst of launches costs one apply). */
const DEBOUNCE_MS = 200;

/** What the feed keeps of an instance record: what resolving reads, nothing else. */
export function lbInstance(r: InstanceRecord): LbInstance {
  return { name: r.name, ips: r.ips, tags: r.tags, state: r.state, ...(r.observed ? { observed: r.observed } : {}) };
}

/** Options of `openLbFeed` beyond the factory's arguments. */
export interface LbFeedOptions {
  /** The node's NATS credentials (a gateway's may read both buckets). */
  readonly credentials?: ConnectNatsOptions['credentials'];
  /** Quiet period before a snapshot; tests shorten it. */
  readonly debounceMs?: number;
  /** Period of the check that the balancer watch still follows its stream (`LB_RESYNC_MS`); tests shorten it. */
  readonly resyncMs?: number;
}

/** Opens the feed (the composition root binds the options and gives the role the rest: `LbFeedFactory`). */
export function openLbFeed(servers: readonly string[], onChange: () => void, log: Logger, options: LbFeedOptions = {}): LbFeed {
  const debounceMs = options.debounceMs ?? DEBOUNCE_MS;
  let last: { readonly balancers: LoadBalancerRecord[]; readonly instances: LbInstance[] } | undefined;
  let lastResult: string | undefined;
  let bucket: LbBucketCopy | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const update = (): void => {
    const instances = watched.snapshot();
    const records = bucket?.records();
    if (stopped || !instances || !records) return;
    // Conflicting records pass through: the gateway's plan leaves the younger out and reports it
    // (lb-left-out, the status, its log), which a record dropped here would never reach.
    last = { balancers: records, instances };
    const result = JSON.stringify(resolveBalancers(records, instances, []));
    if (result === lastResult) return;
    lastResult = result;
    onChange();
  };
  const soon = (): void => {
    clearTimeout(timer);
    timer = setTimeout(update, debounceMs);
  };

  // The instance watch debounces itself; its snapshot is taken only while the registry is reachable.
  const watched = watchRegistry({
    servers,
    credentials: options.credentials,
    clientName: 'mammatus-gateway-lb',
    debounceMs,
    project: (records) => records.map(lbInstance).sort((a, b) => byText(a.name, b.name)),
    onChange: update,
    log,
  });
  detach(
    watched.connected.then((nc) => {
      if (nc && !stopped) bucket = followLbBucket(nc, log, soon, options.resyncMs);
    }),
    (err) => log.warn({ err }, 'cannot follow the balancers'),
  );

  return {
    snapshot: (members) => last && resolveBalancers(last.balancers, last.instances, members),
    async stop() {
      stopped = true;
      clearTimeout(timer);
      bucket?.stop();
      await watched.stop();
    },
  };
}
