/** The owner's reference counts on state records: only records nobody depends on are deleted. */
import { afterEach, beforeEach, expect, test, vi } from 'vitest';
import { StateRecords } from '../../../../src/messaging/engine/state-records.js';

function tracker(fail = false) {
  const dropped: number[] = [];
  const errors: unknown[] = [];
  const r = new StateRecords(
    async (seqs) => {
      if (fail) throw new Error('injected');
      dropped.push(...seqs);
    },
    (err) => errors.push(err),
  );
  return { r, dropped, errors };
}
// Dead records are deleted on the next tick, a timer: fake timers let the tests pass it.
beforeEach(() => void vi.useFakeTimers());
afterEach(() => void vi.useRealTimers());
const tick = () => vi.advanceTimersByTimeAsync(1);

test('a record dies when its last message is removed or saved again', async () => {
  const { r, dropped } = tracker();
  r.saved(10, [1, 2]);
  r.removed(1);
  await tick();
  expect(dropped).toEqual([]);
  r.saved(11, [2]);
  await tick();
  expect(dropped).toEqual([10]);
  r.removed(2);
  await tick();
  expect(dropped).toEqual([10, 11]);
});

test('an older record acknowledged late never replaces a newer one', async () => {
  const { r, dropped } = tracker();
  r.saved(20, [1]);
  r.saved(19, [1]);
  await tick();
  expect(dropped).toEqual([19]);
  r.removed(1);
  await tick();
  expect(dropped).toEqual([19, 20]);
});

test('records loaded from a rebuild are counted; a message named twice in one record counts once', async () => {
  const { r, dropped } = tracker();
  r.load(new Map([[5, [1, 2]]]));
  r.saved(6, [3, 3]);
  r.removed(1);
  r.removed(3);
  await tick();
  expect(dropped).toEqual([6]);
  r.removed(2);
  await tick();
  expect(dropped).toEqual([6, 5]);
});

test('failed deletions are kept for the next flush', async () => {
  const { r, errors } = tracker(true);
  r.saved(1, []);
  await tick();
  expect(errors.length).toBe(1);
  expect(r.pending).toBe(1);
  r.clear();
  expect(r.pending).toBe(0);
});

test('no maps before the first record, and counting starts over after a clear (memory per owned queue)', async () => {
  const { r, dropped } = tracker();
  const maps = () => r as unknown as { recordOf?: unknown; live?: unknown };
  r.removed(1);
  expect(maps().recordOf).toBeUndefined();
  expect(maps().live).toBeUndefined();
  r.saved(3, [1]);
  r.clear();
  expect(maps().recordOf).toBeUndefined();
  r.removed(1);
  r.saved(4, [1, 2]);
  r.removed(1);
  r.removed(2);
  await tick();
  expect(dropped).toEqual([4]);
});
