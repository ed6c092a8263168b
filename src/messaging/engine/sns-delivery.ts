/**
 * SNS delivery workers on every controller, sharing three durable pull consumers (JetStream
 * spreads the work; a controller that dies leaves its unacknowledged messages to the others):
 *
 * - fan-out (`mammatus.sns.pub`; FIFO topics `mammatus.sns.fifo`, one message at a time): per confirmed subscription whose filter policy matches, an SQS
 *   subscriber gets the message through the SQS engine with the idempotency key
 *   `<message id>:<subscription id>` (a retried fan-out stores it once), an http(s) subscriber gets
 *   a delivery task. The publish is acknowledged only after all of that succeeded.
 * - http (`mammatus.sns.http`): POSTs the signed JSON document (or the raw message) as the
 *   subscription's effective delivery policy says (`delivery-policy.ts`: content type, pacing,
 *   retry schedule). Failed attempts are counted in the `mammatus_sns_attempts` bucket (by the
 *   task's stream sequence), so retries are counted right across controllers and restarts, and
 *   postponements by the pacing or a controller that died mid-attempt do not use them up; the
 *   task is NAKed with the schedule's delay until the retries are spent.
 *
 * A delivery that fails for good (http retries spent, or an SQS subscriber that refuses the message,
 * e.g. because the queue is gone) goes to the subscription's dead-letter queue (`RedrivePolicy`)
 * when it has one: the body the subscriber would have got, with the SQS message attributes a raw
 * SQS delivery carries, group and deduplication id for FIFO. A missing DLQ: logged, dropped.
 */
import { randomUUID } from 'node:crypto';
import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { Logger } from '../../../core/contracts.js';
import { MessagingError } from '../errors.js';
import type { SnsSettings } from '../settings.js';
import type { MessageAttributes } from '../sqs-engine.js';
import { rpcPack, rpcUnpack } from './codec.js';
import { effectiveDeliveryPolicy, retryDelayMsFor } from './delivery-policy.js';
import { DeliveryThrottle } from './delivery-throttle.js';
import { EndpointRefused, postPinned, type EndpointGuard } from './endpoint-guard.js';
import { matchesFilterPolicy, parseFilterPolicy } from './filter-policy.js';
import type { KvCache } from './kv-cache.js';
import { SNS_FANOUT_CONSUMER, SNS_FANOUT_FIFO_CONSUMER, SNS_HTTP_CONSUMER, SNS_STREAM, subjects } from './layout.js';
import {
  fifoMessageId,
  messageFor,
  redrivePolicyOf,
  type HttpTask,
  type PublishedRecord,
  type SubscriptionRecord,
  type TopicRecord,
} from './sns-records.js';
import { signDocument, type SigningIdentity } from './sns-signing.js';
import type { JetStreamSqs } from './sqs.js';

/** What the workers need. */
export interface DeliveryDeps {
  readonly js: JetStreamClient;
  /** Failed-attempt counts of http deliveries, by the task's stream sequence (TTL bucket). */
  readonly attempts: KV;
  readonly sqs: JetStreamSqs;
  readonly topics: KvCache<TopicRecord>;
  readonly subs: KvCache<SubscriptionRecord>;
  readonly identity: SigningIdentity;
  readonly settings: SnsSettings;
  readonly region: string;
  readonly accountId: string;
  readonly publicUrl: () => string;
  readonly certificatePath: string;
  readonly log: Logger;
  /** Where http(s) deliveries may go (endpoint-guard.ts); every delivery is checked and pinned. */
  readonly guard: EndpointGuard;
  /** Sends one delivery to the pinned address; tests replace it. */
  readonly post?: typeof postPinned;
}

const CONCURRENCY = 16;
/** The longest a paced delivery waits in place; further slots are postponed (NAK with delay). */
const MAX_THROTTLE_WAIT_MS = 1000;

/** What became of one http task. */
type HttpOutcome = { readonly kind: 'done' } | { readonly kind: 'retry' | 'postpone'; readonly delayMs: number };
/** The task is finished (a failure count it left expires with its bucket's TTL). */
const DONE: HttpOutcome = { kind: 'done' };

/** Delay before retry number `attempt` (1-based): min·2^(attempt-1), capped at max. */
export function retryDelayMs(attempt: number, minMs: number, maxMs: number): number {
  return Math.min(maxMs, minMs * 2 ** Math.max(0, attempt - 1));
}

/** The JSON document AWS POSTs (and puts into SQS bodies without raw delivery), signed. */
export function buildDocument(
  d: Pick<DeliveryDeps, 'identity' | 'publicUrl' | 'certificatePath'>,
  fields: Record<string, unknown>,
  topic: TopicRecord | undefined,
): Record<string, unknown> {
  const fifo = topic?.attributes.FifoTopic === 'true';
  const version = topic?.attributes.SignatureVersion === '2' ? '2' : '1';
  const doc: Record<string, unknown> = { ...fields };
  if (fifo) return doc;
  doc.SignatureVersion = version;
  doc.Signature = signDocument(doc, d.identity, version);
  doc.SigningCertURL = `${d.publicUrl()}${d.certificatePath}`;
  return doc;
}

function notification(
  d: DeliveryDeps,
  r: PublishedRecord,
  sub: SubscriptionRecord,
  topic: TopicRecord | undefined,
): Record<string, unknown> {
  const attrs = Object.entries(r.attributes);
  const doc = buildDocument(
    d,
    {
      Type: 'Notification',
      MessageId: r.messageId,
      ...(r.sequence ? { SequenceNumber: r.sequence } : {}),
      TopicArn: r.topicArn,
      ...(r.subject !== undefined ? { Subject: r.subject } : {}),
      Message: messageFor(r, sub.protocol),
      Timestamp: r.timestamp,
    },
    topic,
  );
  if (topic?.attributes.FifoTopic !== 'true')
    doc.UnsubscribeURL = `${d.publicUrl()}/?Action=Unsubscribe&SubscriptionArn=${encodeURIComponent(sub.arn)}`;
  if (attrs.length > 0) {
    doc.MessageAttributes = Object.fromEntries(
      attrs.map(([k, v]) => [
        k,
        { Type: v.DataType, Value: v.BinaryValue ? Buffer.from(v.BinaryValue).toString('base64') : v.StringValue },
      ]),
    );
  }
  return doc;
}

function sqsAttributes(r: PublishedRecord): MessageAttributes {
  return Object.fromEntries(
    Object.entries(r.attributes).map(([k, v]) => [
      k,
      {
        DataType: v.DataType,
        ...(v.StringValue !== undefined ? { StringValue: v.StringValue } : {}),
        ...(v.BinaryValue ? { BinaryValue: v.BinaryValue } : {}),
      },
    ]),
  );
}

function passes(sub: SubscriptionRecord, r: PublishedRecord): boolean {
  const policy = sub.attributes.FilterPolicy;
  if (!policy) return true;
  const scope = sub.attributes.FilterPolicyScope;
  return matchesFilterPolicy(parseFilterPolicy(policy, scope === 'MessageBody'), scope, r.attributes, messageFor(r, sub.protocol));
}

/** Starts both workers; `stop()` ends them after their current messages. */
export async function startSnsDelivery(d: DeliveryDeps): Promise<{ stop(): Promise<void> }> {
  const post = d.post ?? postPinned;
  const throttle = new DeliveryThrottle();
  const ctx = () => ({
    requestId: randomUUID(),
    accountId: d.accountId,
    region: d.region,
    authenticated: true,
    signal: new AbortController().signal,
  });

  // Puts a delivery that failed for good into the subscription's DLQ, if it has one. The queue's
  // refusal (gone, wrong type) is logged and the message dropped; NATS trouble is thrown.
  async function deadLetter(sub: SubscriptionRecord, r: PublishedRecord, body: string, reason: Record<string, unknown>): Promise<void> {
    const policy = redrivePolicyOf(sub);
    if (!policy) {
      d.log.warn(
        { subscription: sub.arn, messageId: r.messageId, ...reason },
        'sns delivery failed; message dropped (no dead-letter queue)',
      );
      return;
    }
    const raw = sub.attributes.RawMessageDelivery === 'true';
    const fifo = policy.queueName.endsWith('.fifo');
    try {
      await d.sqs.deliver(
        policy.queueName,
        {
          MessageBody: body,
          MessageAttributes: raw ? sqsAttributes(r) : {},
          MessageSystemAttributes: {},
          ...(r.group !== undefined && fifo ? { MessageGroupId: r.group } : {}),
          ...(fifo ? { MessageDeduplicationId: r.dedupId ?? `${r.messageId}:${sub.id}` } : {}),
        },
        `dlq:${r.messageId}:${sub.id}`,
        { ...ctx(), ...(r.senderId ? { accessKeyId: r.senderId } : {}) },
      );
      d.log.warn(
        { subscription: sub.arn, messageId: r.messageId, deadLetterQueue: policy.deadLetterTargetArn, ...reason },
        'sns delivery failed; message moved to the dead-letter queue',
      );
    } catch (err) {
      if (!(err instanceof MessagingError)) throw err;
      d.log.warn(
        { subscription: sub.arn, messageId: r.messageId, deadLetterQueue: policy.deadLetterTargetArn, code: err.code, ...reason },
        'sns dead-letter queue refused the message; dropped',
      );
    }
  }

  async function fanOut(m: JsMsg): Promise<void> {
    const r = rpcUnpack<PublishedRecord>(m.data);
    const fifo = r.group !== undefined;
    const record = { ...r, ...(fifo ? { messageId: fifoMessageId(r.topicArn, m.seq), sequence: String(m.seq).padStart(20, '0') } : {}) };
    const topic = await d.topics.get(r.topicArn.slice(r.topicArn.lastIndexOf(':') + 1));
    for (const { value: sub } of await d.subs.all()) {
      if (sub.topicArn !== r.topicArn || !sub.confirmed) continue;
      if (!passes(sub, record)) continue;
      if (sub.protocol !== 'sqs') {
        await d.js.publish(subjects.snsHttp, rpcPack({ kind: 'notification', subId: sub.id, record } satisfies HttpTask), {
          msgID: `${r.messageId}:${sub.id}`,
        });
        continue;
      }
      const raw = sub.attributes.RawMessageDelivery === 'true';
      const body = raw ? messageFor(record, 'sqs') : JSON.stringify(notification(d, record, sub, topic));
      const attributes: MessageAttributes = raw ? sqsAttributes(r) : {};
      const queue = sub.endpoint.slice(sub.endpoint.lastIndexOf(':') + 1);
      try {
        await d.sqs.deliver(
          queue,
          {
            MessageBody: body,
            MessageAttributes: attributes,
            MessageSystemAttributes: {},
            // AWS passes neither id to standard queues.
            ...(r.group !== undefined && queue.endsWith('.fifo') ? { MessageGroupId: r.group } : {}),
            ...(r.dedupId !== undefined && queue.endsWith('.fifo') ? { MessageDeduplicationId: r.dedupId } : {}),
          },
          `${record.messageId}:${sub.id}`,
          { ...ctx(), ...(r.senderId ? { accessKeyId: r.senderId } : {}) },
        );
      } catch (err) {
        // A subscriber that cannot take the message (gone, wrong type, too big) is a client-side
        // error (AWS does not retry those): dead-letter queue or dropped, loudly; anything else
        // (NATS trouble) fails the fan-out, which JetStream redelivers.
        if (!(err instanceof MessagingError)) throw err;
        await deadLetter(sub, record, body, { queue, code: err.code });
      }
    }
  }

  // Failed attempts of the task in `m` so far (0 on a first delivery: nothing to read).
  async function failures(m: JsMsg): Promise<number> {
    if (m.info.deliveryCount <= 1) return 0;
    const e = await d.attempts.get(String(m.seq));
    return e && e.operation === 'PUT' ? Number(e.string()) || 0 : 0;
  }

  async function deliverHttp(m: JsMsg): Promise<HttpOutcome> {
    const task = rpcUnpack<HttpTask>(m.data);
    const s = task.kind === 'unsubscribed' ? task.sub : (await d.subs.fresh(task.subId))?.value;
    if (!s) return DONE;
    const topic = await d.topics.get(s.topicArn.slice(s.topicArn.lastIndexOf(':') + 1));
    const policy = effectiveDeliveryPolicy(d.settings, topic?.attributes.DeliveryPolicy, s.attributes.DeliveryPolicy);
    let body: string;
    const headers: Record<string, string> = {
      'content-type': 'text/plain; charset=UTF-8',
      'user-agent': 'Amazon Simple Notification Service Agent',
      'x-amz-sns-topic-arn': s.topicArn,
    };
    if (task.kind === 'confirmation') {
      if (s.confirmed) return DONE;
      const url = `${d.publicUrl()}/?Action=ConfirmSubscription&TopicArn=${encodeURIComponent(s.topicArn)}&Token=${s.token}`;
      body = JSON.stringify(
        buildDocument(
          d,
          {
            Type: 'SubscriptionConfirmation',
            MessageId: task.messageId,
            Token: s.token,
            TopicArn: s.topicArn,
            Message: `You have chosen to subscribe to the topic ${s.topicArn}.\nTo confirm the subscription, visit the SubscribeURL included in this message.`,
            SubscribeURL: url,
            Timestamp: task.timestamp,
          },
          topic && { ...topic, attributes: { ...topic.attributes, FifoTopic: 'false' } },
        ),
      );
      headers['x-amz-sns-message-type'] = 'SubscriptionConfirmation';
      headers['x-amz-sns-message-id'] = task.messageId;
    } else if (task.kind === 'unsubscribed') {
      body = JSON.stringify(
        buildDocument(
          d,
          {
            Type: 'UnsubscribeConfirmation',
            MessageId: task.messageId,
            Token: s.token,
            TopicArn: s.topicArn,
            Message: `You have chosen to deactivate subscription ${s.arn}.\nTo cancel this operation and restore the subscription, visit the SubscribeURL included in this message.`,
            SubscribeURL: `${d.publicUrl()}/?Action=ConfirmSubscription&TopicArn=${encodeURIComponent(s.topicArn)}&Token=${s.token}`,
            Timestamp: task.timestamp,
          },
          topic && { ...topic, attributes: { ...topic.attributes, FifoTopic: 'false' } },
        ),
      );
      headers['x-amz-sns-message-type'] = 'UnsubscribeConfirmation';
      headers['x-amz-sns-message-id'] = task.messageId;
    } else {
      if (!s.confirmed || !passes(s, task.record)) return DONE;
      if (policy.maxReceivesPerSecond !== undefined) {
        const slot = throttle.reserve(s.id, policy.maxReceivesPerSecond, MAX_THROTTLE_WAIT_MS);
        if ('postponeMs' in slot) return { kind: 'postpone', delayMs: slot.postponeMs };
        if (slot.waitMs > 0) await new Promise((r) => setTimeout(r, slot.waitMs));
      }
      const raw = s.attributes.RawMessageDelivery === 'true';
      body = raw ? messageFor(task.record, s.protocol) : JSON.stringify(notification(d, task.record, s, topic));
      headers['content-type'] = policy.headerContentType;
      headers['x-amz-sns-message-type'] = 'Notification';
      headers['x-amz-sns-message-id'] = task.record.messageId;
      headers['x-amz-sns-subscription-arn'] = s.arn;
      if (raw) headers['x-amz-sns-rawdelivery'] = 'true';
    }
    try {
      // Resolved and checked for every attempt, and sent to the checked address (DNS rebinding).
      const url = new URL(s.endpoint);
      const status = await post(url, await d.guard.pin(url), { headers, body, timeoutMs: d.settings.httpTimeoutMs });
      if (status >= 200 && status < 300) return DONE;
      d.log.warn({ subscription: s.arn, status, attempt: m.info.deliveryCount }, 'sns http delivery refused');
    } catch (err) {
      // A refused endpoint fails like an unreachable one (retries, then the DLQ). The URL is not
      // logged: its path or query may carry the subscriber's secret.
      if (err instanceof EndpointRefused) {
        d.log.warn({ subscription: s.arn, reason: err.message, attempt: m.info.deliveryCount }, 'sns http delivery to a refused address');
      } else {
        d.log.warn({ subscription: s.arn, err, attempt: m.info.deliveryCount }, 'sns http delivery failed');
      }
    }
    const failed = (await failures(m)) + 1;
    const delayMs = retryDelayMsFor(policy.retry, failed);
    if (delayMs === undefined) {
      if (task.kind === 'notification') await deadLetter(s, task.record, body, { attempts: failed });
      else d.log.warn({ subscription: s.arn, kind: task.kind }, 'sns confirmation message given up after retries');
      return DONE;
    }
    await d.attempts.put(String(m.seq), String(failed));
    return { kind: 'retry', delayMs };
  }

  const fanOutLoop = async (m: JsMsg) => {
    try {
      await fanOut(m);
      m.ack();
    } catch (err) {
      d.log.warn({ err }, 'sns fan-out failed; retrying');
      m.nak(retryDelayMs(m.info.deliveryCount, 1000, 20_000));
    }
  };
  const loops = [
    runLoop(d, SNS_FANOUT_CONSUMER, fanOutLoop, CONCURRENCY),
    // FIFO topics: the consumer hands out one message at a time (max_ack_pending 1) to all
    // controllers together, and a message's fan-out ends before the next one starts, so every
    // subscribed queue gets them in publish order (a retried one holds the others back).
    runLoop(d, SNS_FANOUT_FIFO_CONSUMER, fanOutLoop, 1),
    runLoop(
      d,
      SNS_HTTP_CONSUMER,
      async (m) => {
        // NATS trouble (counting a failure, a DLQ write): the task comes back after a while.
        const outcome = await deliverHttp(m).catch((err: unknown): HttpOutcome => {
          d.log.warn({ err }, 'sns http delivery could not be completed; retrying');
          return { kind: 'retry', delayMs: retryDelayMs(m.info.deliveryCount, 1000, 20_000) };
        });
        if (outcome.kind === 'done') m.ack();
        else m.nak(outcome.delayMs);
      },
      CONCURRENCY,
    ),
  ];
  return { stop: async () => void (await Promise.all(loops.map((l) => l.stop()))) };
}

// Consumes `consumer` with up to `concurrency` messages in progress; restarts after errors.
function runLoop(d: DeliveryDeps, consumer: string, handle: (m: JsMsg) => Promise<void>, concurrency: number): { stop(): Promise<void> } {
  let stopped = false;
  let current: { stop(): void } | undefined;
  const inFlight = new Set<Promise<void>>();
  const done = (async () => {
    while (!stopped) {
      try {
        const c = await d.js.consumers.get(SNS_STREAM, consumer);
        const iter = await c.consume({ max_messages: concurrency });
        current = iter;
        if (stopped) iter.stop();
        for await (const m of iter) {
          const p = handle(m).finally(() => inFlight.delete(p));
          inFlight.add(p);
          if (inFlight.size >= concurrency) await Promise.race(inFlight);
        }
      } catch (err) {
        if (!stopped) d.log.warn({ err, consumer }, 'sns worker restarting');
      }
      if (!stopped) await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  return {
    async stop() {
      stopped = true;
      current?.stop();
      await done;
      await Promise.all(inFlight);
    },
  };
}
