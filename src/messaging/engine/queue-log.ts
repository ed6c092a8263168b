/**
 * The JetStream side of one queue: append a message, read one back, delete it, persist its
 * delivery state, purge, and read everything back when a controller takes the queue over.
 * No SQS rules here; `queue-owner.ts` decides, this stores.
 *
 * Delivery state is written in batch records (one JetStream message holding the states of a whole
 * receive batch, on a subject of its own), and the latest record in stream order wins for each
 * message. A record is dead once every message in it was deleted or saved again; the owner tracks
 * that and deletes dead records by sequence (`dropStates`), and a rebuild deletes any it finds.
 */
import { randomBytes } from 'node:crypto';
import { AckPolicy, DeliverPolicy, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import type { MessageMeta } from './queue-state.js';
import type { BodyCache } from './body-cache.js';
import { decodeHeaders, decodePayload, decodeState, decodeStates, encodeHeaders, encodePayload, encodeStates, type SeqState, type StoredFields, type StoredPayload } from './codec.js';
import { SQS_STATE_STREAM, SQS_STREAM, subjects } from './layout.js';

/** The outcome of an append. */
export interface AppendResult {
  readonly seq: number;
  /** JetStream recognised the `Nats-Msg-Id` and stored nothing new. */
  readonly duplicate: boolean;
}

/** A message read back. */
export interface StoredMessage {
  readonly fields: StoredFields;
  readonly payload: StoredPayload;
}

/** What a rebuild found. */
export interface Rebuilt {
  readonly messages: MessageMeta[];
  /** Live state records: record sequence → the messages whose latest state it holds. */
  readonly records: Map<number, number[]>;
}

// JetStream's "no message found" (10037) and "stream msg not found" answers.
function isNotFound(err: unknown): boolean {
  const e = err as { code?: unknown; api_error?: { err_code?: number }; message?: string };
  return e?.api_error?.err_code === 10037 || /no message found|not found/i.test(String(e?.message));
}

/** One queue's log and state subjects. */
export class QueueLog {
  // Random per instance (one per queue and process), so two writers' record subjects never collide.
  private readonly writer = randomBytes(6).toString('hex');
  private records = 0;

  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    readonly queueId: string,
    private readonly cache?: BodyCache,
  ) {}

  /** Appends a message; answers only after JetStream acknowledged it (durable at the stream's replicas). */
  async append(fields: StoredFields, payload: StoredPayload, msgId?: string): Promise<AppendResult> {
    const data = encodePayload(payload);
    const ack = await this.js.publish(subjects.message(this.queueId), data, {
      headers: encodeHeaders(fields),
      ...(msgId ? { msgID: msgId } : {}),
      timeout: 10_000,
    });
    // A duplicate's stored copy may differ from ours (FIFO dedup by id): only keep what we stored.
    if (!ack.duplicate) this.cache?.set(this.queueId, ack.seq, { fields, payload }, data.length);
    return { seq: ack.seq, duplicate: ack.duplicate };
  }

  /** The message at `seq`, or undefined when it is gone. */
  async read(seq: number): Promise<StoredMessage | undefined> {
    const cached = this.cache?.get(this.queueId, seq);
    if (cached) return cached;
    try {
      const m = await this.jsm.streams.getMessage(SQS_STREAM, { seq });
      if (!m || m.subject !== subjects.message(this.queueId)) return undefined;
      return { fields: decodeHeaders(m.header), payload: decodePayload(m.data) };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * Persists the delivery state of several messages in one record (for each message the latest
   * record in stream order wins) and answers the record's sequence once JetStream stored it.
   */
  async saveStates(states: readonly SeqState[]): Promise<number> {
    this.records += 1;
    const ack = await this.js.publish(subjects.stateBatch(this.queueId, this.writer, this.records), encodeStates(states), { timeout: 10_000 });
    return ack.seq;
  }

  /** Deletes state records by sequence (dead ones: every message in them deleted or saved again). */
  async dropStates(recordSeqs: readonly number[]): Promise<void> {
    await Promise.all(recordSeqs.map(async (seq) => {
      try {
        await this.jsm.streams.deleteMessage(SQS_STATE_STREAM, seq, false);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }));
  }

  /**
   * Removes a message; removing what is already gone is fine. Its state record stays until the
   * owner drops it with the other messages of that record (a rebuild ignores it meanwhile).
   */
  async remove(seq: number): Promise<void> {
    this.cache?.delete(this.queueId, seq);
    try {
      await this.jsm.streams.deleteMessage(SQS_STREAM, seq, false);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** Removes every message and state record of the queue. */
  async purge(): Promise<void> {
    this.cache?.deleteQueue(this.queueId);
    await this.jsm.streams.purge(SQS_STREAM, { filter: subjects.message(this.queueId) });
    await this.jsm.streams.purge(SQS_STATE_STREAM, { filter: subjects.states(this.queueId) });
  }

  /**
   * Reads the queue back: every message's headers (not bodies) from the log, then the delivery
   * state records in stream order, so the latest state of each message wins. Records that hold
   * no message's latest state (all deleted or saved again) are deleted.
   */
  async rebuild(fifo: boolean): Promise<Rebuilt> {
    const metas = new Map<number, MessageMeta>();
    await this.readAll(SQS_STREAM, subjects.message(this.queueId), true, (m) => {
      const f = decodeHeaders(m.headers);
      metas.set(m.seq, { seq: m.seq, sentAt: f.sentAt, group: fifo || f.group !== undefined ? f.group : undefined, visibleAt: f.visibleAt, receiveCount: 0, version: 0 });
    });
    const latest = new Map<number, number>();
    const seen: number[] = [];
    const prefix = subjects.states(this.queueId).slice(0, -1);
    await this.readAll(SQS_STATE_STREAM, subjects.states(this.queueId), false, (m) => {
      seen.push(m.seq);
      const rest = m.subject.slice(prefix.length);
      // `b.<writer>.<n>`: a batch record; a bare number: one message's record (older versions).
      const states = rest.startsWith('b.') ? decodeStates(m.data) : [{ ...decodeState(m.data), seq: Number(rest) }];
      for (const s of states) {
        const meta = metas.get(s.seq);
        if (!meta) continue;
        meta.receiveCount = s.receiveCount;
        meta.firstReceiveAt = s.firstReceiveAt;
        meta.visibleAt = s.visibleAt;
        latest.set(s.seq, m.seq);
      }
    });
    const records = new Map<number, number[]>();
    for (const [seq, record] of latest) {
      const list = records.get(record);
      if (list) list.push(seq);
      else records.set(record, [seq]);
    }
    await this.dropStates(seen.filter((r) => !records.has(r))).catch(() => undefined);
    return { messages: [...metas.values()], records };
  }

  // An ephemeral consumer tells how many messages match before any is fetched, so an empty queue
  // costs one request and a full one is read in pages until nothing is pending.
  private async readAll(stream: string, filter: string, headersOnly: boolean, onMsg: (m: JsMsg) => void): Promise<void> {
    // Creating a consumer can time out while a clustered stream re-elects after a server died.
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.readAllOnce(stream, filter, headersOnly, onMsg);
      } catch (err) {
        if (attempt >= 4) throw err;
      }
    }
  }

  private async readAllOnce(stream: string, filter: string, headersOnly: boolean, onMsg: (m: JsMsg) => void): Promise<void> {
    const ci = await this.jsm.consumers.add(stream, {
      filter_subject: filter,
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.All,
      headers_only: headersOnly,
      mem_storage: true,
      inactive_threshold: 60e9,
    });
    try {
      let pending = ci.num_pending;
      let idle = 0;
      while (pending > 0 && idle < 3) {
        const batch = await (await this.js.consumers.get(stream, ci.name)).fetch({ max_messages: Math.min(pending, 1000), expires: 5000 });
        let got = 0;
        for await (const m of batch) {
          onMsg(m);
          got += 1;
          pending = m.info.pending;
        }
        idle = got === 0 ? idle + 1 : 0;
      }
      if (pending > 0) throw new Error(`rebuild of ${filter} stalled with ${pending} messages unread`);
    } finally {
      await this.jsm.consumers.delete(stream, ci.name).catch(() => undefined);
    }
  }
}
