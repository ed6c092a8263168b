/** The gossip key cache of the controllers' host API: fresh reads reused, stale kept on a failed read, one read at a time. */
import { describe, expect, it } from 'vitest';
import { cachedGossipKey } from '../../agent/gossip-key.js';

describe('cachedGossipKey', () => {
  it('reads once while fresh, again after, keeps a stale key when Serf cannot be asked, and fails when it is too old', async () => {
    let t = 0;
    let reads = 0;
    let fail = false;
    const get = cachedGossipKey(
      async () => {
        reads++;
        if (fail) throw new Error('serf down');
        return `k${reads}`;
      },
      1000,
      5000,
      () => t,
    );
    expect(await Promise.all([get(), get()])).toEqual(['k1', 'k1']);
    expect(reads).toBe(1);
    t = 500;
    expect(await get()).toBe('k1');
    t = 1500;
    expect(await get()).toBe('k2');
    fail = true;
    t = 3000;
    expect(await get()).toBe('k2');
    t = 7000;
    await expect(get()).rejects.toThrow('serf down');
  });
});
