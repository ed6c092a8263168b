/**
 * Which controller owns a queue, and getting each operation to it.
 *
 * Ownership is a lease in the `mammatus_sqs_owners` KV bucket, whose TTL is the lease length: the
 * first controller to `create` the queue's key owns it and renews it with a revision-checked
 * `update` every third of the TTL; if it dies, the key expires and the next request anywhere
 * takes the queue over (and rebuilds it from JetStream). JetStream settles every race; we run no
 * consensus of our own. One timer per router (not per queue) sends the renewals of all its queues
 * and their retention sweeps.
 *
 * Idle queues are let go (idle-release.ts): a queue with nothing under way (no long poll waiting
 * either) and no operation for `owner_idle_seconds` is handed over gracefully (below) to nobody, so
 * a controller's steady work is proportional to its active queues, not to all it ever served. The
 * next request anywhere takes it over again. What it left behind here (its counts) keeps it in
 * the metrics, until somebody else takes it over (each takeover is announced on
 * `mammatus.sqs.owned`) or its counts would change by themselves (a message becoming visible or
 * expiring): then this router takes it back, which also sweeps what expired.
 *
 * Fencing: an owner answers an operation only if, once the operation's writes are done, it still
 * holds the lease by its own reckoning: not found lost by a renewal, and renewed successfully less
 * than two thirds of the TTL ago (measured on the monotonic clock from when that renewal was sent,
 * so the key cannot have expired yet). Otherwise (paused, stalled event loop, cut off from NATS)
 * the answer is dropped and the operation goes to whoever owns the queue now: a new owner may
 * already have rebuilt without those writes. A graceful handover (stop, deleted queue, idle)
 * stops taking operations, waits (at most `DRAIN_MS`, renewing meanwhile) for those under way to
 * finish their writes, and only then deletes the lease, so the next owner's rebuild sees them; a
 * request arriving here meanwhile waits for the handover to end instead of taking the lease back.
 *
 * Non-owners forward over NATS request/reply on `mammatus.sqs.rpc.<queue id>`, which only the
 * owner subscribes to. Received messages travel without bodies (the receiving controller reads
 * them from the shared stream), so ten 1 MiB messages never exceed NATS's payload limit.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { KV } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from '../../../core/contracts.js';
import type { ReceivedMessage, ReceiveMessageRequest, RequestContext } from '../sqs-engine.js';
import type { QueueDepth } from '../metrics.js';
import type { QueueCatalog, QueueRecord } from './catalog.js';
import { fromWireError, rpcPack, rpcUnpack, toWireError, type WireError } from './codec.js';
import { subjects } from './layout.js';
import type { QueueLog } from './queue-log.js';
import type { AppendRequest, Outcome, QueueOwner } from './queue-owner.js';
import type { QueueCounts } from './queue-state.js';
import { mayRelease, wakeAt, type Resting } from './idle-release.js';
import { detach, errorMessage } from '../../../core/errors.js';

/** The operations an owner runs, as they travel. */
export type QueueOp =
  | { readonly op: 'append'; readonly entries: AppendRequest[] }
  | { readonly op: 'receive'; readonly req: ReceiveMessageRequest }
  | { readonly op: 'delete'; readonly handles: string[] }
  | { readonly op: 'visibility'; readonly entries: { handle: string; seconds: number }[] }
  | { readonly op: 'purge' }
  | { readonly op: 'counts' };

/** What each operation answers. */
export interface OpResults {
  append: Outcome<{ MessageId: string; SequenceNumber?: string }>[];
  receive: ReceivedMessage[];
  delete: Outcome<true>[];
  visibility: Outcome<true>[];
  purge: null;
  counts: QueueCounts;
}

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

interface Held {
  readonly record: QueueRecord;
  readonly owner: Promise<QueueOwner>;
  /** The owner once it has loaded (metrics read its counts without waiting). */
  loaded?: QueueOwner;
  revision: number;
  renewedAt: number;
  /** Operations under way through this router (counted before they wait for the owner). */
  busy: number;
  /** When the last operation ended, or the queue was taken over. */
  usedAt: number;
  sweptAt: number;
  sub?: Subscription;
  readonly cancels: Map<string, AbortController>;
  /** Takes no more operations (handed over or lost). */
  dropped: boolean;
  /** The lease was found taken or gone, or is being handed back: nothing more is answered. */
  lost: boolean;
}

type Reply = { ok: unknown } | { err: WireError } | { notOwner: true };
type Forwarded = QueueOp & { readonly ctx: Omit<RequestContext, 'signal'>; readonly cancelId?: string };

class NotOwnerError extends Error {}
/** A forwarded receive got no answer in time: its owner died or stalled after taking it. */
class OwnerSilentError extends Error {}

/**
 * A long poll forwarded to another controller waits there at most this long per request: an owner
 * that dies mid-poll is noticed within this plus FORWARD_MARGIN_MS, and the poll goes on with the
 * queue's next owner for the time left.
 */
const FORWARDED_POLL_S = 5;
const FORWARD_MARGIN_MS = 5000;

// How long a handover waits for operations under way to finish their writes.
const DRAIN_MS = 5_000;
// How often owned queues drop messages past their retention.
const SWEEP_MS = 10_000;

/** Routes queue operations to the queue's owner, becoming the owner when nobody is. */
export class QueueRouter {
  /** This controller's identity in leases (new per start, so a restart never inherits a stale lease). */
  readonly nodeId = randomUUID();
  private readonly held = new Map<string, Held>();
  /** Handed over, still draining: renewed until the lease is deleted. */
  private readonly draining = new Map<string, { h: Held; done: Promise<void> }>();
  /** Queues let go while idle, by id (see the module comment). */
  private readonly resting = new Map<string, Resting>();
  private readonly acquiring = new Map<string, Promise<boolean>>();
  private readonly now: () => number;
  private readonly ticker: NodeJS.Timeout;
  private readonly ownedSub?: Subscription;
  private stopped = false;

  constructor(private readonly deps: RouterDeps) {
    this.now = deps.now ?? (() => performance.now());
    // A deleted (or re-created) queue stops being ours at once.
    deps.catalog.cache.onChange = (name, value) => {
      for (const h of this.held.values()) if (h.record.name === name && value?.id !== h.record.id) this.dropSoon(h);
      for (const [id, r] of this.resting) {
        if (r.name !== name) continue;
        if (value?.id !== id) this.resting.delete(id);
        else r.retentionMs = Number(value.attributes.MessageRetentionPeriod) * 1000;
      }
    };
    this.ticker = setInterval(() => this.tick(), Math.max(200, Math.floor(deps.leaseMs / 3)));
    this.ticker.unref();
    // Another controller took a queue over: what we kept of it is not ours to report any more.
    this.ownedSub = deps.nc.subscribe(subjects.owned, {
      callback: (err, msg) => {
        if (err) return;
        try {
          const { id, node } = rpcUnpack<{ id: string; node: string }>(msg.data);
          if (node !== this.nodeId) this.resting.delete(id);
        } catch {
          // Not an announcement of ours: nothing to forget.
        }
      },
    });
  }

  /**
   * The one timer of the router: renews every lease held (draining ones too), lets idle queues
   * go, sweeps retention, and takes back resting queues whose counts are due to change.
   */
  private tick(): void {
    for (const { h } of this.draining.values()) this.renewSoon(h);
    if (this.stopped) return;
    const now = this.now();
    for (const h of this.held.values()) {
      if (h.dropped) continue;
      if (h.loaded && this.idleRelease(h, now)) continue;
      this.renewSoon(h);
      if (h.loaded && now - h.sweptAt >= SWEEP_MS) {
        h.sweptAt = now;
        detach(h.loaded.sweep(), (err) => this.deps.logger.warn({ err, queue: h.record.name }, 'retention sweep failed'));
      }
    }
    const wall = Date.now();
    for (const [id, r] of this.resting) {
      const at = wakeAt(r);
      if (at !== undefined && at <= wall)
        detach(this.wake(id, r), (err) => this.deps.logger.warn({ err, queue: r.name }, 'taking a resting queue back failed'));
    }
  }

  private renewSoon(h: Held): void {
    detach(this.renew(h), (err) => this.deps.logger.warn({ err, queue: h.record.name }, 'lease renewal failed'));
  }

  // Lets `h` go if it is idle (idle-release.ts), keeping its counts; true if it did.
  private idleRelease(h: Held, now: number): boolean {
    const owner = h.loaded as QueueOwner;
    const idleMs = this.deps.idleMs ?? 0;
    if (idleMs <= 0 || h.busy > 0 || now - h.usedAt < idleMs || !this.valid(h)) return false;
    const view = owner.restView();
    const wall = Date.now();
    const changesAt = wakeAt(view);
    const release = mayRelease({
      busy: h.busy,
      idleForMs: now - h.usedAt,
      idleMs,
      changesInMs: changesAt === undefined ? undefined : changesAt - wall,
      pinned: view.pinned,
    });
    if (!release) return false;
    this.resting.set(h.record.id, {
      name: h.record.name,
      counts: view.counts,
      visibleChangeAt: view.visibleChangeAt,
      oldestSentAt: view.oldestSentAt,
      retentionMs: view.retentionMs,
    });
    this.deps.logger.debug({ queue: h.record.name, node: this.nodeId }, 'queue idle: let go');
    this.dropSoon(h);
    return true;
  }

  // Takes a resting queue back (its counts are due to change); somebody else owning it ends our interest.
  private async wake(id: string, r: Resting): Promise<void> {
    if (this.held.has(id) || this.acquiring.has(id) || this.draining.has(id)) return;
    const record = await this.deps.catalog.get(r.name);
    if (record?.id !== id) return void this.resting.delete(id);
    const lease = await this.deps.leases.get(id);
    if (lease?.operation === 'PUT' && lease.string() !== this.nodeId) return void this.resting.delete(id);
    if (lease?.operation === 'PUT') return;
    if (!(await this.acquire(record))) this.resting.delete(id);
  }

  /** Gives a queue up without waiting; a failure to give it up is logged (the lease then runs out). */
  private dropSoon(h: Held): void {
    detach(this.drop(h, true), (err) => this.deps.logger.warn({ err, queue: h.record.name }, 'giving up a queue failed'));
  }

  /** How many queues this controller owns (for tests and metrics). */
  get owned(): number {
    return this.held.size;
  }

  /** How many queues this controller let go while idle and still reports (for tests). */
  get rested(): number {
    return this.resting.size;
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
    for (const h of this.held.values()) if (h.loaded && this.valid(h)) row(h.record.name, h.loaded.counts());
    // Until a takeover here has rebuilt the queue, its last counts stand.
    for (const [id, r] of this.resting) if (!this.held.get(id)?.loaded) row(r.name, r.counts);
    return rows;
  }

  // Still ours by our own reckoning: not lost, renewed less than two thirds of the TTL ago.
  private holds(h: Held): boolean {
    return !h.lost && this.now() < h.renewedAt + (this.deps.leaseMs * 2) / 3;
  }

  // Takes new operations.
  private valid(h: Held): boolean {
    return !h.dropped && this.holds(h);
  }

  // Whether an owner's outcome may reach the client: yes while we hold the lease (the writes
  // behind it were done before anybody else could own the queue); an empty receive always may.
  private answerable(h: Held, op: QueueOp, outcome: { ok: unknown } | { err: unknown }): boolean {
    if (op.op === 'receive' && 'ok' in outcome && (outcome.ok as unknown[]).length === 0) return true;
    return this.holds(h);
  }

  // Runs `op` on the owner, then fences its outcome: undefined when it may not be answered.
  private async fenced(
    h: Held,
    owner: QueueOwner,
    op: QueueOp,
    ctx: RequestContext,
  ): Promise<{ ok: unknown } | { err: unknown } | undefined> {
    const outcome = await this.local(owner, op, ctx).then(
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

  /** Runs `op` on the owner of `queueName`. */
  async run<K extends QueueOp['op']>(queueName: string, op: Extract<QueueOp, { op: K }>, ctx: RequestContext): Promise<OpResults[K]> {
    let deadline = this.now() + this.deps.leaseMs * 2 + 10_000;
    // A receive forwarded to another controller: when its whole wait ends (set at the first forward).
    let pollEnd: number | undefined;
    for (let attempt = 0; ; attempt += 1) {
      if (this.stopped) throw new Error('messaging engine stopped');
      const record = await this.deps.catalog.require(queueName);
      const held = this.held.get(record.id);
      if (held && this.valid(held)) {
        // A failed takeover (JetStream unavailable while rebuilding) drops the lease; try again.
        const outcome = await this.using(held, async (owner) => (owner ? this.fenced(held, owner, op, ctx) : null));
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
      const handover = this.draining.get(record.id);
      if (handover) {
        await handover.done;
        continue;
      }
      if (this.now() > deadline) throw new Error(`no owner for queue ${queueName} answered`);
      const lease = await this.deps.leases.get(record.id);
      if (!lease || lease.operation !== 'PUT' || lease.string() === this.nodeId) {
        if (!held) await this.acquire(record, lease?.operation === 'PUT' ? lease.revision : undefined);
        else await sleep(50);
        continue;
      }
      try {
        if (op.op !== 'receive') return (await this.forward(record, op, ctx, 0)) as OpResults[K];
        const req = (op as Extract<QueueOp, { op: 'receive' }>).req;
        pollEnd ??= this.now() + (req.WaitTimeSeconds ?? Number(record.attributes.ReceiveMessageWaitTimeSeconds ?? 0)) * 1000;
        const left = Math.max(0, Math.floor((pollEnd - this.now()) / 1000));
        const chunk = Math.min(FORWARDED_POLL_S, left);
        const got = (await this.forward(
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

  // Runs `fn` with the queue counted busy from now on (before waiting for the owner), so an idle
  // release never stops an owner an operation is about to reach.
  private async using<T>(h: Held, fn: (owner: QueueOwner | undefined) => Promise<T>): Promise<T> {
    h.busy += 1;
    try {
      return await fn(await h.owner.catch(() => undefined));
    } finally {
      h.busy -= 1;
      h.usedAt = this.now();
    }
  }

  private async local(owner: QueueOwner, op: QueueOp, ctx: RequestContext): Promise<unknown> {
    switch (op.op) {
      case 'append':
        return owner.append(op.entries);
      case 'receive':
        return owner.receive(op.req, ctx, ctx.signal);
      case 'delete':
        return owner.delete(op.handles);
      case 'visibility':
        return owner.changeVisibility(op.entries);
      case 'purge':
        return owner.purge().then(() => null);
      case 'counts':
        return owner.counts();
    }
  }

  private async forward(record: QueueRecord, op: QueueOp, ctx: RequestContext, waitMs: number): Promise<unknown> {
    const { signal, ...plain } = ctx;
    const cancelId = op.op === 'receive' ? randomUUID() : undefined;
    const onAbort = () => this.deps.nc.publish(subjects.rpc(record.id), rpcPack({ op: 'cancel', cancelId }));
    if (cancelId) signal.addEventListener('abort', onAbort, { once: true });
    let reply: Reply;
    try {
      const timeout = op.op === 'receive' ? waitMs + FORWARD_MARGIN_MS : 15_000;
      const msg = await this.deps.nc.request(subjects.rpc(record.id), rpcPack({ ...op, ctx: plain, cancelId }), { timeout });
      reply = rpcUnpack<Reply>(msg.data);
    } catch (err) {
      // No subscriber: the lease holder died or is still starting. Retry until it expires.
      if (/no responders|503/i.test(String(errorMessage(err) ?? '')) || (err as { code?: unknown }).code === '503')
        throw new NotOwnerError();
      // A receive nobody answered: the owner died or stalled with it (see OwnerSilentError).
      if (op.op === 'receive' && /timeout/i.test(`${(err as Error).name} ${errorMessage(err)}`)) throw new OwnerSilentError();
      throw err;
    } finally {
      if (cancelId) signal.removeEventListener('abort', onAbort);
    }
    if ('notOwner' in reply) throw new NotOwnerError();
    if ('err' in reply) throw fromWireError(reply.err);
    if (op.op === 'receive') return this.fillBodies(record, reply.ok as ReceivedMessage[]);
    if (op.op === 'append' || op.op === 'delete' || op.op === 'visibility') {
      return (reply.ok as ({ ok: unknown } | { error: WireError })[]).map((o) => ('error' in o ? { error: fromWireError(o.error) } : o));
    }
    return reply.ok;
  }

  private async fillBodies(record: QueueRecord, messages: ReceivedMessage[]): Promise<ReceivedMessage[]> {
    const log = this.deps.logFor(record.id);
    return Promise.all(
      messages.map(async (m) => {
        const seq = (m as ReceivedMessage & { seq: number }).seq;
        const stored = await log.read(seq);
        const { seq: _seq, ...rest } = m as ReceivedMessage & { seq: number };
        return { ...rest, Body: stored?.payload.body ?? '', MessageAttributes: stored?.payload.attributes ?? {} };
      }),
    );
  }

  private async serve(h: Held, data: Uint8Array, respond: (d: Uint8Array) => boolean): Promise<void> {
    const req = rpcUnpack<Forwarded | { op: 'cancel'; cancelId: string }>(data);
    if (req.op === 'cancel') return void h.cancels.get(req.cancelId)?.abort();
    if (!this.valid(h)) return void respond(rpcPack({ notOwner: true }));
    const abort = new AbortController();
    if (req.cancelId) h.cancels.set(req.cancelId, abort);
    try {
      const outcome = await this.using(h, async () => this.fenced(h, await h.owner, req, { ...req.ctx, signal: abort.signal }));
      if (!outcome) return void respond(rpcPack({ notOwner: true }));
      if ('err' in outcome) throw outcome.err;
      let ok = outcome.ok;
      if (req.op === 'receive') ok = (ok as ReceivedMessage[]).map((m) => ({ ...m, Body: '', MessageAttributes: {}, seq: seqOf(m) }));
      if (Array.isArray(ok) && req.op !== 'receive')
        ok = (ok as Outcome<unknown>[]).map((o) => ('error' in o ? { error: toWireError(o.error) } : o));
      respond(rpcPack({ ok }));
    } catch (err) {
      respond(rpcPack({ err: toWireError(err) }));
    } finally {
      if (req.cancelId) h.cancels.delete(req.cancelId);
    }
  }

  private acquire(record: QueueRecord, ourRevision?: number): Promise<boolean> {
    const pending = this.acquiring.get(record.id);
    if (pending) return pending;
    const p = this.tryAcquire(record, ourRevision).finally(() => this.acquiring.delete(record.id));
    this.acquiring.set(record.id, p);
    return p;
  }

  private async tryAcquire(record: QueueRecord, ourRevision?: number): Promise<boolean> {
    const sentAt = this.now();
    let revision: number;
    try {
      // A lease that still carries our id (we stepped down while it lived) is taken back by revision.
      revision =
        ourRevision !== undefined
          ? await this.deps.leases.update(record.id, this.nodeId, ourRevision)
          : await this.deps.leases.create(record.id, this.nodeId);
    } catch {
      return false;
    }
    const h: Held = {
      record,
      owner: this.deps.startOwner(record),
      revision,
      renewedAt: sentAt,
      busy: 0,
      usedAt: sentAt,
      sweptAt: sentAt,
      cancels: new Map(),
      dropped: false,
      lost: false,
    };
    this.held.set(record.id, h);
    h.owner.then(
      (o) => {
        h.loaded = o;
        this.resting.delete(record.id);
      },
      () => undefined,
    );
    h.owner.catch((err: unknown) => {
      this.deps.logger.error({ err, queue: record.name }, 'queue takeover failed');
      this.dropSoon(h);
    });
    h.sub = this.deps.nc.subscribe(subjects.rpc(record.id), {
      callback: (err, msg) => {
        if (err) return;
        detach(
          this.serve(h, msg.data, (d) => msg.respond(d)),
          (e) => this.deps.logger.error({ err: e, queue: record.name }, 'serving a request failed'),
        );
      },
    });
    this.deps.nc.publish(subjects.owned, rpcPack({ id: record.id, node: this.nodeId }));
    this.deps.logger.info({ queue: record.name, node: this.nodeId }, 'queue owned here');
    return true;
  }

  // Also runs while a handover drains (the lease must stay ours until the writes are done).
  private async renew(h: Held): Promise<void> {
    if (h.lost) return;
    const sentAt = this.now();
    try {
      h.revision = await this.deps.leases.update(h.record.id, this.nodeId, h.revision);
      h.renewedAt = sentAt;
    } catch (err) {
      // The update may have landed with its answer lost: a newer revision still naming us is ours
      // (only we write our id). The same revision means it did not land: the lease is as old as before.
      const current = await this.deps.leases.get(h.record.id).catch(() => null);
      if (current?.operation === 'PUT' && current.string() === this.nodeId) {
        if (current.revision !== h.revision) {
          h.revision = current.revision;
          h.renewedAt = sentAt;
        }
        return;
      }
      if (current || !this.holds(h)) {
        this.deps.logger.warn({ queue: h.record.name, node: this.nodeId, err }, 'queue ownership lost');
        h.lost = true;
        await this.drop(h, false);
      }
    }
  }

  // Stops taking operations for the queue; with `release` (a handover), waits up to DRAIN_MS for
  // those under way to finish their writes, then deletes the lease so the next owner starts now.
  private drop(h: Held, release: boolean): Promise<void> {
    if (h.dropped) return Promise.resolve();
    h.dropped = true;
    h.sub?.unsubscribe();
    for (const c of h.cancels.values()) c.abort();
    if (this.held.get(h.record.id) === h) this.held.delete(h.record.id);
    const done = this.handOver(h, release).finally(() => {
      if (this.draining.get(h.record.id)?.h === h) this.draining.delete(h.record.id);
    });
    this.draining.set(h.record.id, { h, done: done.catch(() => undefined) });
    return done;
  }

  private async handOver(h: Held, release: boolean): Promise<void> {
    const owner = await h.owner.catch(() => undefined);
    owner?.stop();
    if (release && owner) {
      let timer: NodeJS.Timeout | undefined;
      const drained = await Promise.race([
        owner.idle().then(() => true),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(false), DRAIN_MS))),
      ]);
      clearTimeout(timer);
      if (!drained)
        this.deps.logger.warn(
          { queue: h.record.name, node: this.nodeId },
          'handover: operations still writing after the drain time; releasing the lease anyway',
        );
    }
    const wasLost = h.lost;
    // From here on somebody else may own the queue: a late outcome is not answered.
    h.lost = true;
    if (release && !wasLost) await this.deps.leases.delete(h.record.id, { previousSeq: h.revision }).catch(() => undefined);
  }

  /** Stops owning everything and hands the leases back, so others take over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.ownedSub?.unsubscribe();
    this.resting.clear();
    // The ticker goes on renewing the leases of queues still draining.
    await Promise.all([...this.held.values()].map((h) => this.drop(h, true)));
    await Promise.all([...this.draining.values()].map((d) => d.done));
    clearInterval(this.ticker);
  }
}

function seqOf(m: ReceivedMessage): number {
  return (m as ReceivedMessage & { seq?: number }).seq ?? 0;
}
