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

  it('settled waits for the loop in flight and asks for no run', async () => {
    let runs = 0;
    const go = coalesce(async () => {
      runs++;
      await new Promise((r) => setTimeout(r, 5));
    });
    await go.settled();
    expect(runs).toBe(0);
    const started = go();
    await go.settled();
    expect(runs).toBe(1);
    await started;
  });
});
