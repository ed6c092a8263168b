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
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { AckPolicy, DeliverPolicy, type ConsumerInfo, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import type { MsgHdrs } from '@nats-io/transport-node';
import type { MessageMeta } from './queue-state.js';
import type { BodyCache } from './body-cache.js';
import {
  decodeHeaders,
  decodePayload,
  decodeState,
  decodeStates,
  encodeHeaders,
  encodePayload,
  encodeStates,
  type SeqState,
  type StoredFields,
  type StoredPayload,
} from './codec.js';
import { SQS_STATE_STREAM, SQS_STREAM, subjects } from './layout.js';
import { JetStreamRequests } from '../../../core/nats-requests.js';

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

/**
 * An owner's term: where its markers landed. A fenced purge succeeds only while these are still the
 * latest markers, i.e. no later owner began a term since (see `QueueLog.beginTerm`).
 */
export interface Term {
  readonly messageSeq: number;
  readonly stateSeq: number;
}

/** A fenced purge found a later owner's term marker: this owner is stale and purged nothing. */
export class StaleTermError extends Error {}

/**
 * Where a rebuild puts the messages it reads (the owner's `QueueState`), one at a time in sequence
 * order, so a queue of a million messages is never held as a million objects on the way.
 */
export interface RebuildTarget {
  /** A stored message as the log has it (never received; states come later, in `Rebuilt`). */
  add(meta: MessageMeta): unknown;
  /** Whether a message with this sequence was added. */
  has(seq: number): boolean;
  /** Forgets every message added: the read starts again. */
  clear(): void;
}

/** What a rebuild found besides the messages. */
export interface Rebuilt {
  /** The latest delivery state of each message that has one, in no particular order. */
  readonly states: SeqState[];
  /** Live state records: record sequence → the messages whose latest state it holds. */
  readonly records: Map<number, number[]>;
}

// How long a rebuild keeps trying to read one stream (JetStream re-elects within seconds).
const READ_DEADLINE_MS = 60_000;

/** A read's consumer was placed on a replica that is not the stream leader. */
class NotOnLeader extends Error {}

// JetStream's "wrong last sequence" (10071): an expected-last-subject-sequence check failed.
function isWrongLastSequence(err: unknown): boolean {
  const e = err as { code?: unknown; api_error?: { err_code?: number }; message?: string };
  return e?.api_error?.err_code === 10071 || /wrong last sequence/i.test(String(e?.message));
}

// JetStream's "no message found" (10037) and "stream msg not found" answers.
function isNotFound(err: unknown): boolean {
  const e = err as { code?: unknown; api_error?: { err_code?: number }; message?: string };
  return e?.api_error?.err_code === 10037 || /no message found|not found/i.test(String(e?.message));
}

// JetStream's deduplication header (what nats.js sets for `msgID`).
function withMsgId(headers: MsgHdrs, msgId: string): MsgHdrs {
  headers.set('Nats-Msg-Id', msgId);
  return headers;
}

/** One queue's log and state subjects. */
export class QueueLog {
  // Random per instance (one per queue and process), so two writers' record subjects never collide.
  private readonly writer = randomBytes(6).toString('hex');
  private records = 0;
  private reads = 0;
  // The hot path's publishes and deletes without nats.js's per-request objects (core/nats-requests.ts).
  private readonly fast: JetStreamRequests | undefined;

  /**
   * @param consumerApi creates the consumers of rebuild reads: a manager with a short request
   *   timeout, since a consumer placed on a server that is down never answers (default `jsm`).
   */
  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    readonly queueId: string,
    private readonly cache?: BodyCache,
    private readonly consumerApi?: JetStreamManager,
  ) {
    this.fast = JetStreamRequests.of(js, jsm);
  }

  /** Appends a message; answers only after JetStream acknowledged it (durable at the stream's replicas). */
  async append(fields: StoredFields, payload: StoredPayload, msgId?: string): Promise<AppendResult> {
    const data = encodePayload(payload);
    const headers = encodeHeaders(fields);
    const ack = this.fast
      ? await this.fast.publish(subjects.message(this.queueId), data, msgId ? withMsgId(headers, msgId) : headers, 10_000)
      : await this.js.publish(subjects.message(this.queueId), data, { headers, ...(msgId ? { msgID: msgId } : {}), timeout: 10_000 });
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
    const subject = subjects.stateBatch(this.queueId, this.writer, this.records);
    const ack = this.fast
      ? await this.fast.publish(subject, encodeStates(states), undefined, 10_000)
      : await this.js.publish(subject, encodeStates(states), { timeout: 10_000 });
    return ack.seq;
  }

  /** Deletes state records by sequence (dead ones: every message in them deleted or saved again). */
  async dropStates(recordSeqs: readonly number[]): Promise<void> {
    await Promise.all(
      recordSeqs.map(async (seq) => {
        try {
          await this.deleteMessage(SQS_STATE_STREAM, seq);
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }),
    );
  }

  /**
   * Removes a message; removing what is already gone is fine. Its state record stays until the
   * owner drops it with the other messages of that record (a rebuild ignores it meanwhile).
   */
  async remove(seq: number): Promise<void> {
    this.cache?.delete(this.queueId, seq);
    try {
      await this.deleteMessage(SQS_STREAM, seq);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  // Deleted, not overwritten: the bytes go with the block, and erasing costs nats-server a write.
  private async deleteMessage(stream: string, seq: number): Promise<void> {
    if (this.fast) await this.fast.deleteMessage(stream, seq, 10_000);
    else await this.jsm.streams.deleteMessage(stream, seq, false);
  }

  /** Removes every message, state record and marker of the queue (DeleteQueue: its id is never used again). */
  async purge(): Promise<void> {
    this.cache?.deleteQueue(this.queueId);
    await this.jsm.streams.purge(SQS_STREAM, { filter: subjects.message(this.queueId) });
    await this.jsm.streams.purge(SQS_STREAM, { filter: subjects.messageTerm(this.queueId) });
    await this.jsm.streams.purge(SQS_STATE_STREAM, { filter: subjects.states(this.queueId) });
  }

  /**
   * Starts an owner's term, before its rebuild: a marker on each stream's term subject. Markers
   * fence PurgeQueue, the one write of an owner that could destroy what a later owner stored: a
   * purge removes everything below a marker, so an owner that lost the queue (paused past its lease)
   * must not place one after the next owner's writes. `purgeFenced` therefore publishes its marker
   * only if the term subject still ends with this owner's last marker (JetStream checks that, not
   * we), and a later owner's marker always precedes that owner's first write.
   */
  async beginTerm(): Promise<Term> {
    const messageSeq = (await this.js.publish(subjects.messageTerm(this.queueId), new Uint8Array(), { timeout: 10_000 })).seq;
    const stateSeq = (await this.js.publish(subjects.stateTerm(this.queueId), new Uint8Array(), { timeout: 10_000 })).seq;
    // Earlier owners' markers fence nothing any more (the state stream keeps one per subject anyway).
    // `keep`, not `seq`: nats-server 2.9 takes a filtered purge with `seq: 1` (our marker is the
    // stream's first message on a fresh deployment) as unbounded and would delete the marker too.
    await this.jsm.streams.purge(SQS_STREAM, { filter: subjects.messageTerm(this.queueId), keep: 1 }).catch(() => undefined);
    return { messageSeq, stateSeq };
  }

  /**
   * PurgeQueue for the owner of `term`: every message and state record stored before this call,
   * unless another owner began a term since (`StaleTermError`, nothing purged). Messages stored
   * after the new markers, by whoever, stay. Answers the term to use from now on.
   */
  async purgeFenced(term: Term): Promise<Term> {
    this.cache?.deleteQueue(this.queueId);
    const marker = async (subject: string, last: number) => {
      try {
        return (await this.js.publish(subject, new Uint8Array(), { timeout: 10_000, expect: { lastSubjectSequence: last } })).seq;
      } catch (err) {
        if (isWrongLastSequence(err)) throw new StaleTermError(`${subject}: a later owner began a term`);
        throw err;
      }
    };
    // A bound of 1 would purge everything (see beginTerm); nothing can be below it anyway.
    const below = (stream: string, filter: string, seq: number) => (seq > 1 ? this.jsm.streams.purge(stream, { filter, seq }) : undefined);
    const messageSeq = await marker(subjects.messageTerm(this.queueId), term.messageSeq);
    await below(SQS_STREAM, subjects.message(this.queueId), messageSeq);
    await this.jsm.streams.purge(SQS_STREAM, { filter: subjects.messageTerm(this.queueId), keep: 1 }).catch(() => undefined);
    const stateSeq = await marker(subjects.stateTerm(this.queueId), term.stateSeq);
    await below(SQS_STATE_STREAM, subjects.states(this.queueId), stateSeq);
    return { messageSeq, stateSeq };
  }

  /**
   * Reads the queue back: every message's headers (not bodies) from the log into `target`, then
   * the delivery state records in stream order, so the latest state of each message wins. Records
   * that hold no message's latest state (all deleted or saved again) are deleted. What is held
   * meanwhile besides `target` is one fetch batch and the states of received messages.
   */
  async rebuild(target: RebuildTarget): Promise<Rebuilt> {
    await this.readAll(SQS_STREAM, subjects.message(this.queueId), true, () => {
      target.clear();
      return (m) => {
        const f = decodeHeaders(m.headers);
        target.add({ seq: m.seq, sentAt: f.sentAt, group: f.group, visibleAt: f.visibleAt, receiveCount: 0, version: 0 });
      };
    });
    let latest = new Map<number, { state: SeqState; record: number }>();
    let seen: number[] = [];
    const prefix = subjects.states(this.queueId).slice(0, -1);
    await this.readAll(SQS_STATE_STREAM, subjects.states(this.queueId), false, () => {
      latest = new Map();
      seen = [];
      return (m) => {
        const rest = m.subject.slice(prefix.length);
        // `b.<writer>.<n>`: a batch record; a bare number: one message's record (older versions);
        // `term`: the current owner's marker, no states.
        if (rest === 'term') return;
        seen.push(m.seq);
        const states = rest.startsWith('b.') ? decodeStates(m.data) : [{ ...decodeState(m.data), seq: Number(rest) }];
        for (const state of states) if (target.has(state.seq)) latest.set(state.seq, { state, record: m.seq });
      };
    });
    const records = new Map<number, number[]>();
    const states: SeqState[] = [];
    for (const { state, record } of latest.values()) {
      states.push(state);
      const list = records.get(record);
      if (list) list.push(state.seq);
      else records.set(record, [state.seq]);
    }
    await this.dropStates(seen.filter((r) => !records.has(r))).catch(() => undefined);
    return { states, records };
  }

  /**
   * Everything on `filter`, in stream order, as JetStream's stream leader has it. Only the leader
   * has applied every write and delete JetStream acknowledged: nats-server places the ephemeral
   * consumer of a read on a random replica of the stream, and a follower may not have applied the
   * latest ones yet (a rebuild there can miss the last receive batch's record, so in-flight messages
   * come back visible); a replica on a server that is down never answers at all (2.9 places
   * consumers there too). So a consumer that is not on the leader is dropped and created again,
   * creation has a short timeout, and a read counts only if it reached the last message the leader
   * holds on `filter`. Each attempt starts with `begin`, whose answer takes the attempt's messages:
   * what an attempt that failed gave is forgotten there.
   */
  private async readAll(stream: string, filter: string, headersOnly: boolean, begin: () => (m: JsMsg) => void): Promise<void> {
    const deadline = Date.now() + READ_DEADLINE_MS;
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.readAllOnce(stream, filter, headersOnly, begin());
      } catch (err) {
        if (Date.now() > deadline) throw err;
        // Misplaced: try again at once (placement is random); otherwise JetStream is re-electing.
        if (!(err instanceof NotOnLeader)) await sleep(Math.min(1000, 100 * attempt));
      }
    }
  }

  // An ephemeral consumer tells how many messages match before any is fetched, so an empty queue
  // costs one request and a full one is read in pages until nothing is pending.
  private async readAllOnce(stream: string, filter: string, headersOnly: boolean, take: (m: JsMsg) => void): Promise<void> {
    const leader = (await this.jsm.streams.info(stream)).cluster?.leader;
    const name = `rebuild_${this.writer}_${++this.reads}`;
    let ci: ConsumerInfo;
    try {
      ci = await (this.consumerApi ?? this.jsm).consumers.add(stream, {
        name,
        filter_subject: filter,
        ack_policy: AckPolicy.None,
        deliver_policy: DeliverPolicy.All,
        headers_only: headersOnly,
        mem_storage: true,
        inactive_threshold: 60e9,
      });
    } catch (err) {
      // Placed on a server that is down (or JetStream is re-electing): drop the assignment.
      void this.jsm.consumers.delete(stream, name).catch(() => undefined);
      throw err;
    }
    try {
      const placed = ci.cluster?.leader;
      if (leader && placed && placed !== leader) throw new NotOnLeader(`${stream} consumer on ${placed}, leader ${leader}`);
      let last = 0;
      let pending = ci.num_pending;
      let idle = 0;
      while (pending > 0 && idle < 3) {
        const batch = await (await this.js.consumers.get(stream, ci.name)).fetch({ max_messages: Math.min(pending, 1000), expires: 5000 });
        let got = 0;
        for await (const m of batch) {
          take(m);
          last = m.seq;
          got += 1;
          pending = m.info.pending;
        }
        idle = got === 0 ? idle + 1 : 0;
      }
      if (pending > 0) throw new Error(`rebuild of ${filter} stalled with ${pending} messages unread`);
      // The leader moved during the read, or an old owner still wrote: read again.
      const newest = await this.lastOn(stream, filter);
      if (newest > last) throw new Error(`rebuild of ${filter} read up to ${last}, the stream holds ${newest}`);
    } finally {
      await this.jsm.consumers.delete(stream, ci.name).catch(() => undefined);
    }
  }

  // The sequence of the last message on `filter` (0: none), from the stream leader.
  private async lastOn(stream: string, filter: string): Promise<number> {
    try {
      return (await this.jsm.streams.getMessage(stream, { last_by_subj: filter }))?.seq ?? 0;
    } catch (err) {
      if (isNotFound(err)) return 0;
      throw err;
    }
  }
}
