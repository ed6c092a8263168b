import { expect, test } from 'vitest';
import { QueueState, type MessageMeta } from '../../../../src/messaging/engine/queue-state.js';

const meta = (seq: number, over: Partial<MessageMeta> = {}): MessageMeta => ({
  seq,
  sentAt: 0,
  visibleAt: 0,
  receiveCount: 0,
  version: 0,
  ...over,
});

test('standard: earliest visible first, in-flight and delayed ones wait', () => {
  const s = new QueueState(false);
  s.add(meta(1, { visibleAt: 50 }));
  s.add(meta(2));
  s.add(meta(3));
  expect(s.candidates(10, 10).map((m) => m.seq)).toEqual([2, 3]);
  s.markReceived(s.messages.get(2) as MessageMeta, 10, 40);
  expect(s.candidates(10, 10).map((m) => m.seq)).toEqual([3]);
  expect(s.add(meta(3))).toBe(false);
  s.markReceived(s.messages.get(3) as MessageMeta, 10, 45);
  expect(s.nextChangeAt(10)).toBe(40);
  expect(s.counts(10)).toEqual({ visible: 0, notVisible: 2, delayed: 1 });
  expect(s.candidates(40, 10).map((m) => m.seq)).toEqual([2]);
  expect(s.candidates(60, 10).map((m) => m.seq)).toEqual([2, 3, 1]);
  expect(s.messages.get(2)?.receiveCount).toBe(1);
});

test('FIFO: a group is locked while any of its messages is in flight, and only its head run is taken', () => {
  const s = new QueueState(true);
  s.add(meta(1, { group: 'a' }));
  s.add(meta(2, { group: 'a' }));
  s.add(meta(3, { group: 'b' }));
  s.add(meta(5, { group: 'a' }));
  s.add(meta(4, { group: 'b', visibleAt: 100 }));
  expect(s.candidates(0, 10).map((m) => m.seq)).toEqual([1, 2, 5, 3]);
  expect(s.candidates(0, 1).map((m) => m.seq)).toEqual([1]);
  s.markReceived(s.messages.get(1) as MessageMeta, 0, 30);
  expect(s.candidates(0, 10).map((m) => m.seq)).toEqual([3]);
  s.markReceived(s.messages.get(3) as MessageMeta, 0, 30);
  expect(s.candidates(0, 10)).toEqual([]);
  expect(s.nextChangeAt(0)).toBe(30);
  // Message 1 becomes visible again but 2 is still in flight: the group stays locked.
  s.markReceived(s.messages.get(2) as MessageMeta, 0, 60);
  expect(s.candidates(31, 10).map((m) => m.seq)).toEqual([3]);
  s.remove(1);
  s.remove(2);
  expect(s.candidates(31, 10).map((m) => m.seq)).toEqual([5, 3]);
  // b's second message is delayed until 100.
  s.remove(3);
  expect(s.candidates(31, 10).map((m) => m.seq)).toEqual([5]);
});

test('retention: sequences sent before a time', () => {
  const s = new QueueState(false);
  s.add(meta(1, { sentAt: 5 }));
  s.add(meta(2, { sentAt: 15 }));
  expect(s.sentBefore(10)).toEqual([1]);
});

test('packed messages: received ones become the caller’s object, the rest stay copies', () => {
  const s = new QueueState(false);
  s.add(meta(1, { sentAt: 3, visibleAt: 3 }));
  const [m] = s.candidates(5, 1);
  expect(m).toEqual({ seq: 1, sentAt: 3, visibleAt: 3, receiveCount: 0, version: 0 });
  s.markReceived(m, 5, 35);
  expect(s.messages.get(1)).toBe(m);
  expect(m).toMatchObject({ receiveCount: 1, firstReceiveAt: 5, visibleAt: 35, version: 1 });
  // A stale copy changes nothing once the message is gone.
  const copy = { ...m };
  s.remove(1);
  s.setVisibleAt(copy, 0);
  expect(s.messages.has(1)).toBe(false);
  expect(s.candidates(100, 10)).toEqual([]);
});

test('growth and compaction: memory follows the live messages, order and lookups survive', () => {
  const s = new QueueState(false);
  for (let seq = 1; seq <= 1000; seq++) s.add(meta(seq, { sentAt: seq, visibleAt: seq }));
  expect(s.messages.size).toBe(1000);
  for (let seq = 1; seq <= 1000; seq++) if (seq % 10 !== 0) s.remove(seq);
  expect(s.messages.size).toBe(100);
  expect(s.messages.has(10) && !s.messages.has(11)).toBe(true);
  expect(s.messages.get(500)).toMatchObject({ seq: 500, sentAt: 500 });
  expect(s.candidates(10_000, 3).map((m) => m.seq)).toEqual([10, 20, 30]);
  expect(s.sentBefore(45)).toEqual([10, 20, 30, 40]);
  expect(s.counts(505)).toEqual({ visible: 50, notVisible: 0, delayed: 50 });
  expect(s.nextChangeAt(505)).toBe(510);
  const capacity = (s as unknown as { fresh: { capacity: number } }).fresh.capacity;
  expect(capacity).toBeLessThan(400);
  for (let seq = 10; seq <= 1000; seq += 10) s.remove(seq);
  expect(s.messages.size).toBe(0);
  expect(s.candidates(10_000, 10)).toEqual([]);
  expect(s.nextChangeAt(0)).toBeUndefined();
  // Appending after everything was removed starts over.
  s.add(meta(2000));
  expect(s.candidates(0, 10).map((m) => m.seq)).toEqual([2000]);
});

test('out-of-order adds (rebuild, adopted duplicates) and received rebuilt messages keep the delivery order', () => {
  const s = new QueueState(false);
  s.add(meta(5, { visibleAt: 20 }));
  s.add(meta(3, { visibleAt: 10 }));
  s.add(meta(4, { visibleAt: 10, receiveCount: 2, firstReceiveAt: 1 }));
  s.add(meta(6, { visibleAt: 10 }));
  s.add(meta(7, { sentAt: 10, visibleAt: 5 }));
  expect(s.messages.size).toBe(5);
  expect(s.candidates(30, 10).map((m) => m.seq)).toEqual([7, 3, 4, 6, 5]);
  expect(s.messages.get(4)).toMatchObject({ receiveCount: 2, firstReceiveAt: 1 });
  expect(s.counts(15)).toEqual({ visible: 4, notVisible: 0, delayed: 1 });
  expect(s.sentBefore(1).sort()).toEqual([3, 4, 5, 6]);
});

test('FIFO: group names are interned and reused once a group empties; packed messages lock and unlock their group', () => {
  const s = new QueueState(true);
  s.add(meta(1, { group: 'a' }));
  s.add(meta(2, { group: 'b' }));
  s.add(meta(3, { group: 'a' }));
  expect(s.messages.get(3)?.group).toBe('a');
  const [first] = s.candidates(0, 1);
  s.markReceived(first, 0, 50);
  expect(s.candidates(0, 10).map((m) => [m.seq, m.group])).toEqual([[2, 'b']]);
  s.remove(1);
  expect(s.candidates(0, 10).map((m) => m.seq)).toEqual([3, 2]);
  s.remove(3);
  s.add(meta(4, { group: 'c' }));
  s.add(meta(5, { group: 'a' }));
  // 'a' emptied and came back: it is behind 'b' and 'c' now, as a new group.
  expect(s.candidates(0, 10).map((m) => [m.seq, m.group])).toEqual([
    [2, 'b'],
    [4, 'c'],
    [5, 'a'],
  ]);
  const names = (s as unknown as { groups: { names: (string | undefined)[] } }).groups.names;
  expect(names.filter(Boolean).sort()).toEqual(['a', 'b', 'c']);
  expect(names.length).toBe(3);
  s.clear();
  expect(s.messages.size).toBe(0);
  expect(s.candidates(0, 10)).toEqual([]);
});

test('a standard queue carries no FIFO group state, and its lookup is no object of its own (memory per owned queue)', () => {
  const s = new QueueState(false);
  s.add(meta(1, { group: 'fair' }));
  expect((s as unknown as { groups?: unknown }).groups).toBeUndefined();
  expect(s.messages).toBe(s);
  expect(s.messages.get(1)?.group).toBeUndefined();
  const fifo = new QueueState(true);
  fifo.add(meta(1, { group: 'g' }));
  fifo.clear();
  expect((fifo as unknown as { groups?: unknown }).groups).toBeUndefined();
});

test('standard: same answers as a plain model under random sends, receives, deletes and visibility changes', () => {
  let seed = 7;
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  const s = new QueueState(false);
  const model = new Map<number, { visibleAt: number; receiveCount: number; sentAt: number }>();
  let seq = 0;
  let now = 0;
  for (let step = 0; step < 3000; step++) {
    now += rand(5);
    const op = rand(10);
    if (op < 4) {
      seq += 1 + rand(3);
      const m = meta(seq, { sentAt: now, visibleAt: now + (rand(4) === 0 ? rand(50) : 0) });
      s.add(m);
      model.set(seq, { visibleAt: m.visibleAt, receiveCount: 0, sentAt: now });
    } else if (op < 7) {
      const max = 1 + rand(10);
      const want = [...model]
        .filter(([, m]) => m.visibleAt <= now)
        .sort(([a, x], [b, y]) => x.visibleAt - y.visibleAt || a - b)
        .slice(0, max)
        .map(([k]) => k);
      const got = s.candidates(now, max);
      expect(got.map((m) => m.seq)).toEqual(want);
      for (const m of got.slice(0, rand(got.length + 1))) {
        const visibleAt = now + 1 + rand(30);
        s.markReceived(m, now, visibleAt);
        Object.assign(model.get(m.seq) as object, { visibleAt, receiveCount: m.receiveCount });
      }
    } else if (op < 9) {
      const keys = [...model.keys()];
      const victim = keys[rand(keys.length + 1)];
      if (victim !== undefined) {
        s.remove(victim);
        model.delete(victim);
      }
    } else {
      const inFlight = [...model].filter(([, m]) => m.receiveCount > 0);
      const pick = inFlight[rand(inFlight.length + 1)];
      if (pick) {
        const visibleAt = now + rand(20);
        s.setVisibleAt(s.messages.get(pick[0]) as MessageMeta, visibleAt);
        pick[1].visibleAt = visibleAt;
      }
    }
    expect(s.messages.size).toBe(model.size);
    const future = [...model.values()].map((m) => m.visibleAt).filter((v) => v > now);
    expect(s.nextChangeAt(now)).toBe(future.length > 0 ? Math.min(...future) : undefined);
    const c = s.counts(now);
    expect(c.visible).toBe([...model.values()].filter((m) => m.visibleAt <= now).length);
  }
});

test('a received message put back after a failed delete is delivered once, not twice', () => {
  const s = new QueueState(false);
  s.add({ seq: 1, sentAt: 0, visibleAt: 0, receiveCount: 0, version: 0 });
  const [m] = s.candidates(0, 10);
  s.markReceived(m, 0, 30_000);
  const held = s.messages.get(1) as MessageMeta;
  // DeleteMessage forgets it first; the log delete fails and the owner puts the same object back.
  s.remove(1);
  s.add(held);
  expect(s.candidates(31_000, 10).map((x) => x.seq)).toEqual([1]);
});

test('rebuild: stored states are restored onto packed messages; FIFO groups stay locked while one is in flight', () => {
  const s = new QueueState(true);
  for (const seq of [1, 2, 3, 4]) s.add(meta(seq, { group: seq < 4 ? 'a' : 'b', sentAt: seq, visibleAt: seq }));
  // The log's records: 1 was received twice and is in flight, 2 was received and came back; 9 is gone.
  s.restore({ seq: 1, receiveCount: 2, firstReceiveAt: 5, visibleAt: 100 });
  s.restore({ seq: 2, receiveCount: 1, firstReceiveAt: 6, visibleAt: 7 });
  s.restore({ seq: 9, receiveCount: 1, visibleAt: 7 });
  expect(s.messages.size).toBe(4);
  expect(s.has(9)).toBe(false);
  expect(s.messages.get(1)).toMatchObject({ receiveCount: 2, firstReceiveAt: 5, visibleAt: 100 });
  expect(s.counts(50)).toEqual({ visible: 3, notVisible: 1, delayed: 0 });
  // Group a is locked by 1 in flight; b is free.
  expect(s.candidates(50, 10).map((m) => m.seq)).toEqual([4]);
  expect(s.candidates(100, 10).map((m) => m.seq)).toEqual([1, 2, 3, 4]);
  expect(s.nextChangeAt(50)).toBe(100);
});
