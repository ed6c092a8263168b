/**
 * A binary min-heap of slot numbers in an `Int32Array`, ordered by a comparison the owner supplies
 * (the slots' values live in the owner's arrays): the delivery order of `FreshMessages` once its
 * slots are out of visibility order. Pure and synchronous.
 */

const NONE = new Int32Array(0);

/** Slot numbers ordered by `before`; may hold slots the owner has since killed (it skips them). */
export class SlotHeap {
  private items = NONE;
  private len = 0;

  /** @param before whether slot `a` comes before slot `b` (a strict order). */
  constructor(private readonly before: (a: number, b: number) => boolean) {}

  get size(): number {
    return this.len;
  }

  /** The first slot (check `size` first). */
  get top(): number {
    return this.items[0];
  }

  /** Room for `capacity` slots, keeping what fits. */
  resize(capacity: number): void {
    const items = new Int32Array(capacity);
    items.set(this.items.subarray(0, Math.min(this.len, capacity)));
    this.items = items;
    this.len = Math.min(this.len, capacity);
  }

  /** Holds exactly the slots `from` to `to - 1`, heapified in O(n); room as `resize` left it. */
  reset(from: number, to: number): void {
    this.len = 0;
    for (let s = from; s < to; s++) this.items[this.len++] = s;
    for (let i = (this.len >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  push(slot: number): void {
    this.items[this.len++] = slot;
    this.siftUp(this.len - 1);
  }

  /** Takes the first slot off. */
  pop(): number {
    const top = this.items[0];
    this.items[0] = this.items[--this.len];
    if (this.len > 0) this.siftDown(0);
    return top;
  }

  private siftUp(i: number): void {
    const h = this.items;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  private siftDown(i: number): void {
    const h = this.items;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.len && this.before(h[l], h[m])) m = l;
      if (r < this.len && this.before(h[r], h[m])) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m], h[i]];
      i = m;
    }
  }

  /** Bytes of its array. */
  get bytes(): number {
    return this.items.byteLength;
  }
}
