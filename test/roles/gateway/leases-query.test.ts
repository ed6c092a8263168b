/** The `mammatus.leases` answer: all leases that fit, or one lease with its recent events. */
import { appendFileSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { answerLeases, buildLeasesAnswer } from '../../../roles/gateway/leases-query.js';
import { parseLeaseEvents, type Lease } from '../../../roles/gateway/leases.js';

const lease = (i: number): Lease => ({
  mac: `02:00:00:00:01:${i.toString(16).padStart(2, '0')}`,
  ip: `10.88.0.${100 + i}`,
  name: `host-${i}`,
  expires: 1764100000 + i,
});

describe('buildLeasesAnswer', () => {
  it('lists every lease when they fit', () => {
    expect(buildLeasesAnswer('gw', [lease(1), lease(2)], [], '')).toEqual({
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
      [],
      '',
    ) as { total: number; truncated: boolean; leases: unknown[] };
    expect(Buffer.byteLength(JSON.stringify(answer))).toBeLessThanOrEqual(900);
    expect(answer).toMatchObject({ total: 100, truncated: true });
    expect(answer.leases.length).toBeGreaterThan(5);
  });

  it('answers one lease by MAC or IP, with its recent hook events', () => {
    const events =
      'add\t02:00:00:00:01:01\t10.88.0.101\thost-1\tlan\ntftp\t1234\t10.88.0.101\t/srv/tftp/ipxe.efi\nadd\t02:00:00:00:01:02\t10.88.0.102\t\t\n';
    expect(buildLeasesAnswer('gw', [lease(1), lease(2)], parseLeaseEvents(events), '10.88.0.101')).toEqual({
      node: 'gw',
      leases: [['02:00:00:00:01:01', '10.88.0.101', 'host-1', 1764100001]],
      events: ['add 02:00:00:00:01:01 10.88.0.101 host-1', 'tftp 1234 10.88.0.101 /srv/tftp/ipxe.efi'],
    });
    expect(buildLeasesAnswer('gw', [lease(1)], [], '02:00:00:00:01:01'.toUpperCase())).toMatchObject({
      leases: [[lease(1).mac, lease(1).ip, 'host-1', 1764100001]],
    });
  });

  it('keeps an answer about one lease under the limit when clients chose long hostnames', () => {
    const long = 'h'.repeat(250);
    const events = parseLeaseEvents(
      Array.from({ length: 5 }, (_, i) => `add\t${lease(1).mac}\t${lease(1).ip}\t${long}${i}\tlan\n`).join(''),
    );
    const answer = buildLeasesAnswer('gw', [lease(1)], events, lease(1).ip) as { events: string[] };
    expect(Buffer.byteLength(JSON.stringify(answer))).toBeLessThanOrEqual(900);
    // The newest events are the ones kept.
    expect(answer.events.at(-1)).toBe(`add ${lease(1).mac} ${lease(1).ip} ${long}4`);
    expect(answer.events.length).toBeGreaterThan(0);
  });
});

describe('answerLeases', () => {
  it(
    'answers about one lease from the end of a spool of any size (3 GiB here), not from a whole-file read',
    { timeout: 20_000 },
    async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'mammatus-leases-'));
      try {
        const leases = path.join(dir, 'dnsmasq.leases');
        writeFileSync(leases, `${lease(1).expires} ${lease(1).mac} ${lease(1).ip} host-1 *\n`);
        const spool = path.join(dir, 'lease-events');
        // Sparse: the size of a spool an unbounded hook would have written over years, without the disk.
        writeFileSync(spool, 'add\t02:00:00:00:01:01\t10.88.0.101\tlong-ago\tlan\n');
        truncateSync(spool, 3 * 1024 ** 3);
        appendFileSync(spool, '\nold\t02:00:00:00:01:01\t10.88.0.101\thost-1\tlan\n');
        const started = performance.now();
        const answer = await answerLeases(Buffer.from('10.88.0.101\n'), { node: 'gw', config: { paths: { leases } }, members: [] });
        expect(answer).toEqual({
          node: 'gw',
          leases: [[lease(1).mac, lease(1).ip, 'host-1', lease(1).expires]],
          events: ['old 02:00:00:00:01:01 10.88.0.101 host-1'],
        });
        // Within Serf's query deadline, with room to spare.
        expect(performance.now() - started).toBeLessThan(1500);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
