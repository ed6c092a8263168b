/**
 * Fakes for the router's tests: a lease bucket of one key, a NATS connection, a clock, and a log
 * whose writes can be held back and whose rebuild reads back what it stored.
 */
import { pino } from 'pino';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { QueueCatalog, QueueRecord } from '../../../../src/messaging/engine/catalog.js';
import { rpcPack, rpcUnpack, type SeqState, type StoredFields, type StoredPayload } from '../../../../src/messaging/engine/codec.js';
import type { QueueLog, RebuildTarget } from '../../../../src/messaging/engine/queue-log.js';
import { QueueOwner, type AppendRequest } from '../../../../src/messaging/engine/queue-owner.js';
import { QueueRouter, type QueueOp } from '../../../../src/messaging/engine/queue-router.js';
import type { RequestContext } from '../../../../src/messaging/sqs-engine.js';

/** A write that waits until the test lets it go on. */
export class Gate {
  private open?: () => void;
  readonly closed = new Promise<void>((r) => (this.open = r));
  reached?: () => void;
  readonly arrived = new Promise<void>((r) => (this.reached = r));
  release(): void {
    this.open?.();
  }
}

export class FakeLog {
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
  /** What is stored, latest state record of each message winning (as `QueueLog.rebuild`). */
  async rebuild(target: RebuildTarget) {
    target.clear();
    for (const [seq, m] of this.messages)
      target.add({ seq, sentAt: m.fields.sentAt, visibleAt: m.fields.visibleAt, receiveCount: 0, version: 0 });
    const latest = new Map<number, { state: SeqState; record: number }>();
    for (const [record, states] of [...this.records].sort((a, b) => a[0] - b[0]))
      for (const state of states) if (target.has(state.seq)) latest.set(state.seq, { state, record });
    const records = new Map<number, number[]>();
    for (const { state, record } of latest.values()) records.set(record, [...(records.get(record) ?? []), state.seq]);
    return { states: [...latest.values()].map((l) => l.state), records };
  }
  private async hold(what: 'saveStates' | 'remove') {
    const gate = this.gates[what];
    if (!gate) return;
    gate.reached?.();
    await gate.closed;
  }
}

/** The lease bucket, one key: create, revision-checked update, delete by revision. */
export class FakeLeases {
  entry?: { value: string; revision: number };
  /** `create` waits for its gate before it lands; `update` lands, then its answer waits. */
  gates: Partial<Record<'create' | 'update', Gate>> = {};
  /** How many updates (renewals) were sent. */
  updates = 0;
  private revision = 0;
  constructor(private readonly events: string[]) {}
  async create(_key: string, value: string) {
    const gate = this.gates.create;
    gate?.reached?.();
    await gate?.closed;
    if (this.entry) throw new Error('wrong last sequence');
    this.entry = { value, revision: ++this.revision };
    return this.revision;
  }
  async update(_key: string, value: string, previous: number) {
    this.updates += 1;
    if (this.entry?.revision !== previous) throw new Error('wrong last sequence');
    const revision = ++this.revision;
    this.entry = { value, revision };
    this.gates.update?.reached?.();
    await this.gates.update?.closed;
    return revision;
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

export const record: QueueRecord = {
  id: 'q1',
  name: 'q',
  attributes: { VisibilityTimeout: '30', ReceiveMessageWaitTimeSeconds: '0', MessageRetentionPeriod: '600', DelaySeconds: '0' },
  tags: {},
  createdAt: 0,
  modifiedAt: 0,
};
export const ctx: RequestContext = {
  requestId: 'r',
  accountId: '000000000000',
  region: 'us-east-1',
  authenticated: true,
  signal: new AbortController().signal,
};
export const append = (body: string): AppendRequest => ({
  fields: { sentAt: Date.now(), delaySeconds: 0, senderId: 'me' },
  payload: { body, attributes: {} },
});
export const receive = { op: 'receive', req: { QueueName: 'q', AttributeNames: [], MessageAttributeNames: [] } } as const;

/**
 * A router over fakes; `forwarded` lists the operations sent to another controller (which answers
 * as a new owner would), `published` what it published, `announce` delivers a message on a subject
 * it subscribed to.
 */
export function setup(leaseMs: number, idleMs = 0) {
  const events: string[] = [];
  const log = new FakeLog(events);
  const leases = new FakeLeases(events);
  const forwarded: string[] = [];
  let clock = 1_000;
  const published: string[] = [];
  type Callback = (err: unknown, msg: { data: Uint8Array; respond?: (d: Uint8Array) => boolean }) => void;
  const subscribed = new Map<string, Callback>();
  // Requests NATS routed to a subscription that its callback has not seen yet.
  const pending = new Map<string, { data: Uint8Array; respond: (d: Uint8Array) => boolean }[]>();
  const nc = {
    subscribe: (subject: string, opts: { callback: Callback }) => {
      subscribed.set(subject, opts.callback);
      const close = () => {
        pending.delete(subject);
        if (subscribed.get(subject) === opts.callback) subscribed.delete(subject);
      };
      return {
        // Whatever was routed here but not yet handled is lost.
        unsubscribe: close,
        // Whatever was routed here is handled first.
        drain: async () => {
          for (const m of pending.get(subject) ?? []) opts.callback(null, m);
          close();
        },
      };
    },
    publish: (subject: string) => void published.push(subject),
    request: async (_subject: string, data: Uint8Array) => {
      const op = rpcUnpack<QueueOp>(data);
      forwarded.push(op.op);
      const ok = op.op === 'receive' ? [] : op.op === 'delete' ? op.handles.map(() => ({ ok: true })) : null;
      return { data: rpcPack({ ok }) };
    },
  };
  const catalog = { cache: {}, require: async () => record, get: async (name: string) => (name === record.name ? record : undefined) };
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
    idleMs,
    now: () => clock,
  });
  return {
    router,
    catalog,
    log,
    leases,
    events,
    forwarded,
    published,
    announce: (subject: string, value: unknown) => subscribed.get(subject)?.(null, { data: rpcPack(value) }),
    /** The subjects subscribed to now. */
    subscribers: () => [...subscribed.keys()],
    /** A request NATS routed to the subscriber of `subject` (not handled yet); its reply, if any. */
    route: (subject: string, value: unknown) =>
      new Promise<unknown>((resolve) => {
        const list = pending.get(subject) ?? [];
        list.push({ data: rpcPack(value), respond: (d) => (resolve(rpcUnpack(d)), true) });
        pending.set(subject, list);
      }),
    advance: (ms: number) => void (clock += ms),
  };
}
