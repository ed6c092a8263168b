/**
 * Which controller owns a queue: the leases a router holds, takes, renews and hands back.
 *
 * Ownership is a lease in the `mammatus_sqs_owners` KV bucket, whose TTL is the lease length: the
 * first controller to `create` the queue's key owns it and renews it with a revision-checked
 * `update` every third of the TTL (sent by the router's one timer, queue-upkeep.ts; one at a
 * time); if it dies, the key expires and the next request anywhere takes the queue over (and
 * rebuilds it from JetStream). JetStream settles every race; we run no consensus of our own.
 *
 * Fencing: an owner answers an operation only if, once the operation's writes are done, it still
 * holds the lease by its own reckoning: not found lost by a renewal, and renewed successfully less
 * than two thirds of the TTL ago (measured on the monotonic clock from when that renewal was sent,
 * so the key cannot have expired yet). Otherwise (paused, stalled event loop, cut off from NATS)
 * the answer is dropped and the operation goes to whoever owns the queue now: a new owner may
 * already have rebuilt without those writes. A graceful handover (stop, deleted queue, idle) stops
 * taking operations (a request already routed here is answered "not owner"), waits (at most
 * `DRAIN_MS`, renewing meanwhile) for those under way to finish their writes, and only then
 * deletes the lease (after any renewal still under way), so the next owner's rebuild sees them; a
 * request arriving here meanwhile waits for the handover to end instead of taking the lease back.
 */
import { randomUUID } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../../../core/contracts.js';
import type { QueueRecord } from './catalog.js';
import { rpcPack } from './codec.js';
import { subjects } from './layout.js';
import type { QueueOwner } from './queue-owner.js';
import { detach } from '../../../core/errors.js';
import type { Held } from './held.js';

export type { Held } from './held.js';

/** Collaborators of the leases. */
export interface LeaseDeps {
  readonly nc: NatsConnection;
  readonly leases: KV;
  readonly leaseMs: number;
  readonly startOwner: (record: QueueRecord) => Promise<QueueOwner>;
  readonly logger: Logger;
  /** Monotonic milliseconds: lease ages and idleness. */
  readonly now: () => number;
  /** Answers an operation forwarded to a queue held here (queue-forwarding.ts). */
  readonly serve: (h: Held, data: Uint8Array, respond: (d: Uint8Array) => boolean) => Promise<void>;
  /** A queue taken over here has loaded: what was kept of it while it rested is stale now. */
  readonly onLoaded: (queueId: string) => void;
}

// How long a handover waits for operations under way to finish their writes.
const DRAIN_MS = 5_000;

/** The leases of one router: the queues it owns, takes over, and hands back. */
export class QueueLeases {
  /** This controller's identity in leases (new per start, so a restart never inherits a stale lease). */
  readonly nodeId = randomUUID();
  private readonly held = new Map<string, Held>();
  /** Handed over, still draining: renewed until the lease is deleted. */
  private readonly draining = new Map<string, { h: Held; done: Promise<void> }>();
  private readonly acquiring = new Map<string, Promise<boolean>>();
  /** Handing everything back: a takeover ending now gives its lease back at once. */
  private stopped = false;

  constructor(private readonly deps: LeaseDeps) {}

  /** The queue `id` if its lease is held here (dropped ones are not). */
  get(id: string): Held | undefined {
    return this.held.get(id);
  }

  /** The queues held here. */
  all(): IterableIterator<Held> {
    return this.held.values();
  }

  /** How many queues are held here. */
  get owned(): number {
    return this.held.size;
  }

  /** When queue `id` is being handed over by us: the end of that handover. */
  handover(id: string): Promise<void> | undefined {
    return this.draining.get(id)?.done;
  }

  /** Whether queue `id` is held, being taken over or being handed back here. */
  busyWith(id: string): boolean {
    return this.held.has(id) || this.acquiring.has(id) || this.draining.has(id);
  }

  /** Still ours by our own reckoning: not lost, renewed less than two thirds of the TTL ago. */
  holds(h: Held): boolean {
    return !h.lost && this.deps.now() < h.renewedAt + (this.deps.leaseMs * 2) / 3;
  }

  /** Takes new operations. */
  valid(h: Held): boolean {
    return !h.dropped && this.holds(h);
  }

  /**
   * Runs `fn` with the queue counted busy from now on (before waiting for the owner), so an idle
   * release never stops an owner an operation is about to reach.
   */
  async using<T>(h: Held, fn: (owner: QueueOwner | undefined) => Promise<T>): Promise<T> {
    h.busy += 1;
    try {
      return await fn(await h.owner.catch(() => undefined));
    } finally {
      h.busy -= 1;
      h.usedAt = this.deps.now();
    }
  }

  /**
   * Takes the queue's lease (one attempt at a time per queue) and starts its owner; false if
   * somebody else got it. `ourRevision`: the lease still names us, take it back by revision.
   */
  acquire(record: QueueRecord, ourRevision?: number): Promise<boolean> {
    const pending = this.acquiring.get(record.id);
    if (pending) return pending;
    if (this.stopped) return Promise.resolve(false);
    const p = this.tryAcquire(record, ourRevision).finally(() => this.acquiring.delete(record.id));
    this.acquiring.set(record.id, p);
    return p;
  }

  private async tryAcquire(record: QueueRecord, ourRevision?: number): Promise<boolean> {
    const sentAt = this.deps.now();
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
    if (this.stopped) {
      // Taken after releaseAll listed the queues: nobody would hand it back (or stop answering).
      await this.deps.leases.delete(record.id, { previousSeq: revision }).catch(() => undefined);
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
      dropped: false,
      lost: false,
    };
    this.held.set(record.id, h);
    h.owner.then(
      (o) => {
        h.loaded = o;
        this.deps.onLoaded(record.id);
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
          this.deps.serve(h, msg.data, (d) => msg.respond(d)),
          (e) => this.deps.logger.error({ err: e, queue: record.name }, 'serving a request failed'),
        );
      },
    });
    this.deps.nc.publish(subjects.owned, rpcPack({ id: record.id, node: this.nodeId }));
    this.deps.logger.info({ queue: record.name, node: this.nodeId }, 'queue owned here');
    return true;
  }

  /** Renews the leases of the queues being handed over (theirs must stay ours until the writes are done). */
  renewDraining(): void {
    for (const { h } of this.draining.values()) this.renewSoon(h);
  }

  /** Renews `h`'s lease without waiting; a failure is logged. */
  renewSoon(h: Held): void {
    if (h.renewing) return;
    h.renewing = this.renew(h)
      .catch((err: unknown) => this.deps.logger.warn({ err, queue: h.record.name }, 'lease renewal failed'))
      .finally(() => (h.renewing = undefined));
  }

  // Also runs while a handover drains (the lease must stay ours until the writes are done).
  private async renew(h: Held): Promise<void> {
    if (h.lost) return;
    const sentAt = this.deps.now();
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

  /** Gives up the queues named `name` that are not queue `id` any more (deleted or re-created). */
  dropReplaced(name: string, id: string | undefined): void {
    for (const h of this.held.values()) if (h.record.name === name && id !== h.record.id) this.dropSoon(h);
  }

  /** Gives a queue up without waiting; a failure to give it up is logged (the lease then runs out). */
  dropSoon(h: Held): void {
    detach(this.drop(h, true), (err) => this.deps.logger.warn({ err, queue: h.record.name }, 'giving up a queue failed'));
  }

  // Stops taking operations for the queue; with `release` (a handover), waits up to DRAIN_MS for
  // those under way to finish their writes, then deletes the lease so the next owner starts now.
  private drop(h: Held, release: boolean): Promise<void> {
    if (h.dropped) return Promise.resolve();
    h.dropped = true;
    // Drained, not unsubscribed: a request NATS already routed here is still answered (`notOwner`
    // now, so its sender asks the next owner at once instead of waiting for its timeout).
    const sub = h.sub;
    if (sub) detach((async () => sub.drain())(), () => sub.unsubscribe());
    for (const c of h.cancels?.values() ?? []) c.abort();
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
    if (release && !wasLost) await this.deleteLease(h);
  }

  // A renewal sent before the handover may land after it (a newer revision): wait for it; and
  // should the delete still fail, delete whatever revision still names us.
  private async deleteLease(h: Held): Promise<void> {
    await h.renewing;
    const id = h.record.id;
    const kv = this.deps.leases;
    await kv.delete(id, { previousSeq: h.revision }).catch(async () => {
      const current = await kv.get(id).catch(() => null);
      if (current?.operation === 'PUT' && current.string() === this.nodeId) await kv.delete(id, { previousSeq: current.revision });
    });
  }

  /** Hands every lease back and waits for the drains to end (the timer must go on renewing meanwhile). */
  async releaseAll(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.acquiring.values()]);
    await Promise.all([...this.held.values()].map((h) => this.drop(h, true)));
    await Promise.all([...this.draining.values()].map((d) => d.done));
  }
}
