/**
 * The router's one timer (not one per queue) and the idle queues it lets go.
 *
 * Every third of the lease it renews the leases of all queues held here (those being handed over
 * too), runs their retention sweeps, lets idle ones go and takes resting ones back when due.
 *
 * Idle queues are let go (idle-release.ts): a queue with nothing under way (no long poll waiting
 * either) and no operation for `owner_idle_seconds` is handed over gracefully (queue-leases.ts) to
 * nobody, so a controller's steady work is proportional to its active queues, not to all it ever
 * served. The next request anywhere takes it over again. What it left behind here (its counts)
 * keeps it in the metrics, until somebody else takes it over (each takeover is announced on
 * `mammatus.sqs.owned`; an announcement missed is caught by looking the leases of resting queues
 * up every `RESTING_CHECK_MS` and after a reconnect, which also forgets deleted queues) or its
 * counts would change by themselves (a message becoming visible or expiring): then this router
 * takes it back, which also sweeps what expired (a failed take-back is retried after a growing
 * pause). A queue too big to rebuild often is kept (idle-release.ts).
 */
import type { KV } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from '../../../core/contracts.js';
import type { QueueCatalog, QueueRecord } from './catalog.js';
import { rpcUnpack } from './codec.js';
import { subjects } from './layout.js';
import type { QueueOwner } from './queue-owner.js';
import type { Held, QueueLeases } from './queue-leases.js';
import { mayRelease, wakeAt, type Resting } from './idle-release.js';
import { detach } from '../../../core/errors.js';

/** Collaborators of the upkeep. */
export interface UpkeepDeps {
  readonly nc: NatsConnection;
  readonly leases: KV;
  readonly leaseMs: number;
  readonly catalog: QueueCatalog;
  readonly logger: Logger;
  /** `messaging.owner_idle_seconds` in ms: a queue idle this long is let go; 0: never. */
  readonly idleMs: number;
  /** Monotonic milliseconds: idleness and sweep intervals. */
  readonly now: () => number;
}

// How often owned queues drop messages past their retention.
const SWEEP_MS = 10_000;
// How often (and after a reconnect) resting queues are looked up in the leases and the catalog: a
// takeover announcement or a deletion missed (cut off from NATS) must not keep counts reported.
const RESTING_CHECK_MS = 30_000;
// A failed take-back (JetStream unavailable) is tried again after 1, 2, 4... s, at most this.
const WAKE_BACKOFF_MAX_MS = 60_000;

/** The one timer of a router, and the queues it let go while idle. */
export class QueueUpkeep {
  /** Queues let go while idle, by id (see the module comment). */
  readonly resting = new Map<string, Resting>();
  private readonly ticker: NodeJS.Timeout;
  private readonly ownedSub?: Subscription;
  /** Resting queues being taken back (one attempt at a time each). */
  private readonly waking = new Set<string>();
  private checkedAt: number;
  private checking = false;
  private quiet = false;

  constructor(
    private readonly held: QueueLeases,
    private readonly deps: UpkeepDeps,
  ) {
    this.ticker = setInterval(() => this.tick(), Math.max(200, Math.floor(deps.leaseMs / 3)));
    this.ticker.unref();
    this.checkedAt = deps.now();
    detach(
      (async () => {
        // Ends with the connection, or at the first status after quiesce (break stops the iterator).
        for await (const s of deps.nc.status()) {
          if (this.quiet) break;
          if (s.type === 'reconnect') this.checkedAt = -Infinity;
        }
      })(),
      () => undefined,
    );
    // Another controller took a queue over: what we kept of it is not ours to report any more.
    this.ownedSub = deps.nc.subscribe(subjects.owned, {
      callback: (err, msg) => {
        if (err) return;
        try {
          const { id, node } = rpcUnpack<{ id: string; node: string }>(msg.data);
          if (node !== this.held.nodeId) this.resting.delete(id);
        } catch {
          // Not an announcement of ours: nothing to forget.
        }
      },
    });
  }

  /** Queue `name` is now queue `value` (undefined: deleted): a resting queue it replaced is forgotten. */
  catalogChanged(name: string, value: QueueRecord | undefined): void {
    for (const [id, r] of this.resting) {
      if (r.name !== name) continue;
      if (value?.id !== id) this.resting.delete(id);
      else r.retentionMs = Number(value.attributes.MessageRetentionPeriod) * 1000;
    }
  }

  /**
   * The one timer of the router: renews every lease held (draining ones too), lets idle queues
   * go, sweeps retention, and takes back resting queues whose counts are due to change.
   */
  private tick(): void {
    this.held.renewDraining();
    if (this.quiet) return;
    const now = this.deps.now();
    for (const h of this.held.all()) {
      if (h.dropped) continue;
      if (h.loaded && this.idleRelease(h, now)) continue;
      this.held.renewSoon(h);
      if (h.loaded && now - h.sweptAt >= SWEEP_MS) {
        h.sweptAt = now;
        detach(h.loaded.sweep(), (err) => this.deps.logger.warn({ err, queue: h.record.name }, 'retention sweep failed'));
      }
    }
    const wall = Date.now();
    for (const [id, r] of this.resting) {
      const at = wakeAt(r);
      if (at === undefined || at > wall || (r.retryAt ?? 0) > wall || this.waking.has(id)) continue;
      this.waking.add(id);
      const failed = (err: unknown) => {
        r.failures = (r.failures ?? 0) + 1;
        r.retryAt = Date.now() + Math.min(WAKE_BACKOFF_MAX_MS, 500 * 2 ** r.failures);
        throw err;
      };
      detach(
        this.wake(id, r)
          .catch(failed)
          .finally(() => this.waking.delete(id)),
        (err) => this.deps.logger.warn({ err, queue: r.name }, 'taking a resting queue back failed'),
      );
    }
    if (this.checking || this.resting.size === 0 || now - this.checkedAt < RESTING_CHECK_MS) return;
    this.checkedAt = now;
    this.checking = true;
    detach(
      this.checkResting().finally(() => (this.checking = false)),
      (err) => this.deps.logger.warn({ err }, 'checking resting queues failed'),
    );
  }

  // Forgets the resting queues that are gone or held by somebody else (see RESTING_CHECK_MS).
  private async checkResting(): Promise<void> {
    for (const [id, r] of this.resting) if (!this.held.busyWith(id) && !this.waking.has(id)) await this.lookUp(id, r);
  }

  // The queue's record and lease; undefined (and the queue forgotten) when it is gone or somebody else holds it.
  private async lookUp(id: string, r: Resting) {
    const record = await this.deps.catalog.get(r.name);
    if (record?.id !== id) return void this.resting.delete(id);
    const lease = await this.deps.leases.get(id);
    if (lease?.operation === 'PUT' && lease.string() !== this.held.nodeId) return void this.resting.delete(id);
    return { record, lease };
  }

  // Lets `h` go if it is idle (idle-release.ts), keeping its counts; true if it did.
  private idleRelease(h: Held, now: number): boolean {
    const owner = h.loaded as QueueOwner;
    const idleMs = this.deps.idleMs;
    if (idleMs <= 0 || h.busy > 0 || now - h.usedAt < idleMs || !this.held.valid(h)) return false;
    const view = owner.restView();
    if (!view) return false;
    const wall = Date.now();
    const changesAt = wakeAt(view);
    const release = mayRelease({
      busy: h.busy,
      idleForMs: now - h.usedAt,
      idleMs,
      changesInMs: changesAt === undefined ? undefined : changesAt - wall,
      pinned: view.pinned,
      messages: view.counts.visible + view.counts.notVisible + view.counts.delayed,
    });
    if (!release) return false;
    this.resting.set(h.record.id, {
      name: h.record.name,
      counts: view.counts,
      visibleChangeAt: view.visibleChangeAt,
      oldestSentAt: view.oldestSentAt,
      retentionMs: view.retentionMs,
    });
    this.deps.logger.debug({ queue: h.record.name, node: this.held.nodeId }, 'queue idle: let go');
    this.held.dropSoon(h);
    return true;
  }

  // Takes a resting queue back (its counts are due to change); somebody else owning it ends our interest.
  private async wake(id: string, r: Resting): Promise<void> {
    if (this.held.busyWith(id)) return;
    const found = await this.lookUp(id, r);
    if (!found || found.lease?.operation === 'PUT') return;
    // Not acquired: taken by another controller meanwhile (its announcement, or the next look-up,
    // ends our interest) or NATS failed (a failed take-back is retried with backoff): both retry.
    if (!(await this.held.acquire(found.record))) throw new Error('the lease could not be taken');
    // A takeover whose rebuild failed (already dropped, or failing) leaves it resting: the caller backs off.
    const h = this.held.get(id);
    if (!h) throw new Error('queue takeover failed');
    await h.owner;
  }

  /**
   * Stops letting go, sweeping and taking back, and forgets the resting queues; renewals of the
   * queues being handed over go on until {@link stop}.
   */
  quiesce(): void {
    this.quiet = true;
    this.ownedSub?.unsubscribe();
    this.resting.clear();
  }

  /** Stops the timer (once no lease is left to renew). */
  stop(): void {
    clearInterval(this.ticker);
  }
}
