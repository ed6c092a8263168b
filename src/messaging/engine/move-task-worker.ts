/**
 * The worker of a message move task, and the compare-and-set store of task records it shares with
 * `MoveTasks` (`move-tasks.ts`, which starts, lists, cancels and resumes tasks).
 *
 * The worker moves messages through the SQS engine itself: receive from the source, send to the
 * destination with an idempotency key, delete from the source, paced to the task's rate, with a
 * heartbeat about once a second that also reads a cancel or a takeover.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import type { KV, KvEntry } from '@nats-io/kv';
import type { Logger } from '../../../core/contracts.js';
import { asError } from '../../../core/errors.js';
import { MessagingError, sqsError } from '../errors.js';
import type * as Sqs from '../sqs-engine.js';
import * as T from './move-task-records.js';

/** The engine calls a worker makes. */
export type MoveEngine = Pick<
  Sqs.SqsEngine,
  'receiveMessage' | 'deleteMessageBatch' | 'changeMessageVisibilityBatch' | 'getQueueAttributes'
> & {
  deliver(queueName: string, message: Sqs.MessageToSend, idempotencyKey: string, ctx: Sqs.RequestContext): Promise<void>;
};

const BEAT_MS = 1000;
/**
 * Visibility of messages the worker holds: a batch is sent and deleted within milliseconds, and a
 * batch a dead worker held is visible again soon. Should it run out while a batch is still being
 * sent, the message is received again and sent with the same idempotency key: stored once.
 */
const MOVE_VISIBILITY_S = 5;
/** How long a worker retries transient failures before it ends the task FAILED. */
const RETRY_FOR_MS = 120_000;

/** A task record with the KV revision it was read at. */
export interface StoredTask {
  readonly record: T.MoveTaskRecord;
  readonly revision: number;
}

/** Task records in KV, changed only by compare-and-set. */
export class MoveTaskStore {
  constructor(private readonly kv: KV) {}

  /** The record under `key`, or undefined when there is none. */
  async read(key: string): Promise<StoredTask | undefined> {
    const e: KvEntry | null = await this.kv.get(key);
    return e && e.operation === 'PUT' ? { record: e.json<T.MoveTaskRecord>(), revision: e.revision } : undefined;
  }

  /** Compare-and-set of `change` (undefined: write nothing); re-reads and re-applies after a conflict. */
  async update(
    key: string,
    start: StoredTask,
    change: (r: T.MoveTaskRecord) => T.MoveTaskRecord | undefined,
  ): Promise<T.MoveTaskRecord | undefined> {
    let current: StoredTask | undefined = start;
    for (let i = 0; i < 10 && current; i += 1) {
      const next = change(current.record);
      if (!next) return undefined;
      try {
        await this.kv.update(key, JSON.stringify(next), current.revision);
        return next;
      } catch {
        current = await this.read(key);
      }
    }
    if (!current) return undefined;
    throw new Error(`move task ${key}: too much contention`);
  }
}

/** Collaborators of a worker. */
export interface MoveTaskWorkerDeps {
  readonly store: MoveTaskStore;
  readonly engine: MoveEngine;
  readonly logger: Logger;
  /** This controller's worker id, written into the records it runs. */
  readonly instance: string;
  readonly now: () => number;
  /** True once the controller shuts down: the worker lets its task go. */
  stopping(): boolean;
}

/** What one worker carries between rounds. */
interface WorkerState {
  readonly key: string;
  readonly sourceName: string;
  readonly task: T.MoveTaskRecord;
  readonly ctx: Sqs.RequestContext;
  moved: number;
  lastBeat: number;
  readonly holdUntil: number;
}

/** Runs tasks on this controller, one `run` per task. */
export class MoveTaskWorker {
  constructor(private readonly deps: MoveTaskWorkerDeps) {}

  // The worker: batches of at most 10 (and at most the rate per second), paced to the rate; a
  // heartbeat (which also reads cancels and takeovers) at most once a second. A failure the
  // sender caused (queue deleted, no way back) ends the task FAILED; anything else (an owner
  // changing hands, a NATS hiccup) is retried with backoff for up to RETRY_FOR_MS.
  /** Runs the task under `key` until it ends, is cancelled or taken over, or the controller stops. */
  async run(key: string, sourceName: string, resumed: boolean): Promise<void> {
    const stored = await this.deps.store.read(key);
    if (!stored) return;
    const task = stored.record;
    const ctx: Sqs.RequestContext = {
      ...T.arnParts(task.sourceArn),
      requestId: randomUUID(),
      accessKeyId: task.senderId,
      authenticated: true,
      signal: new AbortController().signal,
    };
    const state: WorkerState = {
      key,
      sourceName,
      task,
      ctx,
      moved: task.moved,
      lastBeat: this.deps.now(),
      // A resumed task: the batch its dead worker held is invisible for up to MOVE_VISIBILITY_S
      // more; an empty source means "done" only after that.
      holdUntil: resumed ? this.deps.now() + (MOVE_VISIBILITY_S + 1) * 1000 : 0,
    };
    let failingSince: number | undefined;
    for (let attempt = 0; ;) {
      try {
        const outcome = await this.step(state);
        if (outcome !== 'again') return outcome === 'stop' ? undefined : await this.end(state, outcome);
        failingSince = undefined;
        attempt = 0;
      } catch (err) {
        // Shutting down: let go once more; should that fail too, the heartbeat goes stale and
        // another controller resumes the task after STALE_MS.
        if (this.deps.stopping()) return await this.end(state, 'RUNNING').catch(() => undefined);
        failingSince ??= this.deps.now();
        if (!T.retryable(err) || this.deps.now() - failingSince >= RETRY_FOR_MS) {
          this.deps.logger.warn({ err, task: task.taskId }, 'message move task failed');
          return await this.end(state, 'FAILED', err instanceof MessagingError ? err.code : 'InternalFailure');
        }
        this.deps.logger.info({ err, task: task.taskId }, 'message move task: retrying after a transient failure');
        await sleep(Math.min(5000, 250 * 2 ** attempt++));
      }
    }
  }

  // One round: the stop check, the heartbeat when due, then one paced batch.
  private async step(s: WorkerState): Promise<'again' | 'stop' | 'COMPLETED' | 'RUNNING'> {
    if (this.deps.stopping()) return 'RUNNING';
    if (this.deps.now() - s.lastBeat >= BEAT_MS) {
      const stored = await this.deps.store.read(s.key);
      const next =
        stored && (await this.deps.store.update(s.key, stored, (r) => T.heartbeat(r, this.deps.instance, s.moved, this.deps.now())));
      if (next?.status !== 'RUNNING') return 'stop';
      s.lastBeat = this.deps.now();
    }
    const rate = s.task.maxPerSecond ?? T.DEFAULT_MOVES_PER_SECOND;
    const want = Math.min(10, rate, s.task.toMove - s.moved);
    if (want <= 0) return 'COMPLETED';
    const t0 = this.deps.now();
    const got = await this.deps.engine.receiveMessage(
      {
        QueueName: s.sourceName,
        MaxNumberOfMessages: want,
        VisibilityTimeout: MOVE_VISIBILITY_S,
        WaitTimeSeconds: 0,
        AttributeNames: ['All'],
        MessageAttributeNames: ['All'],
      },
      s.ctx,
    );
    // In-flight messages are not moved (AWS): nothing visible left means done.
    if (got.Messages.length === 0) {
      if (this.deps.now() >= s.holdUntil) return 'COMPLETED';
      await sleep(500);
      return 'again';
    }
    await this.moveBatch(s, got.Messages);
    await sleep(t0 + (got.Messages.length / rate) * 1000 - this.deps.now());
    return 'again';
  }

  // Ends the task as `outcome` (RUNNING: lets go, for another controller to resume).
  private async end(s: WorkerState, outcome: 'COMPLETED' | 'FAILED' | 'RUNNING', reason?: string): Promise<void> {
    const current = await this.deps.store.read(s.key);
    if (current) await this.deps.store.update(s.key, current, (r) => T.finished(r, this.deps.instance, s.moved, outcome, reason));
  }

  // Sends each message (in order, for FIFO), then deletes those sent and counts them as moved; on
  // a failure the unsent ones are made visible again at once and the error is rethrown.
  private async moveBatch(s: WorkerState, messages: readonly Sqs.ReceivedMessage[]): Promise<void> {
    const { task, sourceName, ctx } = s;
    const sent: Sqs.ReceivedMessage[] = [];
    let failure: unknown;
    for (const m of messages) {
      try {
        const arn = task.destinationArn ?? m.Attributes.DeadLetterQueueSourceArn;
        if (arn === undefined)
          throw sqsError('InvalidParameterValue', `Message ${m.MessageId} has no DeadLetterQueueSourceArn to move it back to.`);
        const dest = T.queueNameFromArn(arn, 'DestinationArn', ctx);
        if (dest === undefined) throw sqsError('QueueDoesNotExist');
        await this.deps.engine.deliver(dest, T.toSend(m, dest.endsWith('.fifo')), `move:${task.taskId}:${m.MessageId}`, ctx);
        sent.push(m);
      } catch (err) {
        failure = err;
        break;
      }
    }
    const entries = (list: readonly Sqs.ReceivedMessage[]) => list.map((m, i) => ({ Id: `m${i}`, ReceiptHandle: m.ReceiptHandle }));
    // A failed delete leaves the sent ones uncounted: they come back after MOVE_VISIBILITY_S and
    // are sent again with the same idempotency key (stored once), then counted.
    if (sent.length > 0) await this.deps.engine.deleteMessageBatch({ QueueName: sourceName, Entries: entries(sent) }, ctx);
    s.moved += sent.length;
    if (failure !== undefined) {
      const rest = messages.filter((m) => !sent.includes(m));
      await this.deps.engine
        .changeMessageVisibilityBatch({ QueueName: sourceName, Entries: entries(rest).map((e) => ({ ...e, VisibilityTimeout: 0 })) }, ctx)
        .catch(() => undefined);
      throw asError(failure);
    }
  }
}
