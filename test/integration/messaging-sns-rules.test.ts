/**
 * SNS rules a real application runs into, on the JetStream engine with `@aws-sdk/client-sns`:
 * Subscribe is idempotent also when several instances subscribe at once through two controllers,
 * and refused with other attributes; topic and queue types must fit; FIFO topics pass no group id to
 * standard queues, deduplicate per group with `FifoThroughputScope` `MessageGroup`, and give the
 * subscriber the MessageId the publisher was answered (one per stored message, the original's for a
 * duplicate); an http endpoint that is unsubscribed gets a signed UnsubscribeConfirmation whose
 * SubscribeURL restores the subscription.
 */
import * as Sns from '@aws-sdk/client-sns';
import * as Sqs from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { fifoMessageId } from '../../src/messaging/engine/sns-records.js';
import { Cleanup, sdkConfig, startNats, startService, tempDir } from '../src/messaging/js-harness.js';
import { endpoint, verifySnsSignature } from '../src/messaging/sns-endpoint.js';
import { until } from '../../scripts/lib/wait.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run());
const arn = (queue: string) => `arn:aws:sqs:us-east-1:000000000000:${queue}`;

describe.skipIf(!natsServerAvailable())('SNS rules', () => {
  let sns: Sns.SNSClient;
  let other: Sns.SNSClient;
  let sqs: Sqs.SQSClient;
  const refused = async (p: Promise<unknown>) => {
    const e = await p.catch((err: unknown) => err);
    expect(e).toMatchObject({ name: 'InvalidParameterException' });
    return (e as Error).message;
  };
  const receiveOne = (QueueUrl: string) =>
    until(
      'the expected state',
      async () =>
        (await sqs.send(new Sqs.ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 1, MessageSystemAttributeNames: ['All'] })))
          .Messages?.[0],
      { timeoutMs: 15_000, everyMs: 0 },
    );

  beforeAll(async () => {
    const nats = await startNats(cleanup, tempDir(cleanup));
    const a = await startService(cleanup, nats.url);
    const b = await startService(cleanup, nats.url);
    sns = new Sns.SNSClient(sdkConfig(a.url));
    other = new Sns.SNSClient(sdkConfig(b.url));
    sqs = new Sqs.SQSClient(sdkConfig(a.url));
  });

  test(
    'six Subscribes of one queue at once, through two controllers: one subscription, one copy per publish',
    { timeout: 30_000 },
    async () => {
      const { TopicArn } = await sns.send(new Sns.CreateTopicCommand({ Name: 'boot' }));
      const QueueUrl = (await sqs.send(new Sqs.CreateQueueCommand({ QueueName: 'boot-worker' }))).QueueUrl ?? '';
      const arns = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          (i % 2 ? other : sns).send(new Sns.SubscribeCommand({ TopicArn, Protocol: 'sqs', Endpoint: arn('boot-worker') })),
        ),
      );
      expect(new Set(arns.map((r) => r.SubscriptionArn)).size).toBe(1);
      expect((await sns.send(new Sns.ListSubscriptionsByTopicCommand({ TopicArn }))).Subscriptions).toHaveLength(1);
      await sns.send(new Sns.PublishCommand({ TopicArn, Message: 'once' }));
      const first = await receiveOne(QueueUrl);
      await sqs.send(new Sqs.DeleteMessageCommand({ QueueUrl, ReceiptHandle: first.ReceiptHandle }));
      expect((await sqs.send(new Sqs.ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 1 }))).Messages).toBeUndefined();

      // The same again answers the same ARN; other attributes are refused; after Unsubscribe a new one.
      const again = await sns.send(
        new Sns.SubscribeCommand({ TopicArn, Protocol: 'sqs', Endpoint: arn('boot-worker'), Attributes: { RawMessageDelivery: 'false' } }),
      );
      expect(again.SubscriptionArn).toBe(arns[0]?.SubscriptionArn);
      expect(
        await refused(
          sns.send(
            new Sns.SubscribeCommand({
              TopicArn,
              Protocol: 'sqs',
              Endpoint: arn('boot-worker'),
              Attributes: { FilterPolicy: '{"a":["y"]}' },
            }),
          ),
        ),
      ).toBe('Invalid parameter: Attributes Reason: Subscription already exists with different attributes');
      await sns.send(new Sns.UnsubscribeCommand({ SubscriptionArn: again.SubscriptionArn }));
      const fresh = await other.send(
        new Sns.SubscribeCommand({ TopicArn, Protocol: 'sqs', Endpoint: arn('boot-worker'), Attributes: { FilterPolicy: '{"a":["y"]}' } }),
      );
      expect(fresh.SubscriptionArn).not.toBe(again.SubscriptionArn);
    },
  );

  test('topic and endpoint types: FIFO queues only on FIFO topics, FIFO topics take SQS only', async () => {
    const { TopicArn: standard } = await sns.send(new Sns.CreateTopicCommand({ Name: 'plain' }));
    const { TopicArn: fifo } = await sns.send(new Sns.CreateTopicCommand({ Name: 'ordered.fifo', Attributes: { FifoTopic: 'true' } }));
    // A new topic has AWS's default access policy.
    const policy = JSON.parse((await sns.send(new Sns.GetTopicAttributesCommand({ TopicArn: standard }))).Attributes?.Policy ?? '{}') as {
      Id?: string;
      Statement?: { Resource?: string; Condition?: unknown }[];
    };
    expect(policy).toMatchObject({
      Id: '__default_policy_ID',
      Statement: [{ Resource: standard, Condition: { StringEquals: { 'AWS:SourceOwner': '000000000000' } } }],
    });
    await sqs.send(new Sqs.CreateQueueCommand({ QueueName: 'ordered-q.fifo', Attributes: { FifoQueue: 'true' } }));
    expect(
      await refused(sns.send(new Sns.SubscribeCommand({ TopicArn: standard, Protocol: 'sqs', Endpoint: arn('ordered-q.fifo') }))),
    ).toBe('Invalid parameter: Endpoint Reason: FIFO SQS Queues can not be subscribed to standard SNS topics');
    expect(
      await refused(sns.send(new Sns.SubscribeCommand({ TopicArn: fifo, Protocol: 'http', Endpoint: 'http://127.0.0.1:9/hook' }))),
    ).toBe('Invalid parameter: Invalid protocol type: http');
    expect(
      await refused(
        sns.send(new Sns.CreateTopicCommand({ Name: 'scoped.fifo', Attributes: { FifoTopic: 'true', FifoThroughputScope: 'Queue' } })),
      ),
    ).toBe('Invalid parameter: FifoThroughputScope must be Topic or MessageGroup');
  });

  test(
    'FIFO topic: no group id to a standard queue; MessageIds as answered, the original for a duplicate; per-group deduplication',
    { timeout: 30_000 },
    async () => {
      const { TopicArn } = await sns.send(
        new Sns.CreateTopicCommand({ Name: 'ids.fifo', Attributes: { FifoTopic: 'true', ContentBasedDeduplication: 'true' } }),
      );
      const standardUrl = (await sqs.send(new Sqs.CreateQueueCommand({ QueueName: 'ids-standard' }))).QueueUrl ?? '';
      const fifoUrl =
        (await sqs.send(new Sqs.CreateQueueCommand({ QueueName: 'ids.fifo', Attributes: { FifoQueue: 'true' } }))).QueueUrl ?? '';
      await sns.send(
        new Sns.SubscribeCommand({ TopicArn, Protocol: 'sqs', Endpoint: arn('ids-standard'), Attributes: { RawMessageDelivery: 'true' } }),
      );
      await sns.send(new Sns.SubscribeCommand({ TopicArn, Protocol: 'sqs', Endpoint: arn('ids.fifo') }));
      const first = await sns.send(new Sns.PublishCommand({ TopicArn, Message: 'tick', MessageGroupId: 'g1' }));
      const duplicate = await sns.send(new Sns.PublishCommand({ TopicArn, Message: 'tick', MessageGroupId: 'g1' }));
      const next = await sns.send(new Sns.PublishCommand({ TopicArn, Message: 'tock', MessageGroupId: 'g1' }));
      expect(duplicate).toMatchObject({ MessageId: first.MessageId, SequenceNumber: first.SequenceNumber });
      expect(next.MessageId).not.toBe(first.MessageId);
      expect(first.MessageId).toBe(fifoMessageId(TopicArn ?? '', Number(first.SequenceNumber)));

      // A standard queue keeps no order: both messages (the duplicate never), neither with a group id.
      const plain = [await receiveOne(standardUrl), await receiveOne(standardUrl)];
      expect(plain.map((m) => m.Body).sort()).toEqual(['tick', 'tock']);
      for (const m of plain) expect(m.Attributes?.MessageGroupId).toBeUndefined();
      const envelope = await receiveOne(fifoUrl);
      expect(JSON.parse(envelope.Body ?? '{}')).toMatchObject({
        MessageId: first.MessageId,
        Message: 'tick',
        SequenceNumber: first.SequenceNumber,
      });
      expect(envelope.Attributes?.MessageGroupId).toBe('g1');

      const { TopicArn: scoped } = await sns.send(
        new Sns.CreateTopicCommand({ Name: 'scoped.fifo', Attributes: { FifoTopic: 'true', FifoThroughputScope: 'MessageGroup' } }),
      );
      const p1 = await sns.send(
        new Sns.PublishCommand({ TopicArn: scoped, Message: 'a', MessageGroupId: 'g1', MessageDeduplicationId: 'same' }),
      );
      const p2 = await sns.send(
        new Sns.PublishCommand({ TopicArn: scoped, Message: 'b', MessageGroupId: 'g2', MessageDeduplicationId: 'same' }),
      );
      const p3 = await sns.send(
        new Sns.PublishCommand({ TopicArn: scoped, Message: 'c', MessageGroupId: 'g1', MessageDeduplicationId: 'same' }),
      );
      expect(p2.SequenceNumber).not.toBe(p1.SequenceNumber);
      expect(p3.SequenceNumber).toBe(p1.SequenceNumber);
    },
  );

  test(
    'Unsubscribe of an http endpoint: a signed UnsubscribeConfirmation; its SubscribeURL restores the subscription',
    { timeout: 30_000 },
    async () => {
      const hook = await endpoint(cleanup, () => 200);
      const of = (type: string) =>
        hook.hits.filter((h) => h.headers['x-amz-sns-message-type'] === type).map((h) => JSON.parse(h.body) as Record<string, string>);
      const { TopicArn } = await sns.send(new Sns.CreateTopicCommand({ Name: 'leaving' }));
      await sns.send(new Sns.SubscribeCommand({ TopicArn, Protocol: 'http', Endpoint: hook.url }));
      const [confirmation] = await until('the expected state', async () =>
        of('SubscriptionConfirmation').length > 0 ? of('SubscriptionConfirmation') : undefined,
      );
      await fetch(confirmation?.SubscribeURL ?? '');
      const SubscriptionArn = (await sns.send(new Sns.ListSubscriptionsByTopicCommand({ TopicArn }))).Subscriptions?.[0]?.SubscriptionArn;

      // The endpoint unsubscribes itself with the link every notification carries (no signature needed).
      await sns.send(new Sns.PublishCommand({ TopicArn, Message: 'last one' }));
      const [note] = await until('the expected state', async () => (of('Notification').length > 0 ? of('Notification') : undefined));
      expect((await fetch(note?.UnsubscribeURL ?? '')).status).toBe(200);
      const [bye] = await until('the expected state', async () =>
        of('UnsubscribeConfirmation').length > 0 ? of('UnsubscribeConfirmation') : undefined,
      );
      expect(bye).toMatchObject({
        Type: 'UnsubscribeConfirmation',
        TopicArn,
        Message: expect.stringContaining(`deactivate subscription ${SubscriptionArn}`),
      });
      expect(await verifySnsSignature(bye ?? {})).toBe(true);
      expect((await sns.send(new Sns.ListSubscriptionsByTopicCommand({ TopicArn }))).Subscriptions).toEqual([]);

      // Changed its mind: the SubscribeURL brings the same subscription back, confirmed.
      expect((await fetch(bye?.SubscribeURL ?? '')).status).toBe(200);
      expect((await sns.send(new Sns.ListSubscriptionsByTopicCommand({ TopicArn }))).Subscriptions?.map((x) => x.SubscriptionArn)).toEqual([
        SubscriptionArn,
      ]);
      await sns.send(new Sns.PublishCommand({ TopicArn, Message: 'welcome back' }));
      await until('the expected state', async () => (of('Notification').some((n) => n.Message === 'welcome back') ? true : undefined));
      // Visiting it again changes nothing (a confirmed subscription); a made-up token is refused.
      expect((await fetch(bye?.SubscribeURL ?? '')).status).toBe(200);
      expect((await sns.send(new Sns.ListSubscriptionsByTopicCommand({ TopicArn }))).Subscriptions).toHaveLength(1);
      expect((await fetch((bye?.SubscribeURL ?? '').replace(/Token=[0-9a-f]+/, `Token=${'0'.repeat(64)}`))).status).toBe(400);
    },
  );
});
