/**
 * Runs one SQS action: the stateless checks, the engine call, and the conversion of the engine's
 * result into the wire output (queue URLs from names, MD5s, ReceiveMessage's attribute filters).
 */
import { toBatchEntry } from '../errors.js';
import { md5OfBody, md5OfMessageAttributes } from '../md5.js';
import { checkPermissionGrant } from '../queue-policy.js';
import type {
  MessageAttributes,
  MessageAttributeValue,
  MessageToSend,
  ReceivedMessage,
  RequestContext,
  SqsEngine,
  StringMap,
} from '../sqs-engine.js';
import type { BatchResultErrorEntry } from '../errors.js';
import { queueUrl } from './queue-url.js';
import type { SendOutput, SqsAction, SqsOutputs, SqsRequests, WireMessage } from './sqs-types.js';
import { checkMessage, checkRange, checkSqsBatch, checkSqsBatchSize } from './validate.js';

/** What a runner needs besides the engine and the request. */
export interface ActionContext {
  readonly request: RequestContext;
  /** The externally reachable origin for queue URLs, no trailing slash. */
  readonly baseUrl: string;
}

type Runner<A extends SqsAction> = (engine: SqsEngine, req: SqsRequests[A], ctx: ActionContext) => Promise<SqsOutputs[A]>;

const EMPTY = {} as Record<string, never>;

function url(ctx: ActionContext, name: string): string {
  return queueUrl(ctx.baseUrl, ctx.request.accountId, name);
}

function sendOutput(message: MessageToSend, result: { MessageId: string; SequenceNumber?: string }): SendOutput {
  return {
    MessageId: result.MessageId,
    MD5OfMessageBody: md5OfBody(message.MessageBody),
    MD5OfMessageAttributes: md5OfMessageAttributes(message.MessageAttributes),
    MD5OfMessageSystemAttributes: md5OfMessageAttributes(message.MessageSystemAttributes),
    SequenceNumber: result.SequenceNumber,
  };
}

/** Splits batch entries into those passing `check` and failures for the rest. */
function partition<E extends { readonly Id: string }>(entries: readonly E[], check: (e: E) => void): [E[], BatchResultErrorEntry[]] {
  const ok: E[] = [];
  const failed: BatchResultErrorEntry[] = [];
  for (const entry of entries) {
    try {
      check(entry);
      ok.push(entry);
    } catch (err) {
      failed.push(toBatchEntry(entry.Id, err));
    }
  }
  return [ok, failed];
}

/**
 * The message attributes `names` asks for: `All`, `*` or `.*` for every one, `<text>.*` for the
 * names starting with `<text>` (`Hel.*` matches `Hello` and `Help.Me`, as AWS answers in
 * LocalStack's recorded snapshots), otherwise exact names.
 */
export function selectMessageAttributes(attributes: MessageAttributes, names: readonly string[]): MessageAttributes {
  if (names.some((n) => n === 'All' || n === '.*' || n === '*')) return attributes;
  const out: Record<string, MessageAttributeValue> = {};
  for (const [name, value] of Object.entries(attributes)) {
    const wanted = names.some((n) => (n.endsWith('.*') ? name.startsWith(n.slice(0, -2)) : n === name));
    if (wanted) out[name] = value;
  }
  return out;
}

/** The system attributes `names` asks for: `All` for every one, otherwise exact names. */
export function selectSystemAttributes(attributes: StringMap, names: readonly string[]): StringMap {
  if (names.includes('All')) return attributes;
  return Object.fromEntries(Object.entries(attributes).filter(([name]) => names.includes(name)));
}

function wireMessage(m: ReceivedMessage, systemNames: readonly string[], attributeNames: readonly string[]): WireMessage {
  const attributes = selectMessageAttributes(m.MessageAttributes, attributeNames);
  return {
    MessageId: m.MessageId,
    ReceiptHandle: m.ReceiptHandle,
    MD5OfBody: md5OfBody(m.Body),
    Body: m.Body,
    Attributes: selectSystemAttributes(m.Attributes, systemNames),
    MD5OfMessageAttributes: md5OfMessageAttributes(attributes),
    MessageAttributes: attributes,
  };
}

const visibilityReason = 'Must be between 0 and 43200, if provided.';

/** The runner of every action. */
export const sqsRunners: { readonly [A in SqsAction]: Runner<A> } = {
  async CreateQueue(engine, req, ctx) {
    const out = await engine.createQueue(req, ctx.request);
    return { QueueUrl: url(ctx, out.QueueName) };
  },
  async GetQueueUrl(engine, req, ctx) {
    const out = await engine.getQueueUrl(req, ctx.request);
    return { QueueUrl: url(ctx, out.QueueName) };
  },
  async ListQueues(engine, req, ctx) {
    checkRange('MaxResults', req.MaxResults, 1, 1000, 'MaxResults must be an integer between 1 and 1000.');
    const out = await engine.listQueues(req, ctx.request);
    return { QueueUrls: out.QueueNames.map((n) => url(ctx, n)), NextToken: out.NextToken };
  },
  DeleteQueue: async (engine, req, ctx) => (await engine.deleteQueue(req, ctx.request), EMPTY),
  GetQueueAttributes: async (engine, req, ctx) => engine.getQueueAttributes(req, ctx.request),
  SetQueueAttributes: async (engine, req, ctx) => (await engine.setQueueAttributes(req, ctx.request), EMPTY),
  async SendMessage(engine, req, ctx) {
    checkMessage(req);
    return sendOutput(req, await engine.sendMessage(req, ctx.request));
  },
  async SendMessageBatch(engine, req, ctx) {
    checkSqsBatch(
      req.Entries.map((e) => e.Id),
      'SendMessageBatchRequestEntry',
    );
    checkSqsBatchSize(req.Entries);
    const [valid, invalid] = partition(req.Entries, checkMessage);
    const out = valid.length > 0 ? await engine.sendMessageBatch({ ...req, Entries: valid }, ctx.request) : { Successful: [], Failed: [] };
    const byId = new Map(valid.map((e) => [e.Id, e]));
    const successful = out.Successful.map((s) => {
      const entry = byId.get(s.Id);
      if (!entry) throw new Error(`engine answered for unknown batch entry ${s.Id}`);
      return { Id: s.Id, ...sendOutput(entry, s) };
    });
    return { Successful: successful, Failed: [...invalid, ...out.Failed] };
  },
  async ReceiveMessage(engine, req, ctx) {
    checkRange('MaxNumberOfMessages', req.MaxNumberOfMessages, 1, 10, 'Must be between 1 and 10, if provided.');
    checkRange('VisibilityTimeout', req.VisibilityTimeout, 0, 43200, visibilityReason);
    checkRange('WaitTimeSeconds', req.WaitTimeSeconds, 0, 20, 'Must be >= 0 and <= 20, if provided.');
    const out = await engine.receiveMessage(req, ctx.request);
    return { Messages: out.Messages.map((m) => wireMessage(m, req.AttributeNames, req.MessageAttributeNames)) };
  },
  DeleteMessage: async (engine, req, ctx) => (await engine.deleteMessage(req, ctx.request), EMPTY),
  async DeleteMessageBatch(engine, req, ctx) {
    checkSqsBatch(
      req.Entries.map((e) => e.Id),
      'DeleteMessageBatchRequestEntry',
    );
    return engine.deleteMessageBatch(req, ctx.request);
  },
  async ChangeMessageVisibility(engine, req, ctx) {
    checkRange('VisibilityTimeout', req.VisibilityTimeout, 0, 43200, visibilityReason);
    await engine.changeMessageVisibility(req, ctx.request);
    return EMPTY;
  },
  async ChangeMessageVisibilityBatch(engine, req, ctx) {
    checkSqsBatch(
      req.Entries.map((e) => e.Id),
      'ChangeMessageVisibilityBatchRequestEntry',
    );
    const [valid, invalid] = partition(req.Entries, (e) =>
      checkRange('VisibilityTimeout', e.VisibilityTimeout, 0, 43200, visibilityReason),
    );
    const out =
      valid.length > 0
        ? await engine.changeMessageVisibilityBatch({ ...req, Entries: valid }, ctx.request)
        : { Successful: [], Failed: [] };
    return { Successful: out.Successful, Failed: [...invalid, ...out.Failed] };
  },
  PurgeQueue: async (engine, req, ctx) => (await engine.purgeQueue(req, ctx.request), EMPTY),
  async ListDeadLetterSourceQueues(engine, req, ctx) {
    checkRange('MaxResults', req.MaxResults, 1, 1000, 'MaxResults must be an integer between 1 and 1000.');
    const out = await engine.listDeadLetterSourceQueues(req, ctx.request);
    return { queueUrls: out.QueueNames.map((n) => url(ctx, n)), NextToken: out.NextToken };
  },
  TagQueue: async (engine, req, ctx) => (await engine.tagQueue(req, ctx.request), EMPTY),
  UntagQueue: async (engine, req, ctx) => (await engine.untagQueue(req, ctx.request), EMPTY),
  ListQueueTags: async (engine, req, ctx) => engine.listQueueTags(req, ctx.request),
  async AddPermission(engine, req, ctx) {
    checkPermissionGrant(req);
    await engine.addPermission(req, ctx.request);
    return EMPTY;
  },
  RemovePermission: async (engine, req, ctx) => (await engine.removePermission(req, ctx.request), EMPTY),
  async StartMessageMoveTask(engine, req, ctx) {
    checkRange('MaxNumberOfMessagesPerSecond', req.MaxNumberOfMessagesPerSecond, 1, 500, 'Must be between 1 and 500, if provided.');
    return engine.startMessageMoveTask(req, ctx.request);
  },
  async ListMessageMoveTasks(engine, req, ctx) {
    checkRange('MaxResults', req.MaxResults, 1, 10, 'Must be between 1 and 10, if provided.');
    return engine.listMessageMoveTasks(req, ctx.request);
  },
  CancelMessageMoveTask: async (engine, req, ctx) => engine.cancelMessageMoveTask(req, ctx.request),
};
