/**
 * The SQS state machine of one queue, in memory and free of I/O: which messages exist, when each
 * becomes visible, how often it was received, and (FIFO) which message groups are locked. The owner
 * (`queue-owner.ts`) persists every transition to JetStream before it answers, and rebuilds this
 * from the streams when it takes a queue over.
 *
 * Time is a parameter (`now`), so the rules are tested without clocks.
 */
import { FreshMessages } from './fresh-messages.js';
import { Heap, sortedIndex, type HeapEntry } from './visibility-heap.js';

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

/** Approximate counts as GetQueueAttributes reports them. */
export interface QueueCounts {
  readonly visible: number;
  readonly notVisible: number;
  readonly delayed: number;
}

/** Read access to the messages by sequence (what `Map` offered, for the owner and tests). */
export interface MessageLookup {
  readonly size: number;
  has(seq: number): boolean;
  /**
   * The message's state: the live object of a message received before (mutated by this class),
   * else a fresh copy (compare by `seq`, not by identity, until it was received).
   */
  get(seq: number): MessageMeta | undefined;
  /** Every message: the never-received ones in sequence order, then the others. */
  values(): IterableIterator<MessageMeta>;
}

/** FIFO message groups: each group's messages in send (= stream sequence) order, by interned group id. */
interface FifoGroups {
  readonly lists: Map<number, number[]>;
  readonly ids: Map<string, number>;
  readonly names: (string | undefined)[];
  /** Ids of groups that emptied, for the next new group. */
  readonly free: number[];
}

/**
 * One queue's messages and their visibility. Messages never received live packed in
 * `FreshMessages` (see there); a message becomes an object once received (or when it does not
 * fit there: added out of sequence order, or received before), so objects are bounded by what is
 * in flight or was received and not deleted. FIFO group names are interned to small ids.
 */
export class QueueState implements MessageLookup {
  private readonly fresh: FreshMessages;
  /** Messages held as objects (received, or not packable), by sequence. */
  private readonly held = new Map<number, MessageMeta>();
  private readonly heap = new Heap();
  /** FIFO only, made by the first grouped message: a standard queue carries none of it (memory per owned queue). */
  private groups?: FifoGroups;

  constructor(readonly fifo: boolean) {
    this.fresh = new FreshMessages(fifo);
  }

  /**
   * Lookup by sequence (see `MessageLookup`): this state itself, so an owned queue carries no view
   * object and closures of its own.
   */
  get messages(): MessageLookup {
    return this;
  }

  /** Messages stored (`messages.size`). */
  get size(): number {
    return this.fresh.size + this.held.size;
  }

  /** A message's state (`messages.get`; see `MessageLookup.get`). */
  get(seq: number): MessageMeta | undefined {
    return this.held.get(seq) ?? this.view(this.fresh.find(seq));
  }

  /** Every message (`messages.values`; see `MessageLookup.values`). */
  values(): IterableIterator<MessageMeta> {
    return this.all();
  }

  private *all(): IterableIterator<MessageMeta> {
    for (let i = 0; i < this.fresh.end; i++) if (this.fresh.alive(i)) yield this.view(i) as MessageMeta;
    yield* this.held.values();
  }

  // A never-received message as an object (a copy; its slot stays until it is received or removed).
  private view(slot: number): MessageMeta | undefined {
    if (slot < 0) return undefined;
    const g = this.fresh.groupOf(slot);
    return {
      seq: this.fresh.seqAt(slot),
      sentAt: this.fresh.sentAtOf(slot),
      ...(g < 0 ? {} : { group: this.groups?.names[g] }),
      visibleAt: this.fresh.visibleAtOf(slot),
      receiveCount: 0,
      version: 0,
    };
  }

  /** Whether the message is here (`messages.has`; what a rebuild asks). */
  has(seq: number): boolean {
    return this.held.has(seq) || this.fresh.find(seq) >= 0;
  }

  /** Adds a message (send, or rebuild); a known sequence is ignored (a deduplicated send). */
  add(meta: MessageMeta): boolean {
    if (this.messages.has(meta.seq)) return false;
    const grouped = this.fifo && meta.group !== undefined;
    const gid = grouped ? this.intern(meta.group) : -1;
    if (meta.receiveCount === 0 && this.fresh.fits(meta.seq, meta.sentAt, meta.visibleAt)) {
      this.fresh.append(meta.seq, meta.sentAt, meta.visibleAt, gid);
    } else {
      this.held.set(meta.seq, meta);
      // A new version: the object may come back (a delete whose log write failed) with its old
      // heap entry still queued, which must not count as a second entry for it.
      meta.version += 1;
      this.heap.push({ at: meta.visibleAt, seq: meta.seq, version: meta.version });
    }
    if (grouped && this.groups) {
      const list = this.groups.lists.get(gid) ?? [];
      // Sends are serialised per FIFO queue, so this is an append except during a rebuild.
      if (list.length === 0 || list[list.length - 1] < meta.seq) list.push(meta.seq);
      else list.splice(sortedIndex(list, meta.seq), 0, meta.seq);
      this.groups.lists.set(gid, list);
    }
    return true;
  }

  private intern(group: string): number {
    const g = (this.groups ??= { lists: new Map<number, number[]>(), ids: new Map<string, number>(), names: [], free: [] });
    let id = g.ids.get(group);
    if (id === undefined) {
      id = g.free.pop() ?? g.names.length;
      g.ids.set(group, id);
      g.names[id] = group;
    }
    return id;
  }

  /** Forgets a message (deleted, moved, expired, purged). */
  remove(seq: number): MessageMeta | undefined {
    let meta = this.held.get(seq);
    if (meta) this.held.delete(seq);
    else {
      const slot = this.fresh.find(seq);
      meta = this.view(slot);
      if (slot >= 0) this.fresh.remove(slot);
    }
    if (!meta) return undefined;
    const g = this.groups;
    const gid = meta.group === undefined ? undefined : g?.ids.get(meta.group);
    const list = gid === undefined ? undefined : g?.lists.get(gid);
    if (g && gid !== undefined && list) {
      const i = list[0] === seq ? 0 : list.indexOf(seq);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) {
        // The id is free for the next new group: the interned names stay as few as the live groups.
        g.lists.delete(gid);
        g.ids.delete(meta.group as string);
        g.names[gid] = undefined;
        g.free.push(gid);
      }
    }
    return meta;
  }

  clear(): void {
    this.fresh.clear();
    this.held.clear();
    this.heap.clear();
    this.groups = undefined;
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

  // Merges the two heaps (objects, packed slots) in (visibility, sequence) order. What is taken is
  // put back: the caller's markReceived moves it (its stale entries are skipped later).
  private standardCandidates(now: number, max: number): MessageMeta[] {
    const out: MessageMeta[] = [];
    const keep: HeapEntry[] = [];
    const keepSlots: number[] = [];
    while (out.length < max) {
      const top = this.validTop();
      const slot = this.fresh.peek();
      const at = slot >= 0 ? this.fresh.visibleAtOf(slot) : Infinity;
      if (top && (top.at < at || (top.at === at && top.seq < this.fresh.seqAt(slot)))) {
        if (top.at > now) break;
        this.heap.pop();
        out.push(this.held.get(top.seq) as MessageMeta);
        keep.push(top);
      } else {
        if (slot < 0 || at > now) break;
        keepSlots.push(this.fresh.pop());
        out.push(this.view(slot) as MessageMeta);
      }
    }
    for (const e of keep) this.heap.push(e);
    for (const s of keepSlots) this.fresh.push(s);
    return out;
  }

  // The object heap's top after dropping stale entries (of removed or re-timed messages).
  private validTop(): HeapEntry | undefined {
    for (;;) {
      const top = this.heap.peek();
      if (!top) return undefined;
      if (this.held.get(top.seq)?.version === top.version) return top;
      this.heap.pop();
    }
  }

  private fifoCandidates(now: number, max: number): MessageMeta[] {
    const out: MessageMeta[] = [];
    for (const list of this.groups?.lists.values() ?? []) {
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
      const meta = this.held.get(seq);
      // A packed message was never received.
      if (!meta || meta.receiveCount === 0) return false;
      if (meta.visibleAt > now) return true;
    }
    return false;
  }

  /** Rebuild: a message's delivery state as the log last stored it (a received message becomes an object). */
  restore(state: { seq: number; receiveCount: number; firstReceiveAt?: number; visibleAt: number }): void {
    const meta = this.messages.get(state.seq);
    if (!meta) return;
    meta.receiveCount = state.receiveCount;
    meta.firstReceiveAt = state.firstReceiveAt;
    this.setVisibleAt(meta, state.visibleAt);
  }

  /** Sets a message's visibility (receive, ChangeMessageVisibility, rebuild, rollback). */
  setVisibleAt(meta: MessageMeta, visibleAt: number): void {
    if (!this.held.has(meta.seq)) {
      // From a packed slot to an object: `meta` (the caller's copy) becomes the message's state.
      const slot = this.fresh.find(meta.seq);
      if (slot >= 0) {
        this.fresh.remove(slot);
        this.held.set(meta.seq, meta);
      }
    }
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
    const top = this.validTop();
    const slot = this.fresh.peek();
    const earliest = Math.min(top?.at ?? Infinity, slot >= 0 ? this.fresh.visibleAtOf(slot) : Infinity);
    if (earliest === Infinity) return undefined;
    if (earliest > now) return earliest;
    // Something is visible already but was not taken (FIFO: its group is locked): scan for the
    // earliest future visibility instead. Rare, and bounded by the queue's size.
    let next = Infinity;
    for (const meta of this.held.values()) if (meta.visibleAt > now && meta.visibleAt < next) next = meta.visibleAt;
    for (let i = 0; i < this.fresh.end; i++) {
      const v = this.fresh.alive(i) ? this.fresh.visibleAtOf(i) : Infinity;
      if (v > now && v < next) next = v;
    }
    return next === Infinity ? undefined : next;
  }

  /** Approximate counts: visible, in flight, delayed (never received and not yet visible). */
  counts(now: number): QueueCounts {
    let visible = 0;
    let notVisible = 0;
    let delayed = 0;
    for (const m of this.held.values()) {
      if (m.visibleAt <= now) visible += 1;
      else if (m.receiveCount > 0) notVisible += 1;
      else delayed += 1;
    }
    for (let i = 0; i < this.fresh.end; i++) {
      if (!this.fresh.alive(i)) continue;
      if (this.fresh.visibleAtOf(i) <= now) visible += 1;
      else delayed += 1;
    }
    return { visible, notVisible, delayed };
  }

  /** Sequences of messages sent before `before` (retention). */
  sentBefore(before: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.fresh.end; i++) if (this.fresh.alive(i) && this.fresh.sentAtOf(i) < before) out.push(this.fresh.seqAt(i));
    for (const m of this.held.values()) if (m.sentAt < before) out.push(m.seq);
    return out;
  }
}
