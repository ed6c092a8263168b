/**
 * Serf delivers member events only after a second without another (hard-coded coalescing); roles
 * that render from membership (the gateway's DNS names) want changes sooner. This poll re-reads
 * the members on a short timer (`serf.members_poll`) while such a role runs, and reports a list
 * that differs from the agent's. Nodes without such roles make no calls.
 */
import type { Logger, Member } from '../core/contracts.js';
import { detach } from '../core/errors.js';

/** What the poll reads and whom it tells. */
export interface MembersPollDeps {
  /** Whether a poll is wanted now (connected, not stopping, a role watches membership). */
  readonly wanted: () => boolean;
  /** Serf's current members (throws while the session is down: it reconnects by itself). */
  readonly fetch: () => Promise<readonly Member[]>;
  /** The agent's members. */
  readonly current: () => Iterable<Member>;
  /** Called with a fresh list that differs from `current`. */
  readonly changed: (fresh: readonly Member[]) => void;
  readonly log: Logger;
}

/** A member as compared: tags sorted, since Go encodes maps in random order. */
function memberKey(m: Member): string {
  const tags = JSON.stringify(Object.entries(m.tags).sort(([a], [b]) => a.localeCompare(b)));
  return `${m.name}|${m.status}|${m.addr}|${m.port}|${tags}`;
}

/** True when both lists hold the same members with the same status, address and tags. */
export function sameMembers(a: Iterable<Member>, b: readonly Member[]): boolean {
  const before = new Set([...a].map(memberKey));
  return b.length === before.size && b.every((m) => before.has(memberKey(m)));
}

/** The timer and one poll at a time. */
export class MembersPoll {
  private timer: NodeJS.Timeout | undefined;
  private polling = false;

  constructor(private readonly deps: MembersPollDeps) {}

  /** (Re)starts the timer; `everyMs` ≤ 0 turns the poll off. */
  start(everyMs: number): void {
    this.stop();
    if (everyMs <= 0) return;
    this.timer = setInterval(() => detach(this.poll(), (err) => this.deps.log.error({ err }, 'members poll failed')), everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One poll, skipped while another runs or none is wanted. */
  async poll(): Promise<void> {
    if (this.polling || !this.deps.wanted()) return;
    this.polling = true;
    try {
      const fresh = await this.deps.fetch();
      if (!sameMembers(this.deps.current(), fresh)) this.deps.changed(fresh);
    } catch (err) {
      this.deps.log.debug({ err }, 'members poll failed'); // the session reconnects by itself
    } finally {
      this.polling = false;
    }
  }
}
