/**
 * Real clients against the wire layer on 127.0.0.1 (in-memory engine): current
 * `@aws-sdk/client-sqs` (JSON 1.0), `client-sqs-query` = client-sqs 3.445.0 (Query),
 * Debian's awscli 2.9.19 (Query, botocore's XML parser) and `@aws-sdk/client-sns` (Query).
 * The SDKs verify the body MD5 of SendMessage/SendMessageBatch/ReceiveMessage themselves.
 */
import * as SnsSdk from '@aws-sdk/client-sns';
import * as SqsJsonSdk from '@aws-sdk/client-sqs';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as SqsQuerySdk from 'client-sqs-query';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { md5OfBody, md5OfMessageAttributes } from '../../../src/messaging/md5.js';
import { urlOf } from '../../../core/tls-listener.js';
import type { MessagingApp } from '../../../src/messaging/http.js';
import { buildTestApp, CREDENTIALS } from './helpers.js';

const AWS_CLI = '/usr/bin/aws';
const run = promisify(execFile);

let app: MessagingApp;
let endpoint: string;
let home: string;

beforeAll(async () => {
  ({ app } = await buildTestApp());
  await app.listen({ host: '127.0.0.1', port: 0 });
  endpoint = urlOf(app, 'http');
  home = mkdtempSync(join(tmpdir(), 'mammatus-awscli-'));
});
afterAll(async () => {
  await app.close();
  rmSync(home, { recursive: true, force: true });
});

const clientConfig = (secret: string = CREDENTIALS.secretAccessKey) => ({
  endpoint,
  region: 'us-east-1',
  credentials: { accessKeyId: CREDENTIALS.accessKeyId, secretAccessKey: secret },
  maxAttempts: 1,
});

const attributes = {
  colour: { DataType: 'String', StringValue: 'blue & <green>' },
  count: { DataType: 'Number.int', StringValue: '42' },
  blob: { DataType: 'Binary', BinaryValue: new Uint8Array([0, 1, 2, 255]) },
};

describe('@aws-sdk/client-sqs (current, JSON 1.0)', () => {
  test('create, send with attributes, receive, delete, attributes; wrong secret', async () => {
    const sqs = new SqsJsonSdk.SQSClient(clientConfig());
    const { QueueUrl } = await sqs.send(
      new SqsJsonSdk.CreateQueueCommand({ QueueName: 'json-q', Attributes: { VisibilityTimeout: '20' }, tags: { team: 'a' } }),
    );
    expect(QueueUrl).toBe(`${endpoint}/000000000000/json-q`);
    const body = 'héllo\r\nworld <&> \u{1F600}';
    const sent = await sqs.send(new SqsJsonSdk.SendMessageCommand({ QueueUrl, MessageBody: body, MessageAttributes: attributes }));
    expect(sent.MD5OfMessageAttributes).toBe(md5OfMessageAttributes(attributes));
    expect(sent.$metadata.requestId).toMatch(/^[0-9a-f-]{36}$/);
    const batch = await sqs.send(
      new SqsJsonSdk.SendMessageBatchCommand({
        QueueUrl,
        Entries: [
          { Id: 'a', MessageBody: 'one' },
          { Id: 'b', MessageBody: 'two' },
        ],
      }),
    );
    expect(batch.Successful?.map((s) => s.Id).sort()).toEqual(['a', 'b']);
    const got = await sqs.send(
      new SqsJsonSdk.ReceiveMessageCommand({
        QueueUrl,
        MaxNumberOfMessages: 10,
        MessageAttributeNames: ['All'],
        MessageSystemAttributeNames: ['All'],
      }),
    );
    expect(got.Messages).toHaveLength(3);
    const first = got.Messages?.find((m) => m.MessageId === sent.MessageId);
    expect(first?.Body).toBe(body);
    expect(first?.MessageAttributes?.blob?.BinaryValue).toEqual(new Uint8Array([0, 1, 2, 255]));
    expect(first?.MessageAttributes?.count).toEqual({ DataType: 'Number.int', StringValue: '42' });
    expect(first?.Attributes?.ApproximateReceiveCount).toBe('1');
    await sqs.send(new SqsJsonSdk.DeleteMessageCommand({ QueueUrl, ReceiptHandle: first?.ReceiptHandle }));
    const deleted = await sqs.send(
      new SqsJsonSdk.DeleteMessageBatchCommand({
        QueueUrl,
        Entries: (got.Messages ?? []).filter((m) => m !== first).map((m, i) => ({ Id: `e${i}`, ReceiptHandle: m.ReceiptHandle })),
      }),
    );
    expect(deleted.Failed ?? []).toEqual([]);
    const attrs = await sqs.send(new SqsJsonSdk.GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['All'] }));
    expect(attrs.Attributes).toMatchObject({ VisibilityTimeout: '20', ApproximateNumberOfMessages: '0' });
    expect((await sqs.send(new SqsJsonSdk.ListQueueTagsCommand({ QueueUrl }))).Tags).toEqual({ team: 'a' });

    const missing = await sqs.send(new SqsJsonSdk.GetQueueUrlCommand({ QueueName: 'nope' })).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(SqsJsonSdk.QueueDoesNotExist);
    expect(missing).toMatchObject({
      name: 'QueueDoesNotExist',
      Code: 'AWS.SimpleQueueService.NonExistentQueue',
      $metadata: { httpStatusCode: 400 },
    });

    const bad = new SqsJsonSdk.SQSClient(clientConfig('wrong-secret'));
    const denied = await bad.send(new SqsJsonSdk.ListQueuesCommand({})).catch((e: unknown) => e);
    expect(denied).toMatchObject({ name: 'SignatureDoesNotMatch', $metadata: { httpStatusCode: 403 } });
  });
});

describe('client-sqs-query (@aws-sdk/client-sqs 3.445.0, Query)', () => {
  test('create, send with attributes, receive, change visibility, delete, attributes; wrong secret', async () => {
    const sqs = new SqsQuerySdk.SQSClient(clientConfig());
    const { QueueUrl } = await sqs.send(new SqsQuerySdk.CreateQueueCommand({ QueueName: 'query-q', tags: { team: 'b' } }));
    expect(QueueUrl).toBe(`${endpoint}/000000000000/query-q`);
    const body = 'tab\there & \r\n "quotes" \u{10FFFF}';
    const sent = await sqs.send(new SqsQuerySdk.SendMessageCommand({ QueueUrl, MessageBody: body, MessageAttributes: attributes }));
    expect(sent.MD5OfMessageAttributes).toBe(md5OfMessageAttributes(attributes));
    expect(sent.$metadata.requestId).toMatch(/^[0-9a-f-]{36}$/);
    const got = await sqs.send(
      new SqsQuerySdk.ReceiveMessageCommand({ QueueUrl, AttributeNames: ['All'], MessageAttributeNames: ['co.*'] }),
    );
    const message = got.Messages?.[0];
    expect(message?.Body).toBe(body);
    expect(Object.keys(message?.MessageAttributes ?? {}).sort()).toEqual(['colour', 'count']);
    expect(message?.MD5OfMessageAttributes).toBe(md5OfMessageAttributes({ colour: attributes.colour, count: attributes.count }));
    await sqs.send(
      new SqsQuerySdk.ChangeMessageVisibilityCommand({ QueueUrl, ReceiptHandle: message?.ReceiptHandle, VisibilityTimeout: 0 }),
    );
    // 3.445's types predate system attribute names in AttributeNames; `All` is what it allows.
    const again = await sqs.send(new SqsQuerySdk.ReceiveMessageCommand({ QueueUrl, AttributeNames: ['All'] }));
    expect(again.Messages?.[0]?.Attributes).toMatchObject({ ApproximateReceiveCount: '2', SenderId: CREDENTIALS.accessKeyId });
    await sqs.send(new SqsQuerySdk.DeleteMessageCommand({ QueueUrl, ReceiptHandle: again.Messages?.[0]?.ReceiptHandle }));
    const attrs = await sqs.send(
      new SqsQuerySdk.GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'QueueArn'] }),
    );
    expect(attrs.Attributes).toEqual({ ApproximateNumberOfMessages: '0', QueueArn: 'arn:aws:sqs:us-east-1:000000000000:query-q' });
    const listed = await sqs.send(new SqsQuerySdk.ListQueuesCommand({ QueueNamePrefix: 'query' }));
    expect(listed.QueueUrls).toEqual([QueueUrl]);

    const stale = await sqs
      .send(new SqsQuerySdk.DeleteMessageCommand({ QueueUrl, ReceiptHandle: 'not-a-handle' }))
      .catch((e: unknown) => e);
    expect(stale).toMatchObject({ name: 'ReceiptHandleIsInvalid' });
    const bad = new SqsQuerySdk.SQSClient(clientConfig('wrong-secret'));
    const denied = await bad.send(new SqsQuerySdk.ListQueuesCommand({})).catch((e: unknown) => e);
    expect(denied).toMatchObject({ name: 'SignatureDoesNotMatch', $metadata: { httpStatusCode: 403 } });
  });
});

describe.skipIf(!existsSync(AWS_CLI))('awscli 2.9.19 (Query)', () => {
  const aws = async (args: string[], secret: string = CREDENTIALS.secretAccessKey): Promise<unknown> => {
    const { stdout } = await run(AWS_CLI, ['--no-cli-pager', '--output', 'json', '--endpoint-url', endpoint, ...args], {
      env: {
        PATH: '/usr/bin:/bin',
        HOME: home,
        AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: secret,
        AWS_DEFAULT_REGION: 'us-east-1',
        AWS_MAX_ATTEMPTS: '1',
      },
    });
    return stdout.trim() ? JSON.parse(stdout) : {};
  };

  test('create, send with attributes, receive, delete, attributes; wrong secret', { timeout: 90_000 }, async () => {
    const created = (await aws([
      'sqs',
      'create-queue',
      '--queue-name',
      'cli-q',
      '--attributes',
      'DelaySeconds=0,VisibilityTimeout=45',
    ])) as { QueueUrl: string };
    expect(created.QueueUrl).toBe(`${endpoint}/000000000000/cli-q`);
    const url = created.QueueUrl;
    const sent = (await aws([
      'sqs',
      'send-message',
      '--queue-url',
      url,
      '--message-body',
      'a + b = c & d',
      '--message-attributes',
      '{"k":{"DataType":"String","StringValue":"v v"},"b":{"DataType":"Binary","BinaryValue":"AAEC"}}',
    ])) as Record<string, string>;
    expect(sent.MD5OfMessageBody).toBe(md5OfBody('a + b = c & d'));
    expect(sent.MD5OfMessageAttributes).toBe(
      md5OfMessageAttributes({
        k: { DataType: 'String', StringValue: 'v v' },
        b: { DataType: 'Binary', BinaryValue: new Uint8Array([0, 1, 2]) },
      }),
    );
    const got = (await aws([
      'sqs',
      'receive-message',
      '--queue-url',
      url,
      '--attribute-names',
      'All',
      '--message-attribute-names',
      'All',
    ])) as {
      Messages: { Body: string; ReceiptHandle: string; MessageAttributes: Record<string, unknown>; Attributes: Record<string, string> }[];
    };
    expect(got.Messages[0]?.Body).toBe('a + b = c & d');
    expect(got.Messages[0]?.MessageAttributes).toEqual({
      k: { DataType: 'String', StringValue: 'v v' },
      b: { DataType: 'Binary', BinaryValue: 'AAEC' },
    });
    await aws(['sqs', 'delete-message', '--queue-url', url, '--receipt-handle', got.Messages[0]?.ReceiptHandle ?? '']);
    const attrs = (await aws(['sqs', 'get-queue-attributes', '--queue-url', url, '--attribute-names', 'All'])) as {
      Attributes: Record<string, string>;
    };
    expect(attrs.Attributes).toMatchObject({ VisibilityTimeout: '45', ApproximateNumberOfMessages: '0' });

    const failure = await aws(['sqs', 'list-queues'], 'wrong-secret').catch((e: { code: number; stderr: string }) => e);
    expect(failure).toMatchObject({ code: 254 });
    expect((failure as { stderr: string }).stderr).toContain('(SignatureDoesNotMatch)');
  });
});

describe('@aws-sdk/client-sns (Query)', () => {
  test('topic, SQS subscription with raw delivery, publish, batch, tags; wrong secret', async () => {
    const sns = new SnsSdk.SNSClient(clientConfig());
    const sqs = new SqsJsonSdk.SQSClient(clientConfig());
    const { QueueUrl } = await sqs.send(new SqsJsonSdk.CreateQueueCommand({ QueueName: 'sns-target' }));
    const { TopicArn } = await sns.send(
      new SnsSdk.CreateTopicCommand({ Name: 'events', Attributes: { DisplayName: 'Events' }, Tags: [{ Key: 'env', Value: 'test' }] }),
    );
    expect(TopicArn).toBe('arn:aws:sns:us-east-1:000000000000:events');
    const sub = await sns.send(
      new SnsSdk.SubscribeCommand({
        TopicArn,
        Protocol: 'sqs',
        Endpoint: 'arn:aws:sqs:us-east-1:000000000000:sns-target',
        Attributes: { RawMessageDelivery: 'true' },
        ReturnSubscriptionArn: true,
      }),
    );
    expect(sub.SubscriptionArn).toMatch(/^arn:aws:sns:us-east-1:000000000000:events:/);
    const published = await sns.send(
      new SnsSdk.PublishCommand({
        TopicArn,
        Message: 'hello <subscribers>',
        MessageAttributes: { kind: { DataType: 'String', StringValue: 'greeting' } },
      }),
    );
    expect(published.MessageId).toBeTruthy();
    expect(published.$metadata.requestId).toMatch(/^[0-9a-f-]{36}$/);
    const batch = await sns.send(
      new SnsSdk.PublishBatchCommand({
        TopicArn,
        PublishBatchRequestEntries: [
          { Id: '1', Message: 'one' },
          { Id: '2', Message: 'two' },
        ],
      }),
    );
    expect(batch.Successful?.map((s) => s.Id)).toEqual(['1', '2']);
    const got = await sqs.send(new SqsJsonSdk.ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, MessageAttributeNames: ['All'] }));
    expect(got.Messages?.map((m) => m.Body)).toEqual(['hello <subscribers>', 'one', 'two']);
    expect(got.Messages?.[0]?.MessageAttributes).toEqual({ kind: { DataType: 'String', StringValue: 'greeting' } });
    const attrs = await sns.send(new SnsSdk.GetTopicAttributesCommand({ TopicArn }));
    expect(attrs.Attributes).toMatchObject({ DisplayName: 'Events', TopicArn });
    const subs = await sns.send(new SnsSdk.ListSubscriptionsByTopicCommand({ TopicArn }));
    expect(subs.Subscriptions?.[0]).toMatchObject({ Protocol: 'sqs', TopicArn });
    expect((await sns.send(new SnsSdk.ListTagsForResourceCommand({ ResourceArn: TopicArn }))).Tags).toEqual([
      { Key: 'env', Value: 'test' },
    ]);
    expect((await sns.send(new SnsSdk.ListTopicsCommand({}))).Topics).toEqual([{ TopicArn }]);

    const missing = await sns.send(new SnsSdk.GetTopicAttributesCommand({ TopicArn: `${TopicArn}-nope` })).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(SnsSdk.NotFoundException);
    const bad = new SnsSdk.SNSClient(clientConfig('wrong-secret'));
    const denied = await bad.send(new SnsSdk.ListTopicsCommand({})).catch((e: unknown) => e);
    expect(denied).toMatchObject({ name: 'SignatureDoesNotMatch', $metadata: { httpStatusCode: 403 } });
  });
});
