import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../core/duration.js';

describe('parseDuration', () => {
  it.each([
    ['0', 0],
    ['-0', 0],
    ['+0', 0],
    ['0s', 0],
    ['300ms', 300],
    ['1.5s', 1500],
    ['1.1s', 1100],
    ['3.2s', 3200],
    ['.5s', 500],
    ['5.s', 5000],
    ['2m', 120_000],
    ['1h30m', 5_400_000],
    ['1h1h', 7_200_000],
    ['1.5h', 5_400_000],
    ['500us', 0.5],
    ['500\u00b5s', 0.5],
    ['500\u03bcs', 0.5],
    ['1500ns', 0.0015],
    ['1m0.5s', 60_500],
    ['-1.5s', -1500],
    ['+2s', 2000],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    ['', 'empty'],
    ['1', 'missing unit'],
    ['10', 'missing unit'],
    ['1.2.3s', 'missing unit'],
    ['.', 'expected a number'],
    ['s', 'expected a number'],
    ['-', 'empty'],
    ['--1s', 'expected a number'],
    ['1x', 'unknown unit "x"'],
    ['1sec', 'unknown unit "sec"'],
    ['1s ', 'unknown unit "s "'],
    [' 1s', 'expected a number'],
    ['1e3s', 'unknown unit "e"'],
    ['1d', 'unknown unit "d"'],
    ['2562047h47m16.854775808s', 'out of range'],
  ])('%j is an error (%s)', (text, why) => {
    expect(() => parseDuration(text)).toThrow(`invalid duration ${JSON.stringify(text)}: ${why}`);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [0.0005, '500ns'],
    [0.5, '500\u00b5s'],
    [300, '300ms'],
    [1500, '1.5s'],
    [1100, '1.1s'],
    [3200, '3.2s'],
    [120_000, '2m0s'],
    [5_400_000, '1h30m0s'],
    [61_000.5, '1m1.0005s'],
    [-1500, '-1.5s'],
  ])('%d ms is %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('round-trips through parseDuration', () => {
    for (const text of ['300ms', '1.5s', '1h30m0s', '500\u00b5s', '2m3.25s']) {
      expect(formatDuration(parseDuration(text))).toBe(text);
    }
  });
});
