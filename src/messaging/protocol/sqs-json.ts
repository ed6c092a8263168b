/**
 * SQS AWS JSON 1.0: request bodies → engine requests, and wire outputs → response bodies. Members
 * carry the API names; maps are objects, binary values base64 strings. Quirks of the model:
 * CreateQueue's tags are lower-case `tags`, ListDeadLetterSourceQueues answers lower-case
 * `queueUrls`, and ReceiveMessage from current SDKs sends `MessageSystemAttributeNames` (and the
 * deprecated `AttributeNames`).
 */
import type { MessageAttributes, MessageAttributeValue, MessageToSend } from '../sqs-engine.js';
import type { JsonFields } from './fields.js';
import { queueNameFromUrl } from './queue-url.js';
import { sqsScalarParsers, type SqsAction, type SqsOutputs, type SqsRequests } from './sqs-types.js';

/** Parses one action's JSON body. */
export type SqsJsonParser<A extends SqsAction> = (f: JsonFields) => SqsRequests[A];

function queueName(f: JsonFields): string {
  return queueNameFromUrl(f.req('QueueUrl'));
}

function messageAttributes(f: JsonFields, name: string): MessageAttributes {
  const out: Record<string, MessageAttributeValue> = {};
  for (const [key, v] of f.objectMap(name)) {
    const stringList = v.strings('StringListValues');
    const binaryList = v.binaries('BinaryListValues');
    const stringValue = v.str('StringValue');
    const binaryValue = v.binary('BinaryValue');
    out[key] = {
      DataType: v.str('DataType') ?? '',
      ...(stringValue !== undefined ? { StringValue: stringValue } : {}),
      ...(binaryValue !== undefined ? { BinaryValue: binaryValue } : {}),
      ...(stringList.length > 0 ? { StringListValues: stringList } : {}),
      ...(binaryList.length > 0 ? { BinaryListValues: binaryList } : {}),
    };
  }
  return out;
}

function message(f: JsonFields): MessageToSend {
  const body = f.str('MessageBody');
  if (body === undefined) throw f.errors.missing('MessageBody');
  return {
    MessageBody: body,
    DelaySeconds: f.int('DelaySeconds'),
    MessageAttributes: messageAttributes(f, 'MessageAttributes'),
    MessageSystemAttributes: messageAttributes(f, 'MessageSystemAttributes'),
    MessageDeduplicationId: f.str('MessageDeduplicationId'),
    MessageGroupId: f.str('MessageGroupId'),
  };
}

/** The JSON parser of every action. */
export const sqsJsonParsers: { readonly [A in SqsAction]: SqsJsonParser<A> } = {
  CreateQueue: (f) => ({ QueueName: f.req('QueueName'), Attributes: f.stringMap('Attributes'), Tags: f.stringMap('tags') }),
  GetQueueUrl: (f) => ({ QueueName: f.req('QueueName'), QueueOwnerAWSAccountId: f.str('QueueOwnerAWSAccountId') }),
  ListQueues: (f) => ({ QueueNamePrefix: f.str('QueueNamePrefix'), MaxResults: f.int('MaxResults'), NextToken: f.str('NextToken') }),
  DeleteQueue: (f) => ({ QueueName: queueName(f) }),
  GetQueueAttributes: (f) => ({ QueueName: queueName(f), AttributeNames: f.strings('AttributeNames') }),
  SetQueueAttributes: (f) => ({ QueueName: queueName(f), Attributes: f.stringMap('Attributes') }),
  SendMessage: (f) => ({ QueueName: queueName(f), ...message(f) }),
  SendMessageBatch: (f) => ({
    QueueName: queueName(f),
    Entries: f.objects('Entries').map((e) => ({ Id: e.str('Id') ?? '', ...message(e) })),
  }),
  ReceiveMessage: (f) => ({
    QueueName: queueName(f),
    MaxNumberOfMessages: f.int('MaxNumberOfMessages'),
    VisibilityTimeout: f.int('VisibilityTimeout'),
    WaitTimeSeconds: f.int('WaitTimeSeconds'),
    AttributeNames: [...new Set([...f.strings('AttributeNames'), ...f.strings('MessageSystemAttributeNames')])],
    MessageAttributeNames: f.strings('MessageAttributeNames'),
    ReceiveRequestAttemptId: f.str('ReceiveRequestAttemptId'),
  }),
  DeleteMessage: (f) => ({ QueueName: queueName(f), ReceiptHandle: f.req('ReceiptHandle') }),
  DeleteMessageBatch: (f) => ({
    QueueName: queueName(f),
    Entries: f.objects('Entries').map((e) => ({ Id: e.str('Id') ?? '', ReceiptHandle: e.str('ReceiptHandle') ?? '' })),
  }),
  ChangeMessageVisibility: (f) => ({
    QueueName: queueName(f),
    ReceiptHandle: f.req('ReceiptHandle'),
    VisibilityTimeout: f.int('VisibilityTimeout') ?? missing(f, 'VisibilityTimeout'),
  }),
  ChangeMessageVisibilityBatch: (f) => ({
    QueueName: queueName(f),
    Entries: f.objects('Entries').map((e) => ({
      Id: e.str('Id') ?? '',
      ReceiptHandle: e.str('ReceiptHandle') ?? '',
      VisibilityTimeout: e.int('VisibilityTimeout'),
    })),
  }),
  PurgeQueue: (f) => ({ QueueName: queueName(f) }),
  ListDeadLetterSourceQueues: (f) => ({ QueueName: queueName(f), MaxResults: f.int('MaxResults'), NextToken: f.str('NextToken') }),
  TagQueue: (f) => ({ QueueName: queueName(f), Tags: f.stringMap('Tags') }),
  UntagQueue: (f) => ({ QueueName: queueName(f), TagKeys: f.strings('TagKeys') }),
  ListQueueTags: (f) => ({ QueueName: queueName(f) }),
  AddPermission: (f) => ({
    QueueName: queueName(f),
    Label: f.req('Label'),
    AWSAccountIds: f.strings('AWSAccountIds'),
    Actions: f.strings('Actions'),
  }),
  RemovePermission: (f) => ({ QueueName: queueName(f), Label: f.req('Label') }),
  ...sqsScalarParsers,
};

function missing(f: JsonFields, name: string): never {
  throw f.errors.missing(name);
}

/**
 * A wire output as a JSON 1.0 body: binary values as base64, absent members and empty optional
 * lists/maps left out (AWS sends no `Messages` key when nothing was received, `{}` for empty output).
 * The batch lists `Successful`/`Failed` and `queueUrls` are required members and always present.
 */
export function toSqsJson<A extends SqsAction>(action: A, output: SqsOutputs[A]): string {
  const keep: readonly string[] = REQUIRED_LISTS[action] ?? [];
  const top: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(output)) {
    const converted = jsonValue(value);
    if (converted !== undefined) top[key] = converted;
    else if (keep.includes(key)) top[key] = Array.isArray(value) ? [] : value;
  }
  return JSON.stringify(top);
}

const REQUIRED_LISTS: Partial<Record<SqsAction, readonly string[]>> = {
  SendMessageBatch: ['Successful', 'Failed'],
  DeleteMessageBatch: ['Successful', 'Failed'],
  ChangeMessageVisibilityBatch: ['Successful', 'Failed'],
  ListDeadLetterSourceQueues: ['queueUrls'],
};

/** JSON-ready copy: bytes → base64, undefined and empty lists/maps → undefined (omitted). */
function jsonValue(value: unknown): unknown {
  if (value === undefined || value === null) return undefined;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
  // Loops rather than entries/map/filter: this runs for every member of every message answered.
  if (Array.isArray(value)) {
    const items: unknown[] = [];
    for (const item of value) {
      const converted = jsonValue(item);
      if (converted !== undefined) items.push(converted);
    }
    return items.length > 0 ? items : undefined;
  }
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    let members = 0;
    for (const k of Object.keys(value)) {
      const converted = jsonValue((value as Record<string, unknown>)[k]);
      if (converted === undefined) continue;
      out[k] = converted;
      members += 1;
    }
    return members > 0 ? out : undefined;
  }
  return value;
}
