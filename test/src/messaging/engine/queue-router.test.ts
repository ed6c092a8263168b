/**
 * Fencing of queue owners, with a fake lease bucket, a fake NATS connection, a fake clock and a
 * fake log whose writes can be held back: an owner answers only while it holds the lease, and a
 * handover waits for the writes under way before it hands the lease back.
 */
import { pino } from 'pino';
import { afterEach, expect, test, vi } from 'vitest';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { QueueCatalog, QueueRecord } from '../../../../src/messaging/engine/catalog.js';
import { rpcPack, rpcUnpack, type SeqState, type StoredFields, type StoredPayload } from '../../../../src/messaging/engine/codec.js';
import type { QueueLog } from '../../../../src/messaging/engine/queue-log.js';
import { QueueOwner, type AppendRequest } from '../../../../src/messaging/engine/queue-owner.js';
import { QueueRouter, type QueueOp } from '../../../../src/messaging/engine/queue-router.js';
import type { RequestContext } from '../../../../src/messaging/sqs-engine.js';

/** A write that waits until the test lets it go on. */
class Gate {
  private open?: () => void;
  readonly closed = new Promise<void>((r) => (this.open = r));
  reached?: () => void;
  readonly arrived = new Promise<void>((r) => (this.reached = r));
  release(): void {
    this.open?.();
  }
}

class FakeLog {
  seq = 0;
  recordSeq = 0;
  readonly messages = new Map<number, { fields: StoredFields; payload: StoredPayload }>();
  readonly records = new Map<number, SeqState[]>();
  gates: Partial<Record<'saveStates' | 'remove', Gate>> = {};
  constructor(private readonly events: string[]) {}
  async append(fields: StoredFields, payload: StoredPayload) {
    this.messages.set(++this.seq, { fields, payload });
    return { seq: this.seq, duplicate: false };
  }
  async read(seq: number) {
    return this.messages.get(seq);
  }
  async saveStates(states: SeqState[]) {
    await this.hold('saveStates');
    this.records.set(++this.recordSeq, states);
    this.events.push('state record stored');
    return this.recordSeq;
  }
  async dropStates(seqs: number[]) {
    for (const s of seqs) this.records.delete(s);
  }
  async remove(seq: number) {
    await this.hold('remove');
    this.messages.delete(seq);
    this.events.push('message deleted');
  }
  async purgeFenced(term: { messageSeq: number; stateSeq: number }) {
    this.messages.clear();
    return term;
  }
  async beginTerm() {
    return { messageSeq: 1, stateSeq: 1 };
  }
  async rebuild() {
    return { messages: [], records: new Map<number, number[]>() };
  }
  private async hold(what: 'saveStates' | 'remove') {
    const gate = this.gates[what];
    if (!gate) return;
    gate.reached?.();
    await gate.closed;
  }
}

/** The lease bucket, one key: create, revision-checked update, delete by revision. */
class FakeLeases {
  entry?: { value: string; revision: number };
  private revision = 0;
  constructor(private readonly events: string[]) {}
  async create(_key: string, value: string) {
    if (this.entry) throw new Error('wrong last sequence');
    this.entry = { value, revision: ++this.revision };
    return this.revision;
  }
  async update(_key: string, value: string, previous: number) {
    if (this.entry?.revision !== previous) throw new Error('wrong last sequence');
    this.entry = { value, revision: ++this.revision };
    return this.revision;
  }
  async get() {
    const e = this.entry;
    return e ? { operation: 'PUT', revision: e.revision, string: () => e.value } : null;
  }
  async delete(_key: string, opts: { previousSeq: number }) {
    if (this.entry?.revision !== opts.previousSeq) throw new Error('wrong last sequence');
    this.entry = undefined;
    this.events.push('lease released');
  }
  /** Another controller owns the queue now (our lease expired and it created the key). */
  takenOver(): void {
    this.entry = { value: 'another-controller', revision: ++this.revision };
  }
}

const record: QueueRecord = {
  id: 'q1',
  name: 'q',
  attributes: { VisibilityTimeout: '30', ReceiveMessageWaitTimeSeconds: '0', MessageRetentionPeriod: '600', DelaySeconds: '0' },
  tags: {},
  createdAt: 0,
  modifiedAt: 0,
};
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
const receive = { op: 'receive', req: { QueueName: 'q', AttributeNames: [], MessageAttributeNames: [] } } as const;

/** A router over fakes; `forwarded` lists the operations sent to another controller (which answers as a new owner would). */
afterEach(() => void vi.useRealTimers());

function setup(leaseMs: number) {
  const events: string[] = [];
  const log = new FakeLog(events);
  const leases = new FakeLeases(events);
  const forwarded: string[] = [];
  let clock = 1_000;
  const nc = {
    subscribe: () => ({ unsubscribe: () => undefined }),
    publish: () => undefined,
    request: async (_subject: string, data: Uint8Array) => {
      const op = rpcUnpack<QueueOp>(data);
      forwarded.push(op.op);
      const ok = op.op === 'receive' ? [] : op.op === 'delete' ? op.handles.map(() => ({ ok: true })) : null;
      return { data: rpcPack({ ok }) };
    },
  };
  const catalog = { cache: {}, require: async () => record };
  const router = new QueueRouter({
    nc: nc as unknown as NatsConnection,
    leases: leases as unknown as KV,
    leaseMs,
    catalog: catalog as unknown as QueueCatalog,
    logFor: () => log as unknown as QueueLog,
    startOwner: (r) =>
      QueueOwner.start(r, {
        log: log as unknown as QueueLog,
        record: async () => r,
        keys: [Buffer.alloc(32, 1)],
        appendTo: async () => [],
        logger: pino({ level: 'silent' }),
      }),
    logger: pino({ level: 'silent' }),
    now: () => clock,
  });
  return { router, log, leases, events, forwarded, advance: (ms: number) => void (clock += ms) };
}

test('an owner paused past two thirds of its lease does not answer a receive it finished late', async () => {
  // A long lease: no renewal runs during the test; time passes only on the fake clock.
  const { router, log, leases, forwarded, advance } = setup(60_000);
  await router.run('q', { op: 'append', entries: [append('a')] }, ctx);
  expect(router.owned).toBe(1);
  const gate = (log.gates.saveStates = new Gate());
  const receiving = router.run('q', receive, ctx);
  await gate.arrived;
  // The owner stalls while storing the receive; meanwhile its lease expires and another takes over.
  advance(40_001);
  leases.takenOver();
  gate.release();
  // The receive is answered by the new owner (nothing there), not with the message from old memory.
  expect(await receiving).toEqual([]);
  expect(forwarded).toEqual(['receive']);
  await router.stop();
});

test('an owner past two thirds of its lease answers nothing, even when nobody took over yet; a renewal lets it answer again', async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
  const { router, log, leases, advance } = setup(60_000);
  await router.run('q', { op: 'append', entries: [append('a')] }, ctx);
  const gate = (log.gates.saveStates = new Gate());
  const receiving = router.run('q', receive, ctx);
  await gate.arrived;
  advance(40_001);
  gate.release();
  let answered = false;
  receiving.then(() => (answered = true)).catch(() => undefined);
  await vi.advanceTimersByTimeAsync(200);
  expect(answered).toBe(false);
  // The lease is still ours in the bucket: a successful renewal (as the timer would send it) makes
  // the owner answer again; the first receive's message stays in flight, the retry gets nothing.
  const ours = leases.entry;
  expect(ours?.value).toBe(router.nodeId);
  await (router as unknown as { renew(h: unknown): Promise<void> }).renew(
    (router as unknown as { held: Map<string, unknown> }).held.get('q1'),
  );
  expect(await receiving).toEqual([]);
  await router.stop();
});

test('a renewal that finds the lease taken drops the queue at once; a delete finishing late is not answered by the old owner', async () => {
  // Renewals every 200 ms (fake timers); the fake clock stands still, so only the renewal can tell.
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
  const { router, log, leases, forwarded } = setup(600);
  await router.run('q', { op: 'append', entries: [append('a')] }, ctx);
  const [m] = await router.run('q', receive, ctx);
  const gate = (log.gates.remove = new Gate());
  const deleting = router.run('q', { op: 'delete', handles: [m?.ReceiptHandle ?? ''] }, ctx);
  await gate.arrived;
  leases.takenOver();
  await vi.waitFor(() => expect(router.owned).toBe(0), { timeout: 1000, interval: 20 });
  gate.release();
  expect(await deleting).toEqual([{ ok: true }]);
  expect(forwarded).toEqual(['delete']);
  await router.stop();
});

test('a graceful stop waits for an in-flight receive to store its state record before it releases the lease', async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
  const { router, log, leases, events } = setup(60_000);
  await router.run('q', { op: 'append', entries: [append('a')] }, ctx);
  const gate = (log.gates.saveStates = new Gate());
  const receiving = router.run('q', receive, ctx);
  await gate.arrived;
  const stopping = router.stop();
  await vi.advanceTimersByTimeAsync(100);
  // Still ours while the receive's record is being written: nobody can take over and miss it.
  expect(leases.entry?.value).toBe(router.nodeId);
  gate.release();
  expect((await receiving).map((r) => r.Body)).toEqual(['a']);
  await stopping;
  expect(events).toEqual(['state record stored', 'lease released']);
  expect(leases.entry).toBeUndefined();
});
