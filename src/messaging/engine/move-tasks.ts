/**
 * Message move tasks on JetStream: task records in KV (`mv.<source queue id>.<task id>` in the
 * `mammatus_sqs` bucket, plus `mvlock.<source queue id>` naming the queue's latest task), and the
 * worker that moves messages through the SQS engine itself: receive from the source, send to the
 * destination with an idempotency key, delete from the source.
 *
 * Any controller can list and cancel (they only read and compare-and-set the record). The
 * controller that started a task runs it and writes a heartbeat with its progress about once a
 * second; the same write reads a cancel (CANCELLING) and ends the task CANCELLED. Every controller
 * sweeps the records every few seconds and resumes a RUNNING task whose heartbeat is stale (its
 * controller stopped or died), so a task survives its controller. A message whose send succeeded
 * before a crash but whose delete did not is sent again by the resumed worker with the same
 * idempotency key, and stored once (within JetStream's 5-minute duplicate window).
 */
import { randomUUID } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import type { Logger } from '../../../core/contracts.js';
import { sqsError } from '../errors.js';
import type * as Sqs from '../sqs-engine.js';
import type { QueueCatalog, QueueRecord } from './catalog.js';
import * as T from './move-task-records.js';
import { type MoveEngine, MoveTaskStore, MoveTaskWorker, type StoredTask } from './move-task-worker.js';
import { parseRedrivePolicy } from './queue-attributes.js';

export type { MoveEngine } from './move-task-worker.js';

/** Collaborators of `MoveTasks`. */
export interface MoveTasksDeps {
  readonly kv: KV;
  readonly catalog: QueueCatalog;
  readonly engine: MoveEngine;
  readonly logger: Logger;
  /** This controller's worker id (random per process by default). */
  readonly instance?: string;
  readonly now?: () => number;
}

const STALE_MS = 10_000;
const SWEEP_MS = 5000;

const taskKey = (queueId: string, taskId: string) => `mv.${queueId}.${taskId}`;
const lockKey = (queueId: string) => `mvlock.${queueId}`;
const arnOf = (ctx: { region: string; accountId: string }, name: string) => `arn:aws:sqs:${ctx.region}:${ctx.accountId}:${name}`;

/** Start, list and cancel, and the workers of this controller. */
export class MoveTasks {
  private readonly instance: string;
  private readonly now: () => number;
  private readonly running = new Map<string, Promise<void>>();
  private stopping = false;
  private sweeper?: NodeJS.Timeout;
  private readonly store: MoveTaskStore;
  private readonly worker: MoveTaskWorker;

  constructor(private readonly deps: MoveTasksDeps) {
    this.instance = deps.instance ?? randomUUID();
    this.now = deps.now ?? Date.now;
    this.store = new MoveTaskStore(deps.kv);
    this.worker = new MoveTaskWorker({
      store: this.store,
      engine: deps.engine,
      logger: deps.logger,
      instance: this.instance,
      now: this.now,
      stopping: () => this.stopping,
    });
  }

  /** Starts the periodic sweep that resumes tasks of silent controllers. */
  startSweeper(): void {
    this.sweeper = setInterval(
      () => void this.sweep().catch((err: unknown) => this.deps.logger.warn({ err }, 'move task sweep failed')),
      SWEEP_MS,
    );
    this.sweeper.unref();
  }

  /** Stops the sweep and the workers; their tasks are released (heartbeat 0) for another controller. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.sweeper);
    await Promise.allSettled([...this.running.values()]);
  }

  private async queueByArn(arn: string, member: 'SourceArn' | 'DestinationArn', ctx: Sqs.RequestContext): Promise<QueueRecord> {
    const name = T.queueNameFromArn(arn, member, ctx);
    const record = name === undefined ? undefined : await this.deps.catalog.get(name);
    if (!record) throw T.resourceNotFound(member);
    return record;
  }

  /** StartMessageMoveTask. */
  async start(req: Sqs.StartMessageMoveTaskRequest, ctx: Sqs.RequestContext): Promise<Sqs.StartMessageMoveTaskResult> {
    const source = await this.queueByArn(req.SourceArn, 'SourceArn', ctx);
    const sourceArn = arnOf(ctx, source.name);
    const isDlq = (await this.deps.catalog.list()).some((q) => {
      try {
        return parseRedrivePolicy(q.attributes.RedrivePolicy)?.deadLetterTargetArn === sourceArn;
      } catch {
        return false;
      }
    });
    if (!isDlq) throw sqsError('InvalidParameterValue', 'Source queue must be configured as a Dead Letter Queue.');
    let destinationArn: string | undefined;
    if (req.DestinationArn !== undefined && req.DestinationArn !== '') {
      const dest = await this.queueByArn(req.DestinationArn, 'DestinationArn', ctx);
      // AWS: a custom destination must be of the dead-letter queue's type.
      if ((dest.attributes.FifoQueue === 'true') !== (source.attributes.FifoQueue === 'true')) {
        throw sqsError('InvalidParameterValue', 'The destination queue must be of the same type (standard or FIFO) as the source queue.');
      }
      destinationArn = arnOf(ctx, dest.name);
    }
    const counts = await this.deps.engine.getQueueAttributes(
      { QueueName: source.name, AttributeNames: ['ApproximateNumberOfMessages'] },
      ctx,
    );
    const record: T.MoveTaskRecord = {
      taskId: randomUUID(),
      sourceArn,
      ...(destinationArn !== undefined ? { destinationArn } : {}),
      ...(req.MaxNumberOfMessagesPerSecond !== undefined ? { maxPerSecond: req.MaxNumberOfMessagesPerSecond } : {}),
      status: 'RUNNING',
      moved: 0,
      toMove: Number(counts.Attributes.ApproximateNumberOfMessages ?? 0),
      startedAt: this.now(),
      senderId: ctx.accessKeyId ?? 'anonymous',
      worker: this.instance,
      beatAt: this.now(),
    };
    const key = taskKey(source.id, record.taskId);
    // The record first, then the lock: a concurrent start that reads our lock finds our record RUNNING.
    await this.deps.kv.create(key, JSON.stringify(record));
    try {
      await this.claim(source.id, record.taskId);
    } catch (err) {
      await this.deps.kv.delete(key).catch(() => undefined);
      throw err;
    }
    void this.prune(source.id).catch(() => undefined);
    this.launch(key, source.name);
    return { TaskHandle: T.encodeTaskHandle(record.taskId, sourceArn) };
  }

  // Points the queue's lock at `taskId`, unless it names a task that is still active.
  private async claim(queueId: string, taskId: string): Promise<void> {
    const lock = await this.deps.kv.get(lockKey(queueId));
    if (lock && lock.operation === 'PUT') {
      const other = await this.store.read(taskKey(queueId, lock.string()));
      if (other && T.isActive(other.record)) throw T.taskAlreadyRunning();
      await this.deps.kv.update(lockKey(queueId), taskId, lock.revision).catch(() => Promise.reject(T.taskAlreadyRunning()));
    } else {
      await this.deps.kv.create(lockKey(queueId), taskId).catch(() => Promise.reject(T.taskAlreadyRunning()));
    }
  }

  private async tasksOf(queueId: string): Promise<{ key: string; stored: StoredTask }[]> {
    const out: { key: string; stored: StoredTask }[] = [];
    for await (const key of await this.deps.kv.keys(`mv.${queueId}.*`)) {
      const stored = await this.store.read(key);
      if (stored) out.push({ key, stored });
    }
    return out;
  }

  private async prune(queueId: string): Promise<void> {
    for (const t of await this.tasksOf(queueId)) if (T.expired(t.stored.record, this.now())) await this.deps.kv.delete(t.key);
  }

  /** ListMessageMoveTasks. */
  async list(req: Sqs.ListMessageMoveTasksRequest, ctx: Sqs.RequestContext): Promise<Sqs.ListMessageMoveTasksResult> {
    const source = await this.queueByArn(req.SourceArn, 'SourceArn', ctx);
    const records = (await this.tasksOf(source.id)).map((t) => t.stored.record).filter((r) => !T.expired(r, this.now()));
    return { Results: T.newestFirst(records, req.MaxResults ?? 1).map(T.resultEntry) };
  }

  /** CancelMessageMoveTask: RUNNING → CANCELLING; the worker ends it CANCELLED at its next heartbeat. */
  async cancel(req: Sqs.CancelMessageMoveTaskRequest, ctx: Sqs.RequestContext): Promise<Sqs.CancelMessageMoveTaskResult> {
    const handle = T.decodeTaskHandle(req.TaskHandle);
    const source = await this.queueByArn(handle.sourceArn, 'SourceArn', ctx);
    const key = taskKey(source.id, handle.taskId);
    const stored = await this.store.read(key);
    if (!stored) throw sqsError('ResourceNotFoundException', 'Task does not exist.');
    const next = await this.store.update(key, stored, T.cancelled);
    return { ApproximateNumberOfMessagesMoved: next?.moved ?? stored.record.moved };
  }

  /** One sweep: resume stale RUNNING tasks here, finish stale CANCELLING ones. */
  async sweep(): Promise<void> {
    if (this.stopping) return;
    for await (const key of await this.deps.kv.keys('mv.>')) {
      if (this.running.has(key)) continue;
      const stored = await this.store.read(key);
      if (!stored || !T.isActive(stored.record)) continue;
      const next = await this.store.update(key, stored, (r) => T.takenOver(r, this.instance, this.now(), STALE_MS));
      if (next?.status !== 'RUNNING') continue;
      const name = T.queueNameFromArn(next.sourceArn, 'SourceArn', T.arnParts(next.sourceArn)) ?? '';
      this.deps.logger.info({ task: next.taskId, queue: name }, 'resuming a message move task of a silent controller');
      this.launch(key, name, true);
    }
  }

  private launch(key: string, sourceName: string, resumed = false): void {
    const run = this.worker
      .run(key, sourceName, resumed)
      .catch((err: unknown) => this.deps.logger.warn({ err, key }, 'message move task worker failed'))
      .finally(() => this.running.delete(key));
    this.running.set(key, run);
  }
}
