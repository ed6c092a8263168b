/**
 * Idle queues are let go: the pure decision (idle-release.ts), then the router over fakes (a fake
 * clock for idleness, fake timers for its one ticker): released once idle, kept while a long poll
 * waits, its counts still reported, taken back by the next request with its state.
 */
import { afterEach, expect, test, vi } from 'vitest';
import { mayRelease, wakeAt } from '../../../../src/messaging/engine/idle-release.js';
import { subjects } from '../../../../src/messaging/engine/layout.js';
import { append, ctx, receive, setup } from './router-fakes.js';

afterEach(() => void vi.useRealTimers());

/** Lets `ms` pass on the router's clock, a tick (and lease renewal) every 100 ms of it. */
async function pass(advance: (ms: number) => void, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 100) {
    advance(100);
    await vi.advanceTimersByTimeAsync(200);
  }
}

/** `fn`, counting its calls. */
function counted<A extends unknown[], R>(fn: (...args: A) => R): { fn: (...args: A) => R; calls: number } {
  const c = {
    calls: 0,
    fn: (...args: A): R => {
      c.calls += 1;
      return fn(...args);
    },
  };
  return c;
}

/** A router (fake timers) whose one queue was let go with a message in flight for 5 s. */
async function restingQueue() {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  const fakes = setup(600, 1000);
  await fakes.router.run('q', { op: 'append', entries: [append('a')] }, ctx);
  await fakes.router.run('q', { ...receive, req: { ...receive.req, VisibilityTimeout: 5 } }, ctx);
  await pass(fakes.advance, 1100);
  expect(fakes.router.rested).toBe(1);
  return fakes;
}

const idle = { busy: 0, idleForMs: 30_000, idleMs: 30_000, pinned: false, messages: 10_000 };

test('an owner lets go of a queue only when nothing is under way, pinned or due soon, after the idle time', () => {
  expect(mayRelease(idle)).toBe(true);
  expect(mayRelease({ ...idle, changesInMs: 30_000 })).toBe(true);
  // A waiting long poll (or any operation) keeps it.
  expect(mayRelease({ ...idle, busy: 1 })).toBe(false);
  expect(mayRelease({ ...idle, idleForMs: 29_999 })).toBe(false);
  // Memory-only state (FIFO receive attempt, purge block, a sweep under way).
  expect(mayRelease({ ...idle, pinned: true })).toBe(false);
  // A message becoming visible (or expiring) soon: it would be taken back at once.
  expect(mayRelease({ ...idle, changesInMs: 29_999 })).toBe(false);
  // Too big to rebuild at each use.
  expect(mayRelease({ ...idle, messages: 10_001 })).toBe(false);
  // 0: never.
  expect(mayRelease({ ...idle, idleMs: 0, idleForMs: 1e9 })).toBe(false);
});

test('a resting queue is due back when its first message becomes visible or its oldest expires', () => {
  expect(wakeAt({ retentionMs: 1000 })).toBeUndefined();
  expect(wakeAt({ oldestSentAt: 100, retentionMs: 1000 })).toBe(1100);
  expect(wakeAt({ visibleChangeAt: 500, retentionMs: 1000 })).toBe(500);
  expect(wakeAt({ visibleChangeAt: 5000, oldestSentAt: 100, retentionMs: 1000 })).toBe(1100);
  expect(wakeAt({ visibleChangeAt: 500, oldestSentAt: 100, retentionMs: 1000 })).toBe(500);
});

test('an idle queue is let go with its counts kept; the next request takes it back with its state and handles', async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
  const { router, leases, advance, published } = setup(600, 1000);
  await router.run('q', { op: 'append', entries: [append('a'), append('b')] }, ctx);
  const [m] = await router.run('q', { ...receive, req: { ...receive.req, VisibilityTimeout: 3600 } }, ctx);
  expect(published).toEqual([subjects.owned]);
  await pass(advance, 900);
  expect(router.owned).toBe(1);
  await pass(advance, 200);
  expect(router.owned).toBe(0);
  expect(leases.entry).toBeUndefined();
  expect(router.rested).toBe(1);
  expect(router.depths()).toEqual([{ queue: 'q', visible: 1, inflight: 1, delayed: 0 }]);
  // Taken back (rebuilt from the log): the message in flight stays so, its handle deletes it.
  expect(await router.run('q', { op: 'delete', handles: [m?.ReceiptHandle ?? ''] }, ctx)).toEqual([{ ok: true }]);
  expect(router.owned).toBe(1);
  expect(leases.entry?.value).toBe(router.nodeId);
  expect(await router.run('q', { op: 'counts' }, ctx)).toEqual({ visible: 1, notVisible: 0, delayed: 0 });
  expect(router.depths()).toEqual([{ queue: 'q', visible: 1, inflight: 0, delayed: 0 }]);
  await router.stop();
});

test('a waiting long poll keeps its queue owned', async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
  const { router, advance } = setup(600, 1000);
  await router.run('q', { op: 'counts' }, ctx);
  const abort = new AbortController();
  const polling = router.run('q', { ...receive, req: { ...receive.req, WaitTimeSeconds: 20 } }, { ...ctx, signal: abort.signal });
  await pass(advance, 5000);
  expect(router.owned).toBe(1);
  abort.abort();
  expect(await polling).toEqual([]);
  await pass(advance, 1100);
  expect(router.owned).toBe(0);
  await router.stop();
});

test('another controller taking a resting queue over ends its counts here', async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
  const { router, advance, announce } = setup(600, 1000);
  await router.run('q', { op: 'append', entries: [append('a')] }, ctx);
  await pass(advance, 1100);
  expect(router.depths()).toEqual([{ queue: 'q', visible: 1, inflight: 0, delayed: 0 }]);
  // Our own announcement changes nothing; another controller's does.
  announce(subjects.owned, { id: 'q1', node: router.nodeId });
  expect(router.rested).toBe(1);
  announce(subjects.owned, { id: 'q1', node: 'another-controller' });
  expect(router.depths()).toEqual([]);
  await router.stop();
});

test('a resting queue taken over unannounced, or deleted unnoticed, stops being reported at the next check', async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
  for (const missed of ['takeover', 'deletion']) {
    const { router, leases, catalog, advance } = setup(600, 1000);
    await router.run('q', { op: 'append', entries: [append('a'), append('b')] }, ctx);
    await pass(advance, 1100);
    expect(router.rested).toBe(1);
    // Cut off from NATS meanwhile: the announcement (or the catalog's change) never came.
    if (missed === 'takeover') leases.takenOver();
    else catalog.get = async () => undefined;
    await pass(advance, 20_000);
    expect(router.rested).toBe(1);
    await pass(advance, 11_000);
    expect(router.depths()).toEqual([]);
    await router.stop();
  }
});

test('a resting queue whose take-back fails is tried again after a growing pause, not at every tick', async () => {
  const { router, log, advance } = await restingQueue();
  // JetStream unavailable: every rebuild fails.
  const rebuilds = counted(async () => {
    throw new Error('no JetStream');
  });
  log.rebuild = rebuilds.fn;
  await pass(advance, 10_000);
  // 20 s of wall clock: due after some 3 s (the message becomes visible), then tried 1, 2, 4, 8 s
  // apart (without the pause: at every 200 ms tick, some 90 times).
  expect(rebuilds.calls).toBeGreaterThan(0);
  expect(rebuilds.calls).toBeLessThanOrEqual(5);
  expect(router.rested).toBe(1);
  await router.stop();
});

test('a take-back whose lease request fails (NATS down) keeps the queue resting and tries again', async () => {
  const { router, leases, log, advance } = await restingQueue();
  const rebuilds = counted(log.rebuild.bind(log));
  log.rebuild = rebuilds.fn;
  const create = leases.create.bind(leases);
  const refused = counted(async (): Promise<number> => {
    throw new Error('TIMEOUT');
  });
  leases.create = refused.fn;
  // Due once the message becomes visible (some 5 s); the failed lease requests do not end our interest.
  await pass(advance, 8000);
  expect(refused.calls).toBeGreaterThan(0);
  expect(router.rested).toBe(1);
  expect(rebuilds.calls).toBe(0);
  // NATS is back: the next try takes it back (and, idle again, it rests once more).
  leases.create = create;
  await pass(advance, 10_000);
  expect(rebuilds.calls).toBeGreaterThan(0);
  expect(router.rested).toBe(1);
  await router.stop();
});
