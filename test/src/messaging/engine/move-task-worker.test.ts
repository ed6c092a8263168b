/**
 * The message move worker under injected failures: a transient one (an owner changing hands, a
 * NATS timeout) is retried and the task completes with every message moved once; one the sender
 * caused ends the task FAILED at once and leaves the unsent messages visible; a transient one that
 * never clears ends it FAILED after the retry budget. The engine and the KV bucket are fakes
 * because these failures are the point: a real server does not produce them on demand.
 */
import { pino } from 'pino';
import type { KV } from '@nats-io/kv';
import { expect, test } from 'vitest';
import { sqsError } from '../../../../src/messaging/errors.js';
import * as T from '../../../../src/messaging/engine/move-task-records.js';
import { MoveTaskStore, MoveTaskWorker, type MoveEngine } from '../../../../src/messaging/engine/move-task-worker.js';
import type { ReceivedMessage } from '../../../../src/messaging/sqs-engine.js';

/** The KV calls the store makes: get and compare-and-set update. */
class FakeKv {
  readonly entries = new Map<string, { value: string; revision: number }>();
  private revision = 0;
  put(key: string, value: string): void {
    this.entries.set(key, { value, revision: ++this.revision });
  }
  async get(key: string) {
    const e = this.entries.get(key);
    return e ? { operation: 'PUT', revision: e.revision, json: <J>() => JSON.parse(e.value) as J } : null;
  }
  async update(key: string, value: string, revision: number): Promise<number> {
    if (this.entries.get(key)?.revision !== revision) throw new Error('wrong last sequence');
    this.put(key, value);
    return this.revision;
  }
}

/** A source queue of `n` messages and a destination; `fail` throws from the named call. */
class FakeEngine implements MoveEngine {
  readonly source: ReceivedMessage[];
  readonly delivered: string[] = [];
  fail: { receive?: () => Error | undefined; deliver?: () => Error | undefined } = {};
  private held = new Set<string>();
  constructor(n: number) {
    this.source = Array.from({ length: n }, (_, i) => ({
      MessageId: `id${i}`,
      ReceiptHandle: `rh${i}`,
      Body: `m${i}`,
      Attributes: {},
      MessageAttributes: {},
    }));
  }
  async receiveMessage(req: { MaxNumberOfMessages?: number }) {
    const err = this.fail.receive?.();
    if (err) throw err;
    const visible = this.source.filter((m) => !this.held.has(m.ReceiptHandle)).slice(0, req.MaxNumberOfMessages ?? 1);
    for (const m of visible) this.held.add(m.ReceiptHandle);
    return { Messages: visible };
  }
  async deliver(_queue: string, message: { MessageBody: string }) {
    const err = this.fail.deliver?.();
    if (err) throw err;
    this.delivered.push(message.MessageBody);
  }
  async deleteMessageBatch(req: { Entries: readonly { ReceiptHandle: string }[] }) {
    const gone = new Set(req.Entries.map((e) => e.ReceiptHandle));
    this.source.splice(0, this.source.length, ...this.source.filter((m) => !gone.has(m.ReceiptHandle)));
    return { Successful: [], Failed: [] };
  }
  async changeMessageVisibilityBatch(req: { Entries: readonly { ReceiptHandle: string }[] }) {
    for (const e of req.Entries) this.held.delete(e.ReceiptHandle);
    return { Successful: [], Failed: [] };
  }
  async getQueueAttributes() {
    return { Attributes: {} };
  }
}

const KEY = 'mv.q1.t1';
const task = (toMove: number): T.MoveTaskRecord => ({
  taskId: 't1',
  sourceArn: 'arn:aws:sqs:us-east-1:000000000000:dlq',
  destinationArn: 'arn:aws:sqs:us-east-1:000000000000:dest',
  maxPerSecond: 500,
  status: 'RUNNING',
  moved: 0,
  toMove,
  startedAt: 1,
  senderId: 'AKID',
  worker: 'w1',
  beatAt: Date.now(),
});

async function run(
  engine: FakeEngine,
  toMove: number,
  now: () => number = Date.now,
  stopping: () => boolean = () => false,
): Promise<T.MoveTaskRecord> {
  const kv = new FakeKv();
  kv.put(KEY, JSON.stringify(task(toMove)));
  const store = new MoveTaskStore(kv as unknown as KV);
  const worker = new MoveTaskWorker({ store, engine, logger: pino({ level: 'silent' }), instance: 'w1', now, stopping });
  await worker.run(KEY, 'dlq', false);
  const stored = await store.read(KEY);
  if (!stored) throw new Error('the task record is gone');
  return stored.record;
}

test('transient failures of receive and send are retried: the task completes, each message moved once', async () => {
  const engine = new FakeEngine(25);
  let receives = 0;
  let delivers = 0;
  engine.fail.receive = () => (++receives <= 2 ? new Error('TIMEOUT') : undefined);
  engine.fail.deliver = () => (++delivers === 7 ? new Error('no responders available') : undefined);
  const record = await run(engine, 25);
  expect(record).toMatchObject({ status: 'COMPLETED', moved: 25 });
  expect(engine.delivered.sort()).toEqual(Array.from({ length: 25 }, (_, i) => `m${i}`).sort());
  expect(engine.source).toEqual([]);
});

test('a failure the sender caused ends the task FAILED at once; the unsent messages stay in the source, visible', async () => {
  const engine = new FakeEngine(5);
  let delivers = 0;
  engine.fail.deliver = () => (++delivers === 3 ? sqsError('QueueDoesNotExist') : undefined);
  const record = await run(engine, 5);
  expect(record).toMatchObject({ status: 'FAILED', moved: 2, failureReason: 'AWS.SimpleQueueService.NonExistentQueue' });
  expect(engine.source.map((m) => m.Body)).toEqual(['m2', 'm3', 'm4']);
  expect((await engine.receiveMessage({ MaxNumberOfMessages: 10 })).Messages).toHaveLength(3);
});

test('a transient failure that never clears ends the task FAILED once the retry budget is spent', async () => {
  const engine = new FakeEngine(5);
  engine.fail.receive = () => new Error('TIMEOUT');
  // Each reading of the clock is 40 s later: the two-minute budget runs out after a few retries.
  let clock = Date.now();
  const record = await run(engine, 5, () => (clock += 40_000));
  expect(record).toMatchObject({ status: 'FAILED', moved: 0, failureReason: 'InternalFailure' });
});

test('a controller shutting down while failures are retried lets the task go at once for another to resume', async () => {
  const engine = new FakeEngine(5);
  engine.fail.receive = () => new Error('TIMEOUT');
  const since = Date.now();
  const record = await run(engine, 5, Date.now, () => Date.now() - since > 300);
  expect(record).toMatchObject({ status: 'RUNNING', beatAt: 0 });
  expect(Date.now() - since).toBeLessThan(3000);
});
