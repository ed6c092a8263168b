/**
 * Fencing of queue owners, with a fake lease bucket, a fake NATS connection, a fake clock and a
 * fake log whose writes can be held back: an owner answers only while it holds the lease, and a
 * handover waits for the writes under way before it hands the lease back.
 */
import { afterEach, expect, test, vi } from 'vitest';
import { subjects } from '../../../../src/messaging/engine/layout.js';
import { append, ctx, Gate, receive, setup } from './router-fakes.js';

afterEach(() => void vi.useRealTimers());

test('an owner paused past two thirds of its lease does not answer a receive it finished late', async () => {
  // A long lease: no renewal runs during the test; time passes only on the fake clock.
  const { router, log, leases, forwarded, advance } = setup(60_000);
  await router.run('q', { op: 'append', entries: [append('a')] }, ctx);
  expect(router.owned).toBe(1);
  const gate = (log.gates.saveStates = new Gate());
  const receiving = router.run('q', receive, ctx);
  await gate.arrived;
  // The owner stalls while storing the receive; meanwhile its lease expires and another takes over.
  advance(40_001);
  leases.takenOver();
  gate.release();
  // The receive is answered by the new owner (nothing there), not with the message from old memory.
  expect(await receiving).toEqual([]);
  expect(forwarded).toEqual(['receive']);
  await router.stop();
});

test('an owner past two thirds of its lease answers nothing, even when nobody took over yet; a renewal lets it answer again', async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
  const { router, log, leases, advance } = setup(60_000);
  await router.run('q', { op: 'append', entries: [append('a')] }, ctx);
  const gate = (log.gates.saveStates = new Gate());
  const receiving = router.run('q', receive, ctx);
  await gate.arrived;
  advance(40_001);
  gate.release();
  let answered = false;
  receiving.then(() => (answered = true)).catch(() => undefined);
  await vi.advanceTimersByTimeAsync(200);
  expect(answered).toBe(false);
  // The lease is still ours in the bucket: a successful renewal (as the timer would send it) makes
  // the owner answer again; the first receive's message stays in flight, the retry gets nothing.
  const ours = leases.entry;
  expect(ours?.value).toBe(router.nodeId);
  const held = (router as unknown as { leases: { renew(h: unknown): Promise<void>; get(id: string): unknown } }).leases;
  await held.renew(held.get('q1'));
  expect(await receiving).toEqual([]);
  await router.stop();
});

test('a renewal that finds the lease taken drops the queue at once; a delete finishing late is not answered by the old owner', async () => {
  // Renewals every 200 ms (fake timers); the fake clock stands still, so only the renewal can tell.
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
  const { router, log, leases, forwarded } = setup(600);
  await router.run('q', { op: 'append', entries: [append('a')] }, ctx);
  const [m] = await router.run('q', receive, ctx);
  const gate = (log.gates.remove = new Gate());
  const deleting = router.run('q', { op: 'delete', handles: [m?.ReceiptHandle ?? ''] }, ctx);
  await gate.arrived;
  leases.takenOver();
  await vi.waitFor(() => expect(router.owned).toBe(0), { timeout: 1000, interval: 20 });
  gate.release();
  expect(await deleting).toEqual([{ ok: true }]);
  expect(forwarded).toEqual(['delete']);
  await router.stop();
});

test('a graceful stop waits for an in-flight receive to store its state record before it releases the lease', async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
  const { router, log, leases, events } = setup(60_000);
  await router.run('q', { op: 'append', entries: [append('a')] }, ctx);
  const gate = (log.gates.saveStates = new Gate());
  const receiving = router.run('q', receive, ctx);
  await gate.arrived;
  const stopping = router.stop();
  await vi.advanceTimersByTimeAsync(100);
  // Still ours while the receive's record is being written: nobody can take over and miss it.
  expect(leases.entry?.value).toBe(router.nodeId);
  gate.release();
  expect((await receiving).map((r) => r.Body)).toEqual(['a']);
  await stopping;
  expect(events).toEqual(['state record stored', 'lease released']);
  expect(leases.entry).toBeUndefined();
});

test('a request already routed to an owner that hands the queue over is answered "not owner", not dropped', async () => {
  const { router, route } = setup(60_000);
  await router.run('q', { op: 'counts' }, ctx);
  const reply = route(subjects.rpc('q1'), { op: 'counts', ctx: {} });
  await router.stop();
  expect(await reply).toEqual({ notOwner: true });
});

test('a takeover that ends after stop() listed the queues gives its lease back at once', async () => {
  const { router, leases, subscribers } = setup(60_000);
  const gate = (leases.gates.create = new Gate());
  const running = router.run('q', { op: 'counts' }, ctx).catch((err: Error) => err.message);
  await gate.arrived;
  const stopping = router.stop();
  gate.release();
  await stopping;
  expect(await running).toBe('messaging engine stopped');
  expect(leases.entry).toBeUndefined();
  expect(router.owned).toBe(0);
  // Nothing here answers for the queue any more.
  expect(subscribers()).not.toContain(subjects.rpc('q1'));
});

test('a slow renewal is not stacked up, and a handover deletes the lease at the revision it landed with', async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
  const { router, leases } = setup(600);
  await router.run('q', { op: 'counts' }, ctx);
  // A renewal lands (revision 2) but its answer is slow to come back.
  const gate = (leases.gates.update = new Gate());
  await vi.advanceTimersByTimeAsync(200);
  await gate.arrived;
  await vi.advanceTimersByTimeAsync(1000);
  expect(leases.updates).toBe(1);
  const stopping = router.stop();
  await vi.advanceTimersByTimeAsync(1000);
  gate.release();
  await stopping;
  expect(leases.entry).toBeUndefined();
});
