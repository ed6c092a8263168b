/**
 * The owner's bookkeeping of delivery state records: which record holds each message's latest
 * state, and how many messages still depend on each record. A record nobody depends on (every
 * message in it deleted or saved again in a later record) is dead and is deleted in the
 * background: it is garbage, not state, since a rebuild lets the latest record of each message
 * win and ignores records of deleted messages. So deleting it late, or never (a failed request;
 * the next rebuild deletes it), loses nothing; deleting a record somebody still depends on would,
 * and that is what the counts prevent.
 */
import { detach } from '../../../core/errors.js';

/** Tracks state records of one queue (see the module comment). */
export class StateRecords {
  // Made by the first record (a queue nobody received from has none: memory per owned queue).
  /** Message sequence → the record holding its latest state. */
  private recordOf?: Map<number, number>;
  /** Record → how many messages still depend on it. */
  private live?: Map<number, number>;
  private dead: number[] = [];
  private flushing = false;
  private timer?: NodeJS.Timeout;

  /**
   * @param drop deletes records by sequence (`QueueLog.dropStates`).
   * @param onError told when a deletion failed; those records are retried by the next `flush`.
   * @param delayMs how long dead records wait to be deleted together (0: on the next tick).
   */
  constructor(
    private readonly drop: (records: number[]) => Promise<void>,
    private readonly onError: (err: unknown) => void,
    private readonly delayMs = 0,
  ) {}

  /** Records awaiting deletion (for tests). */
  get pending(): number {
    return this.dead.length;
  }

  /** Takes over what a rebuild found: record → the messages whose latest state it holds. */
  load(records: ReadonlyMap<number, readonly number[]>): void {
    for (const [record, seqs] of records) {
      const recordOf = (this.recordOf ??= new Map<number, number>());
      for (const seq of seqs) recordOf.set(seq, record);
      (this.live ??= new Map<number, number>()).set(record, seqs.length);
    }
  }

  /** `seqs` (messages that still exist) now have their latest state in `record`, which JetStream stored. */
  saved(record: number, seqs: Iterable<number>): void {
    const recordOf = (this.recordOf ??= new Map<number, number>());
    let n = 0;
    for (const seq of seqs) {
      const previous = recordOf.get(seq);
      // Concurrent saves may be acknowledged out of order; the later record in the stream wins, as on rebuild.
      if (previous !== undefined && previous >= record) continue;
      if (previous !== undefined) this.release(previous);
      recordOf.set(seq, record);
      n += 1;
    }
    const live = (this.live ??= new Map<number, number>());
    if (n > 0) live.set(record, (live.get(record) ?? 0) + n);
    else this.dead.push(record);
    this.flushSoon();
  }

  /** The message `seq` was deleted from the log. */
  removed(seq: number): void {
    const record = this.recordOf?.get(seq);
    if (record === undefined) return;
    this.recordOf?.delete(seq);
    this.release(record);
    this.flushSoon();
  }

  /** Forgets everything (the queue was purged, records included). */
  clear(): void {
    this.recordOf = undefined;
    this.live = undefined;
    this.dead = [];
  }

  /** Stops the pending timer (the owner stopped); what is left is deleted by the next rebuild. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Deletes the dead records now; failures stay queued for the next call. */
  async flush(): Promise<void> {
    if (this.flushing || this.dead.length === 0) return;
    this.flushing = true;
    const batch = this.dead;
    this.dead = [];
    try {
      await this.drop(batch);
    } catch (err) {
      this.dead.push(...batch);
      this.onError(err);
      return;
    } finally {
      this.flushing = false;
    }
    // Records that died while we were deleting.
    this.flushSoon();
  }

  private release(record: number): void {
    const live = (this.live ??= new Map<number, number>());
    const n = (live.get(record) ?? 1) - 1;
    if (n > 0) return void live.set(record, n);
    live.delete(record);
    this.dead.push(record);
  }

  // Off the answering path, and after a short delay so the deletions of many records leave in one
  // write to the NATS socket instead of one each (nats.js flushes once per microtask turn).
  private flushSoon(): void {
    if (this.dead.length === 0 || this.flushing || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // flush() hands its failures to onError; it never rejects.
      detach(this.flush(), (err) => this.onError(err));
    }, this.delayMs);
    this.timer.unref();
  }
}
