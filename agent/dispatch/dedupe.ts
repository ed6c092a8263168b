/**
 * Deduplication of user events. Serf delivers each event at most once per agent run, but replays
 * them after a restart or a join with replay, and never orders them. Within a run we remember the
 * exact (LTime, name, payload) triples we handled; across restarts we persist, per event name, the
 * highest LTime handled and skip anything at or below it.
 */
import { createHash } from 'node:crypto';

/** Twice Serf's 512-slot replay buffer: an LTime this far below the watermark means a clock reset. */
export const CLOCK_RESET_GAP = 1024;

/** The persisted form: event name → highest LTime handled. */
export type Watermarks = Record<string, number>;

/** Remembers handled user events. Pure: persistence is the owner's job (`snapshot`/`restore`). */
export class EventDedupe {
  private readonly seen = new Set<string>();
  private readonly order: string[] = [];
  private readonly handled = new Map<string, number>();
  private readonly restored = new Map<string, number>();
  /** Set whenever the watermarks changed since the last `snapshot()`. */
  dirty = false;

  /** `window`: how many recent events to remember exactly (Serf itself keeps 512 LTime slots). */
  constructor(private readonly window = 4096) {}

  /** Loads watermarks persisted by an earlier run. */
  restore(marks: Watermarks): void {
    for (const [name, ltime] of Object.entries(marks)) {
      if (Number.isSafeInteger(ltime) && ltime >= 0) {
        this.restored.set(name, ltime);
        this.handled.set(name, Math.max(ltime, this.handled.get(name) ?? 0));
      }
    }
  }

  /**
   * Returns true when this event was already seen in this run or handled before a restart;
   * otherwise remembers it (so a second copy is skipped) and returns false. Call `markHandled`
   * after handling it.
   */
  isDuplicate(name: string, ltime: number, payload: Uint8Array): boolean {
    const before = this.restored.get(name);
    if (before !== undefined && ltime <= before) {
      // Serf replays only events within 512 LTimes of the cluster clock, which is at or above our
      // watermark. Anything far below it is no replay: the whole cluster restarted from clock 0.
      if (ltime >= before - CLOCK_RESET_GAP) return true;
      this.restored.delete(name);
      this.handled.delete(name);
    }
    const key = `${ltime}\u0000${name}\u0000${createHash('sha1').update(payload).digest('base64')}`;
    if (this.seen.has(key)) return true;
    this.seen.add(key);
    this.order.push(key);
    if (this.order.length > this.window) this.seen.delete(this.order.shift()!);
    return false;
  }

  /**
   * Advances the persisted watermark once the event's handlers have run: an event still queued
   * (or dropped) at shutdown must not be skipped when serf replays it after a restart.
   */
  markHandled(name: string, ltime: number): void {
    if (ltime > (this.handled.get(name) ?? -1)) {
      this.handled.set(name, ltime);
      this.dirty = true;
    }
  }

  /** Current watermarks for persisting; clears `dirty`. */
  snapshot(): Watermarks {
    this.dirty = false;
    return Object.fromEntries([...this.handled].sort(([a], [b]) => a.localeCompare(b)));
  }
}
