/**
 * A watched copy of the load balancer bucket (`mammatus-lb`), as a gateway reads it: a watch of
 * updates first, then every key read, so no change between the two is missed; each key keeps its
 * newest revision (a deletion stays as a tombstone, so an older value read late cannot bring a
 * balancer back).
 *
 * A full read (with a fresh watch) happens at the start, after every reconnect (the watch's
 * consumer may have lost messages while the server was away), when the watch ends, and when the
 * bucket's stream is not the one the watch began on: a watch outlives its stream being deleted and
 * made again (a controller's store lost, the bucket re-created) and would then wait at a sequence
 * the new stream has long passed, missing every change. The stream's creation time, asked every
 * `resyncMs` (one stream info request), is what notices. Until a read completes the previous copy
 * stays: an outage of the controllers never takes a balancer away.
 * A value that is not a valid record, or a record stored under another name's key, is skipped with
 * a warning and counts as absent (as `LbRegistry.list` does).
 *
 * A bucket that does not exist yet (no balancer was ever created: `lb create` makes it) reads as
 * empty the first time, so a fresh cluster's gateways serve no balancers rather than wait; the
 * read is then retried until the bucket appears. Once the bucket was seen, its absence is treated
 * as an outage (a cluster being re-formed can hide a stream for a while) and the copy stays.
 */
import { KvWatchInclude, type KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../../core/contracts.js';
import { detach, errorMessage } from '../../core/errors.js';
import type { LoadBalancerRecord } from '../../core/lb-record.js';
import { byText, checkLoadBalancerRecord } from './record.js';
import { LbRegistry, lbKey } from './registry.js';

/** How long to wait before reading the bucket again after a failed read (or while it does not exist). */
const RETRY_MS = 1000;
/** How often to check that the watch still follows the bucket's stream (see the header). */
export const LB_RESYNC_MS = 30_000;
// JetStream's "stream not found": the bucket was never created.
const STREAM_NOT_FOUND = 10059;

/** A running copy of the bucket. */
export interface LbBucketCopy {
  /** The valid records, sorted by name; undefined before the first full read. */
  records(): LoadBalancerRecord[] | undefined;
  stop(): void;
}

type Entries = Map<string, { readonly record?: LoadBalancerRecord; readonly revision: number }>;

/**
 * The record an entry holds, or undefined for a deletion or a value that is no record of its key;
 * `warn` says why (the caller says it once per key and revision: the periodic read sees it again).
 */
function recordOf(entry: KvEntry, warn: (why: Record<string, unknown>, msg: string) => void): LoadBalancerRecord | undefined {
  if (entry.operation !== 'PUT') return undefined;
  let record: LoadBalancerRecord;
  try {
    record = checkLoadBalancerRecord(entry.json());
  } catch (err) {
    warn({ err: errorMessage(err) }, 'not a valid balancer record; skipped');
    return undefined;
  }
  if (lbKey(record.name) === entry.key) return record;
  warn({ name: record.name }, 'balancer record stored under another key; skipped');
  return undefined;
}

/**
 * Starts following the bucket over `nc` (which reconnects forever); `onChange` runs after each full
 * read and each change (the caller compares). `resyncMs`: the period of the stream check.
 */
export function followLbBucket(nc: NatsConnection, log: Logger, onChange: () => void, resyncMs = LB_RESYNC_MS): LbBucketCopy {
  let current: Entries | undefined;
  let seen = false;
  let stopped = false;
  let generation = 0;
  let stopWatch: (() => void) | undefined;
  /** When the stream the current watch follows was created; undefined until a watch runs. */
  let watching: string | undefined;
  let retry: NodeJS.Timeout | undefined;
  // Said once per outage, not at every retry.
  let failing = false;
  /** The revision each skipped key was last warned about. */
  const warned = new Map<string, number>();

  const take = (into: Entries, entry: KvEntry): boolean => {
    const old = into.get(entry.key);
    if (old && old.revision >= entry.revision) return false;
    const record = recordOf(entry, (why, msg) => {
      if (warned.get(entry.key) === entry.revision) return;
      warned.set(entry.key, entry.revision);
      log.warn({ key: entry.key, revision: entry.revision, ...why }, msg);
    });
    into.set(entry.key, { ...(record ? { record } : {}), revision: entry.revision });
    return true;
  };

  /** One full read into a fresh map, which replaces the copy once complete. */
  const sync = async (gen: number): Promise<void> => {
    const registry = await LbRegistry.open(nc, { bind: true });
    const next: Entries = new Map();
    // Asked before the watch starts: a stream made again in between then looks changed at the next check.
    const created = (await registry.kv.status()).streamInfo.created;
    const watcher = await registry.kv.watch({ key: 'lb.>', include: KvWatchInclude.UpdatesOnly });
    if (gen !== generation) return watcher.stop();
    stopWatch = () => watcher.stop();
    watching = created;
    seen = true;
    void (async () => {
      for await (const entry of watcher) {
        if (take(next, entry) && current === next) onChange();
      }
    })()
      .catch((err: unknown) => log.warn({ err }, 'balancer watch failed'))
      .finally(() => {
        // The stream went away (or the watch was replaced): read again unless a newer read took over.
        if (gen === generation && !stopped && !nc.isClosed()) {
          log.warn('balancer watch ended; reading the balancers again');
          later();
        }
      });
    const keys: string[] = [];
    for await (const key of await registry.kv.keys('lb.>')) keys.push(key);
    for (const key of keys) {
      const entry = await registry.kv.get(key);
      if (entry) take(next, entry);
    }
    if (gen !== generation) return;
    const first = !current || failing;
    current = next;
    failing = false;
    // The periodic read is routine: said at debug.
    log[first ? 'info' : 'debug']({ balancers: records()?.length ?? 0 }, 'balancers loaded');
    onChange();
  };

  const resync = (): void => {
    if (stopped || nc.isClosed()) return;
    clearTimeout(retry);
    const gen = ++generation;
    stopWatch?.();
    stopWatch = undefined;
    watching = undefined;
    detach(
      sync(gen).catch((err: unknown) => {
        if (gen !== generation || stopped) return;
        if ((err as { code?: unknown }).code === STREAM_NOT_FOUND && !seen) {
          if (!current) {
            current = new Map();
            log.info('no balancer bucket yet (no balancer was created); none to serve');
            onChange();
          }
        } else if (!failing) {
          failing = true;
          log.warn({ err: errorMessage(err) }, 'balancers not readable; keeping the last copy and retrying');
        }
        later();
      }),
      () => undefined,
    );
  };
  const later = (): void => {
    clearTimeout(retry);
    retry = setTimeout(resync, RETRY_MS);
    retry.unref();
  };

  const records = (): LoadBalancerRecord[] | undefined =>
    current && [...current.values()].flatMap((e) => (e.record ? [e.record] : [])).sort((a, b) => byText(a.name, b.name));

  detach(
    (async () => {
      for await (const s of nc.status()) if (s.type === 'reconnect') resync();
    })(),
    (err) => log.warn({ err }, 'NATS status watch ended'),
  );
  /** Reads again when the stream is not the one watched; failures are the retry loop's or the next check's. */
  const check = (): void => {
    const gen = generation;
    if (stopped || watching === undefined) return;
    detach(
      LbRegistry.open(nc, { bind: true })
        .then((r) => r.kv.status())
        .then((status) => {
          if (gen !== generation || status.streamInfo.created === watching) return;
          log.warn('the balancer bucket was made again; reading it again');
          resync();
        }),
      (err: unknown) => log.debug({ err: errorMessage(err) }, 'balancer bucket check failed'),
    );
  };
  const periodic = setInterval(check, resyncMs);
  periodic.unref();
  resync();

  return {
    records,
    stop() {
      stopped = true;
      generation++;
      clearTimeout(retry);
      clearInterval(periodic);
      stopWatch?.();
    },
  };
}
