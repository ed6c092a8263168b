/**
 * SNS on the JetStream engine with `@aws-sdk/client-sns`: fan-out to SQS queues with filter
 * policies (attribute and body scope) and raw delivery; http subscriptions with the confirmation
 * flow, signature checks done the way AWS's message validators do them, retries; delivery policies
 * (retry schedule, content type, pacing); and a publish acknowledged before a restart is still
 * delivered after it.
 */
import * as Sns from '@aws-sdk/client-sns';
import * as Sqs from '@aws-sdk/client-sqs';
import { afterAll, describe, expect, test } from 'vitest';
import { natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { Cleanup, sdkConfig, startNats, startService, tempDir } from '../src/messaging/js-harness.js';
import { endpoint as startEndpoint, verifySnsSignature, type Hit } from '../src/messaging/sns-endpoint.js';
import { until } from '../../scripts/lib/wait.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run());

const endpoint = (status: (hit: Hit, n: number) => number) => startEndpoint(cleanup, status);

async function receiveAll(sqs: Sqs.SQSClient, QueueUrl: string, n: number): Promise<Sqs.Message[]> {
  const out: Sqs.Message[] = [];
  await until(
    'the expected state',
    async () => {
      const r = await sqs.send(
        new Sqs.ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: ['All'] }),
      );
      out.push(...(r.Messages ?? []));
      return out.length >= n ? true : undefined;
    },
    { timeoutMs: 15_000, everyMs: 0 },
  );
  return out;
}

describe.skipIf(!natsServerAvailable())('SNS', () => {
  test(
    'fan-out to SQS: filter policies (attributes, body), raw delivery with attributes, signed envelopes',
    { timeout: 60_000 },
    async () => {
      const nats = await startNats(cleanup, tempDir(cleanup));
      const svc = await startService(cleanup, nats.url);
      const sns = new Sns.SNSClient(sdkConfig(svc.url));
      const sqs = new Sqs.SQSClient(sdkConfig(svc.url));
      const { TopicArn } = await sns.send(new Sns.CreateTopicCommand({ Name: 'orders' }));
      const queue = async (name: string, attributes: Record<string, string>) => {
        const { QueueUrl } = await sqs.send(new Sqs.CreateQueueCommand({ QueueName: name }));
        await sns.send(
          new Sns.SubscribeCommand({
            TopicArn,
            Protocol: 'sqs',
            Endpoint: `arn:aws:sqs:us-east-1:000000000000:${name}`,
            Attributes: attributes,
          }),
        );
        return QueueUrl ?? '';
      };
      const raw = await queue('raw', {
        RawMessageDelivery: 'true',
        FilterPolicy: JSON.stringify({ kind: ['greeting', { prefix: 'hi-' }], size: [{ numeric: ['>=', 10] }] }),
      });
      const wrapped = await queue('wrapped', {});
      const body = await queue('body', {
        RawMessageDelivery: 'true',
        FilterPolicyScope: 'MessageBody',
        FilterPolicy: JSON.stringify({ order: { amount: [{ numeric: ['>', 100] }] } }),
      });

      const attrs = {
        kind: { DataType: 'String', StringValue: 'greeting' },
        size: { DataType: 'Number', StringValue: '12' },
        blob: { DataType: 'Binary', BinaryValue: new Uint8Array([1, 2, 3]) },
      };
      const hello = await sns.send(new Sns.PublishCommand({ TopicArn, Message: 'hello', Subject: 'greetings', MessageAttributes: attrs }));
      await sns.send(
        new Sns.PublishCommand({
          TopicArn,
          Message: 'too small',
          MessageAttributes: { kind: { DataType: 'String', StringValue: 'greeting' }, size: { DataType: 'Number', StringValue: '3' } },
        }),
      );
      await sns.send(
        new Sns.PublishBatchCommand({
          TopicArn,
          PublishBatchRequestEntries: [
            { Id: 'big', Message: JSON.stringify({ order: { amount: 150 } }) },
            { Id: 'small', Message: JSON.stringify({ order: { amount: 50 } }) },
          ],
        }),
      );

      const [r] = await receiveAll(sqs, raw, 1);
      expect(r?.Body).toBe('hello');
      expect(r?.MessageAttributes).toEqual({ kind: attrs.kind, size: attrs.size, blob: attrs.blob });
      const w = await receiveAll(sqs, wrapped, 4);
      const docs = w.map((m) => JSON.parse(m.Body ?? '') as Record<string, string>);
      const doc = docs.find((d) => d.MessageId === hello.MessageId);
      expect(doc).toMatchObject({ Type: 'Notification', TopicArn, Subject: 'greetings', Message: 'hello', SignatureVersion: '1' });
      expect(doc?.MessageAttributes).toEqual({
        kind: { Type: 'String', Value: 'greeting' },
        size: { Type: 'Number', Value: '12' },
        blob: { Type: 'Binary', Value: 'AQID' },
      });
      expect(await verifySnsSignature(doc ?? {})).toBe(true);
      expect(await verifySnsSignature({ ...(doc ?? {}), Message: 'tampered' })).toBe(false);
      expect(w.every((m) => m.MessageAttributes === undefined)).toBe(true);
      const [b] = await receiveAll(sqs, body, 1);
      expect(JSON.parse(b?.Body ?? '')).toEqual({ order: { amount: 150 } });
      // Nothing else passed the filters.
      for (const url of [raw, body])
        expect((await sqs.send(new Sqs.ReceiveMessageCommand({ QueueUrl: url, WaitTimeSeconds: 1 }))).Messages).toBeUndefined();

      const badPolicy = await sns
        .send(
          new Sns.SubscribeCommand({
            TopicArn,
            Protocol: 'sqs',
            Endpoint: 'arn:aws:sqs:us-east-1:000000000000:raw2',
            Attributes: { FilterPolicy: '{"a": "not a list"}' },
          }),
        )
        .catch((e: unknown) => e);
      expect(badPolicy).toMatchObject({ name: 'InvalidParameterException' });
    },
  );

  test('http: confirmation via SubscribeURL, signatures v1 and v2, retry after a 500', { timeout: 60_000 }, async () => {
    const nats = await startNats(cleanup, tempDir(cleanup));
    const svc = await startService(cleanup, nats.url);
    const sns = new Sns.SNSClient(sdkConfig(svc.url));
    const hook = await endpoint((hit, n) => (hit.headers['x-amz-sns-message-type'] === 'Notification' && n === 2 ? 500 : 200));
    const { TopicArn } = await sns.send(new Sns.CreateTopicCommand({ Name: 'hooks' }));
    const sub = await sns.send(new Sns.SubscribeCommand({ TopicArn, Protocol: 'http', Endpoint: hook.url }));
    expect(sub.SubscriptionArn).toBe('pending confirmation');
    await until('the expected state', async () => (hook.hits.length > 0 ? true : undefined));
    const confirmation = JSON.parse(hook.hits[0]?.body ?? '') as Record<string, string>;
    expect(confirmation).toMatchObject({ Type: 'SubscriptionConfirmation', TopicArn, SignatureVersion: '1' });
    expect(hook.hits[0]?.headers['x-amz-sns-message-type']).toBe('SubscriptionConfirmation');
    expect(await verifySnsSignature(confirmation)).toBe(true);
    expect((await sns.send(new Sns.ListSubscriptionsByTopicCommand({ TopicArn }))).Subscriptions?.[0]?.SubscriptionArn).toBe(
      'PendingConfirmation',
    );
    // What an endpoint does: an unauthenticated GET of SubscribeURL.
    const confirmed = await fetch(confirmation.SubscribeURL ?? '');
    expect(confirmed.status).toBe(200);
    const arn = (await sns.send(new Sns.ListSubscriptionsByTopicCommand({ TopicArn }))).Subscriptions?.[0]?.SubscriptionArn;
    expect(arn).toMatch(/^arn:aws:sns:us-east-1:000000000000:hooks:/);

    await sns.send(new Sns.SetTopicAttributesCommand({ TopicArn, AttributeName: 'SignatureVersion', AttributeValue: '2' }));
    const published = await sns.send(new Sns.PublishCommand({ TopicArn, Message: 'ping', Subject: 'test' }));
    // The first attempt gets a 500; the retry (after ~1 s) succeeds.
    await until('the expected state', async () => (hook.hits.length >= 3 ? true : undefined), 15_000);
    const [first, second] = [hook.hits[1], hook.hits[2]];
    expect(first?.body).toBe(second?.body);
    const note = JSON.parse(second?.body ?? '') as Record<string, string>;
    expect(note).toMatchObject({
      Type: 'Notification',
      MessageId: published.MessageId,
      Message: 'ping',
      Subject: 'test',
      SignatureVersion: '2',
    });
    expect(second?.headers).toMatchObject({
      'x-amz-sns-message-type': 'Notification',
      'x-amz-sns-subscription-arn': arn,
      'x-amz-sns-topic-arn': TopicArn,
    });
    expect(await verifySnsSignature(note)).toBe(true);
    expect(note.UnsubscribeURL).toContain('Action=Unsubscribe');
  });

  test(
    'subscription dead-letter queues: http after the retries, sqs to a deleted queue; RedrivePolicy checks',
    { timeout: 60_000 },
    async () => {
      const nats = await startNats(cleanup, tempDir(cleanup));
      const svc = await startService(cleanup, nats.url, {
        sns: { http_retries: 1, http_min_delay_seconds: 0, http_max_delay_seconds: 1, http_timeout_seconds: 5 },
      });
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
        const e = await sns
          .send(
            new Sns.SubscribeCommand({
              TopicArn,
              Protocol: 'sqs',
              Endpoint: 'arn:aws:sqs:us-east-1:000000000000:gone',
              Attributes: { RedrivePolicy: value },
            }),
          )
          .catch((err: unknown) => err);
        expect(e).toMatchObject({ name: 'InvalidParameterException' });
        return (e as Error).message;
      };
      expect(await refused('{invalidjson}')).toBe('Invalid parameter: RedrivePolicy: failed to parse JSON.');
      expect(await refused(JSON.stringify({ deadLetterTargetArn: 'fake-arn' }))).toBe(
        'Invalid parameter: RedrivePolicy: deadLetterTargetArn is an invalid arn',
      );
      expect(await refused('{}')).toBe('Invalid parameter: RedrivePolicy: deadLetterTargetArn is an invalid arn');
      expect(await refused(policy('no-such-queue'))).toBe(
        'Invalid parameter: RedrivePolicy: deadLetterTargetArn arn:aws:sqs:us-east-1:000000000000:no-such-queue does not exist',
      );
      expect(await refused(JSON.stringify({ deadLetterTargetArn: 'arn:aws:sqs:eu-west-1:000000000000:dlq' }))).toMatch(/does not exist$/);
      expect((await sns.send(new Sns.ListSubscriptionsByTopicCommand({ TopicArn }))).Subscriptions).toEqual([]);

      // sqs subscription (raw) whose queue is deleted later.
      const { SubscriptionArn: sqsSub } = await sns.send(
        new Sns.SubscribeCommand({
          TopicArn,
          Protocol: 'sqs',
          Endpoint: 'arn:aws:sqs:us-east-1:000000000000:gone',
          Attributes: { RawMessageDelivery: 'true' },
        }),
      );
      const setBad = await sns
        .send(
          new Sns.SetSubscriptionAttributesCommand({
            SubscriptionArn: sqsSub,
            AttributeName: 'RedrivePolicy',
            AttributeValue: policy('missing'),
          }),
        )
        .catch((err: unknown) => err);
      expect(setBad).toMatchObject({
        name: 'InvalidParameterException',
        message: 'Invalid parameter: RedrivePolicy: deadLetterTargetArn arn:aws:sqs:us-east-1:000000000000:missing does not exist',
      });
      await sns.send(
        new Sns.SetSubscriptionAttributesCommand({
          SubscriptionArn: sqsSub,
          AttributeName: 'RedrivePolicy',
          AttributeValue: policy('dlq2'),
        }),
      );
      expect((await sns.send(new Sns.GetSubscriptionAttributesCommand({ SubscriptionArn: sqsSub }))).Attributes?.RedrivePolicy).toBe(
        policy('dlq2'),
      );
      await sqs.send(new Sqs.DeleteQueueCommand({ QueueUrl: goneUrl }));

      // http subscription whose endpoint always answers 500.
      await sns.send(
        new Sns.SubscribeCommand({ TopicArn, Protocol: 'http', Endpoint: hook.url, Attributes: { RedrivePolicy: policy('dlq') } }),
      );
      await until('the expected state', async () => (hook.hits.length > 0 ? true : undefined));
      await fetch((JSON.parse(hook.hits[0]?.body ?? '') as { SubscribeURL: string }).SubscribeURL);

      const attrs = { kind: { DataType: 'String', StringValue: 'alert' }, size: { DataType: 'Number', StringValue: '7' } };
      const { MessageId } = await sns.send(
        new Sns.PublishCommand({ TopicArn, Message: 'undeliverable', Subject: 'oops', MessageAttributes: attrs }),
      );

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
      for (const url of [dlqUrl, dlq2Url])
        expect((await sqs.send(new Sqs.ReceiveMessageCommand({ QueueUrl: url, WaitTimeSeconds: 1 }))).Messages).toBeUndefined();
    },
  );

  test(
    'delivery policies: topic defaults, subscription overrides, retry schedule, content type, pacing, checks',
    { timeout: 60_000 },
    async () => {
      const nats = await startNats(cleanup, tempDir(cleanup));
      const svc = await startService(cleanup, nats.url);
      const sns = new Sns.SNSClient(sdkConfig(svc.url));
      const sqs = new Sqs.SQSClient(sdkConfig(svc.url));
      const failing = await endpoint((hit) => (hit.headers['x-amz-sns-message-type'] === 'Notification' ? 500 : 200));
      // Fails the first attempt of each message.
      const paced = await endpoint((hit, n) =>
        paced.hits.slice(0, n - 1).some((h) => h.body === hit.body) || hit.headers['x-amz-sns-message-type'] !== 'Notification' ? 200 : 500,
      );
      const confirm = async (hook: { hits: Hit[] }) => {
        await until('the expected state', async () => (hook.hits.length > 0 ? true : undefined));
        await fetch((JSON.parse(hook.hits[0]?.body ?? '') as { SubscribeURL: string }).SubscribeURL);
      };
      const refused = async (p: Promise<unknown>) => {
        const e = await p.catch((err: unknown) => err);
        expect(e).toMatchObject({ name: 'InvalidParameterException' });
        return (e as Error).message;
      };

      // Topic policy: two retries one second apart, JSON content type.
      const topicPolicy = {
        http: {
          defaultHealthyRetryPolicy: { numRetries: 2, minDelayTarget: 1, maxDelayTarget: 1 },
          defaultRequestPolicy: { headerContentType: 'application/json' },
        },
      };
      const { TopicArn } = await sns.send(
        new Sns.CreateTopicCommand({ Name: 'policies', Attributes: { DeliveryPolicy: JSON.stringify(topicPolicy) } }),
      );
      const effective = JSON.parse(
        (await sns.send(new Sns.GetTopicAttributesCommand({ TopicArn }))).Attributes?.EffectiveDeliveryPolicy ?? '{}',
      );
      expect(effective.http).toMatchObject({
        defaultHealthyRetryPolicy: { numRetries: 2, minDelayTarget: 1, maxDelayTarget: 1 },
        disableSubscriptionOverrides: false,
        defaultRequestPolicy: { headerContentType: 'application/json' },
      });
      expect(
        await refused(
          sns.send(
            new Sns.SetTopicAttributesCommand({
              TopicArn,
              AttributeName: 'DeliveryPolicy',
              AttributeValue: '{"http":{"defaultHealthyRetryPolicy":{"numRetries":500}}}',
            }),
          ),
        ),
      ).toBe('Invalid parameter: DeliveryPolicy: http.defaultHealthyRetryPolicy.numRetries must be an integer from 0 to 100');
      expect(
        await refused(
          sns.send(
            new Sns.SubscribeCommand({
              TopicArn,
              Protocol: 'sqs',
              Endpoint: 'arn:aws:sqs:us-east-1:000000000000:x',
              Attributes: { DeliveryPolicy: '{"healthyRetryPolicy":{"numRetries":1}}' },
            }),
          ),
        ),
      ).toBe('Invalid parameter: DeliveryPolicy: Delivery protocol [sqs] does not support delivery policies');

      // A failing endpoint: one attempt and the topic's two retries about 1 s apart, then the DLQ.
      const dlqUrl = (await sqs.send(new Sqs.CreateQueueCommand({ QueueName: 'policy-dlq' }))).QueueUrl ?? '';
      await sns.send(
        new Sns.SubscribeCommand({
          TopicArn,
          Protocol: 'http',
          Endpoint: failing.url,
          Attributes: { RedrivePolicy: JSON.stringify({ deadLetterTargetArn: 'arn:aws:sqs:us-east-1:000000000000:policy-dlq' }) },
        }),
      );
      await confirm(failing);
      const subArn = (await sns.send(new Sns.ListSubscriptionsByTopicCommand({ TopicArn }))).Subscriptions?.[0]?.SubscriptionArn;
      const subEffective = JSON.parse(
        (await sns.send(new Sns.GetSubscriptionAttributesCommand({ SubscriptionArn: subArn }))).Attributes?.EffectiveDeliveryPolicy ?? '{}',
      );
      expect(subEffective).toMatchObject({
        healthyRetryPolicy: { numRetries: 2 },
        throttlePolicy: null,
        requestPolicy: { headerContentType: 'application/json' },
        guaranteed: false,
      });
      expect(
        await refused(
          sns.send(
            new Sns.SetSubscriptionAttributesCommand({
              SubscriptionArn: subArn,
              AttributeName: 'DeliveryPolicy',
              AttributeValue: '{"healthyRetryPolicy":{"minDelayTarget":2,"maxDelayTarget":1}}',
            }),
          ),
        ),
      ).toBe('Invalid parameter: DeliveryPolicy: healthyRetryPolicy.minDelayTarget must not exceed maxDelayTarget');
      await sns.send(new Sns.PublishCommand({ TopicArn, Message: 'never' }));
      await receiveAll(sqs, dlqUrl, 1);
      const attempts = failing.hits.filter((h) => h.headers['x-amz-sns-message-type'] === 'Notification');
      expect(attempts).toHaveLength(3);
      expect(attempts.map((h) => h.headers['content-type'])).toEqual(['application/json', 'application/json', 'application/json']);
      for (let i = 1; i < attempts.length; i++) expect((attempts[i]?.at ?? 0) - (attempts[i - 1]?.at ?? 0)).toBeGreaterThanOrEqual(900);

      // Pacing: a subscription override of 2 deliveries per second, one retry, its own content type.
      // Six messages at once: most wait for their slot, several are postponed; a postponement must
      // not use up the retry, so each message is POSTed exactly twice (the first attempt fails).
      const { TopicArn: pacedTopic } = await sns.send(new Sns.CreateTopicCommand({ Name: 'paced' }));
      const pacing = {
        healthyRetryPolicy: { numRetries: 1, minDelayTarget: 1, maxDelayTarget: 1 },
        throttlePolicy: { maxReceivesPerSecond: 2 },
        requestPolicy: { headerContentType: 'text/plain' },
      };
      await sns.send(
        new Sns.SubscribeCommand({
          TopicArn: pacedTopic,
          Protocol: 'http',
          Endpoint: paced.url,
          Attributes: { DeliveryPolicy: JSON.stringify(pacing) },
        }),
      );
      await confirm(paced);
      await sns.send(
        new Sns.PublishBatchCommand({
          TopicArn: pacedTopic,
          PublishBatchRequestEntries: [1, 2, 3, 4, 5, 6].map((n) => ({ Id: `m${n}`, Message: `paced ${n}` })),
        }),
      );
      const notes = () => paced.hits.filter((h) => h.headers['x-amz-sns-message-type'] === 'Notification');
      await until('the expected state', async () => (notes().length >= 12 ? true : undefined), 30_000);
      await new Promise((r) => setTimeout(r, 1500));
      const messages = notes().map((h) => (JSON.parse(h.body) as { Message: string }).Message);
      expect(messages).toHaveLength(12);
      for (let n = 1; n <= 6; n++) expect(messages.filter((m) => m === `paced ${n}`)).toHaveLength(2);
      expect(notes().every((h) => h.headers['content-type'] === 'text/plain')).toBe(true);
      // 2 per second, paced where they are sent: the arrivals span at least 11 slots of 0.5 s, and
      // no two come closer than the jitter of a busy machine (sender and endpoint share this
      // process, so a stall delays one POST and brings it nearer the next) allows.
      const at = notes().map((h) => h.at);
      expect((at.at(-1) ?? 0) - (at[0] ?? 0)).toBeGreaterThanOrEqual((at.length - 1) * 500 - 250);
      for (let i = 1; i < at.length; i++) expect((at[i] ?? 0) - (at[i - 1] ?? 0)).toBeGreaterThanOrEqual(200);
    },
  );

  test(
    'FIFO topic: every subscribed FIFO queue gets the messages in publish order, also with two controllers',
    { timeout: 60_000 },
    async () => {
      const nats = await startNats(cleanup, tempDir(cleanup));
      const first = await startService(cleanup, nats.url);
      await startService(cleanup, nats.url);
      const sns = new Sns.SNSClient(sdkConfig(first.url));
      const sqs = new Sqs.SQSClient(sdkConfig(first.url));
      const { TopicArn } = await sns.send(
        new Sns.CreateTopicCommand({ Name: 'ordered.fifo', Attributes: { FifoTopic: 'true', ContentBasedDeduplication: 'true' } }),
      );
      const urls: string[] = [];
      for (const name of ['ordered-a.fifo', 'ordered-b.fifo']) {
        urls.push((await sqs.send(new Sqs.CreateQueueCommand({ QueueName: name, Attributes: { FifoQueue: 'true' } }))).QueueUrl ?? '');
        await sns.send(
          new Sns.SubscribeCommand({
            TopicArn,
            Protocol: 'sqs',
            Endpoint: `arn:aws:sqs:us-east-1:000000000000:${name}`,
            Attributes: { RawMessageDelivery: 'true' },
          }),
        );
      }
      const sent: string[] = [];
      for (let batch = 0; batch < 4; batch++) {
        const entries = Array.from({ length: 10 }, (_, i) => ({
          Id: `e${i}`,
          Message: `m${String(batch * 10 + i).padStart(2, '0')}`,
          MessageGroupId: 'g',
        }));
        await sns.send(new Sns.PublishBatchCommand({ TopicArn, PublishBatchRequestEntries: entries }));
        sent.push(...entries.map((e) => e.Message));
      }
      for (const QueueUrl of urls) {
        const got: string[] = [];
        await until(
          'the expected state',
          async () => {
            const r = await sqs.send(new Sqs.ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
            for (const m of r.Messages ?? []) {
              got.push(m.Body ?? '');
              await sqs.send(new Sqs.DeleteMessageCommand({ QueueUrl, ReceiptHandle: m.ReceiptHandle }));
            }
            return got.length >= sent.length ? true : undefined;
          },
          { timeoutMs: 30_000, everyMs: 0 },
        );
        expect(got).toEqual(sent);
      }
    },
  );

  test('a publish acknowledged before a restart is delivered after it', { timeout: 60_000 }, async () => {
    const nats = await startNats(cleanup, tempDir(cleanup));
    let up = false;
    const hook = await endpoint((hit) => (hit.headers['x-amz-sns-message-type'] !== 'Notification' || up ? 200 : 503));
    const first = await startService(cleanup, nats.url);
    const sns = new Sns.SNSClient(sdkConfig(first.url));
    const { TopicArn } = await sns.send(new Sns.CreateTopicCommand({ Name: 'durable' }));
    await sns.send(new Sns.SubscribeCommand({ TopicArn, Protocol: 'http', Endpoint: hook.url }));
    await until('the expected state', async () => (hook.hits.length > 0 ? true : undefined));
    await fetch((JSON.parse(hook.hits[0]?.body ?? '') as { SubscribeURL: string }).SubscribeURL);
    const { MessageId } = await sns.send(new Sns.PublishCommand({ TopicArn, Message: 'survive' }));
    await until('the expected state', async () => (hook.hits.length >= 2 ? true : undefined));
    expect(hook.hits[1]?.status).toBe(503);
    await first.stop();
    up = true;
    // A new controller picks the pending delivery up from the stream.
    await startService(cleanup, nats.url);
    const delivered = await until(
      'the expected state',
      async () =>
        hook.hits.find(
          (h) => h.status === 200 && h.headers['x-amz-sns-message-type'] === 'Notification' && h.body.includes(MessageId ?? '?'),
        ),
      { timeoutMs: 40_000, everyMs: 200 },
    );
    expect(JSON.parse(delivered.body)).toMatchObject({ Message: 'survive', MessageId });
  });
});
