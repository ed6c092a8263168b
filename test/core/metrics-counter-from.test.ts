import { describe, expect, it } from 'vitest';
import { counterFrom } from '../../core/metrics.js';
import { seriesValues } from '../helpers/metrics.js';

/** The value of `name` with exactly `labels`, or undefined when absent. */
const value = async (name: string, labels = '') => (await seriesValues(`${name}${labels}`))[0];

describe('counterFrom', () => {
  it('grows by what the source grew, and by the new value after the source restarted', async () => {
    const c = counterFrom({ name: 'test_counter_from_plain_total', help: 'test' });
    c.set({}, 10);
    expect(await value('test_counter_from_plain_total')).toBe(10);
    c.set({}, 15);
    expect(await value('test_counter_from_plain_total')).toBe(15);
    c.set({}, 15);
    expect(await value('test_counter_from_plain_total')).toBe(15);
    // The source restarted from zero and counted 4 since.
    c.set({}, 4);
    expect(await value('test_counter_from_plain_total')).toBe(19);
    c.set({}, 6);
    expect(await value('test_counter_from_plain_total')).toBe(21);
    // Nonsense from the source changes nothing.
    c.set({}, Number.NaN);
    c.set({}, -1);
    expect(await value('test_counter_from_plain_total')).toBe(21);
  });

  it('keeps the last read per label set, shared by a second definition of the same name, and drops label sets not retained', async () => {
    const a = counterFrom<'rule'>({ name: 'test_counter_from_rules_total', help: 'test', labelNames: ['rule'] });
    const b = counterFrom<'rule'>({ name: 'test_counter_from_rules_total', help: 'test', labelNames: ['rule'] });
    expect(b.counter).toBe(a.counter);
    a.set({ rule: 'x' }, 100);
    a.set({ rule: 'y' }, 0);
    b.set({ rule: 'x' }, 130);
    expect(await value('test_counter_from_rules_total', '{rule="x"}')).toBe(130);
    expect(await value('test_counter_from_rules_total', '{rule="y"}')).toBe(0);
    a.retain([{ rule: 'x' }]);
    expect(await value('test_counter_from_rules_total', '{rule="y"}')).toBeUndefined();
    // A label set dropped and seen again starts from its source's value.
    a.set({ rule: 'y' }, 7);
    expect(await value('test_counter_from_rules_total', '{rule="y"}')).toBe(7);
    a.retain([]);
    expect(await value('test_counter_from_rules_total', '{rule="x"}')).toBeUndefined();
  });

  it('ignores readings that are not totals (negative, NaN)', async () => {
    const c = counterFrom({ name: 'test_counter_from_bad_total', help: 'test' });
    c.set({}, 10);
    c.set({}, -1);
    c.set({}, Number.NaN);
    c.set({}, 12);
    expect(await value('test_counter_from_bad_total')).toBe(12);
  });
});
