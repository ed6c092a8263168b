/**
 * The owner of one queue: the only controller that changes it, running the SQS state machine
 * (`queue-state.ts`) over the queue's JetStream log (`queue-log.ts`). Every transition is written
 * to JetStream before the client hears of it: a send after the publish ack, a receive after its
 * new receive count and visibility are stored, a delete after the message is gone. A controller
 * that takes the queue over therefore rebuilds exactly what clients were told.
 */
import { KEEP_OWNED_MESSAGES } from './idle-release.js';
import type { Logger } from '../../../core/contracts.js';
import { sqsError } from '../errors.js';
import { verifyReceiptHandle } from '../receipt.js';
import type { ReceivedMessage, ReceiveMessageRequest, RequestContext } from '../sqs-engine.js';
import type { QueueRecord } from './catalog.js';
import { messageIdFor, sequenceNumber, type StoredFields, type StoredPayload } from './codec.js';
import { parseRedrivePolicy } from './queue-attributes.js';
import type { QueueLog, Term } from './queue-log.js';
import { receivedMessage } from './received.js';
import { QueueState, type MessageMeta, type QueueCounts } from './queue-state.js';
import { StateRecords } from './state-records.js';
import { asError } from '../../../core/errors.js';

/** One message to append (a client's send, an SNS delivery, or a dead-letter move). */
export interface AppendRequest {
  readonly fields: Omit<StoredFields, 'visibleAt'> & { readonly delaySeconds: number };
  readonly payload: StoredPayload;
  /** `Nats-Msg-Id`: FIFO deduplication key, or an idempotency key of an internal delivery. */
  readonly msgId?: string;
}

/** Per-entry outcome of a batch operation. */
export type Outcome<T> = { readonly ok: T } | { readonly error: unknown };

/** Collaborators of an owner. */
export interface OwnerDeps {
  readonly log: QueueLog;
  /** The queue's current record (attributes change while we own it). */
  readonly record: () => Promise<QueueRecord | undefined>;
  /** Receipt handle keys: the first signs, all verify. */
  readonly keys: readonly Uint8Array[];
  /** Appends to another queue through its owner (dead-letter moves). */
  readonly appendTo: (queueName: string, entries: AppendRequest[], ctx: RequestContext) => Promise<Outcome<{ MessageId: string }>[]>;
  readonly logger: Logger;
  readonly now?: () => number;
  /** In-flight quota (AWS: 120,000 for both queue types); lower in tests. */
  readonly maxInFlight?: number;
}

const MAX_VISIBILITY_MS = 43_200_000;
const ATTEMPT_ID_MS = 5 * 60_000;
const PURGE_BLOCK_MS = 60_000;
// Dead state records are deleted this long after they die, many per request burst.
const STATE_GC_DELAY_MS = 100;
const MAX_IN_FLIGHT = 120_000;
// The send chain of every owner before its first FIFO send (one promise, not one per queue).
const SETTLED: Promise<unknown> = Promise.resolve();

/** The owner of one queue (see the module comment). */
export class QueueOwner {
  private readonly state: QueueState;
  private readonly records: StateRecords;
  private readonly now: () => number;
  // Made when first needed, as the receive attempts and the send chain: a queue that is only sent
  // to carries none of them (every owned queue costs memory).
  private waiters?: Set<() => void>;
  private sendChain: Promise<unknown> = SETTLED;
  /** FIFO ReceiveRequestAttemptId answers, for retries within 5 minutes. */
  private attempts?: Map<string, { at: number; messages: readonly ReceivedMessage[] }>;
  private lastPurge = 0;
  /**
   * Until when this owner's memory may be ahead of JetStream: a receive whose state record may
   * have been stored failed and made its messages visible again in memory only. A rebuild
   * elsewhere before then would hide them for their visibility timeout, so the queue stays here.
   */
  private aheadOfLogUntil = 0;
  /** This owner's term markers (set by `start`, renewed by each purge). */
  private term: Term = { messageSeq: 0, stateSeq: 0 };
  private active = true;
  /** MessageRetentionPeriod in ms as last seen (start, sweeps); for `restView`. */
  private retentionMs: number;
  /**
   * In-flight count of the last quota check. Counting is a scan, so it is reused for up to 1 s
   * (visibility timeouts running out meanwhile are seen late) and dropped by receives and deletes.
   */
  private inFlight?: { at: number; count: number };
  /** Operations under way (their JetStream writes included), so a handover can wait for them. */
  private readonly running = new Set<Promise<unknown>>();

  private constructor(
    readonly queue: QueueRecord,
    private readonly deps: OwnerDeps,
  ) {
    this.state = new QueueState(queue.attributes.FifoQueue === 'true');
    this.records = new StateRecords(
      (seqs) => deps.log.dropStates(seqs),
      (err) => deps.logger.warn({ err, queue: queue.name }, 'deleting dead state records failed; retried by the next sweep'),
      STATE_GC_DELAY_MS,
    );
    this.now = deps.now ?? Date.now;
    this.retentionMs = Number(queue.attributes.MessageRetentionPeriod) * 1000;
  }

  /**
   * Rebuilds the queue from JetStream and drops the messages past their retention before any
   * operation sees them (nobody swept a queue that rested unowned). Later sweeps are the router's
   * (one timer for all queues).
   */
  static async start(queue: QueueRecord, deps: OwnerDeps): Promise<QueueOwner> {
    const owner = new QueueOwner(queue, deps);
    // Before the rebuild: a stale owner's PurgeQueue must not reach what is read or written from now on.
    owner.term = await deps.log.beginTerm();
    const rebuilt = await deps.log.rebuild(owner.state);
    for (const s of rebuilt.states) owner.state.restore(s);
    owner.records.load(rebuilt.records);
    const current = await deps.record();
    if (current?.id === queue.id) owner.retentionMs = Number(current.attributes.MessageRetentionPeriod) * 1000;
    // Gone from memory now (synchronously); their deletion from the log goes on in the background
    // (a failed one is retried by the next sweep, or the next rebuild finds them expired again).
    owner.track(() => owner.dropExpired()).catch((err: unknown) => deps.logger.warn({ err, queue: queue.name }, 'retention sweep failed'));
    return owner;
  }

  /**
   * Stops serving: long polls return empty, new operations fail. Operations already past their
   * start still finish their writes; `idle()` tells when they did.
   */
  stop(): void {
    this.active = false;
    this.records.stop();
    this.wake();
  }

  /** Settles once no operation is under way (after `stop()`: once the last write finished). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  // Runs one operation, counted in `running` until it settled.
  private track<T>(op: () => Promise<T>): Promise<T> {
    const p = op();
    this.running.add(p);
    const done = () => void this.running.delete(p);
    p.then(done, done);
    return p;
  }

  private async attributes(): Promise<Readonly<Record<string, string>>> {
    const r = await this.deps.record();
    if (!r || r.id !== this.queue.id || !this.active) throw sqsError('QueueDoesNotExist');
    return r.attributes;
  }

  private wake(): void {
    if (!this.waiters) return;
    const all = [...this.waiters];
    this.waiters.clear();
    for (const w of all) w();
  }

  /** Appends messages in order; FIFO appends are serialised so stream order is delivery order. */
  append(entries: readonly AppendRequest[]): Promise<Outcome<{ MessageId: string; SequenceNumber?: string }>[]> {
    return this.track(() => this.appendNow(entries));
  }

  private async appendNow(entries: readonly AppendRequest[]): Promise<Outcome<{ MessageId: string; SequenceNumber?: string }>[]> {
    await this.attributes();
    const run = async () => {
      const out: Outcome<{ MessageId: string; SequenceNumber?: string }>[] = [];
      const one = async (e: AppendRequest) => {
        try {
          const sentAt = e.fields.sentAt;
          const fields: StoredFields = { ...e.fields, visibleAt: sentAt + e.fields.delaySeconds * 1000 };
          const { seq, duplicate } = await this.deps.log.append(fields, e.payload, e.msgId);
          if (!duplicate && this.active) {
            this.state.add({ seq, sentAt, group: e.fields.group, visibleAt: fields.visibleAt, receiveCount: 0, version: 0 });
            this.wake();
          } else if (duplicate && this.active && !this.state.messages.has(seq)) {
            await this.adopt(seq);
          }
          const MessageId = e.fields.messageId ?? messageIdFor(this.queue.id, seq);
          return { ok: this.state.fifo ? { MessageId, SequenceNumber: sequenceNumber(seq) } : { MessageId } };
        } catch (error) {
          return { error };
        }
      };
      if (this.state.fifo) for (const e of entries) out.push(await one(e));
      else out.push(...(await Promise.all(entries.map(one))));
      return out;
    };
    if (!this.state.fifo) return run();
    const next = this.sendChain.then(run, run);
    this.sendChain = next.catch(() => undefined);
    return next;
  }

  /**
   * A duplicate append whose original this owner does not know: a write of an old owner that landed
   * after this owner's rebuild (never answered; the client's retry is what brought it here). It is
   * answered now, so it is delivered now rather than after the next takeover. An original that is
   * gone (deleted, or being deleted) is not there to read and stays gone.
   */
  private async adopt(seq: number): Promise<void> {
    const stored = await this.deps.log.read(seq);
    if (!stored || !this.active || this.state.messages.has(seq)) return;
    const f = stored.fields;
    this.state.add({
      seq,
      sentAt: f.sentAt,
      group: this.state.fifo || f.group !== undefined ? f.group : undefined,
      visibleAt: f.visibleAt,
      receiveCount: 0,
      version: 0,
    });
    this.deps.logger.info({ queue: this.queue.name, seq }, 'adopted a message an earlier owner stored after the takeover');
    this.wake();
  }

  /** ReceiveMessage, long polling until a message is available, the wait ends, or `signal` aborts. */
  receive(req: ReceiveMessageRequest, ctx: RequestContext, signal: AbortSignal): Promise<ReceivedMessage[]> {
    return this.track(() => this.receiveNow(req, ctx, signal));
  }

  private async receiveNow(req: ReceiveMessageRequest, ctx: RequestContext, signal: AbortSignal): Promise<ReceivedMessage[]> {
    const attrs = await this.attributes();
    const attemptId = this.state.fifo ? req.ReceiveRequestAttemptId : undefined;
    const replay = attemptId ? this.replayAttempt(attemptId) : undefined;
    if (replay) return [...replay];
    const max = req.MaxNumberOfMessages ?? 1;
    const visibilityMs = (req.VisibilityTimeout ?? Number(attrs.VisibilityTimeout)) * 1000;
    const deadline = this.now() + (req.WaitTimeSeconds ?? Number(attrs.ReceiveMessageWaitTimeSeconds)) * 1000;
    for (let round = 0; ; round += 1) {
      if (!this.active) return [];
      // At the in-flight quota a standard queue answers OverLimit; a FIFO queue delivers nothing
      // more and gives no error (both as AWS does).
      const full = this.atInFlightQuota();
      if (full && !this.state.fifo) throw sqsError('OverLimit');
      const picked = full ? [] : this.state.candidates(this.now(), max);
      if (picked.length > 0) {
        const out = await this.deliver(picked, visibilityMs, attrs, ctx);
        if (out.length > 0) {
          if (attemptId) (this.attempts ??= new Map()).set(attemptId, { at: this.now(), messages: out });
          return out;
        }
        continue;
      }
      if (this.now() >= deadline || signal.aborted) return [];
      await this.waitForChange(Math.min(deadline, this.state.nextChangeAt(this.now()) ?? deadline), signal);
    }
  }

  private atInFlightQuota(): boolean {
    const quota = this.deps.maxInFlight ?? MAX_IN_FLIGHT;
    if (this.state.messages.size < quota) return false;
    const now = this.now();
    if (!this.inFlight || now - this.inFlight.at > 1000) this.inFlight = { at: now, count: this.state.counts(now).notVisible };
    return this.inFlight.count >= quota;
  }

  private replayAttempt(id: string): readonly ReceivedMessage[] | undefined {
    if (!this.attempts) return undefined;
    const now = this.now();
    for (const [k, v] of this.attempts) if (now - v.at > ATTEMPT_ID_MS) this.attempts.delete(k);
    const hit = this.attempts.get(id);
    if (!hit) return undefined;
    // Only while every message of that answer is still in flight under the same delivery.
    const current = hit.messages.every((m) => {
      const f = verifyReceiptHandle(m.ReceiptHandle, this.deps.keys, this.queue.id);
      const meta = this.state.messages.get(f.sequence);
      return meta && meta.receiveCount === f.receiveCount && meta.visibleAt > now;
    });
    return current ? hit.messages : undefined;
  }

  private waitForChange(until: number, signal: AbortSignal): Promise<void> {
    const waiters = (this.waiters ??= new Set());
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, until - this.now()));
      signal.addEventListener('abort', done, { once: true });
      waiters.add(done);
    });
  }

  // Marks the picked messages received (synchronously, so a concurrent receive cannot take them),
  // moves those over maxReceiveCount to the dead-letter queue, stores the new state of the whole
  // batch in one record while reading the bodies, and answers once both are done.
  private async deliver(
    picked: MessageMeta[],
    visibilityMs: number,
    attrs: Readonly<Record<string, string>>,
    ctx: RequestContext,
  ): Promise<ReceivedMessage[]> {
    const redrive = parseRedrivePolicy(attrs.RedrivePolicy);
    const now = this.now();
    const moving = redrive ? picked.filter((m) => m.receiveCount >= redrive.maxReceiveCount) : [];
    for (const m of moving) this.state.remove(m.seq);
    const taking = picked.filter((m) => !moving.includes(m));
    for (const m of taking) this.state.markReceived(m, now, now + visibilityMs);
    if (taking.length > 0) this.inFlight = undefined;
    const moves = redrive ? moving.map((m) => this.moveToDeadLetter(m, redrive.deadLetterTargetArn, ctx)) : [];
    const reading = Promise.all(taking.map((m) => this.deps.log.read(m.seq)));
    // Awaited below; without this a failed save would leave a failed read unhandled.
    reading.catch(() => undefined);
    try {
      if (taking.length > 0) await this.save(taking);
      const stored = await reading;
      await Promise.all(moves);
      const out: ReceivedMessage[] = [];
      taking.forEach((m, i) => {
        const s = stored[i];
        if (!s) return void this.forget(m.seq);
        out.push(receivedMessage({ queueId: this.queue.id, fifo: this.state.fifo, key: this.deps.keys[0] }, m, s.fields, s.payload, now));
      });
      return out;
    } catch (err) {
      // Nothing was answered: make the messages available again (the receive count stays, as on AWS).
      for (const m of taking) if (this.state.messages.get(m.seq) === m) this.state.setVisibleAt(m, now);
      if (taking.length > 0) this.aheadOfLogUntil = Math.max(this.aheadOfLogUntil, now + visibilityMs);
      this.wake();
      throw err;
    }
  }

  // One state record for all of `metas`; answers once JetStream stored it.
  private async save(metas: readonly MessageMeta[]): Promise<void> {
    const record = await this.deps.log.saveStates(
      metas.map((m) => ({ seq: m.seq, receiveCount: m.receiveCount, firstReceiveAt: m.firstReceiveAt, visibleAt: m.visibleAt })),
    );
    this.records.saved(
      record,
      metas.filter((m) => this.state.messages.get(m.seq) === m).map((m) => m.seq),
    );
  }

  // Drops a message that is gone from the log (or never was: a read found nothing).
  private forget(seq: number): void {
    this.state.remove(seq);
    this.records.removed(seq);
  }

  private async moveToDeadLetter(m: MessageMeta, targetArn: string, ctx: RequestContext): Promise<void> {
    try {
      const stored = await this.deps.log.read(m.seq);
      if (stored) {
        const f = stored.fields;
        const [outcome] = await this.deps.appendTo(
          targetArn.slice(targetArn.lastIndexOf(':') + 1),
          [
            {
              // AWS: a standard queue's message keeps its enqueue time in the DLQ (retention counts from
              // the original send), a FIFO queue's is reset by the move.
              fields: {
                ...f,
                ...(this.state.fifo ? { sentAt: this.now() } : {}),
                delaySeconds: 0,
                messageId: f.messageId ?? messageIdFor(this.queue.id, m.seq),
                sourceArn: `arn:aws:sqs:${ctx.region}:${ctx.accountId}:${this.queue.name}`,
              },
              payload: stored.payload,
              msgId: `dlq:${this.queue.id}:${m.seq}`,
            },
          ],
          ctx,
        );
        if (!outcome || 'error' in outcome) throw asError(outcome?.error ?? new Error('no answer from the dead-letter queue'));
      }
      await this.deps.log.remove(m.seq);
      this.records.removed(m.seq);
    } catch (err) {
      this.deps.logger.warn({ err, queue: this.queue.name, seq: m.seq }, 'dead-letter move failed; message stays');
      if (this.active) this.state.add({ ...m, visibleAt: this.now() + 1000, version: m.version + 1 });
    }
  }

  /** DeleteMessage(Batch). A handle superseded by a later receive succeeds without deleting (AWS). */
  delete(handles: readonly string[]): Promise<Outcome<true>[]> {
    return this.track(() => this.deleteNow(handles));
  }

  private async deleteNow(handles: readonly string[]): Promise<Outcome<true>[]> {
    await this.attributes();
    return Promise.all(
      handles.map(async (handle): Promise<Outcome<true>> => {
        try {
          const f = verifyReceiptHandle(handle, this.deps.keys, this.queue.id);
          const meta = this.state.messages.get(f.sequence);
          if (!meta || meta.receiveCount !== f.receiveCount) return { ok: true };
          this.state.remove(meta.seq);
          try {
            await this.deps.log.remove(meta.seq);
          } catch (err) {
            this.state.add(meta);
            throw err;
          }
          this.records.removed(meta.seq);
          this.inFlight = undefined;
          if (this.state.fifo) this.wake();
          return { ok: true };
        } catch (error) {
          return { error };
        }
      }),
    );
  }

  /** ChangeMessageVisibility(Batch): only with the latest handle of a message in flight; one state record for the batch. */
  changeVisibility(entries: readonly { handle: string; seconds: number }[]): Promise<Outcome<true>[]> {
    return this.track(() => this.changeVisibilityNow(entries));
  }

  private async changeVisibilityNow(entries: readonly { handle: string; seconds: number }[]): Promise<Outcome<true>[]> {
    await this.attributes();
    const now = this.now();
    const changed: { meta: MessageMeta; previous: number; index: number }[] = [];
    const out = entries.map(({ handle, seconds }, index): Outcome<true> => {
      try {
        const f = verifyReceiptHandle(handle, this.deps.keys, this.queue.id);
        const meta = this.state.messages.get(f.sequence);
        if (meta && meta.receiveCount !== f.receiveCount)
          throw sqsError(
            'ReceiptHandleIsInvalid',
            `The receipt handle "${handle.slice(0, 64)}..." has expired: the message was received again.`,
          );
        if (!meta || meta.visibleAt <= now) throw sqsError('MessageNotInflight');
        if (now + seconds * 1000 - f.issuedAt > MAX_VISIBILITY_MS) {
          throw sqsError(
            'InvalidParameterValue',
            `Value ${seconds} for parameter VisibilityTimeout is invalid. Reason: Total VisibilityTimeout for the message is beyond the limit [43200 seconds]`,
          );
        }
        changed.push({ meta, previous: meta.visibleAt, index });
        this.state.setVisibleAt(meta, now + seconds * 1000);
        return { ok: true };
      } catch (error) {
        return { error };
      }
    });
    if (changed.length === 0) return out;
    try {
      await this.save([...new Set(changed.map((c) => c.meta))]);
    } catch (error) {
      // Backwards, so a message named twice gets its first (original) visibility back.
      for (const c of [...changed].reverse()) this.state.setVisibleAt(c.meta, c.previous);
      for (const c of changed) out[c.index] = { error };
      return out;
    }
    if (changed.some((c) => c.meta.visibleAt < c.previous)) this.wake();
    return out;
  }

  /** PurgeQueue: everything, in flight included; once per 60 s. */
  purge(): Promise<void> {
    return this.track(() => this.purgeNow());
  }

  private async purgeNow(): Promise<void> {
    await this.attributes();
    if (this.now() - this.lastPurge < PURGE_BLOCK_MS) throw sqsError('PurgeQueueInProgress');
    // Cleared first, so no receive delivers what is being purged; put back if the purge fails
    // (nothing was purged, or only part: a later read of a purged body drops that message).
    const before = [...this.state.messages.values()];
    const previousPurge = this.lastPurge;
    this.lastPurge = this.now();
    this.state.clear();
    this.records.clear();
    try {
      this.term = await this.deps.log.purgeFenced(this.term);
    } catch (err) {
      for (const m of before) if (!this.state.messages.has(m.seq)) this.state.add(m);
      this.lastPurge = previousPurge;
      this.wake();
      throw err;
    }
    this.wake();
  }

  /** Approximate counts for GetQueueAttributes. */
  counts(): QueueCounts {
    return this.state.counts(this.now());
  }

  /** Deletes messages older than MessageRetentionPeriod, whatever their state. */
  sweep(): Promise<number> {
    return this.track(() => this.sweepNow());
  }

  private async sweepNow(): Promise<number> {
    const attrs = await this.attributes();
    this.retentionMs = Number(attrs.MessageRetentionPeriod) * 1000;
    const n = await this.dropExpired();
    // Dead state records whose deletion failed earlier.
    await this.records.flush();
    return n;
  }

  // Forgets expired messages at once (before the first await), then deletes them from the log.
  private async dropExpired(): Promise<number> {
    const expired = this.state.sentBefore(this.now() - this.retentionMs);
    for (const seq of expired) this.state.remove(seq);
    if (expired.length > 0) this.wake();
    await Promise.all(expired.map((seq) => this.deps.log.remove(seq).then(() => this.records.removed(seq))));
    return expired.length;
  }

  /**
   * What the router's idle release needs (idle-release.ts): the counts now; when they change by
   * themselves (wall clock); the retention; and whether state that lives only in this owner's
   * memory still matters, so the queue must stay here: an operation or sweep under way, a FIFO
   * receive attempt that may still be retried (ReceiveRequestAttemptId, 5 min), a purge's 60 s
   * block of the next purge, a failed receive rolled back in memory only (`aheadOfLogUntil`).
   * Undefined when it stays owned anyway (pinned, or more than KEEP_OWNED_MESSAGES messages).
   */
  restView(): { counts: QueueCounts; visibleChangeAt?: number; oldestSentAt?: number; retentionMs: number; pinned: boolean } | undefined {
    const now = this.now();
    let pinned = this.running.size > 0 || now - this.lastPurge < PURGE_BLOCK_MS || now < this.aheadOfLogUntil;
    for (const a of this.attempts?.values() ?? []) if (now - a.at <= ATTEMPT_ID_MS) pinned = true;
    // Undefined: the queue stays here anyway, so its messages are not scanned (every tick, for a
    // queue too big to let go).
    if (pinned || this.state.messages.size > KEEP_OWNED_MESSAGES) return undefined;
    let oldestSentAt: number | undefined;
    for (const m of this.state.messages.values()) if (oldestSentAt === undefined || m.sentAt < oldestSentAt) oldestSentAt = m.sentAt;
    return {
      counts: this.state.counts(now),
      visibleChangeAt: this.state.nextChangeAt(now),
      oldestSentAt,
      retentionMs: this.retentionMs,
      pinned,
    };
  }
}
