/**
 * Getting each queue operation to the controller that owns the queue: run it on the owner here,
 * take the queue over when nobody owns it, or forward it to the owner elsewhere, retrying until
 * somebody answers (or a request's deadline passes).
 *
 * Ownership, fencing and graceful handover: queue-leases.ts. The one timer (renewals, retention
 * sweeps) and idle queues let go: queue-upkeep.ts. Forwarding over NATS request/reply and
 * answering what was forwarded here: queue-forwarding.ts. A long poll forwarded to another
 * controller goes in chunks of `FORWARDED_POLL_S`, so an owner dying mid-poll costs at most one
 * chunk: the poll goes on with the next owner for the time left.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../../../core/contracts.js';
import type { ReceivedMessage, RequestContext } from '../sqs-engine.js';
import type { QueueDepth } from '../metrics.js';
import type { QueueCatalog, QueueRecord } from './catalog.js';
import type { QueueLog } from './queue-log.js';
import type { QueueOwner } from './queue-owner.js';
import type { QueueCounts } from './queue-state.js';
import { runOnOwner, type OpOutcome, type OpResults, type QueueOp } from './queue-ops.js';
import { QueueLeases, type Held } from './queue-leases.js';
import { QueueUpkeep } from './queue-upkeep.js';
import { FORWARDED_POLL_S, forward, NotOwnerError, OwnerSilentError, serve } from './queue-forwarding.js';

export type { OpResults, QueueOp } from './queue-ops.js';

/** Collaborators of the router. */
export interface RouterDeps {
  readonly nc: NatsConnection;
  readonly leases: KV;
  readonly leaseMs: number;
  readonly catalog: QueueCatalog;
  readonly logFor: (queueId: string) => QueueLog;
  readonly startOwner: (record: QueueRecord) => Promise<QueueOwner>;
  readonly logger: Logger;
  /** `messaging.owner_idle_seconds` in ms: a queue idle this long is let go; 0 (default): never. */
  readonly idleMs?: number;
  /** Monotonic milliseconds (default `performance.now`): lease ages, idleness, request deadlines. */
  readonly now?: () => number;
}

/** Routes queue operations to the queue's owner, becoming the owner when nobody is. */
export class QueueRouter {
  private readonly leases: QueueLeases;
  private readonly upkeep: QueueUpkeep;
  private readonly now: () => number;
  private stopped = false;

  constructor(private readonly deps: RouterDeps) {
    const now = (this.now = deps.now ?? (() => performance.now()));
    this.leases = new QueueLeases({
      ...deps,
      now,
      serve: (h, data, respond) =>
        serve(
          {
            get cancels() {
              return (h.cancels ??= new Map());
            },
            valid: () => this.leases.valid(h),
            answer: (op, ctx) => this.leases.using(h, async () => this.fenced(h, await h.owner, op, ctx)),
          },
          data,
          respond,
        ),
      onLoaded: (id) => this.upkeep.resting.delete(id),
    });
    this.upkeep = new QueueUpkeep(this.leases, { ...deps, idleMs: deps.idleMs ?? 0, now });
    // A deleted (or re-created) queue stops being ours at once.
    deps.catalog.cache.onChange = (name, value) => {
      this.leases.dropReplaced(name, value?.id);
      this.upkeep.catalogChanged(name, value);
    };
  }

  /** This controller's identity in leases (new per start, so a restart never inherits a stale lease). */
  get nodeId(): string {
    return this.leases.nodeId;
  }

  /** How many queues this controller owns (for tests and metrics). */
  get owned(): number {
    return this.leases.owned;
  }

  /** How many queues this controller let go while idle and still reports (for tests). */
  get rested(): number {
    return this.upkeep.resting.size;
  }

  /**
   * The depths of the queues this controller owns and has loaded, from the owners' memory (no
   * JetStream request), and of those it let go while idle, as they were then (true until it takes
   * them back or somebody else takes them over): each queue is counted by one controller, so the
   * controllers' sum is the total.
   */
  depths(): QueueDepth[] {
    const rows: QueueDepth[] = [];
    const row = (queue: string, c: QueueCounts) => rows.push({ queue, visible: c.visible, inflight: c.notVisible, delayed: c.delayed });
    for (const h of this.leases.all()) if (h.loaded && this.leases.valid(h)) row(h.record.name, h.loaded.counts());
    // Until a takeover here has rebuilt the queue, its last counts stand.
    for (const [id, r] of this.upkeep.resting) if (!this.leases.get(id)?.loaded) row(r.name, r.counts);
    return rows;
  }

  // Runs `op` on the owner, then fences its outcome (queue-leases.ts): undefined when it may not be answered.
  private async fenced(h: Held, owner: QueueOwner, op: QueueOp, ctx: RequestContext): Promise<OpOutcome | undefined> {
    const outcome = await runOnOwner(owner, op, ctx).then(
      (ok) => ({ ok }),
      (err: unknown) => ({ err }),
    );
    if (this.answerable(h, op, outcome)) return outcome;
    this.deps.logger.warn(
      { queue: h.record.name, node: this.nodeId, op: op.op },
      'queue lease not held when the operation ended; its outcome is not answered',
    );
    return undefined;
  }

  // Whether an owner's outcome may reach the client: yes while we hold the lease (the writes
  // behind it were done before anybody else could own the queue); an empty receive always may.
  private answerable(h: Held, op: QueueOp, outcome: OpOutcome): boolean {
    if (op.op === 'receive' && 'ok' in outcome && (outcome.ok as unknown[]).length === 0) return true;
    return this.leases.holds(h);
  }

  /** Runs `op` on the owner of `queueName`. */
  async run<K extends QueueOp['op']>(queueName: string, op: Extract<QueueOp, { op: K }>, ctx: RequestContext): Promise<OpResults[K]> {
    let deadline = this.now() + this.deps.leaseMs * 2 + 10_000;
    // A receive forwarded to another controller: when its whole wait ends (set at the first forward).
    let pollEnd: number | undefined;
    for (let attempt = 0; ; attempt += 1) {
      if (this.stopped) throw new Error('messaging engine stopped');
      const record = await this.deps.catalog.require(queueName);
      const held = this.leases.get(record.id);
      if (held && this.leases.valid(held)) {
        // A failed takeover (JetStream unavailable while rebuilding) drops the lease; try again.
        const outcome = await this.leases.using(held, async (owner) => (owner ? this.fenced(held, owner, op, ctx) : null));
        if (outcome === null) {
          await sleep(200);
          continue;
        }
        if (outcome && 'err' in outcome) throw outcome.err;
        if (outcome) return outcome.ok as OpResults[K];
        // Not answerable: ask again, now of whoever owns the queue.
        deadline = this.now() + this.deps.leaseMs * 2 + 10_000;
        continue;
      }
      // Being handed over by us: the lease still names us until the drain ends; wait for that
      // rather than take it back under operations still writing.
      const handover = this.leases.handover(record.id);
      if (handover) {
        await handover;
        continue;
      }
      if (this.now() > deadline) throw new Error(`no owner for queue ${queueName} answered`);
      const lease = await this.deps.leases.get(record.id);
      if (!lease || lease.operation !== 'PUT' || lease.string() === this.leases.nodeId) {
        if (!held) await this.leases.acquire(record, lease?.operation === 'PUT' ? lease.revision : undefined);
        else await sleep(50);
        continue;
      }
      try {
        if (op.op !== 'receive') return (await forward(this.deps, record, op, ctx, 0)) as OpResults[K];
        const req = (op as Extract<QueueOp, { op: 'receive' }>).req;
        pollEnd ??= this.now() + (req.WaitTimeSeconds ?? Number(record.attributes.ReceiveMessageWaitTimeSeconds ?? 0)) * 1000;
        const left = Math.max(0, Math.floor((pollEnd - this.now()) / 1000));
        const chunk = Math.min(FORWARDED_POLL_S, left);
        const got = (await forward(
          this.deps,
          record,
          { op: 'receive', req: { ...req, WaitTimeSeconds: chunk } },
          ctx,
          chunk * 1000,
        )) as ReceivedMessage[];
        if (got.length > 0 || left <= chunk || ctx.signal.aborted) return got as OpResults[K];
        // Nothing yet and time left: poll on, with whoever owns the queue by now.
        deadline = this.now() + this.deps.leaseMs * 2 + 10_000;
        continue;
      } catch (err) {
        if (err instanceof OwnerSilentError) {
          // The owner took the poll and died: go on with the next owner for the time left (AWS
          // answers a long poll with messages or, at its end, empty; never an error).
          if (ctx.signal.aborted || this.now() >= (pollEnd ?? 0)) return [] as unknown as OpResults[K];
          continue;
        }
        if (!(err instanceof NotOwnerError)) throw err;
        await sleep(Math.min(500, 50 * (attempt + 1)));
      }
    }
  }

  /** Stops owning everything and hands the leases back, so others take over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.upkeep.quiesce();
    // The timer goes on renewing the leases of queues still draining.
    await this.leases.releaseAll();
    this.upkeep.stop();
  }
}
