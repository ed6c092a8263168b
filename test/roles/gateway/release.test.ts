/** Which leases the gateway gives back after an apply, so no stale name outlives its reservation. */
import { describe, expect, it } from 'vitest';
import type { Member } from '../../../core/contracts.js';
import type { Lease } from '../../../roles/gateway/leases.js';
import { leasesToRelease, parseMembersFile, renderMembersFile } from '../../../roles/gateway/release.js';

const lease = (mac: string, ip: string, name = ''): Lease => ({ mac, ip, name, expires: 0 });
const member = (name: string, addr: string, status: Member['status'] = 'alive'): Member => ({ name, addr, port: 7946, tags: {}, status });
const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';
const none = { before: [], now: [], membersBefore: [], membersNow: [] };

describe('leases released after an apply', () => {
  it('releases the lease of a removed reservation, and only that one', () => {
    const leases = [lease(A, '10.88.0.151', 'web-1'), lease(B, '10.88.0.152', 'laptop')];
    expect(leasesToRelease({ ...none, leases, before: [{ name: 'web-1', macs: [A], ip: '10.88.0.151' }] })).toEqual([
      { ip: '10.88.0.151', mac: A, name: 'web-1', why: 'the reservation of web-1 is gone' },
    ]);
  });
  it("releases a renamed or re-addressed reservation's lease, keeps an unchanged one", () => {
    const leases = [lease(A, '10.88.0.151', 'web-1')];
    const before = [{ name: 'web-1', macs: [A] }];
    expect(leasesToRelease({ ...none, leases, before, now: [{ name: 'web-9', macs: [A] }] })[0]?.why).toBe('web-1 is now named web-9');
    expect(leasesToRelease({ ...none, leases, before, now: [{ name: 'web-1', macs: [A], ip: '10.88.0.60' }] })[0]?.why).toBe(
      'web-1 is now reserved 10.88.0.60',
    );
    // The compute node wrote back the address the lease already has: nothing to release.
    expect(leasesToRelease({ ...none, leases, before, now: [{ name: 'web-1', macs: [A], ip: '10.88.0.151' }] })).toEqual([]);
  });
  it('releases a lease on an address now reserved for another MAC', () => {
    const leases = [lease(B, '10.88.0.151', 'old')];
    expect(leasesToRelease({ ...none, leases, now: [{ name: 'web-2', macs: [A], ip: '10.88.0.151' }] })[0]?.why).toBe(
      '10.88.0.151 is reserved for web-2',
    );
  });
  it('releases the leases named after a member that was reaped or left, not one that failed', () => {
    const leases = [lease(A, '10.88.0.120', 'node-1'), lease(B, '10.88.0.121', 'node-2')];
    const membersBefore = [
      { name: 'node-1', addr: '10.88.0.120', status: 'alive' },
      { name: 'node-2', addr: '10.88.0.121', status: 'alive' },
    ];
    expect(
      leasesToRelease({ ...none, leases, membersBefore, membersNow: [member('node-2', '10.88.0.121', 'failed')] }).map((r) => r.why),
    ).toEqual(['member node-1 is gone']);
    expect(
      leasesToRelease({
        ...none,
        leases,
        membersBefore,
        membersNow: [member('node-1', '10.88.0.120', 'left'), member('node-2', '10.88.0.121')],
      }).map((r) => r.why),
    ).toEqual(['member node-1 left']);
  });
  it('keeps the members file to names a lease can carry', () => {
    const text = renderMembersFile([member('b-2', '10.0.0.2'), member('a 1', '10.0.0.1'), member('c', 'fe80::1', 'failed')]);
    expect(parseMembersFile(text)).toEqual([
      { name: 'b-2', addr: '10.0.0.2', status: 'alive' },
      { name: 'c', addr: 'fe80::1', status: 'failed' },
    ]);
  });
});
