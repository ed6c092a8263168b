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
