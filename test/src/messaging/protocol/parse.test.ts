/**
 * Parsing the request forms the real clients sent (test/src/messaging/fixtures/captured-requests.json)
 * into engine requests.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { detectRequest } from '../../../../src/messaging/protocol/detect.js';
import { jsonFields, parseJsonBody, queryFields, snsFieldErrors, sqsFieldErrors } from '../../../../src/messaging/protocol/fields.js';
import { snsQueryParsers, type SnsAction } from '../../../../src/messaging/protocol/sns-query.js';
import { sqsJsonParsers } from '../../../../src/messaging/protocol/sqs-json.js';
import { sqsQueryParsers } from '../../../../src/messaging/protocol/sqs-query.js';
import type { SqsAction } from '../../../../src/messaging/protocol/sqs-types.js';
import type { SignedRequest } from '../../../../src/messaging/sigv4.js';

interface Captured {
  client: string;
  action: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string;
}
const { requests } = JSON.parse(readFileSync(new URL('../fixtures/captured-requests.json', import.meta.url), 'utf8')) as {
  requests: Captured[];
};

function signed(c: Captured): SignedRequest {
  return { method: c.method, rawPath: '/', rawQuery: '', headers: c.headers, body: Buffer.from(c.body) };
}

function parse(c: Captured): unknown {
  const d = detectRequest(signed(c));
  if (d.wire === 'json') return sqsJsonParsers[d.action as SqsAction](jsonFields(parseJsonBody(c.body), sqsFieldErrors));
  if (d.service === 'sns') return snsQueryParsers[d.action as SnsAction](queryFields(d.params, snsFieldErrors));
  return sqsQueryParsers[d.action as SqsAction](queryFields(d.params, sqsFieldErrors));
}

function captured(client: string, action: string, nth = 0): Captured {
  const found = requests.filter((r) => r.client.startsWith(client) && r.action === action)[nth];
  if (!found) throw new Error(`no capture of ${client} ${action}`);
  return found;
}

// Decoders produce Buffers (a Uint8Array subclass), and toEqual compares classes.
const bytes = (...b: number[]) => Buffer.from(b);

test('every capture is detected as the right service and wire form', () => {
  for (const c of requests) {
    const d = detectRequest(signed(c));
    expect(d.action).toBe(c.action);
    expect(d.wire).toBe(c.headers['content-type'] === 'application/x-amz-json-1.0' ? 'json' : 'query');
    expect(d.service).toBe(c.client.includes('sns') || c.headers.authorization?.includes('/sns/') ? 'sns' : 'sqs');
  }
});

describe('awscli 2.9.19 SQS (Query)', () => {
  const Q = { QueueName: 'q1' };
  test.each<[string, unknown]>([
    ['CreateQueue', { QueueName: 'q1', Attributes: { VisibilityTimeout: '40', DelaySeconds: '2' }, Tags: { a: 'b', c: 'd' } }],
    ['GetQueueUrl', { QueueName: 'q1', QueueOwnerAWSAccountId: '000000000000' }],
    ['ListQueues', { QueueNamePrefix: 'q', MaxResults: 5, NextToken: 'tok' }],
    ['DeleteQueue', Q],
    ['GetQueueAttributes', { ...Q, AttributeNames: ['All', 'VisibilityTimeout'] }],
    ['SetQueueAttributes', { ...Q, Attributes: { VisibilityTimeout: '50' } }],
    [
      'SendMessage',
      {
        ...Q,
        MessageBody: 'hello world +&=',
        DelaySeconds: 3,
        MessageAttributes: {
          s: { DataType: 'String', StringValue: 'v' },
          b: { DataType: 'Binary', BinaryValue: bytes(1, 2, 3) },
          n: { DataType: 'Number.int', StringValue: '5' },
        },
        MessageSystemAttributes: { AWSTraceHeader: { DataType: 'String', StringValue: 'Root=1' } },
        MessageDeduplicationId: 'd',
        MessageGroupId: 'g',
      },
    ],
    [
      'SendMessageBatch',
      {
        ...Q,
        Entries: [
          {
            Id: 'a',
            MessageBody: 'x',
            DelaySeconds: 1,
            MessageAttributes: { k: { DataType: 'String', StringValue: 'v' } },
            MessageSystemAttributes: {},
          },
          {
            Id: 'b',
            MessageBody: 'y',
            MessageAttributes: {},
            MessageSystemAttributes: {},
            MessageGroupId: 'g',
            MessageDeduplicationId: 'dd',
          },
        ],
      },
    ],
    [
      'ReceiveMessage',
      {
        ...Q,
        AttributeNames: ['All'],
        MessageAttributeNames: ['All', 'foo'],
        MaxNumberOfMessages: 5,
        VisibilityTimeout: 10,
        WaitTimeSeconds: 0,
        ReceiveRequestAttemptId: 'r',
      },
    ],
    ['DeleteMessage', { ...Q, ReceiptHandle: 'rh+/=' }],
    [
      'DeleteMessageBatch',
      {
        ...Q,
        Entries: [
          { Id: 'a', ReceiptHandle: 'r1' },
          { Id: 'b', ReceiptHandle: 'r2' },
        ],
      },
    ],
    ['ChangeMessageVisibility', { ...Q, ReceiptHandle: 'rh', VisibilityTimeout: 7 }],
    ['ChangeMessageVisibilityBatch', { ...Q, Entries: [{ Id: 'a', ReceiptHandle: 'r1', VisibilityTimeout: 3 }] }],
    ['PurgeQueue', Q],
    ['ListDeadLetterSourceQueues', { ...Q, MaxResults: 3, NextToken: 't' }],
    ['TagQueue', { ...Q, Tags: { a: 'b', c: 'd' } }],
    ['UntagQueue', { ...Q, TagKeys: ['a', 'c'] }],
    ['ListQueueTags', Q],
  ])('%s', (action, expected) => {
    expect(parse(captured('awscli', action))).toEqual(expected);
  });
});

describe('client-sqs 3.445.0 (Query, JS ordering and %20 spaces)', () => {
  test('CreateQueue with lower-case tags member sent as Tag.N', () => {
    expect(parse(captured('client-sqs-3.445', 'CreateQueue'))).toEqual({
      QueueName: 'q1',
      Attributes: { VisibilityTimeout: '40' },
      Tags: { a: 'b' },
    });
  });
  test('SendMessage', () => {
    expect(parse(captured('client-sqs-3.445', 'SendMessage'))).toMatchObject({
      MessageBody: 'hello world +&=',
      DelaySeconds: 0,
      MessageAttributes: { b: { DataType: 'Binary', BinaryValue: bytes(1, 2, 3) }, s: { DataType: 'String', StringValue: 'v' } },
    });
  });
  test('ReceiveMessage, TagQueue, UntagQueue', () => {
    expect(parse(captured('client-sqs-3.445', 'ReceiveMessage'))).toMatchObject({
      AttributeNames: ['All'],
      MessageAttributeNames: ['All'],
      MaxNumberOfMessages: 10,
      WaitTimeSeconds: 1,
    });
    expect(parse(captured('client-sqs-3.445', 'TagQueue'))).toEqual({ QueueName: 'q1', Tags: { a: 'b' } });
    expect(parse(captured('client-sqs-3.445', 'UntagQueue'))).toEqual({ QueueName: 'q1', TagKeys: ['a'] });
  });
});

describe('client-sqs 3.1174 (JSON 1.0)', () => {
  test('CreateQueue reads the lower-case `tags` member', () => {
    expect(parse(captured('client-sqs-3.1174', 'CreateQueue'))).toEqual({
      QueueName: 'q1',
      Attributes: { VisibilityTimeout: '40' },
      Tags: { a: 'b' },
    });
  });
  test('SendMessage decodes base64 binary values', () => {
    expect(parse(captured('client-sqs-3.1174', 'SendMessage'))).toMatchObject({
      QueueName: 'q1',
      MessageBody: 'hello world +&=',
      MessageAttributes: { b: { DataType: 'Binary', BinaryValue: bytes(1, 2, 3) } },
    });
  });
  test('ReceiveMessage merges AttributeNames and MessageSystemAttributeNames', () => {
    expect(parse(captured('client-sqs-3.1174', 'ReceiveMessage'))).toMatchObject({
      AttributeNames: ['All', 'SenderId'],
      MaxNumberOfMessages: 10,
    });
  });
  test('ListQueues with an empty body', () => {
    expect(parse(captured('client-sqs-3.1174', 'ListQueues'))).toEqual({});
  });
});

describe('SNS (Query)', () => {
  const T = 'arn:aws:sns:us-east-1:000000000000:t1';
  test.each<[string, unknown]>([
    [
      'CreateTopic',
      {
        Name: 't1',
        Attributes: { DisplayName: 'x', FifoTopic: 'false' },
        Tags: [
          { Key: 'a', Value: 'b' },
          { Key: 'c', Value: 'd' },
        ],
      },
    ],
    ['DeleteTopic', { TopicArn: T }],
    ['ListTopics', { NextToken: 'tok' }],
    ['SetTopicAttributes', { TopicArn: T, AttributeName: 'DisplayName', AttributeValue: 'y' }],
    [
      'Subscribe',
      {
        TopicArn: T,
        Protocol: 'sqs',
        Endpoint: 'arn:aws:sqs:us-east-1:000000000000:q1',
        Attributes: { RawMessageDelivery: 'true' },
        ReturnSubscriptionArn: true,
      },
    ],
    ['ConfirmSubscription', { TopicArn: T, Token: 'tok', AuthenticateOnUnsubscribe: 'true' }],
    ['Unsubscribe', { SubscriptionArn: `${T}:abc` }],
    ['ListSubscriptionsByTopic', { TopicArn: T, NextToken: 'tok' }],
    ['SetSubscriptionAttributes', { SubscriptionArn: `${T}:abc`, AttributeName: 'RawMessageDelivery', AttributeValue: 'true' }],
    ['TagResource', { ResourceArn: T, Tags: [{ Key: 'a', Value: 'b' }] }],
    ['UntagResource', { ResourceArn: T, TagKeys: ['a', 'c'] }],
    ['ListTagsForResource', { ResourceArn: T }],
  ])('awscli %s', (action, expected) => {
    expect(parse(captured('awscli', action))).toEqual(expected);
  });

  test('awscli Publish with all attribute types, and with TargetArn', () => {
    expect(parse(captured('awscli', 'Publish'))).toEqual({
      TopicArn: T,
      Message: 'hi there',
      Subject: 's',
      MessageStructure: 'string',
      MessageAttributes: {
        a: { DataType: 'String', StringValue: 'v' },
        b: { DataType: 'Binary', BinaryValue: bytes(1, 2, 3) },
        l: { DataType: 'String.Array', StringValue: '["x",1]' },
      },
      MessageDeduplicationId: 'd',
      MessageGroupId: 'g',
    });
    expect(parse(captured('awscli', 'Publish', 1))).toMatchObject({ TopicArn: T, Message: 'm2' });
  });

  test('awscli PublishBatch', () => {
    expect(parse(captured('awscli', 'PublishBatch'))).toEqual({
      TopicArn: T,
      PublishBatchRequestEntries: [
        {
          Id: '1',
          Message: 'm',
          Subject: 's',
          MessageStructure: 'string',
          MessageAttributes: { a: { DataType: 'String', StringValue: 'v' } },
          MessageGroupId: 'g',
          MessageDeduplicationId: 'd',
        },
        { Id: '2', Message: 'n', MessageAttributes: {} },
      ],
    });
  });

  test('client-sns Publish with a binary attribute', () => {
    expect(parse(captured('client-sns', 'Publish'))).toMatchObject({
      TopicArn: T,
      Message: 'hi there',
      MessageAttributes: { a: { DataType: 'Binary', BinaryValue: bytes(1, 2, 3) } },
    });
  });
});
