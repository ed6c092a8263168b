/**
 * The JetStream side of one queue: append a message, read one back, delete it, persist its
 * delivery state, purge, and read everything back when a controller takes the queue over.
 * No SQS rules here; `queue-owner.ts` decides, this stores.
 */
import { AckPolicy, DeliverPolicy, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import type { MessageMeta } from './queue-state.js';
import {
  decodeHeaders,
  decodePayload,
  decodeState,
  encodeHeaders,
  encodePayload,
  encodeState,
  type DeliveryState,
  type StoredFields,
  type StoredPayload,
} from './codec.js';
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

// JetStream's "no message found" (10037) and "stream msg not found" answers.
function isNotFound(err: unknown): boolean {
  const e = err as { code?: unknown; api_error?: { err_code?: number }; message?: string };
  return e?.api_error?.err_code === 10037 || /no message found|not found/i.test(String(e?.message));
}

/** One queue's log and state subjects. */
export class QueueLog {
  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    readonly queueId: string,
  ) {}

  /** Appends a message; answers only after JetStream acknowledged it (durable at the stream's replicas). */
  async append(fields: StoredFields, payload: StoredPayload, msgId?: string): Promise<AppendResult> {
    const ack = await this.js.publish(subjects.message(this.queueId), encodePayload(payload), {
      headers: encodeHeaders(fields),
      ...(msgId ? { msgID: msgId } : {}),
      timeout: 10_000,
    });
    return { seq: ack.seq, duplicate: ack.duplicate };
  }

  /** The message at `seq`, or undefined when it is gone. */
  async read(seq: number): Promise<StoredMessage | undefined> {
    try {
      const m = await this.jsm.streams.getMessage(SQS_STREAM, { seq });
      if (!m || m.subject !== subjects.message(this.queueId)) return undefined;
      return { fields: decodeHeaders(m.header), payload: decodePayload(m.data) };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Persists a message's delivery state (one record per message, the latest wins). */
  async saveState(seq: number, state: DeliveryState): Promise<void> {
    await this.js.publish(subjects.state(this.queueId, seq), encodeState(state), { timeout: 10_000 });
  }

  /** Removes a message and its state; removing what is already gone is fine. */
  async remove(seq: number): Promise<void> {
    try {
      await this.jsm.streams.deleteMessage(SQS_STREAM, seq, false);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    // A leftover state record is harmless (a rebuild drops it), so this may fail quietly later.
    await this.jsm.streams.purge(SQS_STATE_STREAM, { filter: subjects.state(this.queueId, seq) });
  }

  /** Removes every message and state record of the queue. */
  async purge(): Promise<void> {
    await this.jsm.streams.purge(SQS_STREAM, { filter: subjects.message(this.queueId) });
    await this.jsm.streams.purge(SQS_STATE_STREAM, { filter: subjects.states(this.queueId) });
  }

  /**
   * Reads the queue back: every message's headers (not bodies) from the log, then the latest
   * delivery state of each. State records without a message (deleted between the two writes)
   * are purged.
   */
  async rebuild(fifo: boolean): Promise<MessageMeta[]> {
    const metas = new Map<number, MessageMeta>();
    await this.readAll(SQS_STREAM, subjects.message(this.queueId), true, (m) => {
      const f = decodeHeaders(m.headers);
      metas.set(m.seq, { seq: m.seq, sentAt: f.sentAt, group: fifo || f.group !== undefined ? f.group : undefined, visibleAt: f.visibleAt, receiveCount: 0, version: 0 });
    });
    const orphans: number[] = [];
    await this.readAll(SQS_STATE_STREAM, subjects.states(this.queueId), false, (m) => {
      const seq = Number(m.subject.slice(m.subject.lastIndexOf('.') + 1));
      const meta = metas.get(seq);
      if (!meta) return void orphans.push(seq);
      const s = decodeState(m.data);
      meta.receiveCount = s.receiveCount;
      meta.firstReceiveAt = s.firstReceiveAt;
      meta.visibleAt = s.visibleAt;
    });
    await Promise.all(orphans.map((seq) => this.jsm.streams.purge(SQS_STATE_STREAM, { filter: subjects.state(this.queueId, seq) }).catch(() => undefined)));
    return [...metas.values()];
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
