/**
 * SQS Query requests → engine requests. SQS flattens its containers: lists are `Name.N`
 * (`AttributeName.1`), maps are `Name.N.Name`/`Name.N.Value` (`Attribute.1.Name`, `Tag.1.Key`),
 * structures in lists are `Entry.N.Member` (`SendMessageBatchRequestEntry.1.Id`). The forms here
 * are those awscli 2.9.19 and `@aws-sdk/client-sqs` 3.445 send (`test/messaging/fixtures/`).
 */
import type { MessageAttributes, MessageAttributeValue, MessageToSend } from '../sqs-engine.js';
import { indexedGroups, indexedValues, subParams } from './form.js';
import type { QueryFields } from './fields.js';
import { queueNameFromUrl } from './queue-url.js';
import { sqsScalarParsers, type SqsAction, type SqsRequests } from './sqs-types.js';

/** Parses one action's parameters; `pathQueue` is the queue named by the request path, if any. */
export type SqsQueryParser<A extends SqsAction> = (f: QueryFields, pathQueue?: string) => SqsRequests[A];

/** The queue of a request: `QueueUrl`, else the request path (legacy queue-path requests). */
function queueName(f: QueryFields, pathQueue: string | undefined): string {
  const url = f.str('QueueUrl');
  if (url !== undefined && url !== '') return queueNameFromUrl(url);
  if (pathQueue !== undefined) return pathQueue;
  throw f.errors.missing('QueueUrl');
}

/** A flattened name/value map: `<prefix>.N.<key>` / `<prefix>.N.<value>`. */
function flatMap(f: QueryFields, prefix: string, key: string, value: string): Record<string, string> {
  const out: Record<string, string> = {};
  indexedGroups(f.params, prefix).forEach((group, i) => {
    const g = f.sub(group);
    const name = group.get(key);
    if (name === undefined) throw f.errors.missing(`${prefix}.${i + 1}.${key}`);
    out[name] = g.str(value) ?? '';
  });
  return out;
}

/** `MessageAttribute.N.Name` + `.Value.DataType|StringValue|BinaryValue|StringListValue.M|BinaryListValue.M`. */
export function queryMessageAttributes(f: QueryFields, prefix: string): MessageAttributes {
  const out: Record<string, MessageAttributeValue> = {};
  indexedGroups(f.params, prefix).forEach((group, i) => {
    const name = group.get('Name');
    if (name === undefined || name === '') throw f.errors.missing(`${prefix}.${i + 1}.Name`);
    const v = f.sub(subParams(group, 'Value'));
    const stringList = indexedValues(v.params, 'StringListValue');
    const binaryList = indexedValues(v.params, 'BinaryListValue');
    out[name] = {
      DataType: v.str('DataType') ?? '',
      ...(v.str('StringValue') !== undefined ? { StringValue: v.str('StringValue') } : {}),
      ...(v.binary('BinaryValue') !== undefined ? { BinaryValue: v.binary('BinaryValue') } : {}),
      ...(stringList.length > 0 ? { StringListValues: stringList } : {}),
      ...(binaryList.length > 0
        ? { BinaryListValues: binaryList.map((_, j) => v.binary(`BinaryListValue.${j + 1}`) ?? new Uint8Array()) }
        : {}),
    };
  });
  return out;
}

function message(f: QueryFields): MessageToSend {
  return {
    MessageBody: f.str('MessageBody') ?? missing(f, 'MessageBody'),
    DelaySeconds: f.int('DelaySeconds'),
    MessageAttributes: queryMessageAttributes(f, 'MessageAttribute'),
    MessageSystemAttributes: queryMessageAttributes(f, 'MessageSystemAttribute'),
    MessageDeduplicationId: f.str('MessageDeduplicationId'),
    MessageGroupId: f.str('MessageGroupId'),
  };
}

function entries(f: QueryFields, prefix: string): QueryFields[] {
  return indexedGroups(f.params, prefix).map((group) => f.sub(group));
}

/** The parser of every action. */
export const sqsQueryParsers: { readonly [A in SqsAction]: SqsQueryParser<A> } = {
  CreateQueue: (f) => ({
    QueueName: f.req('QueueName'),
    Attributes: flatMap(f, 'Attribute', 'Name', 'Value'),
    Tags: flatMap(f, 'Tag', 'Key', 'Value'),
  }),
  GetQueueUrl: (f) => ({ QueueName: f.req('QueueName'), QueueOwnerAWSAccountId: f.str('QueueOwnerAWSAccountId') }),
  ListQueues: (f) => ({ QueueNamePrefix: f.str('QueueNamePrefix'), MaxResults: f.int('MaxResults'), NextToken: f.str('NextToken') }),
  DeleteQueue: (f, q) => ({ QueueName: queueName(f, q) }),
  GetQueueAttributes: (f, q) => ({ QueueName: queueName(f, q), AttributeNames: indexedValues(f.params, 'AttributeName') }),
  SetQueueAttributes: (f, q) => ({ QueueName: queueName(f, q), Attributes: flatMap(f, 'Attribute', 'Name', 'Value') }),
  SendMessage: (f, q) => ({ QueueName: queueName(f, q), ...message(f) }),
  SendMessageBatch: (f, q) => ({
    QueueName: queueName(f, q),
    Entries: entries(f, 'SendMessageBatchRequestEntry').map((e) => ({ Id: e.str('Id') ?? '', ...message(e) })),
  }),
  ReceiveMessage: (f, q) => ({
    QueueName: queueName(f, q),
    MaxNumberOfMessages: f.int('MaxNumberOfMessages'),
    VisibilityTimeout: f.int('VisibilityTimeout'),
    WaitTimeSeconds: f.int('WaitTimeSeconds'),
    // Pre-2024 clients send AttributeName.N; newer Query clients may send MessageSystemAttributeName.N.
    AttributeNames: [...indexedValues(f.params, 'AttributeName'), ...indexedValues(f.params, 'MessageSystemAttributeName')],
    MessageAttributeNames: indexedValues(f.params, 'MessageAttributeName'),
    ReceiveRequestAttemptId: f.str('ReceiveRequestAttemptId'),
  }),
  DeleteMessage: (f, q) => ({ QueueName: queueName(f, q), ReceiptHandle: f.req('ReceiptHandle') }),
  DeleteMessageBatch: (f, q) => ({
    QueueName: queueName(f, q),
    Entries: entries(f, 'DeleteMessageBatchRequestEntry').map((e) => ({
      Id: e.str('Id') ?? '',
      ReceiptHandle: e.str('ReceiptHandle') ?? '',
    })),
  }),
  ChangeMessageVisibility: (f, q) => ({
    QueueName: queueName(f, q),
    ReceiptHandle: f.req('ReceiptHandle'),
    VisibilityTimeout: f.int('VisibilityTimeout') ?? missing(f, 'VisibilityTimeout'),
  }),
  ChangeMessageVisibilityBatch: (f, q) => ({
    QueueName: queueName(f, q),
    Entries: entries(f, 'ChangeMessageVisibilityBatchRequestEntry').map((e) => ({
      Id: e.str('Id') ?? '',
      ReceiptHandle: e.str('ReceiptHandle') ?? '',
      VisibilityTimeout: e.int('VisibilityTimeout'),
    })),
  }),
  PurgeQueue: (f, q) => ({ QueueName: queueName(f, q) }),
  ListDeadLetterSourceQueues: (f, q) => ({ QueueName: queueName(f, q), MaxResults: f.int('MaxResults'), NextToken: f.str('NextToken') }),
  TagQueue: (f, q) => ({ QueueName: queueName(f, q), Tags: flatMap(f, 'Tag', 'Key', 'Value') }),
  UntagQueue: (f, q) => ({ QueueName: queueName(f, q), TagKeys: indexedValues(f.params, 'TagKey') }),
  ListQueueTags: (f, q) => ({ QueueName: queueName(f, q) }),
  // The lists are flattened under their member names: AWSAccountId.N, ActionName.N.
  AddPermission: (f, q) => ({
    QueueName: queueName(f, q),
    Label: f.req('Label'),
    AWSAccountIds: indexedValues(f.params, 'AWSAccountId'),
    Actions: indexedValues(f.params, 'ActionName'),
  }),
  RemovePermission: (f, q) => ({ QueueName: queueName(f, q), Label: f.req('Label') }),
  ...sqsScalarParsers,
};

function missing(f: QueryFields, name: string): never {
  throw f.errors.missing(name);
}
