/**
 * SQS scenarios against the JetStream engine on a real `nats-server -js`, run through three real
 * clients (JSON SDK, Query SDK 3.445, awscli 2.9.19): the same scenarios for each.
 */
import * as SqsJson from '@aws-sdk/client-sqs';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { Cleanup, sdkConfig, startNats, startService, tempDir } from '../src/messaging/js-harness.js';
import { errorCode, sqsDrivers, type SqsDriver } from '../src/messaging/sqs-drivers.js';
import { until, sleep } from '../../scripts/lib/wait.js';

const WITH_CLI = existsSync('/usr/bin/aws');
const NAMES = ['json', 'query', ...(WITH_CLI ? ['cli'] : [])];
const cleanup = new Cleanup();
let drivers: SqsDriver[] = [];
let fast: SqsJson.SQSClient;

beforeAll(async () => {
  const dir = tempDir(cleanup);
  const nats = await startNats(cleanup, dir);
  const service = await startService(cleanup, nats.url);
  drivers = sqsDrivers(service.url, tempDir(cleanup, 'mammatus-awscli-'), WITH_CLI);
  fast = new SqsJson.SQSClient(sdkConfig(service.url));
});
afterAll(() => cleanup.run());

const failure = (p: Promise<unknown>) => p.then(() => 'no error', errorCode);

describe.skipIf(!natsServerAvailable()).each(NAMES.map((n, i) => [n, i] as const))('%s', (tag, i) => {
  const d = () => drivers[i];

  test('standard: visibility expiry, redelivery count, stale and forged receipt handles', { timeout: 60_000 }, async () => {
    const url = await d().createQueue(`std-${tag}`);
    const sent = await d().send(url, 'a & <b>', { attributes: { k: { DataType: 'String', StringValue: 'v' } } });
    const [m1] = await d().receive(url, { visibility: 1 });
    expect(m1).toMatchObject({ MessageId: sent.MessageId, Body: 'a & <b>', MessageAttributes: { k: { StringValue: 'v' } } });
    expect(m1?.Attributes).toMatchObject({ ApproximateReceiveCount: '1', SenderId: 'AKIDTESTKEY' });
    await sleep(1300);
    const [m2] = await d().receive(url, { wait: 2 });
    expect(m2?.MessageId).toBe(sent.MessageId);
    expect(m2?.Attributes.ApproximateReceiveCount).toBe('2');
    expect(m2?.Attributes.ApproximateFirstReceiveTimestamp).toBe(m1?.Attributes.ApproximateFirstReceiveTimestamp);
    // The first handle is stale: delete "succeeds" without deleting, visibility changes are refused.
    await d().delete(url, m1?.ReceiptHandle ?? '');
    expect(await d().attributes(url, ['ApproximateNumberOfMessagesNotVisible'])).toEqual({ ApproximateNumberOfMessagesNotVisible: '1' });
    expect(await failure(d().changeVisibility(url, m1?.ReceiptHandle ?? '', 10))).toBe('ReceiptHandleIsInvalid');
    const forged = `${(m2?.ReceiptHandle ?? '').slice(0, -4)}AAAA`;
    expect(await failure(d().delete(url, forged))).toBe('ReceiptHandleIsInvalid');
    await d().delete(url, m2?.ReceiptHandle ?? '');
    expect(await d().attributes(url, ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'])).toEqual({
      ApproximateNumberOfMessages: '0',
      ApproximateNumberOfMessagesNotVisible: '0',
    });
    expect(await failure(d().changeVisibility(url, m2?.ReceiptHandle ?? '', 10))).toBe('MessageNotInflight');
  });

  test('FIFO: group locking, dedup by id and by content, ReceiveRequestAttemptId', { timeout: 60_000 }, async () => {
    const url = await d().createQueue(`fifo-${tag}.fifo`, { FifoQueue: 'true', ContentBasedDeduplication: 'true' });
    const a1 = await d().send(url, 'a1', { group: 'g1', dedup: 'x1' });
    const a2 = await d().send(url, 'a2', { group: 'g1', dedup: 'x2' });
    const b1 = await d().send(url, 'b1', { group: 'g2' });
    expect(await d().send(url, 'a1 again', { group: 'g1', dedup: 'x1' })).toEqual(a1);
    expect(await d().send(url, 'b1', { group: 'g2' })).toEqual(b1);
    expect(BigInt(a2.SequenceNumber ?? 0)).toBeGreaterThan(BigInt(a1.SequenceNumber ?? 0));
    const [first] = await d().receive(url, { max: 1 });
    expect(first?.Body).toBe('a1');
    expect(first?.Attributes).toMatchObject({ MessageGroupId: 'g1', MessageDeduplicationId: 'x1', SequenceNumber: a1.SequenceNumber });
    // g1 is locked while a1 is in flight: only g2's message comes.
    expect((await d().receive(url, { max: 10 })).map((m) => m.Body)).toEqual(['b1']);
    expect(await d().receive(url, { max: 10 })).toEqual([]);
    await d().delete(url, first?.ReceiptHandle ?? '');
    const [second] = await d().receive(url, { max: 10 });
    expect(second?.Body).toBe('a2');
    await d().changeVisibility(url, second?.ReceiptHandle ?? '', 0);
    const again = await d().receive(url, { max: 10, attemptId: 'attempt-1' });
    expect(again.map((m) => [m.Body, m.Attributes.ApproximateReceiveCount])).toEqual([['a2', '2']]);
    // A retried receive with the same attempt id gets the same answer, handles included.
    expect(await d().receive(url, { max: 10, attemptId: 'attempt-1' })).toEqual(again);
    expect(await d().attributes(url, ['ApproximateNumberOfMessagesNotVisible'])).toEqual({ ApproximateNumberOfMessagesNotVisible: '2' });
  });

  test('dead-letter queue after maxReceiveCount; ListDeadLetterSourceQueues', { timeout: 60_000 }, async () => {
    const dlq = await d().createQueue(`dlq-${tag}`);
    const dlqArn = (await d().attributes(dlq, ['QueueArn'])).QueueArn;
    const src = await d().createQueue(`src-${tag}`, {
      RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: '2' }),
    });
    const sent = await d().send(src, 'poison');
    expect((await d().receive(src, { visibility: 0 }))[0]?.Attributes.ApproximateReceiveCount).toBe('1');
    expect((await d().receive(src, { visibility: 0 }))[0]?.Attributes.ApproximateReceiveCount).toBe('2');
    expect(await d().receive(src, { visibility: 0 })).toEqual([]);
    const [moved] = await d().receive(dlq, { wait: 2 });
    expect(moved).toMatchObject({ MessageId: sent.MessageId, Body: 'poison' });
    expect(moved?.Attributes.DeadLetterQueueSourceArn).toBe(dlqArn?.replace(`dlq-${tag}`, `src-${tag}`));
    expect(await d().deadLetterSources(dlq)).toEqual([src]);
  });

  test('long poll wakes on send; an empty one waits it out', { timeout: 60_000 }, async () => {
    const url = await d().createQueue(`lp-${tag}`);
    const polling = d()
      .receive(url, { wait: 15 })
      .then((m) => ({ m, at: Date.now() }));
    // The CLI needs a moment to start before its poll is waiting.
    await sleep(WITH_CLI && tag === 'cli' ? 2500 : 500);
    await fast.send(new SqsJson.SendMessageCommand({ QueueUrl: url, MessageBody: 'wake' }));
    const sentAt = Date.now();
    const { m, at } = await polling;
    expect(m.map((x) => x.Body)).toEqual(['wake']);
    expect(at - sentAt).toBeLessThan(tag === 'cli' ? 3000 : 100);
    const t0 = Date.now();
    expect(await d().receive(url, { wait: 1 })).toEqual([]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
  });

  test('DelaySeconds per message and per queue', { timeout: 60_000 }, async () => {
    const url = await d().createQueue(`delay-${tag}`);
    // The AWS CLI takes a second or more per call on a busy machine: its delays are longer, so the
    // "not yet" reads still happen inside them.
    const [messageDelay, queueDelay] = tag === 'cli' ? [10, 6] : [2, 1];
    await d().send(url, 'later', { delay: messageDelay });
    expect(await d().receive(url)).toEqual([]);
    expect(await d().attributes(url, ['ApproximateNumberOfMessagesDelayed'])).toEqual({ ApproximateNumberOfMessagesDelayed: '1' });
    const t0 = Date.now();
    const got = await d().receive(url, { wait: messageDelay + 3 });
    expect(got.map((m) => m.Body)).toEqual(['later']);
    expect(Date.now() - t0).toBeGreaterThan(tag === 'cli' ? 0 : 1000);
    await d().setAttributes(url, { DelaySeconds: String(queueDelay) });
    await d().send(url, 'queue delay');
    expect(await d().receive(url)).toEqual([]);
    expect((await d().receive(url, { wait: queueDelay + 2 })).map((m) => m.Body)).toEqual(['queue delay']);
  });

  test('purge, and a second purge within 60 s', { timeout: 60_000 }, async () => {
    const url = await d().createQueue(`purge-${tag}`);
    for (const b of ['1', '2', '3']) await d().send(url, b);
    await d().receive(url);
    await d().purge(url);
    expect(await d().receive(url, { max: 10 })).toEqual([]);
    expect(await d().attributes(url, ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'])).toEqual({
      ApproximateNumberOfMessages: '0',
      ApproximateNumberOfMessagesNotVisible: '0',
    });
    expect(await failure(d().purge(url))).toBe('PurgeQueueInProgress');
  });

  test('batches with partial failures', { timeout: 60_000 }, async () => {
    const url = await d().createQueue(`batch-${tag}.fifo`, { FifoQueue: 'true', ContentBasedDeduplication: 'true' });
    const sent = await d().sendBatch(url, [
      { Id: 'ok1', MessageBody: 'one', MessageGroupId: 'g' },
      { Id: 'nogroup', MessageBody: 'two' },
      { Id: 'ok2', MessageBody: 'three', MessageGroupId: 'g' },
    ]);
    expect(sent.Successful.map((s) => s.Id)).toEqual(['ok1', 'ok2']);
    expect(sent.Failed).toEqual([{ Id: 'nogroup', Code: 'MissingParameter' }]);
    const got = await d().receive(url, { max: 10 });
    expect(got.map((m) => m.Body)).toEqual(['one', 'three']);
    const deleted = await d().deleteBatch(url, [
      { Id: 'good', ReceiptHandle: got[0]?.ReceiptHandle ?? '' },
      { Id: 'forged', ReceiptHandle: 'bm90LWEtaGFuZGxl' },
    ]);
    expect(deleted.Successful).toEqual([{ Id: 'good' }]);
    expect(deleted.Failed).toEqual([{ Id: 'forged', Code: 'ReceiptHandleIsInvalid' }]);
  });

  test('AddPermission/RemovePermission edit the Policy attribute', { timeout: 60_000 }, async () => {
    const url = await d().createQueue(`perm-${tag}`);
    const arn = (await d().attributes(url, ['QueueArn'])).QueueArn ?? '';
    const policy = async () => {
      const text = (await d().attributes(url, ['Policy'])).Policy;
      return text === undefined ? undefined : (JSON.parse(text) as { Version: string; Id: string; Statement: unknown[] });
    };
    await d().addPermission(url, 'one', ['111111111111'], ['SendMessage']);
    await d().addPermission(url, 'two_2', ['111111111111', '222222222222'], ['ReceiveMessage', 'DeleteMessage']);
    expect(await policy()).toEqual({
      Version: '2012-10-17',
      Id: `${arn}/SQSDefaultPolicy`,
      Statement: [
        { Sid: 'one', Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::111111111111:root' }, Action: 'SQS:SendMessage', Resource: arn },
        {
          Sid: 'two_2',
          Effect: 'Allow',
          Principal: { AWS: ['arn:aws:iam::111111111111:root', 'arn:aws:iam::222222222222:root'] },
          Action: ['SQS:ReceiveMessage', 'SQS:DeleteMessage'],
          Resource: arn,
        },
      ],
    });
    expect(await failure(d().addPermission(url, 'one', ['111111111111'], ['*']))).toBe('InvalidParameterValue');
    expect(await failure(d().addPermission(url, 'three', ['111111111111'], ['SetQueueAttributes']))).toBe('InvalidParameterValue');
    expect(await failure(d().addPermission(url, 'bad label!', ['111111111111'], ['*']))).toBe('InvalidParameterValue');
    expect(
      await failure(
        d().addPermission(
          url,
          'eight',
          ['111111111111'],
          [
            'SendMessage',
            'ReceiveMessage',
            'DeleteMessage',
            'ChangeMessageVisibility',
            'GetQueueAttributes',
            'GetQueueUrl',
            'PurgeQueue',
            'ListDeadLetterSourceQueues',
          ],
        ),
      ),
    ).toBe('OverLimit');
    await d().removePermission(url, 'one');
    expect((await policy())?.Statement).toEqual([expect.objectContaining({ Sid: 'two_2' })]);
    expect(await failure(d().removePermission(url, 'one'))).toBe('InvalidParameterValue');
    await d().removePermission(url, 'two_2');
    expect(await policy()).toBeUndefined();
    expect(await d().attributes(url)).not.toHaveProperty('Policy');
    expect(await failure(d().removePermission(url, 'two_2'))).toBe('InvalidParameterValue');
  });

  test('concurrent AddPermissions keep every statement', { timeout: 60_000 }, async () => {
    const url = await d().createQueue(`perm-race-${tag}`);
    const labels = Array.from({ length: tag === 'cli' ? 3 : 8 }, (_, n) => `race${n}`);
    await Promise.all(labels.map((l) => d().addPermission(url, l, ['111111111111'], ['SendMessage'])));
    const text = (await d().attributes(url, ['Policy'])).Policy ?? '{}';
    const sids = (JSON.parse(text) as { Statement: { Sid: string }[] }).Statement.map((st) => st.Sid);
    expect(sids.sort()).toEqual(labels.sort());
  });

  test('DLQ redrive: StartMessageMoveTask, ListMessageMoveTasks, CancelMessageMoveTask', { timeout: 90_000 }, async () => {
    const dlq = await d().createQueue(`redrive-dlq-${tag}`);
    const dlqArn = (await d().attributes(dlq, ['QueueArn'])).QueueArn ?? '';
    const arnOf = (name: string) => dlqArn.replace(`redrive-dlq-${tag}`, name);
    const src = await d().createQueue(`redrive-src-${tag}`, {
      RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: '1' }),
    });
    const dest = await d().createQueue(`redrive-dest-${tag}`);
    const count = async (url: string) => Number((await d().attributes(url, ['ApproximateNumberOfMessages'])).ApproximateNumberOfMessages);
    // A second receive of each message (maxReceiveCount 1) moves it to the DLQ.
    const deadLetterAll = async () => {
      expect((await d().receive(src, { max: 10, visibility: 0 })).length).toBe(8);
      expect(await d().receive(src, { max: 10, visibility: 0 })).toEqual([]);
      expect(await count(dlq)).toBe(8);
    };

    expect(await failure(d().startMoveTask(arnOf(`redrive-src-${tag}`)))).toBe('InvalidParameterValue');
    expect(await failure(d().startMoveTask(arnOf(`redrive-none-${tag}`)))).toBe('ResourceNotFoundException');
    expect(await failure(d().startMoveTask(dlqArn, { destinationArn: arnOf(`redrive-none-${tag}`) }))).toBe('ResourceNotFoundException');
    expect(await failure(d().listMoveTasks(arnOf(`redrive-none-${tag}`)))).toBe('ResourceNotFoundException');
    expect(await failure(d().cancelMoveTask('not a handle'))).toBe('InvalidParameterValue');
    const forged = Buffer.from(JSON.stringify({ taskId: 'f0f0f0f0-0000-4000-8000-000000000000', sourceArn: dlqArn })).toString('base64');
    expect(await failure(d().cancelMoveTask(forged))).toBe('ResourceNotFoundException');
    expect(await d().listMoveTasks(dlqArn)).toEqual([]);

    const bodies = Array.from({ length: 8 }, (_, n) => `m${n}`);
    const sent = new Set<string>();
    for (const b of bodies)
      sent.add((await d().send(src, b, { attributes: { k: { DataType: 'String', StringValue: `v-${b}` } } })).MessageId);
    await deadLetterAll();

    // Without a destination each message goes back to the queue it came from, as a new message.
    const back = await d().startMoveTask(dlqArn);
    const [done] = await until(
      'the expected state',
      async () => {
        const tasks = await d().listMoveTasks(dlqArn);
        return tasks[0]?.Status === 'COMPLETED' ? tasks : undefined;
      },
      { timeoutMs: 15_000, everyMs: 250 },
    );
    expect(done).toEqual({
      Status: 'COMPLETED',
      SourceArn: dlqArn,
      ApproximateNumberOfMessagesMoved: 8,
      ApproximateNumberOfMessagesToMove: 8,
      StartedTimestamp: expect.any(Number),
    });
    expect(Math.abs((done?.StartedTimestamp ?? 0) - Date.now())).toBeLessThan(60_000);
    expect(await count(dlq)).toBe(0);
    const redriven = await d().receive(src, { max: 10, visibility: 0 });
    expect(redriven.map((m) => m.Body).sort()).toEqual(bodies);
    for (const m of redriven) {
      expect(m.MessageAttributes.k).toMatchObject({ DataType: 'String', StringValue: `v-${m.Body}` });
      expect(m.Attributes.ApproximateReceiveCount).toBe('1');
      expect(m.Attributes).not.toHaveProperty('DeadLetterQueueSourceArn');
      expect(sent.has(m.MessageId)).toBe(false);
    }
    expect(await failure(d().cancelMoveTask(back))).toBe('UnsupportedOperation');

    // A slow task to another queue: a second one is refused while it runs; then it is cancelled.
    expect(await d().receive(src, { max: 10, visibility: 0 })).toEqual([]);
    expect(await count(dlq)).toBe(8);
    const destArn = arnOf(`redrive-dest-${tag}`);
    const slow = await d().startMoveTask(dlqArn, { destinationArn: destArn, rate: 1 });
    expect(await failure(d().startMoveTask(dlqArn))).toBe('InvalidParameterValue');
    const [running] = await d().listMoveTasks(dlqArn);
    expect(running).toMatchObject({
      TaskHandle: slow,
      Status: 'RUNNING',
      DestinationArn: destArn,
      MaxNumberOfMessagesPerSecond: 1,
      ApproximateNumberOfMessagesToMove: 8,
    });
    const movedAtCancel = await d().cancelMoveTask(slow);
    expect(movedAtCancel).toBeLessThan(8);
    const [cancelled, completed] = await until(
      'the expected state',
      async () => {
        const tasks = await d().listMoveTasks(dlqArn, 10);
        return tasks[0]?.Status === 'CANCELLED' ? tasks : undefined;
      },
      { timeoutMs: 10_000, everyMs: 250 },
    );
    expect(cancelled).not.toHaveProperty('TaskHandle');
    expect(completed).toMatchObject({ Status: 'COMPLETED', ApproximateNumberOfMessagesMoved: 8 });
    const movedBeforeStop = cancelled?.ApproximateNumberOfMessagesMoved ?? -1;
    expect(movedBeforeStop).toBeLessThan(8);
    // Nothing moves after the cancel: what was moved is in the destination, the rest stayed.
    await sleep(1500);
    expect(await count(dest)).toBe(movedBeforeStop);
    expect(await count(dlq)).toBe(8 - movedBeforeStop);
    expect(await d().listMoveTasks(dlqArn)).toHaveLength(1);
  });

  test('a 1 MiB message; one byte more is refused', { timeout: 60_000 }, async () => {
    const url = await d().createQueue(`big-${tag}`);
    const body = 'x'.repeat(1024 * 1024 - 7) + 'the end';
    await d().send(url, body);
    const [m] = await d().receive(url);
    expect(m?.Body.length).toBe(body.length);
    expect(m?.Body === body).toBe(true);
    expect(await failure(d().send(url, `${body}!`))).toBe('InvalidParameterValue');
  });
});
