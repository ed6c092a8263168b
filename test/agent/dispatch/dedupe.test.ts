import { describe, it, expect } from 'vitest';
import { CLOCK_RESET_GAP, EventDedupe } from '../../../agent/dispatch/dedupe.js';

const p = (s: string) => Buffer.from(s);

/** Marks each new event handled at once, as the dispatcher does after the event's handlers ran. */
class HandledAtOnce extends EventDedupe {
  override isDuplicate(name: string, ltime: number, payload: Uint8Array): boolean {
    const duplicate = super.isDuplicate(name, ltime, payload);
    if (!duplicate) this.markHandled(name, ltime);
    return duplicate;
  }
}

describe('EventDedupe', () => {
  it('advances the persisted watermark only when the event was marked handled', () => {
    const d = new EventDedupe();
    expect(d.isDuplicate('deploy', 7, p('a'))).toBe(false);
    expect(d.dirty).toBe(false);
    expect(d.snapshot()).toEqual({});
    d.markHandled('deploy', 7);
    expect(d.dirty).toBe(true);
    expect(d.snapshot()).toEqual({ deploy: 7 });
  });

  it('reports the same (LTime, name, payload) twice as a duplicate', () => {
    const d = new HandledAtOnce();
    expect(d.isDuplicate('deploy', 5, p('a'))).toBe(false);
    expect(d.isDuplicate('deploy', 5, p('a'))).toBe(true);
    expect(d.isDuplicate('deploy', 5, new Uint8Array(p('a')))).toBe(true);
  });

  it.each([
    ['a different payload', 'deploy', 5, 'b'],
    ['a different name', 'reconcile', 5, 'a'],
    ['a different LTime', 'deploy', 6, 'a'],
    ['an empty payload', 'deploy', 5, ''],
  ])('accepts the same event with %s', (_what, name, ltime, payload) => {
    const d = new HandledAtOnce();
    expect(d.isDuplicate('deploy', 5, p('a'))).toBe(false);
    expect(d.isDuplicate(name, ltime, p(payload))).toBe(false);
  });

  it('does not confuse names and payloads that concatenate alike', () => {
    const d = new HandledAtOnce();
    expect(d.isDuplicate('ab', 1, p('c'))).toBe(false);
    expect(d.isDuplicate('a', 1, p('bc'))).toBe(false);
  });

  it('accepts events out of order within a run', () => {
    const d = new HandledAtOnce();
    expect(d.isDuplicate('deploy', 10, p('x'))).toBe(false);
    expect(d.isDuplicate('deploy', 3, p('x'))).toBe(false);
    expect(d.snapshot()).toEqual({ deploy: 10 });
  });

  it('skips replays at or below a restored watermark, per name', () => {
    const d = new HandledAtOnce();
    d.restore({ deploy: 5000, reconcile: 7 });
    expect(d.isDuplicate('deploy', 5000, p('x'))).toBe(true);
    expect(d.isDuplicate('deploy', 4990, p('y'))).toBe(true);
    expect(d.isDuplicate('deploy', 5000 - CLOCK_RESET_GAP, p('x'))).toBe(true); // the edge still counts as a replay
    expect(d.isDuplicate('deploy', 5001, p('x'))).toBe(false);
    expect(d.isDuplicate('deploy', 5001, p('x'))).toBe(true);
    expect(d.isDuplicate('reconcile', 7, p(''))).toBe(true);
    expect(d.isDuplicate('reconcile', 8, p(''))).toBe(false);
    expect(d.isDuplicate('other', 1, p(''))).toBe(false);
  });

  it('treats an LTime more than CLOCK_RESET_GAP below the watermark as a clock reset', () => {
    const d = new HandledAtOnce();
    d.restore({ deploy: 5000 });
    const reset = 5000 - CLOCK_RESET_GAP - 1;
    expect(d.isDuplicate('deploy', reset, p('x'))).toBe(false);
    // After the reset the old watermark is forgotten: low LTimes are new events again.
    expect(d.isDuplicate('deploy', 2, p('x'))).toBe(false);
    expect(d.isDuplicate('deploy', reset + 10, p('x'))).toBe(false);
    expect(d.snapshot()).toEqual({ deploy: reset + 10 });
  });

  it('ignores malformed restored watermarks', () => {
    const d = new HandledAtOnce();
    d.restore({ a: -1, b: 1.5, c: Number.NaN, d: 3 });
    expect(d.snapshot()).toEqual({ d: 3 });
    expect(d.isDuplicate('a', 0, p(''))).toBe(false);
  });

  it('evicts the oldest exact entries beyond its window', () => {
    const d = new HandledAtOnce(2);
    expect(d.isDuplicate('e', 1, p('1'))).toBe(false);
    expect(d.isDuplicate('e', 2, p('2'))).toBe(false);
    expect(d.isDuplicate('e', 1, p('1'))).toBe(true);
    expect(d.isDuplicate('e', 3, p('3'))).toBe(false); // evicts (1, "1")
    expect(d.isDuplicate('e', 2, p('2'))).toBe(true);
    expect(d.isDuplicate('e', 1, p('1'))).toBe(false);
  });

  it('snapshots sorted watermarks and tracks dirtiness', () => {
    const d = new HandledAtOnce();
    expect(d.dirty).toBe(false);
    d.isDuplicate('zeta', 4, p(''));
    d.isDuplicate('alpha', 9, p(''));
    expect(d.dirty).toBe(true);
    expect(Object.entries(d.snapshot())).toEqual([
      ['alpha', 9],
      ['zeta', 4],
    ]);
    expect(d.dirty).toBe(false);
    d.isDuplicate('zeta', 2, p('older')); // below the watermark: nothing to persist
    expect(d.dirty).toBe(false);
    d.isDuplicate('zeta', 4, p('same'));
    expect(d.dirty).toBe(false);
    d.isDuplicate('zeta', 5, p(''));
    expect(d.dirty).toBe(true);
  });

  it('keeps a restored watermark in the snapshot until it is passed', () => {
    const d = new HandledAtOnce();
    d.restore({ deploy: 40 });
    expect(d.snapshot()).toEqual({ deploy: 40 });
    d.isDuplicate('deploy', 41, p(''));
    expect(d.snapshot()).toEqual({ deploy: 41 });
  });
});
