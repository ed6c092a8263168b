/**
 * Packed never-received messages (fresh-messages.ts): sequences and send times are 32-bit offsets
 * from bases that follow the live messages, so a queue that is never empty stays packed for good.
 */
import { expect, test } from 'vitest';
import { FreshMessages } from '../../../../src/messaging/engine/fresh-messages.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 11, 7);

test('a queue never empty for 60 days (20 messages a day, each kept 3 days; 12 billion sequences in all) stays packed: the bases move with compaction', () => {
  const f = new FreshMessages(false);
  let seq = 2 ** 40;
  for (let day = 0; day < 60; day++) {
    for (let i = 0; i < 20; i++) {
      seq += 10_000_019;
      const sentAt = T0 + day * DAY + i;
      expect(f.fits(seq, sentAt, sentAt + 500)).toBe(true);
      f.append(seq, sentAt, sentAt + 500, -1);
    }
    // Messages older than 3 days expire.
    for (let slot = 0; slot < f.end; slot++) if (f.alive(slot) && f.sentAtOf(slot) < T0 + (day - 3) * DAY) f.remove(slot);
  }
  expect(f.size).toBeLessThanOrEqual(4 * 20);
  const live = [...Array(f.end).keys()].filter((s) => f.alive(s));
  // Values come back exact, in sequence order, and each is found by its sequence.
  expect(live.map((s) => f.sentAtOf(s) - T0 - 59 * DAY)).toContain(19);
  expect(live.map((s) => f.seqAt(s))).toEqual([...live.map((s) => f.seqAt(s))].sort((a, b) => a - b));
  for (const s of live) expect(f.find(f.seqAt(s))).toBe(s);
  expect(f.visibleAtOf(f.peek()) - f.sentAtOf(f.peek())).toBe(500);
});

test('a message beyond the offsets does not fit (it stays an object); once the queue emptied the bases start again', () => {
  const f = new FreshMessages(false);
  f.append(10, T0, T0, -1);
  expect(f.fits(10 + 2 ** 32, T0, T0)).toBe(false);
  expect(f.fits(11, T0 + 25 * DAY, T0 + 25 * DAY)).toBe(false);
  expect(f.fits(11, T0 - 25 * DAY, T0 - 25 * DAY)).toBe(false);
  expect(f.fits(11, T0 - 1000, T0)).toBe(true);
  expect(f.fits(11, T0 + 0.5, T0 + 0.5)).toBe(false);
  f.remove(f.find(10));
  expect(f.size).toBe(0);
  expect(f.fits(10 + 2 ** 32, T0 + 25 * DAY, T0 + 25 * DAY)).toBe(true);
  f.append(10 + 2 ** 32, T0 + 25 * DAY, T0 + 25 * DAY, -1);
  expect(f.seqAt(f.peek())).toBe(10 + 2 ** 32);
  expect(f.sentAtOf(f.peek())).toBe(T0 + 25 * DAY);
});

test('a backlog nobody reads (one message an hour, 14 days kept) stays packed past the offsets’ 24 days: it compacts early when they run out', () => {
  const f = new FreshMessages(false);
  const HOUR = 3_600_000;
  for (let hour = 0; hour < 60 * 24; hour++) {
    const sentAt = T0 + hour * HOUR;
    // Expiry first, as the owner's sweep does; the oldest die one at a time, so compaction (half
    // of the slots dead) alone would come only every 28 days.
    for (let slot = 0; slot < f.end; slot++) if (f.alive(slot) && f.sentAtOf(slot) <= sentAt - 14 * 24 * HOUR) f.remove(slot);
    expect(f.fits(hour + 1, sentAt, sentAt)).toBe(true);
    f.append(hour + 1, sentAt, sentAt, -1);
  }
  expect(f.size).toBe(14 * 24);
  expect(f.sentAtOf(f.peek())).toBe(T0 + (60 * 24 - 14 * 24) * HOUR);
});

// A seeded generator, so a failure repeats.
function random(seed: number): () => number {
  return () => {
    seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
    return seed / 2 ** 32;
  };
}

/** Delivery order of the live slots as `QueueState` reads it: peek, pop, then push all back. */
function order(f: FreshMessages, max: number): number[] {
  const taken: number[] = [];
  while (taken.length < max && f.peek() >= 0) taken.push(f.pop());
  const seqs = taken.map((s) => f.seqAt(s));
  for (const s of taken) f.push(s);
  return seqs;
}

test('sends in time order without delays cost 8 B a slot (no delays, no heap); a delayed or late message adds them, compaction drops them once gone', () => {
  const f = new FreshMessages(false);
  for (let i = 1; i <= 1000; i++) f.append(i, T0 + i, T0 + i, -1);
  expect(f.bytes).toBe(8 * f.capacity);
  expect(order(f, 3)).toEqual([1, 2, 3]);
  // Delayed past what follows: a delays array and a heap.
  f.append(1001, T0 + 1001, T0 + 5000, -1);
  f.append(1002, T0 + 1002, T0 + 1002, -1);
  expect(f.bytes).toBe(16 * f.capacity);
  expect(order(f, 1002).slice(-2)).toEqual([1002, 1001]);
  // The delayed one and half of the rest go: the survivors are in order again.
  f.remove(f.find(1001));
  for (let i = 1; i <= 600; i++) f.remove(f.find(i));
  expect(f.bytes).toBe(8 * f.capacity);
  expect(order(f, 2)).toEqual([601, 602]);
  // Sent earlier than the last slot (another request's clock): a heap, no delays.
  f.append(1003, T0 + 10, T0 + 10, -1);
  expect(f.bytes).toBe(12 * f.capacity);
  expect(order(f, 2)).toEqual([1003, 601]);
});

// How a run sends and consumes: `late` and `delayed` are the shares of sends out of time order and
// with a delay; `fromFront` the share of removals that take the oldest message (a consumer), the
// rest remove one anywhere (deletes of messages received out of order, expiry).
const RUNS = [
  ...[1, 2, 3].map((seed) => ({ seed, late: 0.05, delayed: 0.1, fromFront: 0 })),
  // Mostly the usual queue: in order, no delays, consumed from the front; disorder now and then,
  // so the queue goes from the cursor to the heap and back.
  ...[4, 5, 6, 7].map((seed) => ({ seed, late: 0.003, delayed: 0.003, fromFront: 0.9 })),
  { seed: 8, late: 0, delayed: 0, fromFront: 0.5 },
];

test.each(RUNS)(
  'the packed order matches a model through random sends, delays, removals and takes (%o)',
  ({ seed, late, delayed, fromFront }) => {
    const rnd = random(seed);
    const f = new FreshMessages(true);
    const model = new Map<number, { visible: number; sent: number; group: number }>();
    const inOrder = () => [...model].sort((a, b) => a[1].visible - b[1].visible || a[0] - b[0]).map(([k]) => k);
    let seq = 100;
    const steps = { cursor: 0, more: 0 };
    for (let step = 0; step < 4000; step++) {
      const r = rnd();
      if (r < 0.5) {
        seq += 1 + Math.floor(rnd() * 3);
        const sent = T0 + step * 10 - (rnd() < late ? 500 : 0);
        const visible = sent + (rnd() < delayed ? Math.floor(rnd() * 2000) : 0);
        const group = Math.floor(rnd() * 4);
        expect(f.fits(seq, sent, visible)).toBe(true);
        f.append(seq, sent, visible, group);
        model.set(seq, { visible, sent, group });
      } else if (r < 0.85 && model.size > 0) {
        const front = rnd() < fromFront;
        const keys = front ? inOrder() : [...model.keys()];
        const k = keys[front ? 0 : Math.floor(rnd() * keys.length)];
        f.remove(f.find(k));
        model.delete(k);
      } else {
        expect(order(f, 20)).toEqual(inOrder().slice(0, 20));
      }
      expect(f.size).toBe(model.size);
      // 12 B a slot (sequence, send time, group): the cursor, neither delays nor a heap.
      if (f.capacity > 0) steps[f.bytes === 12 * f.capacity ? 'cursor' : 'more'] += 1;
    }
    // Both ways of keeping the order were exercised (only the cursor without disorder).
    expect(steps.cursor).toBeGreaterThan(late + delayed < 0.1 ? 500 : 0);
    expect(steps.more > 0).toBe(late + delayed > 0);
    for (const [k, m] of model) {
      const slot = f.find(k);
      expect(slot).toBeGreaterThanOrEqual(0);
      expect([f.sentAtOf(slot), f.visibleAtOf(slot), f.groupOf(slot)]).toEqual([m.sent, m.visible, m.group]);
    }
    expect(f.find(seq + 1)).toBe(-1);
  },
);
