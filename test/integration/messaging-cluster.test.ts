/**
 * Three nats-servers in a cluster with R3 streams and buckets, two API controllers on different
 * servers: any controller serves any queue (the non-owner forwards), one server is killed and
 * sending and receiving go on, and when the owning controller stops the other takes the queue over.
 */
import * as Sqs from '@aws-sdk/client-sqs';
import { afterAll, describe, expect, test } from 'vitest';
import { natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { Cleanup, FAILOVER_LEASE, sdkConfig, startNatsCluster, startService, tempDir } from '../src/messaging/js-harness.js';
import { until } from '../../scripts/lib/wait.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run());

describe.skipIf(!natsServerAvailable())('3-server cluster, R3', () => {
  test('forwarding between controllers, a server killed, owner failover', { timeout: 120_000 }, async () => {
    const dir = tempDir(cleanup);
    const servers = await startNatsCluster(cleanup, dir);
    const urls = servers.map((s) => s.url);
    const a = await startService(cleanup, urls.join(','), { replicas: 3, ...FAILOVER_LEASE });
    const b = await startService(cleanup, [urls[1], urls[2], urls[0]].join(','), { replicas: 3, ...FAILOVER_LEASE });
    const sa = new Sqs.SQSClient(sdkConfig(a.url));
    const sb = new Sqs.SQSClient(sdkConfig(b.url));
    const QueueUrl =
      (await sa.send(new Sqs.CreateQueueCommand({ QueueName: 'ha', Attributes: { VisibilityTimeout: '2' } }))).QueueUrl ?? '';
    const urlB = QueueUrl.replace(a.url, b.url);

    // The first operation makes A the owner; B's requests are forwarded to it.
    await sa.send(new Sqs.SendMessageCommand({ QueueUrl, MessageBody: 'via-a' }));
    await sb.send(new Sqs.SendMessageCommand({ QueueUrl: urlB, MessageBody: 'via-b' }));
    expect(a.engines.router.owned).toBe(1);
    expect(b.engines.router.owned).toBe(0);
    const viaB = await sb.send(new Sqs.ReceiveMessageCommand({ QueueUrl: urlB, MaxNumberOfMessages: 10 }));
    expect(viaB.Messages?.map((m) => m.Body).sort()).toEqual(['via-a', 'via-b']);
    for (const m of viaB.Messages ?? []) await sb.send(new Sqs.DeleteMessageCommand({ QueueUrl: urlB, ReceiptHandle: m.ReceiptHandle }));

    // A forwarded long poll wakes when A receives a message.
    const polling = sb.send(new Sqs.ReceiveMessageCommand({ QueueUrl: urlB, WaitTimeSeconds: 10 }));
    await new Promise((r) => setTimeout(r, 300));
    await sa.send(new Sqs.SendMessageCommand({ QueueUrl, MessageBody: 'wake-b' }));
    const woke = (await polling).Messages?.[0];
    expect(woke?.Body).toBe('wake-b');
    await sa.send(new Sqs.DeleteMessageCommand({ QueueUrl, ReceiptHandle: woke?.ReceiptHandle }));

    // Kill the first server (A's): both controllers go on after reconnecting and re-electing.
    await (servers[0]?.kill() ?? Promise.resolve());
    const sent: string[] = [];
    for (let i = 0; i < 10; i += 1) {
      const body = `after-kill-${i}`;
      const client = i % 2 === 0 ? sa : sb;
      const target = i % 2 === 0 ? QueueUrl : urlB;
      await until(
        'the expected state',
        () =>
          client.send(new Sqs.SendMessageCommand({ QueueUrl: target, MessageBody: body })).then(
            () => true,
            () => undefined,
          ),
        { timeoutMs: 30_000, everyMs: 250 },
      );
      sent.push(body);
    }
    const got: string[] = [];
    const handles: string[] = [];
    await until(
      'the expected state',
      async () => {
        const r = await sb
          .send(new Sqs.ReceiveMessageCommand({ QueueUrl: urlB, MaxNumberOfMessages: 10, VisibilityTimeout: 600 }))
          .catch(() => ({ Messages: [] }));
        for (const m of r.Messages ?? []) {
          got.push(m.Body ?? '');
          handles.push(m.ReceiptHandle ?? '');
        }
        return got.length >= sent.length ? true : undefined;
      },
      { timeoutMs: 30_000, everyMs: 100 },
    );
    expect(got.sort()).toEqual([...sent].sort());

    // Owner A stops (leases handed back): B takes over, with the in-flight state and A's handles.
    await a.stop();
    const attrs = await sb.send(
      new Sqs.GetQueueAttributesCommand({ QueueUrl: urlB, AttributeNames: ['ApproximateNumberOfMessagesNotVisible'] }),
    );
    expect(attrs.Attributes).toEqual({ ApproximateNumberOfMessagesNotVisible: String(sent.length) });
    expect(b.engines.router.owned).toBe(1);
    for (const h of handles) await sb.send(new Sqs.DeleteMessageCommand({ QueueUrl: urlB, ReceiptHandle: h }));
    const left = await sb.send(
      new Sqs.GetQueueAttributesCommand({
        QueueUrl: urlB,
        AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
      }),
    );
    expect(left.Attributes).toEqual({ ApproximateNumberOfMessages: '0', ApproximateNumberOfMessagesNotVisible: '0' });
  });
});
