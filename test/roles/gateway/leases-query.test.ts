/** The `mammatus.leases` answer: all leases that fit, or one lease with its recent events. */
import { describe, expect, it } from 'vitest';
import { buildLeasesAnswer } from '../../../roles/gateway/leases-query.js';
import type { Lease } from '../../../roles/gateway/leases.js';

const lease = (i: number): Lease => ({
  mac: `02:00:00:00:01:${i.toString(16).padStart(2, '0')}`,
  ip: `10.88.0.${100 + i}`,
  name: `host-${i}`,
  expires: 1764100000 + i,
});

describe('buildLeasesAnswer', () => {
  it('lists every lease when they fit', () => {
    expect(buildLeasesAnswer('gw', [lease(1), lease(2)], '', '')).toEqual({
      node: 'gw',
      total: 2,
      truncated: false,
      leases: [
        ['02:00:00:00:01:01', '10.88.0.101', 'host-1', 1764100001],
        ['02:00:00:00:01:02', '10.88.0.102', 'host-2', 1764100002],
      ],
    });
  });

  it('cuts the list to stay under the answer limit and says so', () => {
    const answer = buildLeasesAnswer(
      'gw',
      Array.from({ length: 100 }, (_, i) => lease(i)),
      '',
      '',
    ) as { total: number; truncated: boolean; leases: unknown[] };
    expect(Buffer.byteLength(JSON.stringify(answer))).toBeLessThanOrEqual(900);
    expect(answer).toMatchObject({ total: 100, truncated: true });
    expect(answer.leases.length).toBeGreaterThan(5);
  });

  it('answers one lease by MAC or IP, with its recent hook events', () => {
    const events =
      'add\t02:00:00:00:01:01\t10.88.0.101\thost-1\tlan\ntftp\t1234\t10.88.0.101\t/srv/tftp/ipxe.efi\nadd\t02:00:00:00:01:02\t10.88.0.102\t\t\n';
    expect(buildLeasesAnswer('gw', [lease(1), lease(2)], events, '10.88.0.101')).toEqual({
      node: 'gw',
      leases: [['02:00:00:00:01:01', '10.88.0.101', 'host-1', 1764100001]],
      events: ['add 02:00:00:00:01:01 10.88.0.101 host-1', 'tftp 1234 10.88.0.101 /srv/tftp/ipxe.efi'],
    });
    expect(buildLeasesAnswer('gw', [lease(1)], '', '02:00:00:00:01:01'.toUpperCase())).toMatchObject({
      leases: [[lease(1).mac, lease(1).ip, 'host-1', 1764100001]],
    });
  });
});
