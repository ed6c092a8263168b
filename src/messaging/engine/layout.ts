/**
 * Where the messaging state lives in JetStream, and the one function that creates it.
 *
 * | what | JetStream object | key / subject |
 * | --- | --- | --- |
 * | SQS message log (all queues) | stream `MESSAGING_SQS`, file, limits | `mammatus.sqs.m.<queue id>` |
 * | owner term markers (fence PurgeQueue) | streams `MESSAGING_SQS`, `MESSAGING_SQS_STATE` | `mammatus.sqs.m.<queue id>.term`, `mammatus.sqs.s.<queue id>.term` |
 * | SQS delivery state (receive count, first receive, visible-at) | stream `MESSAGING_SQS_STATE`, one message per subject | `mammatus.sqs.s.<queue id>.b.<writer>.<n>` (a batch of messages; `….s.<queue id>.<seq>` from older versions is still read) |
 * | queue records (attributes, tags) and 60 s tombstones | KV `mammatus_sqs` | `q.<name>`, `gone.<name>` |
 * | message move tasks (records, the latest task per source queue) | KV `mammatus_sqs` | `mv.<queue id>.<task id>`, `mvlock.<queue id>` |
 * | queue ownership leases | KV `mammatus_sqs_owners`, TTL = lease | `<queue id>` |
 * | forwarded queue operations | core request/reply | `mammatus.sqs.rpc.<queue id>` |
 * | takeover announcements (idle queues' metrics) | core publish | `mammatus.sqs.owned` |
 * | SNS topics and subscriptions, the subscription of each endpoint | KV `mammatus_sns` | `t.<name>`, `s.<uuid>`, `e.<hash>` |
 * | SNS publishes (FIFO topics apart) / http deliveries | stream `MESSAGING_SNS`, work queue | `mammatus.sns.pub`, `mammatus.sns.fifo`, `mammatus.sns.http` |
 * | failed attempts of http deliveries being retried; restorable unsubscribed http(s) subscriptions | KV `mammatus_sns_attempts`, TTL 6 h | `<stream sequence of the task>`, `u.<token>` |
 * | shared keys (receipt MAC, SNS signing) | KV `mammatus_messaging` | `receipt-key`, `sns-signing` |
 *
 * One log stream for all queues (not one per queue): a stream is a Raft group at R3, and a
 * thousand queues would be a thousand groups; per-queue subjects give the same isolation for
 * purge, rebuild and deduplication. Queue ids (random hex, new per CreateQueue) rather than names
 * appear in subjects, because names may contain `.` (`x.fifo`) and a re-created queue must not
 * see its predecessor's messages.
 */
import { AckPolicy, RetentionPolicy, StorageType, type JetStreamManager, type StreamConfig } from '@nats-io/jetstream';
import { Kvm, type KV, type KvOptions } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';

export const SQS_STREAM = 'MESSAGING_SQS';
export const SQS_STATE_STREAM = 'MESSAGING_SQS_STATE';
export const SNS_STREAM = 'MESSAGING_SNS';
export const SQS_BUCKET = 'mammatus_sqs';
export const OWNER_BUCKET = 'mammatus_sqs_owners';
export const SNS_BUCKET = 'mammatus_sns';
export const SNS_ATTEMPTS_BUCKET = 'mammatus_sns_attempts';
/** Longer than any retry schedule (at most an hour) plus pacing: a count outliving its task expires. */
const SNS_ATTEMPTS_TTL_MS = 6 * 3600 * 1000;
export const KEYS_BUCKET = 'mammatus_messaging';
export const SNS_FANOUT_CONSUMER = 'fanout';
/** Fan-out of FIFO topics: one message at a time across all controllers, so order is kept. */
export const SNS_FANOUT_FIFO_CONSUMER = 'fanout-fifo';
export const SNS_HTTP_CONSUMER = 'http';

/** Subjects. */
export const subjects = {
  message: (queueId: string) => `mammatus.sqs.m.${queueId}`,
  /** Owner markers: the latest one names the current owner's term (see `QueueLog.beginTerm`). */
  messageTerm: (queueId: string) => `mammatus.sqs.m.${queueId}.term`,
  stateTerm: (queueId: string) => `mammatus.sqs.s.${queueId}.term`,
  /** A state record of several messages; `writer` is random per writer, so subjects never collide. */
  stateBatch: (queueId: string, writer: string, n: number) => `mammatus.sqs.s.${queueId}.b.${writer}.${n}`,
  states: (queueId: string) => `mammatus.sqs.s.${queueId}.>`,
  rpc: (queueId: string) => `mammatus.sqs.rpc.${queueId}`,
  /** A controller took a queue over (`{ id, node }`): others forget the counts they kept of it. */
  owned: 'mammatus.sqs.owned',
  snsPublish: 'mammatus.sns.pub',
  snsPublishFifo: 'mammatus.sns.fifo',
  snsHttp: 'mammatus.sns.http',
} as const;

const DAY_NS = 86_400 * 1e9;
/** SQS's deduplication interval: the log stream's duplicate window. */
export const DEDUP_WINDOW_MS = 5 * 60 * 1000;

/** Opened handles on everything above. */
export interface MessagingStore {
  readonly jsm: JetStreamManager;
  readonly queues: KV;
  readonly owners: KV;
  readonly sns: KV;
  /** Failed-attempt counts of http deliveries (no deletes needed: the TTL removes them). */
  readonly snsAttempts: KV;
  readonly keys: KV;
  /** The owners bucket's TTL: what a lease lasts without renewal. */
  readonly leaseMs: number;
}

/**
 * Creates a stream, or leaves an existing one as it is (another controller may have made it),
 * except for subjects a newer version added: those are added to it.
 */
async function ensureStream(jsm: JetStreamManager, cfg: Partial<StreamConfig> & { name: string }): Promise<void> {
  let existing: StreamConfig;
  try {
    existing = (await jsm.streams.info(cfg.name)).config;
  } catch {
    await jsm.streams.add(cfg);
    return;
  }
  const missing = (cfg.subjects ?? []).filter((s) => !existing.subjects?.includes(s));
  if (missing.length > 0) await jsm.streams.update(cfg.name, { ...existing, subjects: [...(existing.subjects ?? []), ...missing] });
}

async function ensureKv(kvm: Kvm, name: string, opts: Partial<KvOptions>): Promise<KV> {
  try {
    const kv = await kvm.open(name);
    await kv.status();
    return kv;
  } catch {
    return kvm.create(name, opts);
  }
}

/**
 * Creates (or opens) the streams, consumers and buckets. `replicas` applies on creation only;
 * the lease TTL is the bucket's, so controllers with a different `owner_lease_seconds` agree.
 */
export async function openMessagingStore(
  nc: NatsConnection,
  jsm: JetStreamManager,
  opts: { replicas: number; leaseMs: number; snsAckWaitMs: number },
): Promise<MessagingStore> {
  const common = { storage: StorageType.File, num_replicas: opts.replicas };
  await ensureStream(jsm, {
    ...common,
    name: SQS_STREAM,
    subjects: ['mammatus.sqs.m.>'],
    retention: RetentionPolicy.Limits,
    // SQS keeps messages at most 14 days; the owner enforces each queue's own period.
    max_age: 15 * DAY_NS,
    duplicate_window: DEDUP_WINDOW_MS * 1e6,
  });
  await ensureStream(jsm, {
    ...common,
    name: SQS_STATE_STREAM,
    subjects: ['mammatus.sqs.s.>'],
    max_msgs_per_subject: 1,
    max_age: 15 * DAY_NS,
  });
  await ensureStream(jsm, {
    ...common,
    name: SNS_STREAM,
    subjects: [subjects.snsPublish, subjects.snsHttp, subjects.snsPublishFifo],
    retention: RetentionPolicy.Workqueue,
    duplicate_window: DEDUP_WINDOW_MS * 1e6,
  });
  const consumers = [
    [SNS_FANOUT_CONSUMER, subjects.snsPublish, -1],
    [SNS_HTTP_CONSUMER, subjects.snsHttp, -1],
    [SNS_FANOUT_FIFO_CONSUMER, subjects.snsPublishFifo, 1],
  ] as const;
  for (const [name, filter, maxAckPending] of consumers) {
    try {
      await jsm.consumers.info(SNS_STREAM, name);
    } catch {
      await jsm.consumers.add(SNS_STREAM, {
        durable_name: name,
        filter_subject: filter,
        ack_policy: AckPolicy.Explicit,
        ack_wait: opts.snsAckWaitMs * 1e6,
        max_deliver: -1,
        ...(maxAckPending > 0 ? { max_ack_pending: maxAckPending } : {}),
      });
    }
  }
  const kvm = new Kvm(nc);
  const kvOpts = { replicas: opts.replicas, storage: StorageType.File };
  const owners = await ensureKv(kvm, OWNER_BUCKET, { ...kvOpts, history: 1, ttl: opts.leaseMs });
  const ttl = (await owners.status()).ttl;
  return {
    jsm,
    queues: await ensureKv(kvm, SQS_BUCKET, { ...kvOpts, history: 1 }),
    owners,
    sns: await ensureKv(kvm, SNS_BUCKET, { ...kvOpts, history: 1 }),
    snsAttempts: await ensureKv(kvm, SNS_ATTEMPTS_BUCKET, { ...kvOpts, history: 1, ttl: SNS_ATTEMPTS_TTL_MS }),
    keys: await ensureKv(kvm, KEYS_BUCKET, { ...kvOpts, history: 1 }),
    leaseMs: ttl > 0 ? ttl : opts.leaseMs,
  };
}

/**
 * The value of `key`, created as `make()` if absent: the first controller to start picks it, the
 * others read the winner's (a `create` race is settled by JetStream, not by us).
 */
export async function sharedValue(kv: KV, key: string, make: () => Uint8Array): Promise<Uint8Array> {
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const existing = await kv.get(key);
    if (existing && existing.operation === 'PUT') return existing.value;
    try {
      await kv.create(key, make());
    } catch {
      // Lost the race: read the winner's on the next round.
    }
  }
  throw new Error(`could not read or create ${key} in ${kv.constructor.name}`);
}
