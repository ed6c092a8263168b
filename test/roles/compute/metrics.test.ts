import { describe, expect, it } from 'vitest';
import { countByStatus, launchSecondsOf } from '../../../roles/compute/metrics.js';

const created = '2026-12-07T06:00:00.000Z';
const at = (s: number) => Date.parse(created) + s * 1000;

describe('compute metrics', () => {
  it('counts statuses', () => {
    const rows = [
      { id: 'a', status: 'running' },
      { id: 'b', status: 'running' },
      { id: 'c', status: 'absent' },
    ];
    expect(Object.fromEntries(countByStatus(rows))).toEqual({ running: 2, absent: 1 });
    expect(countByStatus([]).size).toBe(0);
  });

  it('times a launch from the record’s creation when the instance had not run before', () => {
    expect(launchSecondsOf({ id: 'a', status: 'running', createdAt: created }, at(42))).toBe(42);
    expect(launchSecondsOf({ id: 'a', status: 'running', before: 'absent', createdAt: created }, at(3))).toBe(3);
    expect(launchSecondsOf({ id: 'a', status: 'running', before: 'error', createdAt: created }, at(3))).toBe(3);
  });

  it('is no launch: a restart, another status, or a creation time that is missing, bad or in the future', () => {
    expect(launchSecondsOf({ id: 'a', status: 'running', before: 'stopped', createdAt: created }, at(3))).toBeUndefined();
    expect(launchSecondsOf({ id: 'a', status: 'running', before: 'running', createdAt: created }, at(3))).toBeUndefined();
    expect(launchSecondsOf({ id: 'a', status: 'stopped', createdAt: created }, at(3))).toBeUndefined();
    expect(launchSecondsOf({ id: 'a', status: 'running' }, at(3))).toBeUndefined();
    expect(launchSecondsOf({ id: 'a', status: 'running', createdAt: 'yesterday' }, at(3))).toBeUndefined();
    expect(launchSecondsOf({ id: 'a', status: 'running', createdAt: created }, at(-1))).toBeUndefined();
  });
});
