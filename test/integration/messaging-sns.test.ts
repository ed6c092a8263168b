/**
 * SNS on the JetStream engine with `@aws-sdk/client-sns`: fan-out to SQS queues with filter
 * policies (attribute and body scope) and raw delivery; http subscriptions with the confirmation
 * flow, signature checks done the way AWS's message validators do them, retries; and a publish
 * acknowledged before a restart is still delivered after it.
 */
import * as Sns from '@aws-sdk/client-sns';
import * as Sqs from '@aws-sdk/client-sqs';
import { createVerify, X509Certificate } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, test } from 'vitest';
import { natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { Cleanup, eventually, sdkConfig, startNats, startService, tempDir } from '../messaging/js-harness.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run());

/** Verifies an SNS JSON document like sns-validator / the AWS SDK validators: fixed key order, cert from SigningCertURL. */
async function verifySnsSignature(doc: Record<string, string>): Promise<boolean> {
  const keys = doc.Type === 'Notification'
    ? ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type']
    : ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'];
  const text = keys.filter((k) => doc[k] !== undefined).map((k) => `${k}\n${doc[k]}\n`).join('');
  const pem = await (await fetch(doc.SigningCertURL ?? '')).text();
  const cert = new X509Certificate(pem);
  return createVerify(doc.SignatureVersion === '2' ? 'RSA-SHA256' : 'RSA-SHA1').update(text, 'utf8').verify(cert.publicKey, doc.Signature ?? '', 'base64');
}

interface Hit {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  status?: number;
}

/** A loopback http endpoint recording POSTs; `status()` decides each answer. */
async function endpoint(status: (hit: Hit, n: number) => number): Promise<{ url: string; hits: Hit[]; server: Server }> {
  const hits: Hit[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const hit: Hit = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      hits.push(hit);
      hit.status = status(hit, hits.length);
      res.writeHead(hit.status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanup.add(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, hits, server };
}

async function receiveAll(sqs: Sqs.SQSClient, QueueUrl: string, n: number): Promise<Sqs.Message[]> {
  const out: Sqs.Message[] = [];
  await eventually(async () => {
    const r = await sqs.send(new Sqs.ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: ['All'] }));
    out.push(...(r.Messages ?? []));
    return out.length >= n ? true : undefined;
  }, 15_000, 0);
  return out;
}

describe.skipIf(!natsServerAvailable())('SNS', () => {
  test('fan-out to SQS: filter policies (attributes, body), raw delivery with attributes, signed envelopes', { timeout: 60_000 }, async () => {
    const nats = await startNats(cleanup, tempDir(cleanup));
    const svc = await startService(cleanup, nats.url);
    const sns = new Sns.SNSClient(sdkConfig(svc.url));
    const sqs = new Sqs.SQSClient(sdkConfig(svc.url));
    const { TopicArn } = await sns.send(new Sns.CreateTopicCommand({ Name: 'orders' }));
    const queue = async (name: string, attributes: Record<string, string>) => {
      const { QueueUrl } = await sqs.send(new Sqs.CreateQueueCommand({ QueueName: name }));
      await sns.send(new Sns.SubscribeCommand({ TopicArn, Protocol: 'sqs', Endpoint: `arn:aws:sqs:us-east-1:000000000000:${name}`, Attributes: attributes }));
      return QueueUrl ?? '';
    };
    const raw = await queue('raw', { RawMessageDelivery: 'true', FilterPolicy: JSON.stringify({ kind: ['greeting', { prefix: 'hi-' }], size: [{ numeric: ['>=', 10] }] }) });
    const wrapped = await queue('wrapped', {});
    const body = await queue('body', { RawMessageDelivery: 'true', FilterPolicyScope: 'MessageBody', FilterPolicy: JSON.stringify({ order: { amount: [{ numeric: ['>', 100] }] } }) });

    const attrs = { kind: { DataType: 'String', StringValue: 'greeting' }, size: { DataType: 'Number', StringValue: '12' }, blob: { DataType: 'Binary', BinaryValue: new Uint8Array([1, 2, 3]) } };
    const hello = await sns.send(new Sns.PublishCommand({ TopicArn, Message: 'hello', Subject: 'greetings', MessageAttributes: attrs }));
    await sns.send(new Sns.PublishCommand({ TopicArn, Message: 'too small', MessageAttributes: { kind: { DataType: 'String', StringValue: 'greeting' }, size: { DataType: 'Number', StringValue: '3' } } }));
    await sns.send(new Sns.PublishBatchCommand({ TopicArn, PublishBatchRequestEntries: [
      { Id: 'big', Message: JSON.stringify({ order: { amount: 150 } }) },
      { Id: 'small', Message: JSON.stringify({ order: { amount: 50 } }) },
    ] }));

    const [r] = await receiveAll(sqs, raw, 1);
    expect(r?.Body).toBe('hello');
    expect(r?.MessageAttributes).toEqual({ kind: attrs.kind, size: attrs.size, blob: attrs.blob });
    const w = await receiveAll(sqs, wrapped, 4);
    const docs = w.map((m) => JSON.parse(m.Body ?? '') as Record<string, string>);
    const doc = docs.find((d) => d.MessageId === hello.MessageId);
    expect(doc).toMatchObject({ Type: 'Notification', TopicArn, Subject: 'greetings', Message: 'hello', SignatureVersion: '1' });
    expect(doc?.MessageAttributes).toEqual({ kind: { Type: 'String', Value: 'greeting' }, size: { Type: 'Number', Value: '12' }, blob: { Type: 'Binary', Value: 'AQID' } });
    expect(await verifySnsSignature(doc ?? {})).toBe(true);
    expect(await verifySnsSignature({ ...(doc ?? {}), Message: 'tampered' })).toBe(false);
    expect(w.every((m) => m.MessageAttributes === undefined)).toBe(true);
    const [b] = await receiveAll(sqs, body, 1);
    expect(JSON.parse(b?.Body ?? '')).toEqual({ order: { amount: 150 } });
    // Nothing else passed the filters.
    for (const url of [raw, body]) expect((await sqs.send(new Sqs.ReceiveMessageCommand({ QueueUrl: url, WaitTimeSeconds: 1 }))).Messages).toBeUndefined();

    const badPolicy = await sns.send(new Sns.SubscribeCommand({ TopicArn, Protocol: 'sqs', Endpoint: 'arn:aws:sqs:us-east-1:000000000000:raw2', Attributes: { FilterPolicy: '{"a": "not a list"}' } })).catch((e: unknown) => e);
    expect(badPolicy).toMatchObject({ name: 'InvalidParameterException' });
  });

  test('http: confirmation via SubscribeURL, signatures v1 and v2, retry after a 500', { timeout: 60_000 }, async () => {
    const nats = await startNats(cleanup, tempDir(cleanup));
    const svc = await startService(cleanup, nats.url);
    const sns = new Sns.SNSClient(sdkConfig(svc.url));
    const hook = await endpoint((hit, n) => (hit.headers['x-amz-sns-message-type'] === 'Notification' && n === 2 ? 500 : 200));
    const { TopicArn } = await sns.send(new Sns.CreateTopicCommand({ Name: 'hooks' }));
    const sub = await sns.send(new Sns.SubscribeCommand({ TopicArn, Protocol: 'http', Endpoint: hook.url }));
    expect(sub.SubscriptionArn).toBe('pending confirmation');
    await eventually(async () => (hook.hits.length > 0 ? true : undefined));
    const confirmation = JSON.parse(hook.hits[0]?.body ?? '') as Record<string, string>;
    expect(confirmation).toMatchObject({ Type: 'SubscriptionConfirmation', TopicArn, SignatureVersion: '1' });
    expect(hook.hits[0]?.headers['x-amz-sns-message-type']).toBe('SubscriptionConfirmation');
    expect(await verifySnsSignature(confirmation)).toBe(true);
    expect((await sns.send(new Sns.ListSubscriptionsByTopicCommand({ TopicArn }))).Subscriptions?.[0]?.SubscriptionArn).toBe('PendingConfirmation');
    // What an endpoint does: an unauthenticated GET of SubscribeURL.
    const confirmed = await fetch(confirmation.SubscribeURL ?? '');
    expect(confirmed.status).toBe(200);
    const arn = (await sns.send(new Sns.ListSubscriptionsByTopicCommand({ TopicArn }))).Subscriptions?.[0]?.SubscriptionArn;
    expect(arn).toMatch(/^arn:aws:sns:us-east-1:000000000000:hooks:/);

    await sns.send(new Sns.SetTopicAttributesCommand({ TopicArn, AttributeName: 'SignatureVersion', AttributeValue: '2' }));
    const published = await sns.send(new Sns.PublishCommand({ TopicArn, Message: 'ping', Subject: 'test' }));
    // The first attempt gets a 500; the retry (after ~1 s) succeeds.
    await eventually(async () => (hook.hits.length >= 3 ? true : undefined), 15_000);
    const [first, second] = [hook.hits[1], hook.hits[2]];
    expect(first?.body).toBe(second?.body);
    const note = JSON.parse(second?.body ?? '') as Record<string, string>;
    expect(note).toMatchObject({ Type: 'Notification', MessageId: published.MessageId, Message: 'ping', Subject: 'test', SignatureVersion: '2' });
    expect(second?.headers).toMatchObject({ 'x-amz-sns-message-type': 'Notification', 'x-amz-sns-subscription-arn': arn, 'x-amz-sns-topic-arn': TopicArn });
    expect(await verifySnsSignature(note)).toBe(true);
    expect(note.UnsubscribeURL).toContain('Action=Unsubscribe');
  });

  test('subscription dead-letter queues: http after the retries, sqs to a deleted queue; RedrivePolicy checks', { timeout: 60_000 }, async () => {
    const nats = await startNats(cleanup, tempDir(cleanup));
    const svc = await startService(cleanup, nats.url, { sns: { http_retries: 1, http_min_delay_seconds: 0, http_max_delay_seconds: 1, http_timeout_seconds: 5 } });
    const sns = new Sns.SNSClient(sdkConfig(svc.url));
    const sqs = new Sqs.SQSClient(sdkConfig(svc.url));
    const hook = await endpoint((hit) => (hit.headers['x-amz-sns-message-type'] === 'Notification' ? 500 : 200));
    const { TopicArn } = await sns.send(new Sns.CreateTopicCommand({ Name: 'dead-letters' }));
    const dlqUrl = (await sqs.send(new Sqs.CreateQueueCommand({ QueueName: 'dlq' }))).QueueUrl ?? '';
    const dlq2Url = (await sqs.send(new Sqs.CreateQueueCommand({ QueueName: 'dlq2' }))).QueueUrl ?? '';
    const goneUrl = (await sqs.send(new Sqs.CreateQueueCommand({ QueueName: 'gone' }))).QueueUrl ?? '';
    const policy = (name: string) => JSON.stringify({ deadLetterTargetArn: `arn:aws:sqs:us-east-1:000000000000:${name}` });

    // Invalid policies, on Subscribe and on SetSubscriptionAttributes.
    const refused = async (value: string) => {
      const e = await sns.send(new Sns.SubscribeCommand({ TopicArn, Protocol: 'sqs', Endpoint: 'arn:aws:sqs:us-east-1:000000000000:gone', Attributes: { RedrivePolicy: value } })).catch((err: unknown) => err);
      expect(e).toMatchObject({ name: 'InvalidParameterException' });
      return (e as Error).message;
    };
    expect(await refused('{invalidjson}')).toBe('Invalid parameter: RedrivePolicy: failed to parse JSON.');
    expect(await refused(JSON.stringify({ deadLetterTargetArn: 'fake-arn' }))).toBe('Invalid parameter: RedrivePolicy: deadLetterTargetArn is an invalid arn');
    expect(await refused('{}')).toBe('Invalid parameter: RedrivePolicy: deadLetterTargetArn is an invalid arn');
    expect(await refused(policy('no-such-queue'))).toBe('Invalid parameter: RedrivePolicy: deadLetterTargetArn arn:aws:sqs:us-east-1:000000000000:no-such-queue does not exist');
    expect(await refused(JSON.stringify({ deadLetterTargetArn: 'arn:aws:sqs:eu-west-1:000000000000:dlq' }))).toMatch(/does not exist$/);
    expect((await sns.send(new Sns.ListSubscriptionsByTopicCommand({ TopicArn }))).Subscriptions).toEqual([]);

    // sqs subscription (raw) whose queue is deleted later.
    const { SubscriptionArn: sqsSub } = await sns.send(new Sns.SubscribeCommand({ TopicArn, Protocol: 'sqs', Endpoint: 'arn:aws:sqs:us-east-1:000000000000:gone', Attributes: { RawMessageDelivery: 'true' } }));
    const setBad = await sns.send(new Sns.SetSubscriptionAttributesCommand({ SubscriptionArn: sqsSub, AttributeName: 'RedrivePolicy', AttributeValue: policy('missing') })).catch((err: unknown) => err);
    expect(setBad).toMatchObject({ name: 'InvalidParameterException', message: 'Invalid parameter: RedrivePolicy: deadLetterTargetArn arn:aws:sqs:us-east-1:000000000000:missing does not exist' });
    await sns.send(new Sns.SetSubscriptionAttributesCommand({ SubscriptionArn: sqsSub, AttributeName: 'RedrivePolicy', AttributeValue: policy('dlq2') }));
    expect((await sns.send(new Sns.GetSubscriptionAttributesCommand({ SubscriptionArn: sqsSub }))).Attributes?.RedrivePolicy).toBe(policy('dlq2'));
    await sqs.send(new Sqs.DeleteQueueCommand({ QueueUrl: goneUrl }));

    // http subscription whose endpoint always answers 500.
    await sns.send(new Sns.SubscribeCommand({ TopicArn, Protocol: 'http', Endpoint: hook.url, Attributes: { RedrivePolicy: policy('dlq') } }));
    await eventually(async () => (hook.hits.length > 0 ? true : undefined));
    await fetch((JSON.parse(hook.hits[0]?.body ?? '') as { SubscribeURL: string }).SubscribeURL);

    const attrs = { kind: { DataType: 'String', StringValue: 'alert' }, size: { DataType: 'Number', StringValue: '7' } };
    const { MessageId } = await sns.send(new Sns.PublishCommand({ TopicArn, Message: 'undeliverable', Subject: 'oops', MessageAttributes: attrs }));

    const [dead] = await receiveAll(sqs, dlqUrl, 1);
    // One attempt and http_retries (1) retries, then the DLQ.
    expect(hook.hits.filter((h) => h.headers['x-amz-sns-message-type'] === 'Notification')).toHaveLength(2);
    expect(dead?.Body).toBe(hook.hits[1]?.body);
    const doc = JSON.parse(dead?.Body ?? '') as Record<string, string>;
    expect(doc).toMatchObject({ Type: 'Notification', MessageId, TopicArn, Subject: 'oops', Message: 'undeliverable' });
    expect(doc.MessageAttributes).toEqual({ kind: { Type: 'String', Value: 'alert' }, size: { Type: 'Number', Value: '7' } });
    expect(await verifySnsSignature(doc)).toBe(true);
    expect(dead?.MessageAttributes).toBeUndefined();

    const [raw] = await receiveAll(sqs, dlq2Url, 1);
    expect(raw?.Body).toBe('undeliverable');
    expect(raw?.MessageAttributes).toEqual(attrs);
    // Exactly one copy each.
    for (const url of [dlqUrl, dlq2Url]) expect((await sqs.send(new Sqs.ReceiveMessageCommand({ QueueUrl: url, WaitTimeSeconds: 1 }))).Messages).toBeUndefined();
  });

  test('a publish acknowledged before a restart is delivered after it', { timeout: 60_000 }, async () => {
    const nats = await startNats(cleanup, tempDir(cleanup));
    let up = false;
    const hook = await endpoint((hit) => (hit.headers['x-amz-sns-message-type'] !== 'Notification' || up ? 200 : 503));
    const first = await startService(cleanup, nats.url);
    const sns = new Sns.SNSClient(sdkConfig(first.url));
    const { TopicArn } = await sns.send(new Sns.CreateTopicCommand({ Name: 'durable' }));
    await sns.send(new Sns.SubscribeCommand({ TopicArn, Protocol: 'http', Endpoint: hook.url }));
    await eventually(async () => (hook.hits.length > 0 ? true : undefined));
    await fetch((JSON.parse(hook.hits[0]?.body ?? '') as { SubscribeURL: string }).SubscribeURL);
    const { MessageId } = await sns.send(new Sns.PublishCommand({ TopicArn, Message: 'survive' }));
    await eventually(async () => (hook.hits.length >= 2 ? true : undefined));
    expect(hook.hits[1]?.status).toBe(503);
    await first.stop();
    up = true;
    // A new controller picks the pending delivery up from the stream.
    await startService(cleanup, nats.url);
    const delivered = await eventually(async () => hook.hits.find((h) => h.status === 200 && h.headers['x-amz-sns-message-type'] === 'Notification' && h.body.includes(MessageId ?? '?')), 40_000, 200);
    expect(JSON.parse(delivered.body)).toMatchObject({ Message: 'survive', MessageId });
  });
});
