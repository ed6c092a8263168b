/**
 * When a queue's owner lets an idle queue go, and when it takes it back by itself (pure: time is a
 * parameter). An owned queue costs a lease renewal every third of the lease, a subscription and a
 * retention sweep; an idle one is therefore handed back (`messaging.owner_idle_seconds`) and the
 * next request anywhere takes it over and rebuilds it from JetStream. What it leaves behind here
 * is a {@link Resting} entry: its counts for the metrics, exact until a message becomes visible or
 * expires by itself, at which time the router takes the queue over again (sweeping what expired,
 * counting anew) and lets it rest again once it is idle.
 */
import type { QueueCounts } from './queue-state.js';

/**
 * A queue holding more messages than this stays owned however idle: its rebuild reads them all
 * (some 50-100 ms per 1,000 on a 2-core machine), so a big queue used once a minute would be
 * rebuilt each time, which costs far more than keeping its lease renewed.
 */
export const KEEP_OWNED_MESSAGES = 10_000;

/** What the release decision looks at, for one owned queue. */
export interface IdleView {
  /** Operations under way on the queue (a waiting long poll included). */
  readonly busy: number;
  /** Since the last operation ended (or the queue was taken over), milliseconds. */
  readonly idleForMs: number;
  /** `messaging.owner_idle_seconds` in ms; 0 keeps queues owned. */
  readonly idleMs: number;
  /**
   * Until the queue's counts change by themselves (a delayed or in-flight message becomes
   * visible, a message expires), ms; undefined: never.
   */
  readonly changesInMs?: number;
  /** The owner holds state that lives in its memory only and still matters (see `QueueOwner.restView`). */
  readonly pinned: boolean;
  /** Messages in the queue (visible, in flight and delayed). */
  readonly messages: number;
}

/**
 * Whether to hand an owned queue back now: nothing under way, nothing done for `idleMs`, nothing
 * only its memory knows, not too big to rebuild ({@link KEEP_OWNED_MESSAGES}), and no change of its own due within `idleMs` either (a queue that would
 * be taken back that soon is cheaper kept).
 */
export function mayRelease(v: IdleView): boolean {
  if (v.idleMs <= 0 || v.busy > 0 || v.pinned || v.messages > KEEP_OWNED_MESSAGES) return false;
  if (v.idleForMs < v.idleMs) return false;
  return v.changesInMs === undefined || v.changesInMs >= v.idleMs;
}

/** A queue this controller owned and let go while idle: what the metrics report for it. */
export interface Resting {
  readonly name: string;
  readonly counts: QueueCounts;
  /** Wall clock: when the first delayed or in-flight message becomes visible; undefined: none is. */
  readonly visibleChangeAt?: number;
  /** Wall clock: when its oldest message was sent; undefined: it holds none. */
  readonly oldestSentAt?: number;
  /** MessageRetentionPeriod in ms (updated when the queue's attributes change). */
  retentionMs: number;
  /** Wall clock: a failed take-back is not tried again before this; `failures` in a row. */
  retryAt?: number;
  failures?: number;
}

/** Wall-clock time at which a resting queue's counts stop being true (undefined: they stay true). */
export function wakeAt(r: Pick<Resting, 'visibleChangeAt' | 'oldestSentAt' | 'retentionMs'>): number | undefined {
  const expiry = r.oldestSentAt === undefined ? undefined : r.oldestSentAt + r.retentionMs;
  if (expiry === undefined) return r.visibleChangeAt;
  return r.visibleChangeAt === undefined ? expiry : Math.min(expiry, r.visibleChangeAt);
}
