/**
 * The JetStream-backed engines, assembled: streams and buckets, the queue catalogue and router,
 * the SQS engine, the SNS engine and its delivery workers. `stop()` hands queue leases back so
 * another controller takes over at once.
 */
import { randomBytes } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../../../core/contracts.js';
import type { EngineSettings } from '../settings.js';
import type { SnsEngine } from '../sns-engine.js';
import { QueueCatalog } from './catalog.js';
import { openMessagingStore, sharedValue, type MessagingStore } from './layout.js';
import { BodyCache } from './body-cache.js';
import { QueueLog } from './queue-log.js';
import { QueueOwner } from './queue-owner.js';
import { QueueRouter } from './queue-router.js';
import { createJetStreamSns, type SnsRuntime } from './sns.js';
import { createJetStreamSqs, type JetStreamSqs } from './sqs.js';

/** Options of `startJetStreamEngines`. */
export interface EngineOptions {
  readonly nc: NatsConnection;
  readonly settings: EngineSettings;
  /** Account and region for ARNs made outside a request (SNS deliveries). */
  readonly accountId: string;
  readonly region: string;
  /** The externally reachable origin of the API (SNS SubscribeURL, SigningCertURL). */
  readonly publicUrl: () => string;
  readonly log: Logger;
  /** Tests only: no SNS delivery workers on this instance. */
  readonly deliveryWorkers?: boolean;
}

/** Running engines. */
export interface JetStreamEngines {
  readonly sqs: JetStreamSqs;
  readonly sns: SnsEngine;
  readonly router: QueueRouter;
  readonly store: MessagingStore;
  readonly snsRuntime: SnsRuntime;
  stop(): Promise<void>;
}

/**
 * Retries `make` for up to a minute: a controller may start while its NATS cluster is still
 * electing a JetStream leader (stream creation fails until then).
 */
async function withRetry<T>(log: Logger, make: () => Promise<T>, attempts = 60): Promise<T> {
  for (let i = 1; ; i += 1) {
    try {
      return await make();
    } catch (err) {
      if (i >= attempts) throw err;
      if (i === 1 || i % 10 === 0) log.warn({ err, attempt: i }, 'JetStream not ready; retrying');
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/** Creates what is missing in JetStream and starts both engines. */
export async function startJetStreamEngines(opts: EngineOptions): Promise<JetStreamEngines> {
  const { nc, settings, log } = opts;
  const js = jetstream(nc, { timeout: 10_000 });
  const { jsm, store } = await withRetry(log, async () => {
    const jsm = await jetstreamManager(nc, { timeout: 10_000 });
    const opened = await openMessagingStore(nc, jsm, {
      replicas: settings.replicas,
      leaseMs: settings.ownerLeaseMs,
      snsAckWaitMs: settings.sns.httpTimeoutMs + 15_000,
    });
    return { jsm, store: opened };
  });
  const receiptKey = settings.receiptKey ?? Buffer.from(await sharedValue(store.keys, 'receipt-key', () => randomBytes(32)));
  const catalog = new QueueCatalog(store.queues, log.child({ component: 'sqs-catalog' }));
  await catalog.start();
  // Bodies of recent sends, shared by all queues: a receive right after a send reads nothing.
  const bodies = new BodyCache(settings.bodyCacheBytes);
  // Rebuild reads create consumers with this one: one placed on a server that is down never
  // answers, and the next attempt should not wait 10 s for it.
  const consumerApi = await jetstreamManager(nc, { timeout: 3_000, checkAPI: false });
  const logs = new Map<string, QueueLog>();
  const logFor = (id: string) => {
    let l = logs.get(id);
    if (!l) logs.set(id, (l = new QueueLog(js, jsm, id, bodies, consumerApi)));
    return l;
  };
  let sqs: JetStreamSqs | undefined;
  // One logger for every owner (each call names its queue): a child logger per owned queue costs
  // ~400 B of heap each.
  const ownerLogger = log.child({ component: 'sqs-owner' });
  const router: QueueRouter = new QueueRouter({
    nc,
    leases: store.owners,
    leaseMs: store.leaseMs,
    idleMs: settings.ownerIdleMs,
    catalog,
    logFor,
    logger: log.child({ component: 'sqs-router' }),
    startOwner: (record) =>
      QueueOwner.start(record, {
        log: logFor(record.id),
        record: () => catalog.get(record.name),
        keys: [receiptKey],
        appendTo: (name, entries, ctx) => router.run(name, { op: 'append', entries }, ctx),
        logger: ownerLogger,
      }),
  });
  sqs = createJetStreamSqs({
    catalog,
    router,
    logFor,
    moveTasks: { kv: store.queues, logger: log.child({ component: 'sqs-move-tasks' }) },
  });
  const snsRuntime = await createJetStreamSns({
    js,
    store,
    sqs,
    settings: settings.sns,
    accountId: opts.accountId,
    region: opts.region,
    publicUrl: opts.publicUrl,
    log: log.child({ component: 'sns' }),
    workers: opts.deliveryWorkers ?? true,
  });
  return {
    sqs,
    sns: snsRuntime.engine,
    router,
    store,
    snsRuntime,
    async stop() {
      await snsRuntime.stop();
      // Before the router: a worker's last write must still reach its queues' owners.
      await sqs?.stopMoveTasks();
      await router.stop();
      catalog.stop();
      sqs = undefined;
    },
  };
}
