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
