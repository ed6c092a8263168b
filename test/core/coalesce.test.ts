/** `coalesce`: runs never overlap, calls during a run make exactly one more, a failure ends the loop only. */
import { describe, expect, it } from 'vitest';
import { coalesce } from '../../core/coalesce.js';

describe('coalesce', () => {
  it('calls during a run make one more run, and every caller waits for it', async () => {
    let runs = 0;
    let active = 0;
    let overlapped = false;
    const go = coalesce(async () => {
      overlapped ||= active > 0;
      active++;
      runs++;
      await new Promise((r) => setTimeout(r, 5));
      active--;
    });
    const first = go();
    const waits = [go(), go(), go()];
    await Promise.all([first, ...waits]);
    expect(runs).toBe(2);
    expect(overlapped).toBe(false);
    await go();
    expect(runs).toBe(3);
  });

  it('a failing run rejects its callers; the next call starts afresh', async () => {
    let fail = true;
    let runs = 0;
    const go = coalesce(async () => {
      runs++;
      if (fail) throw new Error('boom');
    });
    await expect(go()).rejects.toThrow('boom');
    fail = false;
    await go();
    expect(runs).toBe(2);
  });
});
