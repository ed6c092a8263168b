/**
 * A receive whose state record was stored but whose body read failed is rolled back in the owner's
 * memory only (visible again). The queue must not be let go while that memory is ahead of the log:
 * the next owner's rebuild would hide the message for its whole VisibilityTimeout although no
 * client ever got it.
 */
import { afterEach, expect, test, vi } from 'vitest';
import { append, ctx, receive, setup } from './router-fakes.js';

afterEach(() => void vi.useRealTimers());

async function pass(advance: (ms: number) => void, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 100) {
    advance(100);
    await vi.advanceTimersByTimeAsync(200);
  }
}

for (const idleMs of [0, 1000]) {
  test(`a failed receive rolled back in memory, then ${idleMs ? 'an idle queue' : 'no idle release'}: the message is received next`, async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    const { router, log, advance } = setup(600, idleMs);
    await router.run('q', { op: 'append', entries: [append('a')] }, ctx);
    const read = log.read.bind(log);
    log.read = async () => {
      throw new Error('read failed');
    };
    await expect(router.run('q', { ...receive, req: { ...receive.req, VisibilityTimeout: 3600 } }, ctx)).rejects.toThrow('read failed');
    log.read = read;
    // The owner says: visible again.
    expect(router.depths()).toEqual([{ queue: 'q', visible: 1, inflight: 0, delayed: 0 }]);
    await pass(advance, 1200);
    const got = await router.run('q', receive, ctx);
    expect(got.length).toBe(1);
  });
}
