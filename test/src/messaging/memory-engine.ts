/**
 * TEST DOUBLE: a tiny in-memory SQS + SNS engine, just enough behaviour to drive the wire layer
 * with real clients (queues, visibility, receipt handles, tags, topics, SQS subscriptions). It is
 * not product code and has none of the real engine's rules (FIFO groups, dedup, DLQ moves, limits).
 */
import { randomUUID } from 'node:crypto';
import { snsError, sqsError } from '../../../src/messaging/errors.js';
import * as Moves from '../../../src/messaging/engine/move-task-records.js';
import { addPermissionToPolicy, removePermissionFromPolicy } from '../../../src/messaging/queue-policy.js';
import { createReceiptHandle, verifyReceiptHandle } from '../../../src/messaging/receipt.js';
import type * as Sns from '../../../src/messaging/sns-engine.js';
import type * as Sqs from '../../../src/messaging/sqs-engine.js';
import type { BatchResultErrorEntry } from '../../../src/messaging/errors.js';

interface StoredMessage {
  readonly sequence: number;
  readonly id: string;
  readonly body: string;
  readonly attributes: Sqs.MessageAttributes;
  readonly system: Sqs.StringMap;
  readonly sentAt: number;
  visibleAt: number;
  receiveCount: number;
  firstReceiveAt?: number;
}

interface Queue {
  readonly name: string;
  attributes: Record<string, string>;
  tags: Record<string, string>;
  messages: StoredMessage[];
}

const QUEUE_DEFAULTS: Readonly<Record<string, string>> = { VisibilityTimeout: '30', DelaySeconds: '0', MaximumMessageSize: '1048576' };
const KNOWN_ATTRIBUTES = new Set([
  ...Object.keys(QUEUE_DEFAULTS),
  'MessageRetentionPeriod',
  'ReceiveMessageWaitTimeSeconds',
  'RedrivePolicy',
  'Policy',
  'FifoQueue',
  'ContentBasedDeduplication',
  'QueueArn',
  'ApproximateNumberOfMessages',
  'ApproximateNumberOfMessagesNotVisible',
  'CreatedTimestamp',
]);

/** The in-memory engine; `sqs` and `sns` are the two engine objects. */
export function createMemoryEngine(options: { now?: () => number } = {}): {
  sqs: Sqs.SqsEngine;
  sns: Sns.SnsEngine;
  queues: Map<string, Queue>;
  /** Confirmation tokens of unconfirmed subscriptions (a real engine sends them to the endpoint). */
  pendingTokens: () => string[];
  /** How many long polls wait for a message now. */
  waiting: () => number;
} {
  const now = options.now ?? Date.now;
  const key = Buffer.alloc(32, 7);
  const queues = new Map<string, Queue>();
  /** Long polls waiting for a message right now. */
  let waiting = 0;
  let sequence = 0;
  // Move tasks run to completion inside StartMessageMoveTask here, so none is ever RUNNING.
  const moveTasks: Moves.MoveTaskRecord[] = [];

  const queue = (name: string): Queue => queues.get(name) ?? throwError(sqsError('QueueDoesNotExist'));
  const arn = (ctx: Sqs.RequestContext, name: string) => `arn:aws:sqs:${ctx.region}:${ctx.accountId}:${name}`;
  const enqueue = (q: Queue, m: Sqs.MessageToSend): StoredMessage => {
    const delay = m.DelaySeconds ?? Number(q.attributes.DelaySeconds ?? 0);
    const system: Record<string, string> = {};
    if (m.MessageSystemAttributes.AWSTraceHeader?.StringValue) system.AWSTraceHeader = m.MessageSystemAttributes.AWSTraceHeader.StringValue;
    const stored = {
      sequence: ++sequence,
      id: randomUUID(),
      body: m.MessageBody,
      attributes: m.MessageAttributes,
      system,
      sentAt: now(),
      visibleAt: now() + delay * 1000,
      receiveCount: 0,
    };
    q.messages.push(stored);
    return stored;
  };
  const findByHandle = (q: Queue, handle: string) => {
    const fields = verifyReceiptHandle(handle, key, q.name);
    return { fields, message: q.messages.find((m) => m.sequence === fields.sequence) };
  };
  const changeVisibility = (q: Queue, handle: string, seconds: number) => {
    const { fields, message } = findByHandle(q, handle);
    if (!message || message.receiveCount !== fields.receiveCount || message.visibleAt <= now()) throw sqsError('MessageNotInflight');
    message.visibleAt = now() + seconds * 1000;
  };
  const batch = async <E extends { Id: string }>(entries: readonly E[], run: (e: E) => void): Promise<Sqs.BatchIdsResult> => {
    const Successful: { Id: string }[] = [];
    const Failed: BatchResultErrorEntry[] = [];
    for (const e of entries) {
      try {
        run(e);
        Successful.push({ Id: e.Id });
      } catch (err) {
        const error = err as { code: string; message: string };
        Failed.push({ Id: e.Id, SenderFault: true, Code: error.code, Message: error.message });
      }
    }
    return { Successful, Failed };
  };

  const sqs: Sqs.SqsEngine = {
    async createQueue(req) {
      const existing = queues.get(req.QueueName);
      if (existing) {
        for (const [k, v] of Object.entries(req.Attributes))
          if (existing.attributes[k] !== v)
            throw sqsError('QueueNameExists', `A queue already exists with the same name and a different value for attribute ${k}`);
        return { QueueName: req.QueueName };
      }
      queues.set(req.QueueName, {
        name: req.QueueName,
        attributes: { ...QUEUE_DEFAULTS, ...req.Attributes },
        tags: { ...req.Tags },
        messages: [],
      });
      return { QueueName: req.QueueName };
    },
    getQueueUrl: async (req) => ({ QueueName: queue(req.QueueName).name }),
    async listQueues(req) {
      const names = [...queues.keys()].filter((n) => n.startsWith(req.QueueNamePrefix ?? '')).sort();
      const start = Number(req.NextToken ?? 0);
      const end = req.MaxResults === undefined ? names.length : start + req.MaxResults;
      return {
        QueueNames: names.slice(start, end),
        NextToken: req.MaxResults !== undefined && end < names.length ? String(end) : undefined,
      };
    },
    deleteQueue: async (req) => void queues.delete(queue(req.QueueName).name),
    async getQueueAttributes(req, ctx) {
      const q = queue(req.QueueName);
      const all: Record<string, string> = {
        ...q.attributes,
        QueueArn: arn(ctx, q.name),
        ApproximateNumberOfMessages: String(q.messages.filter((m) => m.visibleAt <= now()).length),
        ApproximateNumberOfMessagesNotVisible: String(q.messages.filter((m) => m.visibleAt > now()).length),
      };
      for (const n of req.AttributeNames)
        if (n !== 'All' && !KNOWN_ATTRIBUTES.has(n)) throw sqsError('InvalidAttributeName', `Unknown Attribute ${n}.`);
      const wanted = req.AttributeNames.includes('All') ? Object.keys(all) : req.AttributeNames;
      return { Attributes: Object.fromEntries(wanted.filter((n) => all[n] !== undefined).map((n) => [n, all[n] ?? ''])) };
    },
    async setQueueAttributes(req) {
      const q = queue(req.QueueName);
      q.attributes = { ...q.attributes, ...req.Attributes };
    },
    async sendMessage(req) {
      return { MessageId: enqueue(queue(req.QueueName), req).id };
    },
    async sendMessageBatch(req) {
      const q = queue(req.QueueName);
      return { Successful: req.Entries.map((e) => ({ Id: e.Id, MessageId: enqueue(q, e).id })), Failed: [] };
    },
    async receiveMessage(req, ctx) {
      const q = queue(req.QueueName);
      const deadline = now() + (req.WaitTimeSeconds ?? Number(q.attributes.ReceiveMessageWaitTimeSeconds ?? 0)) * 1000;
      for (;;) {
        const visible = q.messages.filter((m) => m.visibleAt <= now()).slice(0, req.MaxNumberOfMessages ?? 1);
        if (visible.length > 0 || now() >= deadline || ctx.signal.aborted) {
          const vt = req.VisibilityTimeout ?? Number(q.attributes.VisibilityTimeout);
          return {
            Messages: visible.map((m) => {
              m.receiveCount += 1;
              m.firstReceiveAt ??= now();
              m.visibleAt = now() + vt * 1000;
              const ReceiptHandle = createReceiptHandle(key, {
                queue: q.name,
                sequence: m.sequence,
                receiveCount: m.receiveCount,
                issuedAt: now(),
                visibleAt: m.visibleAt,
              });
              const Attributes = {
                ...m.system,
                SenderId: ctx.accessKeyId ?? 'anonymous',
                SentTimestamp: String(m.sentAt),
                ApproximateReceiveCount: String(m.receiveCount),
                ApproximateFirstReceiveTimestamp: String(m.firstReceiveAt),
              };
              return { MessageId: m.id, ReceiptHandle, Body: m.body, Attributes, MessageAttributes: m.attributes };
            }),
          };
        }
        waiting += 1;
        try {
          await new Promise((resolve) => setTimeout(resolve, 20));
        } finally {
          waiting -= 1;
        }
      }
    },
    async deleteMessage(req) {
      const q = queue(req.QueueName);
      const { message } = findByHandle(q, req.ReceiptHandle);
      q.messages = q.messages.filter((m) => m !== message);
    },
    deleteMessageBatch: async (req) => {
      const q = queue(req.QueueName);
      return batch(req.Entries, (e) => {
        const { message } = findByHandle(q, e.ReceiptHandle);
        q.messages = q.messages.filter((m) => m !== message);
      });
    },
    changeMessageVisibility: async (req) => changeVisibility(queue(req.QueueName), req.ReceiptHandle, req.VisibilityTimeout),
    changeMessageVisibilityBatch: async (req) => {
      const q = queue(req.QueueName);
      return batch(req.Entries, (e) => changeVisibility(q, e.ReceiptHandle, e.VisibilityTimeout ?? 0));
    },
    purgeQueue: async (req) => void (queue(req.QueueName).messages = []),
    async listDeadLetterSourceQueues(req, ctx) {
      const target = arn(ctx, queue(req.QueueName).name);
      const sources = [...queues.values()].filter((q) => q.attributes.RedrivePolicy?.includes(target)).map((q) => q.name);
      return { QueueNames: sources };
    },
    tagQueue: async (req) => void Object.assign(queue(req.QueueName).tags, req.Tags),
    untagQueue: async (req) => {
      const q = queue(req.QueueName);
      for (const k of req.TagKeys) delete q.tags[k];
    },
    listQueueTags: async (req) => ({ Tags: { ...queue(req.QueueName).tags } }),
    addPermission: async (req, ctx) => {
      const q = queue(req.QueueName);
      q.attributes.Policy = addPermissionToPolicy(q.attributes.Policy, arn(ctx, q.name), req);
    },
    removePermission: async (req, ctx) => {
      const q = queue(req.QueueName);
      const policy = removePermissionFromPolicy(q.attributes.Policy, arn(ctx, q.name), req.Label);
      if (policy === undefined) delete q.attributes.Policy;
      else q.attributes.Policy = policy;
    },
    async startMessageMoveTask(req, ctx) {
      const byArn = (a: string, member: 'SourceArn' | 'DestinationArn') =>
        queues.get(Moves.queueNameFromArn(a, member, ctx) ?? '') ?? throwError(Moves.resourceNotFound(member));
      const source = byArn(req.SourceArn, 'SourceArn');
      const sourceArn = arn(ctx, source.name);
      if (![...queues.values()].some((q) => q.attributes.RedrivePolicy?.includes(sourceArn)))
        throw sqsError('InvalidParameterValue', 'Source queue must be configured as a Dead Letter Queue.');
      const dest = req.DestinationArn ? byArn(req.DestinationArn, 'DestinationArn') : undefined;
      const visible = source.messages.filter((m) => m.visibleAt <= now());
      for (const m of visible) {
        const target = dest ?? queues.get(Moves.queueNameFromArn(m.system.DeadLetterQueueSourceArn ?? '', 'SourceArn', ctx) ?? '');
        if (target) enqueue(target, { MessageBody: m.body, MessageAttributes: m.attributes, MessageSystemAttributes: {} });
      }
      source.messages = source.messages.filter((m) => !visible.includes(m));
      const task: Moves.MoveTaskRecord = {
        taskId: randomUUID(),
        sourceArn,
        destinationArn: dest && arn(ctx, dest.name),
        maxPerSecond: req.MaxNumberOfMessagesPerSecond,
        status: 'COMPLETED',
        moved: visible.length,
        toMove: visible.length,
        startedAt: now(),
        senderId: ctx.accessKeyId ?? 'anonymous',
        worker: 'memory',
        beatAt: 0,
      };
      moveTasks.push(task);
      return { TaskHandle: Moves.encodeTaskHandle(task.taskId, sourceArn) };
    },
    listMessageMoveTasks: async (req, ctx) => {
      const name = Moves.queueNameFromArn(req.SourceArn, 'SourceArn', ctx);
      if (name === undefined || !queues.has(name)) throw Moves.resourceNotFound('SourceArn');
      return {
        Results: Moves.newestFirst(
          moveTasks.filter((t) => t.sourceArn === arn(ctx, name)),
          req.MaxResults ?? 1,
        ).map(Moves.resultEntry),
      };
    },
    cancelMessageMoveTask: async (req) => {
      const { taskId } = Moves.decodeTaskHandle(req.TaskHandle);
      const task = moveTasks.find((t) => t.taskId === taskId) ?? throwError(sqsError('ResourceNotFoundException', 'Task does not exist.'));
      return { ApproximateNumberOfMessagesMoved: Moves.cancelled(task).moved };
    },
  };

  const sns = createMemorySns(sqs);
  return { sqs, sns: sns.engine, queues, pendingTokens: sns.pendingTokens, waiting: () => waiting };
}

interface Topic {
  readonly arn: string;
  attributes: Record<string, string>;
  tags: Sns.Tag[];
}
interface Sub extends Sns.Subscription {
  attributes: Record<string, string>;
  confirmed: boolean;
  readonly token: string;
}

function createMemorySns(sqs: Sqs.SqsEngine): { engine: Sns.SnsEngine; pendingTokens: () => string[] } {
  const topics = new Map<string, Topic>();
  const subs = new Map<string, Sub>();
  const topic = (arn: string): Topic => topics.get(arn) ?? throwError(snsError('NotFound', 'Topic does not exist'));
  const sub = (arn: string): Sub => subs.get(arn) ?? throwError(snsError('NotFound', 'Subscription does not exist'));
  const list = (filter: (s: Sub) => boolean) => ({
    Subscriptions: [...subs.values()].filter(filter).map((s) => ({
      SubscriptionArn: s.confirmed ? s.SubscriptionArn : 'PendingConfirmation',
      Owner: s.Owner,
      Protocol: s.Protocol,
      Endpoint: s.Endpoint,
      TopicArn: s.TopicArn,
    })),
  });
  const deliver = async (t: Topic, m: Sns.MessageToPublish, messageId: string, ctx: Sqs.RequestContext) => {
    for (const s of subs.values()) {
      if (s.TopicArn !== t.arn || s.Protocol !== 'sqs' || !s.confirmed) continue;
      const raw = s.attributes.RawMessageDelivery === 'true';
      const body = raw ? m.Message : JSON.stringify({ Type: 'Notification', MessageId: messageId, TopicArn: t.arn, Message: m.Message });
      const name = s.Endpoint.split(':').pop() ?? '';
      await sqs.sendMessage(
        { QueueName: name, MessageBody: body, MessageAttributes: raw ? m.MessageAttributes : {}, MessageSystemAttributes: {} },
        ctx,
      );
    }
  };
  const engine: Sns.SnsEngine = {
    async createTopic(req, ctx) {
      const arn = `arn:aws:sns:${ctx.region}:${ctx.accountId}:${req.Name}`;
      if (!topics.has(arn)) topics.set(arn, { arn, attributes: { ...req.Attributes }, tags: [...req.Tags] });
      return { TopicArn: arn };
    },
    deleteTopic: async (req) => void topics.delete(topic(req.TopicArn).arn),
    listTopics: async () => ({ Topics: [...topics.keys()].map((TopicArn) => ({ TopicArn })) }),
    getTopicAttributes: async (req) => ({ Attributes: { ...topic(req.TopicArn).attributes, TopicArn: req.TopicArn } }),
    setTopicAttributes: async (req) => void (topic(req.TopicArn).attributes[req.AttributeName] = req.AttributeValue ?? ''),
    async subscribe(req, ctx) {
      topic(req.TopicArn);
      const confirmed = req.Protocol === 'sqs';
      const s: Sub = {
        SubscriptionArn: `${req.TopicArn}:${randomUUID()}`,
        Owner: ctx.accountId,
        Protocol: req.Protocol,
        Endpoint: req.Endpoint ?? '',
        TopicArn: req.TopicArn,
        attributes: { ...req.Attributes },
        confirmed,
        token: randomUUID(),
      };
      subs.set(s.SubscriptionArn, s);
      return { SubscriptionArn: confirmed || req.ReturnSubscriptionArn ? s.SubscriptionArn : 'pending confirmation' };
    },
    async confirmSubscription(req) {
      const s =
        [...subs.values()].find((x) => x.TopicArn === req.TopicArn && x.token === req.Token) ??
        throwError(snsError('InvalidParameter', 'Invalid token'));
      s.confirmed = true;
      return { SubscriptionArn: s.SubscriptionArn };
    },
    unsubscribe: async (req) => void subs.delete(sub(req.SubscriptionArn).SubscriptionArn),
    listSubscriptions: async () => list(() => true),
    listSubscriptionsByTopic: async (req) => (topic(req.TopicArn), list((s) => s.TopicArn === req.TopicArn)),
    getSubscriptionAttributes: async (req) => ({
      Attributes: { ...sub(req.SubscriptionArn).attributes, TopicArn: sub(req.SubscriptionArn).TopicArn },
    }),
    setSubscriptionAttributes: async (req) => void (sub(req.SubscriptionArn).attributes[req.AttributeName] = req.AttributeValue ?? ''),
    async publish(req, ctx) {
      const MessageId = randomUUID();
      await deliver(topic(req.TopicArn), req, MessageId, ctx);
      return { MessageId };
    },
    async publishBatch(req, ctx) {
      const t = topic(req.TopicArn);
      const Successful = [];
      for (const e of req.PublishBatchRequestEntries) {
        const MessageId = randomUUID();
        await deliver(t, e, MessageId, ctx);
        Successful.push({ Id: e.Id, MessageId });
      }
      return { Successful, Failed: [] };
    },
    tagResource: async (req) => void topic(req.ResourceArn).tags.push(...req.Tags),
    untagResource: async (req) => {
      const t = topic(req.ResourceArn);
      t.tags = t.tags.filter((tag) => !req.TagKeys.includes(tag.Key));
    },
    listTagsForResource: async (req) => ({ Tags: topic(req.ResourceArn).tags }),
  };
  return { engine, pendingTokens: () => [...subs.values()].filter((s) => !s.confirmed).map((s) => s.token) };
}

function throwError(err: Error): never {
  throw err;
}
