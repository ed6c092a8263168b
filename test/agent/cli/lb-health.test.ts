/**
 * How `lb list` and `lb show` put the gateways' target health (agent/cli/lb-health.ts): the summary
 * column (agreeing, disagreeing, stale, none) and the per-gateway table of `lb show`. Pure.
 */
import { describe, expect, it } from 'vitest';
import type { LbHealthReport, LbServerHealth } from '../../../core/lb-health.js';
import { healthLines, healthSummary, NO_REPORTS, reportsOf } from '../../../agent/cli/lb-health.js';
import { resolvedBalancer } from '../../helpers/lb-resolved.js';

const NOW = new Date('2026-12-07T00:01:00Z');
const srv = (machine: string, status: LbServerHealth['status'], over: Partial<LbServerHealth> = {}): LbServerHealth => ({
  server: `i-${machine}-80`,
  target: 'tag:app=web:80',
  machine,
  addr: '10.0.0.5',
  port: 80,
  status,
  ...over,
});
const rep = (gateway: string, agoS: number, servers: LbServerHealth[], balancer = 'web'): LbHealthReport => ({
  gateway,
  balancer,
  at: new Date(NOW.getTime() - agoS * 1000).toISOString(),
  servers,
});

describe('target health for the CLI', () => {
  const two = [srv('a', 'up'), srv('b', 'down')];

  it('summarizes: one gateway, agreeing gateways, disagreeing ones, stale ones, none', () => {
    const sum = (reports: LbHealthReport[]) => healthSummary(reportsOf('web', reports, NOW));
    expect(sum([])).toBe(NO_REPORTS);
    expect(sum([rep('gw1', 5, two, 'other')])).toBe(NO_REPORTS);
    expect(sum([rep('gw1', 5, two)])).toBe('1/2 up');
    expect(sum([rep('gw1', 5, two), rep('gw2', 1, two)])).toBe('1/2 up');
    expect(sum([rep('gw2', 5, [srv('a', 'up'), srv('b', 'up')]), rep('gw1', 5, two)])).toBe('gw1 1/2 up, gw2 2/2 up');
    expect(sum([rep('gw1', 5, two), rep('gw2', 40, [])])).toBe('1/2 up (+1 stale)');
    expect(sum([rep('gw1', 45, two)])).toBe('stale: 1/2 up (45s)');
    // maint and drain are not up.
    expect(sum([rep('gw1', 5, [srv('a', 'maint'), srv('b', 'drain')])])).toBe('0/2 up');
  });

  it('lb show: each target with its machines per gateway, a target selecting nothing, stale marked', () => {
    const b = resolvedBalancer('web', 8080, [], {
      targets: [
        { selector: { kind: 'tag', key: 'app', value: 'web' }, port: 80 },
        { selector: { kind: 'instance', name: 'gone' }, port: 80 },
      ],
    });
    const reports = reportsOf(
      'web',
      [
        rep('gw1', 3, [srv('a', 'up', { check: 'L4OK', since_s: 100 }), srv('b', 'down', { check: 'L4CON Connection refused' })]),
        rep('gw2', 40, []),
      ],
      NOW,
    );
    expect(healthLines(b.record, reports).map((l) => l.replace(/ +/g, ' '))).toEqual([
      'target health:',
      ' gateway gw1: 1/2 up, reported 3s ago',
      ' TARGET MACHINE ADDRESS STATE SINCE LAST CHECK',
      ' tag:app=web:80 a 10.0.0.5:80 up 103s L4OK',
      ' tag:app=web:80 b 10.0.0.5:80 down - L4CON Connection refused',
      ' instance:gone:80 - - no server - selects no running machine',
      ' gateway gw2: 0/0 up, reported 40s ago (STALE: the gateway stopped reporting)',
      ' TARGET MACHINE ADDRESS STATE SINCE LAST CHECK',
      ' tag:app=web:80 - - no server - selects no running machine',
      ' instance:gone:80 - - no server - selects no running machine',
    ]);
    expect(healthLines(b.record, [])).toEqual([`target health: ${NO_REPORTS}`]);
  });
});
