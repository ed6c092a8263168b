/**
 * The messages of a queue that were never received, packed in typed arrays: what `QueueState`
 * holds for most stored messages. An object per message (the meta, a `Map` entry, a heap entry,
 * boxed timestamps) cost ~220 B of the API's heap per stored message; here a message is 8 B (12 B
 * on a FIFO queue) plus the arrays' spare capacity, and nothing for the garbage collector to walk.
 *
 * A slot holds a message's sequence and send time as 32-bit offsets from the queue's bases (the
 * first live message's, moved at each compaction) and, on a FIFO queue, its interned message
 * group. A message whose offsets do not fit (a queue whose live messages span more than 2 billion
 * stream sequences or 24 days) stays an object. Slots are appended in sequence order only (a
 * message that would break it stays an object in `QueueState`), so a sequence is found by binary
 * search and slot order is sequence order. Removal marks a slot dead (the top bit of its sequence
 * offset); the arrays are compacted once at least half of their slots are dead, so memory follows
 * the live messages.
 *
 * Delivery order is (visibility, sequence). While the slots' visibilities do not decrease in slot
 * order (no delays, sends in time order: the usual queue) that is slot order, and the queue keeps
 * neither delays nor a heap: a cursor past the taken slots is the whole order. The first delayed
 * message adds a delays array (visibility less send time), the first one out of order a min-heap of
 * slot numbers, as the object heap of in-flight messages, so both merge into one order; compaction
 * drops them again when the live slots no longer need them. Pure and synchronous.
 */

import { SlotHeap } from './slot-heap.js';

const MIN_CAPACITY = 16;
/** Largest delay a slot holds (ms, 24 days): beyond it (never for SQS's 15 minutes) a message stays an object. */
const MAX_DELAY_MS = 0x7fff_ffff;
/** Largest sequence offset from the base (the top bit is `DEAD`). */
const MAX_SEQ_OFFSET = 0x7fff_ffff;
/** Send time offsets from the base, ms (±24 days: clocks of successive owners may disagree a little). */
const MIN_SENT_OFFSET = -0x8000_0000;
const MAX_SENT_OFFSET = 0x7fff_ffff;
/**
 * Marks a dead slot in its sequence offset. Its other values stay as they were: the order still
 * places it where it was (until it reaches the top and is dropped), so the heap's invariant holds.
 */
const DEAD = 0x8000_0000;
// Shared by every empty queue (nothing is ever written to a zero-length array): an idle queue costs
// no arrays of its own, and a queue without delays or disorder none for them.
const NO_U32 = new Uint32Array(0);
const NO_I32 = new Int32Array(0);

/** Never-received messages of one queue (see the module comment). */
export class FreshMessages {
  /** Sequence less `seqBase`; `DEAD` set: the slot is dead. */
  private seqs = NO_U32;
  /** Send time less `sentBase`, ms. */
  private sent = NO_I32;
  private seqBase = 0;
  private sentBase = 0;
  /** Visibility less send time; empty while every slot's is 0. */
  private delays = NO_U32;
  private groupIds?: Int32Array;
  /** Ordered (no heap): the first slot not taken (those before it are dead or taken by `pop`). */
  private head = 0;
  /**
   * Only once visibility decreases somewhere in slot order: slot numbers on (visibility, slot);
   * may hold dead slots, dropped when they reach the top. Absent, the order is the slots from `head`.
   */
  private heap?: SlotHeap;
  private len = 0;
  private dead = 0;

  /** @param grouped whether slots carry a message group id (FIFO queues). */
  constructor(private readonly grouped: boolean) {}

  /** Live messages. */
  get size(): number {
    return this.len - this.dead;
  }

  /** Allocated slots (for tests: memory follows the live messages). */
  get capacity(): number {
    return this.seqs.length;
  }

  /** Bytes of the arrays (for tests and measurements: what a slot costs with this queue's traffic). */
  get bytes(): number {
    return (
      this.seqs.byteLength + this.sent.byteLength + this.delays.byteLength + (this.heap?.bytes ?? 0) + (this.groupIds?.byteLength ?? 0)
    );
  }

  /**
   * Whether a message with these values can be appended (it comes after every slot, its delay and
   * offsets fit); may compact to make its offsets fit (find slots again after).
   */
  fits(seq: number, sentAt: number, visibleAt: number): boolean {
    const delay = visibleAt - sentAt;
    if (!Number.isInteger(sentAt) || !Number.isInteger(seq) || !Number.isInteger(delay) || delay < 0 || delay > MAX_DELAY_MS) return false;
    if (this.len === 0) return true;
    if (seq - this.seqBase <= this.seqOffset(this.len - 1)) return false;
    if (this.inRange(seq - this.seqBase, sentAt - this.sentBase)) return true;
    // The bases lag behind the live messages (a backlog nobody reads dies slowly, so compaction,
    // which moves them, may come only after weeks): compact now if that brings this one in range.
    // Slot numbers change, as after a removal.
    const first = this.firstAlive();
    if (!this.inRange(seq - this.seqBase - this.seqOffset(first), sentAt - this.sentBase - this.sent[first])) return false;
    this.compact();
    return this.inRange(seq - this.seqBase, sentAt - this.sentBase);
  }

  private inRange(seqOffset: number, sentOffset: number): boolean {
    return seqOffset <= MAX_SEQ_OFFSET && sentOffset >= MIN_SENT_OFFSET && sentOffset <= MAX_SENT_OFFSET;
  }

  /** Appends a message (check `fits` first); `group` is an interned group id, -1 for none. */
  append(seq: number, sentAt: number, visibleAt: number, group: number): void {
    // 1.5x while small, 1.25x past 256 slots: spare capacity is most of the waste of big queues.
    if (this.len === this.seqs.length) this.resize(Math.max(MIN_CAPACITY, Math.ceil(this.len * (this.len > 256 ? 1.25 : 1.5))));
    if (this.len === 0) {
      this.seqBase = seq;
      this.sentBase = sentAt;
    }
    const i = this.len;
    // Out of order (sent earlier than the last slot, or delayed past it): from now on a heap.
    if (!this.heap && i > 0 && visibleAt < this.visibleAtOf(i - 1)) this.startHeap();
    this.len += 1;
    this.seqs[i] = seq - this.seqBase;
    this.sent[i] = sentAt - this.sentBase;
    if (visibleAt !== sentAt && this.delays.length === 0) this.delays = new Uint32Array(this.seqs.length);
    if (this.delays.length > 0) this.delays[i] = visibleAt - sentAt;
    if (this.groupIds) this.groupIds[i] = group;
    this.heap?.push(i);
  }

  /** The live slot of `seq`, or -1. */
  find(seq: number): number {
    seq -= this.seqBase;
    let lo = 0;
    let hi = this.len;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.seqOffset(mid) < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.len && this.seqs[lo] === seq ? lo : -1;
  }

  alive(slot: number): boolean {
    return this.seqs[slot] < DEAD;
  }
  seqAt(slot: number): number {
    return this.seqBase + this.seqOffset(slot);
  }
  sentAtOf(slot: number): number {
    return this.sentBase + this.sent[slot];
  }
  visibleAtOf(slot: number): number {
    return this.sentBase + this.sent[slot] + (this.delays.length > 0 ? this.delays[slot] : 0);
  }
  groupOf(slot: number): number {
    return this.groupIds ? this.groupIds[slot] : -1;
  }

  private seqOffset(slot: number): number {
    return this.seqs[slot] & MAX_SEQ_OFFSET;
  }

  private firstAlive(): number {
    let first = 0;
    while (!this.alive(first)) first += 1;
    return first;
  }

  /** Slots in use, dead ones included (iterate `0..end` and skip what is not `alive`). */
  get end(): number {
    return this.len;
  }

  /** Removes the message in `slot`. Slot numbers change when this compacts: find them again after. */
  remove(slot: number): void {
    if (!this.alive(slot)) return;
    this.seqs[slot] |= DEAD;
    this.dead += 1;
    if (this.dead === this.len) this.clear(false);
    else if (this.dead >= MIN_CAPACITY && this.dead * 2 >= this.len) this.compact();
  }

  /** Forgets everything; `release` also frees the arrays. */
  clear(release = true): void {
    this.len = 0;
    this.dead = 0;
    this.head = 0;
    this.heap = undefined;
    this.delays = NO_U32;
    if (release || this.seqs.length > 4 * MIN_CAPACITY) this.resize(0);
  }

  /** The earliest live slot by (visibility, sequence), or -1; dead slots on top are dropped. */
  peek(): number {
    const heap = this.heap;
    if (!heap) {
      while (this.head < this.len && !this.alive(this.head)) this.head += 1;
      return this.head < this.len ? this.head : -1;
    }
    while (heap.size > 0 && !this.alive(heap.top)) heap.pop();
    return heap.size > 0 ? heap.top : -1;
  }

  /** Takes the top slot (`peek` first) off the order; put it back with `push`. */
  pop(): number {
    return this.heap ? this.heap.pop() : this.head++;
  }

  /** Puts a slot taken by `pop` back (no removal or append in between). */
  push(slot: number): void {
    // Ordered: what lies between it and the cursor was taken too or is dead.
    if (this.heap) this.heap.push(slot);
    else this.head = Math.min(this.head, slot);
  }

  // From the cursor on (what lies before it is dead: nothing is taken during an append).
  private startHeap(): void {
    this.heap = this.newHeap(this.head, this.len);
    this.head = 0;
  }

  private newHeap(from: number, to: number): SlotHeap {
    const heap = new SlotHeap((a, b) => this.before(a, b));
    heap.resize(this.seqs.length);
    heap.reset(from, to);
    return heap;
  }

  private before(a: number, b: number): boolean {
    // Both less the same base.
    const va = this.sent[a] + (this.delays.length > 0 ? this.delays[a] : 0);
    const vb = this.sent[b] + (this.delays.length > 0 ? this.delays[b] : 0);
    // Slot order is sequence order.
    return va < vb || (va === vb && a < b);
  }

  // Moves the live slots down (keeping their order). Every live slot is in the order (compaction
  // never runs between `pop` and `push`), so the new order is all slots: the cursor at 0, or a heap
  // of them when the live slots are still out of order. The bases move to the first live
  // message, so offsets stay small however long the queue is never empty (its live messages span
  // at most their retention).
  private compact(): void {
    const first = this.firstAlive();
    const seqShift = this.seqOffset(first);
    const sentShift = this.rebaseSent(first) ? this.sent[first] : 0;
    const delayed = this.delays.length > 0;
    let w = 0;
    let anyDelay = false;
    let inOrder = true;
    for (let r = 0; r < this.len; r++) {
      if (!this.alive(r)) continue;
      this.seqs[w] = this.seqs[r] - seqShift;
      this.sent[w] = this.sent[r] - sentShift;
      if (delayed) {
        this.delays[w] = this.delays[r];
        anyDelay ||= this.delays[w] !== 0;
      }
      if (this.groupIds) this.groupIds[w] = this.groupIds[r];
      if (w > 0 && this.visibleAtOf(w) < this.visibleAtOf(w - 1)) inOrder = false;
      w += 1;
    }
    this.len = w;
    this.dead = 0;
    this.seqBase += seqShift;
    this.sentBase += sentShift;
    if (delayed && !anyDelay) this.delays = NO_U32;
    this.head = 0;
    this.heap = undefined;
    if (this.seqs.length > 4 * Math.max(w, MIN_CAPACITY)) this.resize(Math.max(MIN_CAPACITY, Math.ceil(w * 1.5)));
    if (!inOrder) this.heap = this.newHeap(0, w);
  }

  // Whether every live send time still fits as an offset from the send time of `slot`.
  private rebaseSent(slot: number): boolean {
    const shift = this.sent[slot];
    for (let i = slot; i < this.len; i++) {
      const off = this.sent[i] - shift;
      if (this.alive(i) && (off < MIN_SENT_OFFSET || off > MAX_SENT_OFFSET)) return false;
    }
    return true;
  }

  // Resizes every array in use (delays and heap only where the queue has them).
  private resize(capacity: number): void {
    if (capacity === 0) {
      [this.seqs, this.sent, this.delays, this.heap] = [NO_U32, NO_I32, NO_U32, undefined];
      if (this.grouped) this.groupIds = NO_I32;
      return;
    }
    const n = Math.min(this.len, capacity);
    const grow = <T extends Uint32Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const b = make(capacity);
      b.set(a.subarray(0, n));
      return b;
    };
    this.seqs = grow(this.seqs, (c) => new Uint32Array(c));
    this.sent = grow(this.sent, (c) => new Int32Array(c));
    if (this.delays.length > 0) this.delays = grow(this.delays, (c) => new Uint32Array(c));
    if (this.grouped) this.groupIds = grow(this.groupIds ?? NO_I32, (c) => new Int32Array(c));
    this.heap?.resize(capacity);
  }
}
