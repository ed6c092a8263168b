/**
 * The SQS state machine of one queue, in memory and free of I/O: which messages exist, when each
 * becomes visible, how often it was received, and (FIFO) which message groups are locked. The owner
 * (`queue-owner.ts`) persists every transition to JetStream before it answers, and rebuilds this
 * from the streams when it takes a queue over.
 *
 * Time is a parameter (`now`), so the rules are tested without clocks.
 */

/** What the state knows of one message (the body stays in the stream). */
export interface MessageMeta {
  readonly seq: number;
  readonly sentAt: number;
  /** FIFO message group; undefined for standard queues (fair-queue groups do not lock). */
  readonly group?: string;
  visibleAt: number;
  receiveCount: number;
  firstReceiveAt?: number;
  /** Bumped on every visibility change, so stale heap entries are recognised. */
  version: number;
}

interface HeapEntry {
  readonly at: number;
  readonly seq: number;
  readonly version: number;
}

/** A binary min-heap on `at` (then `seq`, for FIFO-like order among equals). */
class Heap {
  private readonly items: HeapEntry[] = [];
  get size(): number {
    return this.items.length;
  }
  peek(): HeapEntry | undefined {
    return this.items[0];
  }
  push(e: HeapEntry): void {
    const a = this.items;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }
  pop(): HeapEntry | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && less(a[l], a[m])) m = l;
        if (r < a.length && less(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
  clear(): void {
    this.items.length = 0;
  }
}

function less(a: HeapEntry, b: HeapEntry): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** Approximate counts as GetQueueAttributes reports them. */
export interface QueueCounts {
  readonly visible: number;
  readonly notVisible: number;
  readonly delayed: number;
}

/** One queue's messages and their visibility. */
export class QueueState {
  readonly messages = new Map<number, MessageMeta>();
  private readonly heap = new Heap();
  /** FIFO only: each group's messages in send (= stream sequence) order. */
  private readonly groups = new Map<string, number[]>();

  constructor(readonly fifo: boolean) {}

  /** Adds a message (send, or rebuild); a known sequence is ignored (a deduplicated send). */
  add(meta: MessageMeta): boolean {
    if (this.messages.has(meta.seq)) return false;
    this.messages.set(meta.seq, meta);
    this.heap.push({ at: meta.visibleAt, seq: meta.seq, version: meta.version });
    if (this.fifo && meta.group !== undefined) {
      const list = this.groups.get(meta.group) ?? [];
      // Sends are serialised per FIFO queue, so this is an append except during a rebuild.
      if (list.length === 0 || list[list.length - 1] < meta.seq) list.push(meta.seq);
      else list.splice(sortedIndex(list, meta.seq), 0, meta.seq);
      this.groups.set(meta.group, list);
    }
    return true;
  }

  /** Forgets a message (deleted, moved, expired, purged). */
  remove(seq: number): MessageMeta | undefined {
    const meta = this.messages.get(seq);
    if (!meta) return undefined;
    this.messages.delete(seq);
    if (meta.group !== undefined) {
      const list = this.groups.get(meta.group);
      if (list) {
        const i = list[0] === seq ? 0 : list.indexOf(seq);
        if (i >= 0) list.splice(i, 1);
        if (list.length === 0) this.groups.delete(meta.group);
      }
    }
    return meta;
  }

  clear(): void {
    this.messages.clear();
    this.heap.clear();
    this.groups.clear();
  }

  /**
   * The messages a receive may take now, at most `max`, in delivery order. Standard: any visible
   * message, earliest visibility first. FIFO: only from groups with nothing in flight, and from
   * such a group only consecutive visible messages from its head, so a later message is never
   * delivered while an earlier one of its group is in flight or not yet visible.
   */
  candidates(now: number, max: number): MessageMeta[] {
    return this.fifo ? this.fifoCandidates(now, max) : this.standardCandidates(now, max);
  }

  private standardCandidates(now: number, max: number): MessageMeta[] {
    const out: MessageMeta[] = [];
    const keep: HeapEntry[] = [];
    while (out.length < max) {
      const top = this.heap.peek();
      if (!top || top.at > now) break;
      this.heap.pop();
      const meta = this.messages.get(top.seq);
      if (!meta || meta.version !== top.version) continue;
      out.push(meta);
      // Not yet received: the caller bumps the version (or leaves it), so keep the entry valid.
      keep.push(top);
    }
    for (const e of keep) this.heap.push(e);
    return out;
  }

  private fifoCandidates(now: number, max: number): MessageMeta[] {
    const out: MessageMeta[] = [];
    for (const list of this.groups.values()) {
      if (out.length >= max) break;
      if (this.groupLocked(list, now)) continue;
      for (const seq of list) {
        const meta = this.messages.get(seq) as MessageMeta;
        if (meta.visibleAt > now || out.length >= max) break;
        out.push(meta);
      }
    }
    return out;
  }

  // Delivered messages form a prefix of the group (they are taken from the head, in order).
  private groupLocked(list: readonly number[], now: number): boolean {
    for (const seq of list) {
      const meta = this.messages.get(seq) as MessageMeta;
      if (meta.receiveCount === 0) return false;
      if (meta.visibleAt > now) return true;
    }
    return false;
  }

  /** Sets a message's visibility (receive, ChangeMessageVisibility, rebuild, rollback). */
  setVisibleAt(meta: MessageMeta, visibleAt: number): void {
    meta.visibleAt = visibleAt;
    meta.version += 1;
    this.heap.push({ at: visibleAt, seq: meta.seq, version: meta.version });
  }

  /** Records a delivery: one more receive, invisible until `visibleAt`. */
  markReceived(meta: MessageMeta, now: number, visibleAt: number): void {
    meta.receiveCount += 1;
    meta.firstReceiveAt ??= now;
    this.setVisibleAt(meta, visibleAt);
  }

  /**
   * When the answer of `candidates` may next change without a new send or a visibility change:
   * the earliest future `visibleAt` (of a delayed or in-flight message); undefined if none.
   */
  nextChangeAt(now: number): number | undefined {
    for (;;) {
      const top = this.heap.peek();
      if (!top) return undefined;
      const meta = this.messages.get(top.seq);
      if (!meta || meta.version !== top.version) {
        this.heap.pop();
        continue;
      }
      if (top.at > now) return top.at;
      break;
    }
    // Something is visible already but was not taken (FIFO: its group is locked): scan for the
    // earliest future visibility instead. Rare, and bounded by the queue's size.
    let next: number | undefined;
    for (const meta of this.messages.values())
      if (meta.visibleAt > now && (next === undefined || meta.visibleAt < next)) next = meta.visibleAt;
    return next;
  }

  /** Approximate counts: visible, in flight, delayed (never received and not yet visible). */
  counts(now: number): QueueCounts {
    let visible = 0;
    let notVisible = 0;
    let delayed = 0;
    for (const m of this.messages.values()) {
      if (m.visibleAt <= now) visible += 1;
      else if (m.receiveCount > 0) notVisible += 1;
      else delayed += 1;
    }
    return { visible, notVisible, delayed };
  }

  /** Sequences of messages sent before `before` (retention). */
  sentBefore(before: number): number[] {
    const out: number[] = [];
    for (const m of this.messages.values()) if (m.sentAt < before) out.push(m.seq);
    return out;
  }
}

function sortedIndex(list: readonly number[], value: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
