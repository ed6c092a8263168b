/** counterFrom (core/metrics.ts): a counter that follows a total kept elsewhere. */
import { describe, expect, it } from 'vitest';
import { counterFrom, metricsRegistry } from '../../core/metrics.js';

async function values(name: string): Promise<Record<string, number>> {
  const metric = metricsRegistry.getSingleMetric(name);
  const got = await metric!.get();
  return Object.fromEntries(got.values.map((v) => [JSON.stringify(v.labels), v.value]));
}

describe('counterFrom', () => {
  it('counts the first total in full, then the growth, per label set', async () => {
    const c = counterFrom<'dir'>({ name: 'test_follow_a_total', help: 'test', labelNames: ['dir'] });
    c.set({ dir: 'in' }, 100);
    c.set({ dir: 'out' }, 7);
    c.set({ dir: 'in' }, 130);
    c.set({ dir: 'in' }, 130);
    expect(await values('test_follow_a_total')).toEqual({ '{"dir":"in"}': 130, '{"dir":"out"}': 7 });
  });

  it('takes a smaller total for a restart of the source: it adds the new total', async () => {
    const c = counterFrom({ name: 'test_follow_b_total', help: 'test' });
    c.set({}, 50);
    c.set({}, 20);
    c.set({}, 25);
    expect(await values('test_follow_b_total')).toEqual({ '{}': 75 });
  });

  it('ignores readings that are not totals (negative, NaN)', async () => {
    const c = counterFrom({ name: 'test_follow_c_total', help: 'test' });
    c.set({}, 10);
    c.set({}, -1);
    c.set({}, Number.NaN);
    c.set({}, 12);
    expect(await values('test_follow_c_total')).toEqual({ '{}': 12 });
  });
});
