/**
 * The gossip key cache of the controllers' host API: the first read is shared, later calls never
 * wait for Serf (an old key is refreshed in the background), a failed refresh keeps the last key.
 */
import { describe, expect, it } from 'vitest';
import { cachedGossipKey } from '../../agent/gossip-key.js';

describe('cachedGossipKey', () => {
  it('waits only for the first read, then answers at once and refreshes an old key in the background', async () => {
    let t = 0;
    let reads = 0;
    let mode: 'ok' | 'hang' | 'fail' = 'ok';
    let release: (() => void) | undefined;
    const get = cachedGossipKey(
      () => {
        reads++;
        if (mode === 'fail') return Promise.reject(new Error('serf down'));
        if (mode === 'hang') return new Promise<string>((resolve) => (release = () => resolve(`k${reads}`)));
        return Promise.resolve(`k${reads}`);
      },
      1000,
      () => t,
    );
    expect(await Promise.all([get(), get()])).toEqual(['k1', 'k1']);
    expect(reads).toBe(1);
    t = 500;
    expect(await get()).toBe('k1');
    expect(reads).toBe(1);
    // Old: answered at once from the cache while Serf is slow (list-keys asks every member).
    mode = 'hang';
    t = 1500;
    expect(await get()).toBe('k1');
    expect(await get()).toBe('k1');
    expect(reads).toBe(2); // one background read at a time
    release!();
    await new Promise((r) => setImmediate(r));
    expect(await get()).toBe('k2');
    // A failed refresh keeps the last key, however old.
    mode = 'fail';
    t = 100_000;
    expect(await get()).toBe('k2');
    await new Promise((r) => setImmediate(r));
    expect(await get()).toBe('k2');
  });

  it('fails the first call when the first read fails, and reads again at the next', async () => {
    let fail = true;
    const get = cachedGossipKey(
      () => (fail ? Promise.reject(new Error('serf down')) : Promise.resolve('k')),
      1000,
      () => 0,
    );
    await expect(get()).rejects.toThrow('serf down');
    fail = false;
    expect(await get()).toBe('k');
  });
});
