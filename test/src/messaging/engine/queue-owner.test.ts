/**
 * The queue owner over a fake log that can fail on demand: every JetStream failure the owner
 * handles leaves the queue as clients were told (nothing delivered that was not recorded, nothing
 * lost that was not deleted).
 */
import { pino } from 'pino';
import { afterEach, expect, test, vi } from 'vitest';
import type { SeqState, StoredFields, StoredPayload } from '../../../../src/messaging/engine/codec.js';
import type { QueueLog } from '../../../../src/messaging/engine/queue-log.js';
import { QueueOwner, type AppendRequest, type OwnerDeps } from '../../../../src/messaging/engine/queue-owner.js';
import type { QueueRecord } from '../../../../src/messaging/engine/catalog.js';
import type { RequestContext } from '../../../../src/messaging/sqs-engine.js';

class FakeLog {
  seq = 0;
  readonly messages = new Map<number, { fields: StoredFields; payload: StoredPayload }>();
  /** State records by record sequence, as the state stream holds them. */
  readonly records = new Map<number, SeqState[]>();
  recordSeq = 0;
  fail: Partial<Record<'append' | 'saveState' | 'remove' | 'read' | 'purge', boolean>> = {};
  /** Nats-Msg-Id → sequence, as JetStream's duplicate window holds them. */
  readonly ids = new Map<string, number>();
  async append(fields: StoredFields, payload: StoredPayload, msgId?: string) {
    if (this.fail.append) throw new Error('injected: append');
    const known = msgId === undefined ? undefined : this.ids.get(msgId);
    if (known !== undefined) return { seq: known, duplicate: true };
    this.messages.set(++this.seq, { fields, payload });
    if (msgId !== undefined) this.ids.set(msgId, this.seq);
    return { seq: this.seq, duplicate: false };
  }
  async read(seq: number) {
    if (this.fail.read) throw new Error('injected: read');
    return this.messages.get(seq);
  }
  async saveStates(states: SeqState[]) {
    if (this.fail.saveState) throw new Error('injected: saveState');
    this.records.set(++this.recordSeq, states);
    return this.recordSeq;
  }
  async dropStates(seqs: number[]) {
    for (const s of seqs) this.records.delete(s);
  }
  async remove(seq: number) {
    if (this.fail.remove) throw new Error('injected: remove');
    this.messages.delete(seq);
  }
  async purgeFenced(term: { messageSeq: number; stateSeq: number }) {
    if (this.fail.purge) throw new Error('injected: purge');
    this.messages.clear();
    return term;
  }
  async beginTerm() {
    return { messageSeq: 1, stateSeq: 1 };
  }
  async rebuild() {
    return { states: [], records: new Map<number, number[]>() };
  }
}

const attributes = { VisibilityTimeout: '30', ReceiveMessageWaitTimeSeconds: '0', MessageRetentionPeriod: '60', DelaySeconds: '0' };
const ctx: RequestContext = {
  requestId: 'r',
  accountId: '000000000000',
  region: 'us-east-1',
  authenticated: true,
  signal: new AbortController().signal,
};
const append = (body: string): AppendRequest => ({
  fields: { sentAt: Date.now(), delaySeconds: 0, senderId: 'me' },
  payload: { body, attributes: {} },
});

async function owner(
  over: Record<string, string> = {},
  appendTo: OwnerDeps['appendTo'] = async () => [{ ok: { MessageId: 'x' } }],
  now?: () => number,
) {
  const log = new FakeLog();
  const record: QueueRecord = { id: 'q1', name: 'q', attributes: { ...attributes, ...over }, tags: {}, createdAt: 0, modifiedAt: 0 };
  const o = await QueueOwner.start(record, {
    log: log as unknown as QueueLog,
    record: async () => record,
    keys: [Buffer.alloc(32, 1)],
    appendTo,
    logger: pino({ level: 'silent' }),
    ...(now ? { now } : {}),
  });
  return { o, log };
}

test('a failed state write fails the receive and leaves the message visible', async () => {
  const { o, log } = await owner();
  await o.append([append('a')]);
  log.fail.saveState = true;
  await expect(o.receive({ QueueName: 'q', AttributeNames: [], MessageAttributeNames: [] }, ctx, ctx.signal)).rejects.toThrow(/saveState/);
  log.fail.saveState = false;
  const [m] = await o.receive({ QueueName: 'q', AttributeNames: [], MessageAttributeNames: [] }, ctx, ctx.signal);
  expect(m?.Body).toBe('a');
  o.stop();
});

test('a failed append is reported per entry and stores nothing', async () => {
  const { o, log } = await owner();
  log.fail.append = true;
  const [out] = await o.append([append('a')]);
  expect(out && 'error' in out).toBe(true);
  expect(o.counts()).toEqual({ visible: 0, notVisible: 0, delayed: 0 });
  o.stop();
});

test('a failed delete keeps the message in flight; the retry deletes it', async () => {
  const { o, log } = await owner();
  await o.append([append('a')]);
  const [m] = await o.receive({ QueueName: 'q', AttributeNames: [], MessageAttributeNames: [] }, ctx, ctx.signal);
  log.fail.remove = true;
  const [failed] = await o.delete([m?.ReceiptHandle ?? '']);
  expect(failed && 'error' in failed).toBe(true);
  expect(o.counts().notVisible).toBe(1);
  log.fail.remove = false;
  expect(await o.delete([m?.ReceiptHandle ?? ''])).toEqual([{ ok: true }]);
  expect(o.counts().notVisible).toBe(0);
  o.stop();
});

test('a failed dead-letter move keeps the message in the source queue', async () => {
  const policy = JSON.stringify({ deadLetterTargetArn: 'arn:aws:sqs:us-east-1:000000000000:dlq', maxReceiveCount: 1 });
  let clock = Date.now() + 1000; // after the send times the helper stamps
  const { o } = await owner(
    { RedrivePolicy: policy },
    async () => [{ error: new Error('injected: dlq down') }],
    () => clock,
  );
  await o.append([append('poison')]);
  const req = { QueueName: 'q', AttributeNames: [], MessageAttributeNames: [], VisibilityTimeout: 0 };
  expect((await o.receive(req, ctx, ctx.signal)).length).toBe(1);
  expect(await o.receive(req, ctx, ctx.signal)).toEqual([]);
  // The failed move (in the background) puts the message back, visible a second later.
  await vi.waitFor(() => expect(o.counts()).toMatchObject({ visible: 0, notVisible: 1 }), { timeout: 1000, interval: 5 });
  clock += 1100;
  expect(o.counts().visible).toBe(1);
  o.stop();
});

test('a long poll wakes on append and stops on abort', async () => {
  const { o } = await owner();
  const t0 = Date.now();
  const polling = o.receive({ QueueName: 'q', AttributeNames: [], MessageAttributeNames: [], WaitTimeSeconds: 5 }, ctx, ctx.signal);
  setTimeout(() => {
    o.append([append('wake')]).catch(() => undefined);
  }, 50);
  expect((await polling).map((m) => m.Body)).toEqual(['wake']);
  expect(Date.now() - t0).toBeLessThan(1000);
  const abort = new AbortController();
  const waiting = o.receive({ QueueName: 'q', AttributeNames: [], MessageAttributeNames: [], WaitTimeSeconds: 5 }, ctx, abort.signal);
  setTimeout(() => abort.abort(), 50);
  expect(await waiting).toEqual([]);
  expect(Date.now() - t0).toBeLessThan(2000);
  o.stop();
});

test('retention: the sweep deletes messages older than MessageRetentionPeriod, in flight or not', async () => {
  let clock = 1_000_000;
  const { o, log } = await owner({}, undefined, () => clock);
  await o.append([{ ...append('old'), fields: { sentAt: clock, delaySeconds: 0, senderId: 'me' } }]);
  await o.receive({ QueueName: 'q', AttributeNames: [], MessageAttributeNames: [] }, ctx, ctx.signal);
  clock += 30_000;
  await o.append([{ ...append('young'), fields: { sentAt: clock, delaySeconds: 0, senderId: 'me' } }]);
  clock += 31_000;
  expect(await o.sweep()).toBe(1);
  expect([...log.messages.values()].map((m) => m.payload.body)).toEqual(['young']);
  expect(o.counts()).toEqual({ visible: 1, notVisible: 0, delayed: 0 });
  o.stop();
});

// Dead state records are deleted 100 ms after they die, on a timer: the tests pass that time.
afterEach(() => void vi.useRealTimers());
const flushed = () => vi.advanceTimersByTimeAsync(150);

test('a receive batch is one state record; it is deleted once every message in it is deleted', async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  const { o, log } = await owner();
  await o.append(['a', 'b', 'c'].map(append));
  const got = await o.receive({ QueueName: 'q', AttributeNames: [], MessageAttributeNames: [], MaxNumberOfMessages: 10 }, ctx, ctx.signal);
  expect(got.length).toBe(3);
  expect([...log.records.values()].map((r) => r.map((s) => s.seq).sort())).toEqual([[1, 2, 3]]);
  await o.delete([got[0]?.ReceiptHandle ?? '', got[1]?.ReceiptHandle ?? '']);
  await flushed();
  expect(log.records.size).toBe(1);
  await o.delete([got[2]?.ReceiptHandle ?? '']);
  await flushed();
  expect(log.records.size).toBe(0);
  o.stop();
});

test('a record superseded by a later one for all its messages is deleted; a visibility batch is one record', async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  const { o, log } = await owner();
  await o.append(['a', 'b'].map(append));
  const got = await o.receive({ QueueName: 'q', AttributeNames: [], MessageAttributeNames: [], MaxNumberOfMessages: 10 }, ctx, ctx.signal);
  const out = await o.changeVisibility(got.map((m) => ({ handle: m.ReceiptHandle, seconds: 100 })));
  expect(out).toEqual([{ ok: true }, { ok: true }]);
  await flushed();
  expect([...log.records.keys()]).toEqual([2]);
  expect(log.records.get(2)?.map((s) => s.visibleAt > Date.now() + 90_000)).toEqual([true, true]);
  o.stop();
});

test('a failed visibility batch changes nothing and reports every entry (a message named twice gets its first visibility back)', async () => {
  let clock = 1_000_000;
  const { o, log } = await owner({}, undefined, () => clock);
  await o.append([{ ...append('a'), fields: { sentAt: clock, delaySeconds: 0, senderId: 'me' } }]);
  const [m] = await o.receive({ QueueName: 'q', AttributeNames: [], MessageAttributeNames: [] }, ctx, ctx.signal);
  log.fail.saveState = true;
  const h = m?.ReceiptHandle ?? '';
  const out = await o.changeVisibility([
    { handle: h, seconds: 600 },
    { handle: h, seconds: 900 },
    { handle: 'garbage', seconds: 0 },
  ]);
  expect(out.every((r) => 'error' in r)).toBe(true);
  expect(o.counts()).toEqual({ visible: 0, notVisible: 1, delayed: 0 });
  // Back at the 30 s it was received with: neither entry's 600 or 900 s (left in place, or
  // restored front to back) holds it any longer.
  clock += 31_000;
  expect(o.counts()).toEqual({ visible: 1, notVisible: 0, delayed: 0 });
  o.stop();
});

test('at the in-flight quota a standard queue answers OverLimit, a FIFO queue delivers nothing more; a delete frees a place', async () => {
  const start = async (over: Record<string, string>) => {
    const log = new FakeLog();
    const record: QueueRecord = { id: 'q1', name: 'q', attributes: { ...attributes, ...over }, tags: {}, createdAt: 0, modifiedAt: 0 };
    return QueueOwner.start(record, {
      log: log as unknown as QueueLog,
      record: async () => record,
      keys: [Buffer.alloc(32, 1)],
      appendTo: async () => [],
      logger: pino({ level: 'silent' }),
      maxInFlight: 2,
    });
  };
  const req = (max: number) => ({ QueueName: 'q', AttributeNames: [], MessageAttributeNames: [], MaxNumberOfMessages: max });
  const standard = await start({});
  await standard.append([append('a'), append('b'), append('c')]);
  const taken = await standard.receive(req(2), ctx, ctx.signal);
  expect(taken).toHaveLength(2);
  await expect(standard.receive(req(1), ctx, ctx.signal)).rejects.toMatchObject({ code: 'OverLimit' });
  await standard.delete([taken[0]?.ReceiptHandle ?? '']);
  expect((await standard.receive(req(1), ctx, ctx.signal)).map((m) => m.Body)).toEqual(['c']);
  standard.stop();

  const fifo = await start({ FifoQueue: 'true' });
  const grouped = (body: string, group: string): AppendRequest => ({
    ...append(body),
    fields: { ...append(body).fields, group, dedupId: body },
    msgId: body,
  });
  await fifo.append([grouped('x1', 'x'), grouped('y1', 'y'), grouped('z1', 'z')]);
  expect(await fifo.receive(req(1), ctx, ctx.signal)).toHaveLength(1);
  expect(await fifo.receive(req(1), ctx, ctx.signal)).toHaveLength(1);
  expect(await fifo.receive(req(1), ctx, ctx.signal)).toEqual([]);
  fifo.stop();
});

test('a dead-letter move keeps the enqueue time of a standard queue message and resets a FIFO one (AWS retention rule)', async () => {
  let clock = 1_000_000;
  const policy = JSON.stringify({ deadLetterTargetArn: 'arn:aws:sqs:us-east-1:000000000000:dlq', maxReceiveCount: 1 });
  const moved: AppendRequest[] = [];
  const appendTo: OwnerDeps['appendTo'] = async (_name, entries) => {
    moved.push(...entries);
    return entries.map(() => ({ ok: { MessageId: 'x' } }));
  };
  const req = { QueueName: 'q', AttributeNames: [], MessageAttributeNames: [], VisibilityTimeout: 0 };
  for (const fifo of [false, true]) {
    const { o } = await owner(fifo ? { RedrivePolicy: policy, FifoQueue: 'true' } : { RedrivePolicy: policy }, appendTo, () => clock);
    const sentAt = clock;
    await o.append([
      { ...append('poison'), fields: { sentAt, delaySeconds: 0, senderId: 'me', ...(fifo ? { group: 'g', dedupId: 'd' } : {}) } },
    ]);
    expect(await o.receive(req, ctx, ctx.signal)).toHaveLength(1);
    clock += 60_000;
    expect(await o.receive(req, ctx, ctx.signal)).toEqual([]);
    expect(moved.at(-1)?.fields.sentAt).toBe(fifo ? clock : sentAt);
    o.stop();
  }
});

test("a duplicate whose original this owner does not know (an old owner's late write) is adopted and delivered now; a consumed one stays gone", async () => {
  const { o, log } = await owner();
  // What an old owner's append that landed after this owner's rebuild leaves: stored, unknown.
  await log.append({ sentAt: Date.now(), visibleAt: Date.now(), senderId: 'me' }, { body: 'orphan', attributes: {} }, 'k1');
  expect(o.counts().visible).toBe(0);
  // The client's retry, with the same idempotency key, reaches this owner.
  const [retry] = await o.append([{ ...append('orphan'), msgId: 'k1' }]);
  expect(retry).toMatchObject({ ok: {} });
  const req = { QueueName: 'q', AttributeNames: [], MessageAttributeNames: [] };
  const [m] = await o.receive(req, ctx, ctx.signal);
  expect(m?.Body).toBe('orphan');
  await o.delete([m?.ReceiptHandle ?? '']);
  // Retried again after the message was consumed: nothing comes back.
  await o.append([{ ...append('orphan'), msgId: 'k1' }]);
  expect(await o.receive(req, ctx, ctx.signal)).toEqual([]);
  o.stop();
});

test('a failed purge keeps the messages and does not start the 60 s block; the retry purges', async () => {
  const { o, log } = await owner();
  await o.append([append('a'), append('b')]);
  log.fail.purge = true;
  await expect(o.purge()).rejects.toThrow(/injected: purge/);
  expect(o.counts().visible).toBe(2);
  log.fail.purge = false;
  await o.purge();
  expect(o.counts().visible).toBe(0);
  expect(log.messages.size).toBe(0);
  await expect(o.purge()).rejects.toThrow(/Only one PurgeQueue/);
  o.stop();
});
