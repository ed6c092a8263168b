/**
 * The SQS/SNS API's metrics (src/messaging/metrics.ts) after real requests to the service on a real
 * `nats-server -js`: requests by action and outcome, latency histogram counts, queue depths from
 * the owners' memory, and an attacker-chosen action name that must not become a label value.
 */
import * as Sqs from '@aws-sdk/client-sqs';
import * as Sns from '@aws-sdk/client-sns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exposition, metricsRegistry } from '../../../core/metrics.js';
import { natsServerAvailable } from '../../../scripts/lib/nats-server.js';
import { actionLabel, deepest } from '../../../src/messaging/metrics.js';
import type { RunningMessagingService } from '../../../src/messaging/service.js';
import { snsQuery, sqsQuery } from './helpers.js';
import { Cleanup, sdkConfig, startNats, startService, tempDir } from './js-harness.js';

const cleanup = new Cleanup();
let service: RunningMessagingService;
let sqs: Sqs.SQSClient;
let sns: Sns.SNSClient;

beforeAll(async () => {
  if (!natsServerAvailable()) return;
  const nats = await startNats(cleanup, tempDir(cleanup));
  service = await startService(cleanup, nats.url);
  sqs = new Sqs.SQSClient(sdkConfig(service.url));
  sns = new Sns.SNSClient(sdkConfig(service.url));
}, 60_000);
afterAll(() => cleanup.run());

/** Every series of `name` now: labels (JSON) → value. */
async function series(name: string, metricName = name): Promise<Map<string, number>> {
  const base = name.replace(/_(count|sum|bucket)$/, '');
  const metric = metricsRegistry.getSingleMetric(base);
  const got = metric ? await metric.get() : { values: [] };
  return new Map(
    got.values
      .filter((v) => ((v as { metricName?: string }).metricName ?? base) === metricName)
      .map((v) => [JSON.stringify(Object.fromEntries(Object.entries(v.labels).sort())), v.value]),
  );
}

/** How much each series of `name` grew while `work` ran. */
async function growth(name: string, work: () => Promise<unknown>): Promise<Record<string, number>> {
  const before = await series(name, name);
  await work();
  const after = await series(name, name);
  const out: Record<string, number> = {};
  for (const [k, v] of after) if (v !== (before.get(k) ?? 0)) out[k] = v - (before.get(k) ?? 0);
  return out;
}

const label = (o: Record<string, string>) => JSON.stringify(Object.fromEntries(Object.entries(o).sort()));

describe.skipIf(!natsServerAvailable())('messaging metrics', () => {
  it('counts SQS requests by action and outcome, with their latency, and an error by its code', async () => {
    const { QueueUrl } = await sqs.send(new Sqs.CreateQueueCommand({ QueueName: 'metrics-a' }));
    const counted = await growth('mammatus_sqs_requests_total', async () => {
      for (const body of ['1', '2', '3']) await sqs.send(new Sqs.SendMessageCommand({ QueueUrl, MessageBody: body }));
      const got = await sqs.send(new Sqs.ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 1 }));
      await sqs.send(new Sqs.DeleteMessageCommand({ QueueUrl, ReceiptHandle: got.Messages![0].ReceiptHandle }));
      await expect(sqs.send(new Sqs.GetQueueUrlCommand({ QueueName: 'metrics-none' }))).rejects.toThrow();
    });
    expect(counted).toEqual({
      [label({ action: 'SendMessage', outcome: 'ok' })]: 3,
      [label({ action: 'ReceiveMessage', outcome: 'ok' })]: 1,
      [label({ action: 'DeleteMessage', outcome: 'ok' })]: 1,
      [label({ action: 'GetQueueUrl', outcome: 'AWS.SimpleQueueService.NonExistentQueue' })]: 1,
    });
    const timed = await growth('mammatus_sqs_request_seconds_count', () =>
      sqs.send(new Sqs.SendMessageCommand({ QueueUrl, MessageBody: 'later', DelaySeconds: 60 })),
    );
    expect(timed).toEqual({ [label({ action: 'SendMessage' })]: 1 });
  });

  it('exports the depths of the queues this controller owns: visible, inflight, delayed', async () => {
    const { QueueUrl } = await sqs.send(new Sqs.CreateQueueCommand({ QueueName: 'metrics-b' }));
    for (const body of ['1', '2', '3']) await sqs.send(new Sqs.SendMessageCommand({ QueueUrl, MessageBody: body }));
    await sqs.send(new Sqs.SendMessageCommand({ QueueUrl, MessageBody: 'later', DelaySeconds: 60 }));
    await sqs.send(new Sqs.ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 1, VisibilityTimeout: 60 }));
    const text = await exposition();
    expect(text).toContain('mammatus_sqs_queue_messages{queue="metrics-b",state="visible"} 2');
    expect(text).toContain('mammatus_sqs_queue_messages{queue="metrics-b",state="inflight"} 1');
    expect(text).toContain('mammatus_sqs_queue_messages{queue="metrics-b",state="delayed"} 1');
    // A deleted queue is no longer exported at the next scrape.
    await sqs.send(new Sqs.DeleteQueueCommand({ QueueUrl }));
    await expect.poll(async () => (await exposition()).includes('queue="metrics-b"'), { timeout: 10_000 }).toBe(false);
  });

  it('counts SNS requests the same way', async () => {
    const counted = await growth('mammatus_sns_requests_total', async () => {
      await sns.send(new Sns.CreateTopicCommand({ Name: 'metrics-t' }));
      await expect(
        sns.send(new Sns.GetTopicAttributesCommand({ TopicArn: 'arn:aws:sns:us-east-1:000000000000:metrics-none' })),
      ).rejects.toThrow();
    });
    expect(counted).toEqual({
      [label({ action: 'CreateTopic', outcome: 'ok' })]: 1,
      [label({ action: 'GetTopicAttributes', outcome: 'NotFound' })]: 1,
    });
  });

  it('an action the API does not know is counted as unknown, never by the name sent; a refused signature too', async () => {
    const evil = `Evil${Date.now()}<script>`;
    const sqsCounted = await growth('mammatus_sqs_requests_total', async () => {
      expect((await sqsQuery(service.app, { Action: evil })).statusCode).toBe(400);
      expect(
        (await sqsQuery(service.app, { Action: 'ListQueues' }, { credentials: { accessKeyId: 'AKIDNOBODY', secretAccessKey: 'x' } }))
          .statusCode,
      ).toBe(403);
    });
    expect(sqsCounted).toEqual({
      [label({ action: 'unknown', outcome: 'InvalidAction' })]: 1,
      [label({ action: 'unknown', outcome: 'InvalidClientTokenId' })]: 1,
    });
    const snsCounted = await growth('mammatus_sns_requests_total', async () => {
      expect((await snsQuery(service.app, { Action: evil })).statusCode).toBe(400);
    });
    expect(snsCounted).toEqual({ [label({ action: 'unknown', outcome: 'InvalidAction' })]: 1 });
    expect(await exposition()).not.toContain('Evil');
  });
});

describe('labels from bounded sets', () => {
  it('an action is its name when the service knows it, else unknown', () => {
    expect(actionLabel('sqs', 'SendMessage')).toBe('SendMessage');
    expect(actionLabel('sns', 'SendMessage')).toBe('unknown');
    expect(actionLabel('sns', 'Publish')).toBe('Publish');
    expect(actionLabel('sqs', 'constructor')).toBe('unknown');
    expect(actionLabel('sqs', undefined)).toBe('unknown');
  });

  it('queue depths: summed per name, the deepest first, capped', () => {
    const row = (queue: string, visible: number) => ({ queue, visible, inflight: 0, delayed: 0 });
    const rows = [row('a', 1), row('b', 5), row('c', 3), row('a', 4)];
    expect(deepest(rows, 2)).toEqual([row('a', 5), row('b', 5)]);
    expect(deepest(Array.from({ length: 5000 }, (_, i) => row(`q${i}`, i))).length).toBe(1000);
  });
});
