/**
 * `SqsEngine` on JetStream: queue CRUD, attributes and tags in the catalogue (KV), everything
 * that touches messages through the queue's owner (`queue-router.ts`). The checks that need only
 * the queue's attributes (size, FIFO members) run here, before any forwarding.
 */
import { createHash } from 'node:crypto';
import { MessagingError, sqsError, toBatchEntry, type BatchResultErrorEntry } from '../errors.js';
import { messageSize } from '../sqs-engine.js';
import type * as Sqs from '../sqs-engine.js';
import { addPermissionToPolicy, removePermissionFromPolicy } from '../queue-policy.js';
import type { QueueCatalog, QueueRecord } from './catalog.js';
import {
  applyAttributes,
  differingAttribute,
  isKnownAttribute,
  isValidQueueName,
  parseRedriveAllowPolicy,
  parseRedrivePolicy,
} from './queue-attributes.js';
import type { QueueLog } from './queue-log.js';
import { MoveTasks, type MoveTasksDeps } from './move-tasks.js';
import type { AppendRequest, Outcome } from './queue-owner.js';
import type { QueueRouter } from './queue-router.js';

/** Collaborators of the SQS engine. */
export interface JetStreamSqsDeps {
  readonly catalog: QueueCatalog;
  readonly router: QueueRouter;
  readonly logFor: (queueId: string) => QueueLog;
  readonly now?: () => number;
  /** Where message move tasks keep their records (the queues bucket) and log. */
  readonly moveTasks: Pick<MoveTasksDeps, 'kv' | 'logger' | 'instance'>;
}

/** The SQS engine, plus the entry SNS uses to deliver into a queue. */
export interface JetStreamSqs extends Sqs.SqsEngine {
  /** Sends `message` with an idempotency key (retried deliveries are stored once within 5 minutes). */
  deliver(queueName: string, message: Sqs.MessageToSend, idempotencyKey: string, ctx: Sqs.RequestContext): Promise<void>;
  /** Stops this controller's message move workers (their tasks are resumed by another controller). */
  stopMoveTasks(): Promise<void>;
}

const MAX_TAGS = 50;

const arnOf = (ctx: Sqs.RequestContext, name: string) => `arn:aws:sqs:${ctx.region}:${ctx.accountId}:${name}`;

function page(names: readonly string[], max: number | undefined, token: string | undefined): { QueueNames: string[]; NextToken?: string } {
  const after = token ? Buffer.from(token, 'base64url').toString('utf8') : undefined;
  const start = after === undefined ? 0 : names.findIndex((n) => n > after);
  const rest = start < 0 ? [] : names.slice(start);
  const limit = max ?? 1000;
  const out = rest.slice(0, limit);
  const more = max !== undefined && rest.length > limit;
  return { QueueNames: out, ...(more ? { NextToken: Buffer.from(out[out.length - 1] ?? '').toString('base64url') } : {}) };
}

function unwrap<T>(outcome: Outcome<T> | undefined): T {
  if (!outcome) throw new Error('queue owner gave no answer');
  if ('error' in outcome) throw outcome.error;
  return outcome.ok;
}

function notForQueueType(name: string, value: string): MessagingError {
  return sqsError(
    'InvalidParameterValue',
    `Value ${value} for parameter ${name} is invalid. Reason: The request include parameter that is not valid for this queue type.`,
  );
}

/** AWS's tag limits: keys 1–128 characters, values up to 256. */
function checkTags(tags: Readonly<Record<string, string>>): void {
  for (const [k, v] of Object.entries(tags)) {
    if (k.length < 1 || k.length > 128)
      throw sqsError('InvalidParameterValue', `Tag keys must be between 1 and 128 characters in length: ${k.slice(0, 40)}…`);
    if (v.length > 256) throw sqsError('InvalidParameterValue', `Tag values must be at most 256 characters in length (tag ${k}).`);
  }
}

// A stored RedriveAllowPolicy that no longer parses (stored before it was checked) allows all.
function parseStoredAllowPolicy(value: string | undefined) {
  try {
    return parseRedriveAllowPolicy(value);
  } catch {
    return undefined;
  }
}

/** Builds the engine. */
export function createJetStreamSqs(deps: JetStreamSqsDeps): JetStreamSqs {
  const { catalog, router } = deps;
  const now = deps.now ?? Date.now;

  // The dead-letter queue must exist in this account and region (AWS), be of the source's type,
  // and let the source name it (its RedriveAllowPolicy).
  async function checkRedrive(name: string, attributes: Readonly<Record<string, string>>, ctx: Sqs.RequestContext): Promise<void> {
    const policy = attributes.RedrivePolicy ? parseRedrivePolicy(attributes.RedrivePolicy) : undefined;
    if (!policy) return;
    const arn = policy.deadLetterTargetArn;
    const local = arn.startsWith(`arn:aws:sqs:${ctx.region}:${ctx.accountId}:`);
    const target = local ? await catalog.get(arn.slice(arn.lastIndexOf(':') + 1)) : undefined;
    const allow = target ? parseStoredAllowPolicy(target.attributes.RedriveAllowPolicy) : undefined;
    const allowed =
      !allow ||
      allow.redrivePermission === 'allowAll' ||
      (allow.redrivePermission === 'byQueue' && allow.sourceQueueArns.includes(arnOf(ctx, name)));
    const reason = !target
      ? 'Dead letter target does not exist.'
      : target.name.endsWith('.fifo') !== name.endsWith('.fifo')
        ? 'Dead-letter queue must be of the same type as the source queue.'
        : !allowed
          ? `The RedriveAllowPolicy of ${arn} does not allow this queue as a source queue.`
          : undefined;
    if (reason)
      throw sqsError(
        'InvalidParameterValue',
        `Value ${attributes.RedrivePolicy} for parameter RedrivePolicy is invalid. Reason: ${reason}`,
      );
  }

  /** The append request for `m`, or the error AWS gives for it on this queue. */
  function toAppend(record: QueueRecord, m: Sqs.MessageToSend, ctx: Sqs.RequestContext, idempotencyKey?: string): AppendRequest {
    const a = record.attributes;
    const fifo = a.FifoQueue === 'true';
    const limit = Number(a.MaximumMessageSize);
    if (messageSize(m) > limit)
      throw sqsError('InvalidParameterValue', `One or more parameters are invalid. Reason: Message must be shorter than ${limit} bytes.`);
    let dedupId: string | undefined;
    let msgId = idempotencyKey === undefined ? undefined : `${record.id}:i:${idempotencyKey}`;
    if (fifo) {
      if (m.MessageGroupId === undefined) throw sqsError('MissingParameter', 'The request must contain the parameter MessageGroupId.');
      if (m.DelaySeconds !== undefined && m.DelaySeconds !== 0) throw notForQueueType('DelaySeconds', String(m.DelaySeconds));
      dedupId =
        m.MessageDeduplicationId ??
        (a.ContentBasedDeduplication === 'true' ? createHash('sha256').update(m.MessageBody, 'utf8').digest('hex') : undefined);
      if (dedupId === undefined) {
        throw sqsError(
          'InvalidParameterValue',
          'The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly',
        );
      }
      msgId = `${record.id}:d:${a.DeduplicationScope === 'messageGroup' ? `${m.MessageGroupId}:` : ''}${dedupId}`;
    } else if (m.MessageDeduplicationId !== undefined) {
      throw notForQueueType('MessageDeduplicationId', m.MessageDeduplicationId);
    }
    return {
      fields: {
        sentAt: now(),
        delaySeconds: fifo ? Number(a.DelaySeconds) : (m.DelaySeconds ?? Number(a.DelaySeconds)),
        group: m.MessageGroupId,
        dedupId,
        senderId: ctx.accessKeyId ?? 'anonymous',
      },
      payload: { body: m.MessageBody, attributes: m.MessageAttributes, trace: m.MessageSystemAttributes.AWSTraceHeader?.StringValue },
      msgId,
    };
  }

  async function batchIds<E extends { Id: string }>(
    entries: readonly E[],
    run: (ok: E[]) => Promise<Outcome<true>[]>,
    pre: (e: E) => void,
  ): Promise<Sqs.BatchIdsResult> {
    const Failed: BatchResultErrorEntry[] = [];
    const valid: E[] = [];
    for (const e of entries) {
      try {
        pre(e);
        valid.push(e);
      } catch (err) {
        Failed.push(toBatchEntry(e.Id, err));
      }
    }
    const outcomes = valid.length > 0 ? await run(valid) : [];
    const Successful: { Id: string }[] = [];
    valid.forEach((e, i) => {
      const o = outcomes[i];
      if (o && 'ok' in o) Successful.push({ Id: e.Id });
      else Failed.push(toBatchEntry(e.Id, o?.error ?? new Error('no answer')));
    });
    return { Successful, Failed };
  }

  const engine: JetStreamSqs = {
    async createQueue(req, ctx) {
      if (!isValidQueueName(req.QueueName)) {
        throw sqsError('InvalidParameterValue', 'Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length');
      }
      const attributes = applyAttributes(req.QueueName, req.Attributes);
      checkTags(req.Tags);
      if (Object.keys(req.Tags).length > MAX_TAGS)
        throw sqsError('InvalidParameterValue', `Too many tags added for queue ${req.QueueName}.`);
      await checkRedrive(req.QueueName, attributes, ctx);
      const { record, created } = await catalog.create(req.QueueName, attributes, { ...req.Tags });
      if (!created) {
        const differing = differingAttribute(record.attributes, req.Attributes, req.QueueName);
        if (differing)
          throw sqsError('QueueNameExists', `A queue already exists with the same name and a different value for attribute ${differing}`);
      }
      return { QueueName: record.name };
    },
    async getQueueUrl(req, ctx) {
      // Queues of another account are not here.
      if (req.QueueOwnerAWSAccountId !== undefined && req.QueueOwnerAWSAccountId !== ctx.accountId) throw sqsError('QueueDoesNotExist');
      return { QueueName: (await catalog.require(req.QueueName)).name };
    },
    async listQueues(req) {
      const names = (await catalog.list()).map((r) => r.name).filter((n) => n.startsWith(req.QueueNamePrefix ?? ''));
      return page(names, req.MaxResults, req.NextToken);
    },
    async deleteQueue(req) {
      const record = await catalog.delete(req.QueueName);
      await deps.logFor(record.id).purge();
    },
    async getQueueAttributes(req, ctx) {
      const record = await catalog.require(req.QueueName);
      for (const n of req.AttributeNames)
        if (n !== 'All' && !isKnownAttribute(n)) throw sqsError('InvalidAttributeName', `Unknown Attribute ${n}.`);
      const wanted = req.AttributeNames.includes('All') ? undefined : new Set(req.AttributeNames);
      const all: Record<string, string> = {
        ...record.attributes,
        QueueArn: arnOf(ctx, record.name),
        CreatedTimestamp: String(record.createdAt),
        LastModifiedTimestamp: String(record.modifiedAt),
      };
      if (!wanted || [...wanted].some((n) => n.startsWith('ApproximateNumberOf'))) {
        const c = await router.run(record.name, { op: 'counts' }, ctx);
        all.ApproximateNumberOfMessages = String(c.visible);
        all.ApproximateNumberOfMessagesNotVisible = String(c.notVisible);
        all.ApproximateNumberOfMessagesDelayed = String(c.delayed);
      }
      return { Attributes: Object.fromEntries(Object.entries(all).filter(([k]) => !wanted || wanted.has(k))) };
    },
    async setQueueAttributes(req, ctx) {
      const current = await catalog.require(req.QueueName);
      const next = applyAttributes(req.QueueName, req.Attributes, current.attributes);
      await checkRedrive(req.QueueName, next, ctx);
      await catalog.update(req.QueueName, (r) => ({
        ...r,
        attributes: applyAttributes(r.name, req.Attributes, r.attributes),
        modifiedAt: Math.floor(now() / 1000),
      }));
    },
    async sendMessage(req, ctx) {
      const record = await catalog.require(req.QueueName);
      const outcomes = await router.run(record.name, { op: 'append', entries: [toAppend(record, req, ctx)] }, ctx);
      return unwrap(outcomes[0]);
    },
    async sendMessageBatch(req, ctx) {
      const record = await catalog.require(req.QueueName);
      const Failed: BatchResultErrorEntry[] = [];
      const valid: { id: string; append: AppendRequest }[] = [];
      for (const e of req.Entries) {
        try {
          valid.push({ id: e.Id, append: toAppend(record, e, ctx) });
        } catch (err) {
          Failed.push(toBatchEntry(e.Id, err));
        }
      }
      const outcomes = valid.length > 0 ? await router.run(record.name, { op: 'append', entries: valid.map((v) => v.append) }, ctx) : [];
      const Successful: { Id: string; MessageId: string; SequenceNumber?: string }[] = [];
      valid.forEach((v, i) => {
        const o = outcomes[i];
        if (o && 'ok' in o) Successful.push({ Id: v.id, ...o.ok });
        else Failed.push(toBatchEntry(v.id, o?.error ?? new Error('no answer')));
      });
      return { Successful, Failed };
    },
    async receiveMessage(req, ctx) {
      await catalog.require(req.QueueName);
      return { Messages: await router.run(req.QueueName, { op: 'receive', req }, ctx) };
    },
    async deleteMessage(req, ctx) {
      unwrap((await router.run(req.QueueName, { op: 'delete', handles: [req.ReceiptHandle] }, ctx))[0]);
    },
    deleteMessageBatch: (req, ctx) =>
      batchIds(
        req.Entries,
        (ok) => router.run(req.QueueName, { op: 'delete', handles: ok.map((e) => e.ReceiptHandle) }, ctx),
        () => undefined,
      ),
    async changeMessageVisibility(req, ctx) {
      unwrap(
        (
          await router.run(
            req.QueueName,
            { op: 'visibility', entries: [{ handle: req.ReceiptHandle, seconds: req.VisibilityTimeout }] },
            ctx,
          )
        )[0],
      );
    },
    changeMessageVisibilityBatch: (req, ctx) =>
      batchIds(
        req.Entries,
        (ok) =>
          router.run(
            req.QueueName,
            { op: 'visibility', entries: ok.map((e) => ({ handle: e.ReceiptHandle, seconds: e.VisibilityTimeout ?? 0 })) },
            ctx,
          ),
        () => undefined,
      ),
    async purgeQueue(req, ctx) {
      await router.run(req.QueueName, { op: 'purge' }, ctx);
    },
    async listDeadLetterSourceQueues(req, ctx) {
      const target = arnOf(ctx, (await catalog.require(req.QueueName)).name);
      const sources = (await catalog.list()).filter((r) => {
        try {
          return parseRedrivePolicy(r.attributes.RedrivePolicy)?.deadLetterTargetArn === target;
        } catch {
          return false;
        }
      });
      return page(
        sources.map((r) => r.name),
        req.MaxResults,
        req.NextToken,
      );
    },
    async tagQueue(req) {
      checkTags(req.Tags);
      await catalog.update(req.QueueName, (r) => {
        const tags = { ...r.tags, ...req.Tags };
        if (Object.keys(tags).length > MAX_TAGS) throw sqsError('InvalidParameterValue', `Too many tags added for queue ${r.name}.`);
        return { ...r, tags };
      });
    },
    async untagQueue(req) {
      await catalog.update(req.QueueName, (r) => ({
        ...r,
        tags: Object.fromEntries(Object.entries(r.tags).filter(([k]) => !req.TagKeys.includes(k))),
      }));
    },
    listQueueTags: async (req) => ({ Tags: { ...(await catalog.require(req.QueueName)).tags } }),
    // Compare-and-set on the record: a concurrent AddPermission/RemovePermission/SetQueueAttributes
    // makes `update` re-read and re-apply the edit, so no statement is lost.
    async addPermission(req, ctx) {
      await catalog.update(req.QueueName, (r) => ({
        ...r,
        attributes: { ...r.attributes, Policy: addPermissionToPolicy(r.attributes.Policy, arnOf(ctx, r.name), req) },
        modifiedAt: Math.floor(now() / 1000),
      }));
    },
    async removePermission(req, ctx) {
      await catalog.update(req.QueueName, (r) => {
        const { Policy: current, ...rest } = r.attributes;
        const policy = removePermissionFromPolicy(current, arnOf(ctx, r.name), req.Label);
        return { ...r, attributes: policy === undefined ? rest : { ...rest, Policy: policy }, modifiedAt: Math.floor(now() / 1000) };
      });
    },
    async deliver(queueName, message, key, ctx) {
      const record = await catalog.require(queueName);
      unwrap((await router.run(record.name, { op: 'append', entries: [toAppend(record, message, ctx, key)] }, ctx))[0]);
    },
    startMessageMoveTask: (req, ctx) => moves.start(req, ctx),
    listMessageMoveTasks: (req, ctx) => moves.list(req, ctx),
    cancelMessageMoveTask: (req, ctx) => moves.cancel(req, ctx),
    stopMoveTasks: () => moves.stop(),
  };
  // The move tasks' worker drives this engine itself (receive, deliver, delete), as a client would.
  const moves = new MoveTasks({ ...deps.moveTasks, catalog, engine, now });
  moves.startSweeper();
  return engine;
}
