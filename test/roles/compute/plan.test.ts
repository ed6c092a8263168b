/** The pure reconcile plan: registry records + LXD instances → actions, write-backs, reports. */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseComputeConfig } from '../../../roles/compute/config.js';
import type { LxdInstance } from '../../../src/lxd/types.js';
import { instanceIpv4, mergedIps, planCompute } from '../../../roles/compute/plan.js';
import type { InstanceRecord } from '../../../core/instance-record.js';

const golden = (name: string) => path.join(import.meta.dirname, '__golden__', name);
const cfg = parseComputeConfig({ parent: 'lan0', profile: 'lan' });
const T = '2025-01-01T00:00:00.000Z';

function rec(name: string, n: number, extra: Partial<InstanceRecord> = {}): InstanceRecord {
  return {
    id: `i-0000000000000000${n.toString(16)}`,
    name,
    node: 'cn1',
    macs: [`02:00:00:00:00:${n.toString(16).padStart(2, '0')}`],
    ips: [],
    ssh_keys: [],
    vendor_data: {},
    tags: { image: 'debian-12' },
    state: 'running',
    created_at: T,
    updated_at: T,
    ...extra,
  };
}

function lxd(name: string, id: string | undefined, status: 'Running' | 'Stopped', ips: string[] = []): LxdInstance {
  return {
    name,
    type: 'container',
    status,
    status_code: status === 'Running' ? 103 : 102,
    config: id ? { 'user.mammatus.instance-id': id } : {},
    devices: {},
    profiles: ['default', 'lan'],
    state: {
      status,
      status_code: 0,
      pid: 0,
      processes: 0,
      network:
        status === 'Running'
          ? {
              eth0: {
                addresses: [
                  ...ips.map((address) => ({ family: 'inet', address, netmask: '24', scope: 'global' })),
                  { family: 'inet6', address: 'fe80::1', netmask: '64', scope: 'link' },
                ],
                hwaddr: '',
                host_name: '',
                mtu: 1500,
                state: 'up',
                type: 'broadcast',
              },
              lo: {
                addresses: [{ family: 'inet', address: '127.0.0.1', netmask: '8', scope: 'local' }],
                hwaddr: '',
                host_name: '',
                mtu: 65536,
                state: 'up',
                type: 'loopback',
              },
            }
          : null,
    },
  };
}

describe('planCompute', () => {
  it('creates, starts, stops, destroys, writes addresses back and reports strangers', async () => {
    const records = [
      rec('new-run', 1),
      rec('new-stopped', 2, { state: 'stopped' }),
      rec('stopped-but-up', 3, { state: 'stopped' }),
      rec('up-no-ip', 4),
      rec('up-has-ip', 5, { ips: ['10.88.0.105'] }),
      rec('gone', 6, { state: 'deleting' }),
      rec('never-made', 7, { state: 'deleting' }),
      rec('no-image', 8, { tags: {} }),
      rec('name-taken', 9),
      rec('other-node', 10, { node: 'cn2' }),
      rec('pxe-host', 11, { node: undefined }),
      rec('registered', 12, { state: 'registered' }),
    ];
    const have = [
      lxd('stopped-but-up', records[2].id, 'Running'),
      lxd('up-no-ip', records[3].id, 'Running', ['10.88.0.104']),
      lxd('up-has-ip', records[4].id, 'Running', ['10.88.0.105']),
      lxd('gone', records[5].id, 'Running'),
      lxd('name-taken', undefined, 'Stopped'),
      lxd('by-hand', undefined, 'Running'),
      lxd('old-record', 'i-0000000000000abcd', 'Stopped'),
    ];
    const plan = planCompute(cfg, 'cn1', records, have);
    await expect(JSON.stringify(plan, null, 2) + '\n').toMatchFileSnapshot(golden('plan.json'));
    expect(plan.actions.map((a) => `${a.kind} ${a.name}`)).toEqual([
      'destroy gone',
      'forget never-made',
      'create new-run',
      'start new-run',
      'create new-stopped',
      'create registered',
      'stop stopped-but-up',
    ]);
    expect(plan.ipUpdates).toEqual([{ id: records[3].id, name: 'up-no-ip', ips: ['10.88.0.104'] }]);
    expect(plan.unmanaged.map((u) => u.name)).toEqual(['by-hand', 'name-taken', 'old-record']);
    expect(plan.problems.map((p) => p.name)).toEqual(['name-taken', 'no-image']);
  });

  it('is idempotent: once LXD matches the records, nothing is left to do', () => {
    const r = rec('web', 1, { ips: ['10.88.0.7'] });
    const plan = planCompute(cfg, 'cn1', [r], [lxd('web', r.id, 'Running', ['10.88.0.7'])]);
    expect(plan).toEqual({
      actions: [],
      ipUpdates: [],
      observed: [{ id: r.id, name: 'web', status: 'running' }],
      unmanaged: [],
      problems: [],
    });
  });

  it('the create body fixes the MAC and ties the container to its record', () => {
    const r = rec('web', 1);
    const [create] = planCompute(cfg, 'cn1', [r], []).actions;
    expect(create).toMatchObject({
      kind: 'create',
      body: {
        name: 'web',
        profiles: ['default', 'lan'],
        source: { type: 'image', alias: 'debian-12' },
        config: { 'volatile.eth0.hwaddr': '02:00:00:00:00:01', 'user.mammatus.instance-id': r.id },
      },
    });
  });
});

describe('addresses', () => {
  it('takes the global IPv4s of eth0 only', () => {
    expect(instanceIpv4(lxd('a', 'i', 'Running', ['10.0.0.9', '10.0.0.3']))).toEqual(['10.0.0.3', '10.0.0.9']);
    expect(instanceIpv4(lxd('a', 'i', 'Stopped'))).toEqual([]);
  });

  it('puts the real IPv4s first and keeps recorded IPv6s', () => {
    expect(mergedIps(['10.0.0.1', 'fd00::5'], ['10.0.0.2'])).toEqual(['10.0.0.2', 'fd00::5']);
  });
});
