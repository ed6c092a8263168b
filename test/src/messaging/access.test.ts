/**
 * Messaging scopes (issue 16): `allow:` on a credential, checked after the signature and before the
 * engine, answered as AWS does (SQS `AccessDenied`, SNS `AuthorizationError`, 403), with real SDK
 * clients against the wire layer on 127.0.0.1 (in-memory engine).
 */
import * as SnsSdk from '@aws-sdk/client-sns';
import * as SqsJsonSdk from '@aws-sdk/client-sqs';
import * as SqsQuerySdk from 'client-sqs-query';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { isActionPattern, needsOf } from '../../../src/messaging/access.js';
import { parseMessagingConfig } from '../../../src/messaging/config.js';
import { urlOf } from '../../../core/tls-listener.js';
import type { MessagingApp } from '../../../src/messaging/http.js';
import { buildTestApp, CREDENTIALS } from './helpers.js';

const SCOPED = { accessKeyId: 'AKIDSCOPED', secretAccessKey: 'scoped-secret-key' } as const;
const LISTER = { accessKeyId: 'AKIDLISTER', secretAccessKey: 'lister-secret-key' } as const;
const NOTHING = { accessKeyId: 'AKIDNOTHING', secretAccessKey: 'nothing-secret-key' } as const;
const ACCOUNT = '000000000000';

let app: MessagingApp;
let endpoint: string;

beforeAll(async () => {
  ({ app } = await buildTestApp({
    credentials: [
      { access_key_id: CREDENTIALS.accessKeyId, secret_access_key: CREDENTIALS.secretAccessKey },
      {
        access_key_id: SCOPED.accessKeyId,
        secret_access_key: SCOPED.secretAccessKey,
        allow: [
          { actions: ['sqs:SendMessage', 'sqs:ReceiveMessage', 'sqs:GetQueueUrl', 'sqs:CreateQueue'], resources: ['mine-*'] },
          { actions: ['sns:Publish', 'sns:Subscribe'], resources: ['news'] },
        ],
      },
      { access_key_id: LISTER.accessKeyId, secret_access_key: LISTER.secretAccessKey, allow: [{ actions: ['sqs:List*'] }] },
      { access_key_id: NOTHING.accessKeyId, secret_access_key: NOTHING.secretAccessKey, allow: [] },
    ],
  }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  endpoint = urlOf(app, 'http');
  const admin = new SqsJsonSdk.SQSClient(config(CREDENTIALS));
  for (const QueueName of ['mine-1', 'other']) await admin.send(new SqsJsonSdk.CreateQueueCommand({ QueueName }));
  const sns = new SnsSdk.SNSClient(config(CREDENTIALS));
  for (const Name of ['news', 'secret']) await sns.send(new SnsSdk.CreateTopicCommand({ Name }));
});
afterAll(() => app.close());

function config(credentials: { readonly accessKeyId: string; readonly secretAccessKey: string }) {
  return { endpoint, region: 'us-east-1', credentials, maxAttempts: 1 };
}
const url = (queue: string) => `${endpoint}/${ACCOUNT}/${queue}`;
const topic = (name: string) => `arn:aws:sns:us-east-1:${ACCOUNT}:${name}`;
const sqsDenied = (user: string, action: string, queue: string) =>
  `User: arn:aws:iam::${ACCOUNT}:user/${user} is not authorized to perform: sqs:${action} on resource: arn:aws:sqs:us-east-1:${ACCOUNT}:${queue} because no identity-based policy allows the sqs:${action} action`;

describe('SQS, JSON 1.0 client (current @aws-sdk/client-sqs)', () => {
  const sqs = () => new SqsJsonSdk.SQSClient(config(SCOPED));

  test('a scoped credential sends to its queue and is denied another', async () => {
    const sent = await sqs().send(new SqsJsonSdk.SendMessageCommand({ QueueUrl: url('mine-1'), MessageBody: 'hi' }));
    expect(sent.MessageId).toBeDefined();
    const denied = await sqs()
      .send(new SqsJsonSdk.SendMessageCommand({ QueueUrl: url('other'), MessageBody: 'hi' }))
      .catch((e: unknown) => e);
    expect(denied).toMatchObject({
      name: 'AccessDenied',
      Code: 'AccessDenied',
      message: sqsDenied(SCOPED.accessKeyId, 'sendmessage', 'other'),
      $fault: 'client',
      $metadata: { httpStatusCode: 403 },
    });
  });

  test('batches are authorised as their single action; other actions on its own queue are denied', async () => {
    const batch = await sqs().send(
      new SqsJsonSdk.SendMessageBatchCommand({ QueueUrl: url('mine-1'), Entries: [{ Id: 'a', MessageBody: 'x' }] }),
    );
    expect(batch.Successful).toHaveLength(1);
    await expect(
      sqs().send(new SqsJsonSdk.SendMessageBatchCommand({ QueueUrl: url('other'), Entries: [{ Id: 'a', MessageBody: 'x' }] })),
    ).rejects.toMatchObject({ name: 'AccessDenied', message: sqsDenied(SCOPED.accessKeyId, 'sendmessage', 'other') });
    await expect(sqs().send(new SqsJsonSdk.PurgeQueueCommand({ QueueUrl: url('mine-1') }))).rejects.toMatchObject({
      name: 'AccessDenied',
      message: sqsDenied(SCOPED.accessKeyId, 'purgequeue', 'mine-1'),
    });
  });

  test('ListQueues needs a rule on all resources; a credential with allow: [] may do nothing', async () => {
    await expect(sqs().send(new SqsJsonSdk.ListQueuesCommand({}))).rejects.toMatchObject({ name: 'AccessDenied' });
    const listed = await new SqsJsonSdk.SQSClient(config(LISTER)).send(new SqsJsonSdk.ListQueuesCommand({}));
    expect(listed.QueueUrls).toEqual([url('mine-1'), url('other')]);
    await expect(
      new SqsJsonSdk.SQSClient(config(LISTER)).send(new SqsJsonSdk.GetQueueUrlCommand({ QueueName: 'mine-1' })),
    ).rejects.toMatchObject({ name: 'AccessDenied' });
    await expect(
      new SqsJsonSdk.SQSClient(config(NOTHING)).send(new SqsJsonSdk.SendMessageCommand({ QueueUrl: url('mine-1'), MessageBody: 'x' })),
    ).rejects.toMatchObject({ name: 'AccessDenied' });
  });

  test('an unscoped credential may do everything (the default)', async () => {
    const admin = new SqsJsonSdk.SQSClient(config(CREDENTIALS));
    await admin.send(new SqsJsonSdk.SendMessageCommand({ QueueUrl: url('other'), MessageBody: 'x' }));
    await admin.send(new SqsJsonSdk.PurgeQueueCommand({ QueueUrl: url('mine-1') }));
  });

  test('a scoped credential cannot make another queue its dead-letter queue', async () => {
    const redrive = (queue: string) =>
      JSON.stringify({ deadLetterTargetArn: `arn:aws:sqs:us-east-1:${ACCOUNT}:${queue}`, maxReceiveCount: 1 });
    await expect(
      sqs().send(new SqsJsonSdk.CreateQueueCommand({ QueueName: 'mine-2', Attributes: { RedrivePolicy: redrive('other') } })),
    ).rejects.toMatchObject({ name: 'AccessDenied', message: sqsDenied(SCOPED.accessKeyId, 'sendmessage', 'other') });
    await sqs().send(new SqsJsonSdk.CreateQueueCommand({ QueueName: 'mine-dlq' }));
    await sqs().send(new SqsJsonSdk.CreateQueueCommand({ QueueName: 'mine-2', Attributes: { RedrivePolicy: redrive('mine-dlq') } }));
  });
});

describe('SQS, Query client (client-sqs 3.445)', () => {
  test('AccessDenied with the same words', async () => {
    const sqs = new SqsQuerySdk.SQSClient(config(SCOPED));
    await sqs.send(new SqsQuerySdk.SendMessageCommand({ QueueUrl: url('mine-1'), MessageBody: 'hi' }));
    const denied = await sqs
      .send(new SqsQuerySdk.SendMessageCommand({ QueueUrl: url('other'), MessageBody: 'hi' }))
      .catch((e: unknown) => e);
    expect(denied).toMatchObject({
      name: 'AccessDenied',
      Type: 'Sender',
      message: sqsDenied(SCOPED.accessKeyId, 'sendmessage', 'other'),
      $metadata: { httpStatusCode: 403 },
    });
  });
});

describe('SNS (@aws-sdk/client-sns)', () => {
  const sns = () => new SnsSdk.SNSClient(config(SCOPED));

  test('publish to its topic; AuthorizationError on another, and for queues it may not send to', async () => {
    await sns().send(new SnsSdk.PublishCommand({ TopicArn: topic('news'), Message: 'm' }));
    const denied = await sns()
      .send(new SnsSdk.PublishCommand({ TopicArn: topic('secret'), Message: 'm' }))
      .catch((e: unknown) => e);
    expect(denied).toMatchObject({
      name: 'AuthorizationErrorException',
      message: `User: arn:aws:iam::${ACCOUNT}:user/${SCOPED.accessKeyId} is not authorized to perform: SNS:Publish on resource: ${topic('secret')} because no identity-based policy allows the SNS:Publish action`,
      $metadata: { httpStatusCode: 403 },
    });
    await expect(sns().send(new SnsSdk.ListTopicsCommand({}))).rejects.toMatchObject({ name: 'AuthorizationErrorException' });
    // Subscribing a queue is sending into it.
    await expect(
      sns().send(
        new SnsSdk.SubscribeCommand({ TopicArn: topic('news'), Protocol: 'sqs', Endpoint: `arn:aws:sqs:us-east-1:${ACCOUNT}:other` }),
      ),
    ).rejects.toMatchObject({ name: 'AuthorizationErrorException', message: expect.stringContaining('sqs:sendmessage on resource') });
    await sns().send(
      new SnsSdk.SubscribeCommand({ TopicArn: topic('news'), Protocol: 'sqs', Endpoint: `arn:aws:sqs:us-east-1:${ACCOUNT}:mine-1` }),
    );
  });
});

describe('rules', () => {
  test('action patterns must name a known action', () => {
    for (const ok of ['*', 'sqs:*', 'sns:*', 'sqs:SendMessage', 'sqs:sendmessage', 'sqs:Get*', 'sns:Publish'])
      expect(isActionPattern(ok)).toBe(true);
    for (const bad of ['sqs:SendMessages', 'sqs:SendMessageBatch', 'sns:PublishBatch', 's3:*', 'sqs:', 'SendMessage', 'sqs:Nope*']) {
      expect(isActionPattern(bad)).toBe(false);
    }
  });

  test('config: allow is checked, resources default to *', () => {
    const base = { access_key_id: 'AKIDX', secret_access_key: 'xxxxxxxx' };
    expect(parseMessagingConfig({ credentials: [{ ...base, allow: [{ actions: ['sqs:*'] }] }] }).credentials[0]?.allow).toEqual([
      { actions: ['sqs:*'], resources: ['*'] },
    ]);
    expect(parseMessagingConfig({ credentials: [base] }).credentials[0]?.allow).toBeUndefined();
    expect(() => parseMessagingConfig({ credentials: [{ ...base, allow: [{ actions: ['sqs:SendMesage'] }] }] })).toThrow(
      /messaging\.credentials\[0\]\.allow\[0\]\.actions\[0\]: must be an SQS or SNS action/,
    );
    expect(() => parseMessagingConfig({ credentials: [{ ...base, allow: [{ actions: ['*'], resources: ['a/b'] }] }] })).toThrow(
      /allow\[0\]\.resources\[0\]: must be a queue or topic name/,
    );
    expect(() => parseMessagingConfig({ credentials: [{ ...base, allow: [{ resources: ['a'] }] }] })).toThrow(
      /allow\[0\]\.actions: is required/,
    );
  });

  test('what a request needs: its queue or topic, and SendMessage on queues it would write into', () => {
    const dlq = JSON.stringify({ deadLetterTargetArn: 'arn:aws:sqs:r:1:dlq' });
    expect(needsOf('sqs', 'SendMessageBatch', { QueueName: 'q', Entries: [] })).toEqual([
      { service: 'sqs', action: 'SendMessage', resource: 'q' },
    ]);
    expect(needsOf('sqs', 'ListQueues', {})).toEqual([{ service: 'sqs', action: 'ListQueues', resource: undefined }]);
    expect(needsOf('sqs', 'SetQueueAttributes', { QueueName: 'q', Attributes: { RedrivePolicy: dlq } })).toEqual([
      { service: 'sqs', action: 'SetQueueAttributes', resource: 'q' },
      { service: 'sqs', action: 'SendMessage', resource: 'dlq' },
    ]);
    expect(needsOf('sqs', 'StartMessageMoveTask', { SourceArn: 'arn:aws:sqs:r:1:src', DestinationArn: 'arn:aws:sqs:r:1:dst' })).toEqual([
      { service: 'sqs', action: 'StartMessageMoveTask', resource: 'src' },
      { service: 'sqs', action: 'SendMessage', resource: 'dst' },
    ]);
    expect(needsOf('sns', 'Unsubscribe', { SubscriptionArn: 'arn:aws:sns:r:1:t:0f0f' })).toEqual([
      { service: 'sns', action: 'Unsubscribe', resource: 't' },
    ]);
    expect(
      needsOf('sns', 'SetSubscriptionAttributes', {
        SubscriptionArn: 'arn:aws:sns:r:1:t:0f0f',
        AttributeName: 'RedrivePolicy',
        AttributeValue: dlq,
      }),
    ).toEqual([
      { service: 'sns', action: 'SetSubscriptionAttributes', resource: 't' },
      { service: 'sqs', action: 'SendMessage', resource: 'dlq' },
    ]);
  });
});
