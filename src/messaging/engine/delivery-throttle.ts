/**
 * Pacing of http(s) deliveries per subscription (`throttlePolicy.maxReceivesPerSecond`) on one
 * controller: each delivery reserves the next free slot, `1 / rate` seconds after the previous
 * one. Short waits are slept in place; a delivery whose slot is further away is postponed
 * without a reservation, so postponed deliveries never hold slots they may not come back for.
 */

/** The outcome of `DeliveryThrottle.reserve`. */
export type Reservation = { readonly waitMs: number } | { readonly postponeMs: number };

/** Per-key slot reservations; the clock is injectable for tests. */
export class DeliveryThrottle {
  private readonly next = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  /**
   * Reserves `key`'s next slot at `perSecond` if it comes within `maxWaitMs` (`waitMs`: sleep this
   * long, then send); otherwise reserves nothing and says how long to postpone (`postponeMs`).
   */
  reserve(key: string, perSecond: number, maxWaitMs: number): Reservation {
    const t = this.now();
    if (this.next.size > 10_000) this.forgetPast(t);
    const slot = Math.max(t, this.next.get(key) ?? 0);
    const wait = slot - t;
    if (wait > maxWaitMs) return { postponeMs: Math.ceil(wait) };
    this.next.set(key, slot + 1000 / perSecond);
    return { waitMs: wait };
  }

  // Keys whose slots are all in the past hold no information: dropped so the map stays small.
  private forgetPast(t: number): void {
    for (const [k, v] of this.next) if (v <= t) this.next.delete(k);
  }
}
