/** The pure LXD renderings of the compute role, against golden files. */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseComputeConfig } from '../../../roles/compute/config.js';
import { renderHostMacvlan, renderInstanceCreate, renderPreseed, renderPreseedYaml } from '../../../roles/compute/preseed.js';

const golden = (name: string) => path.join(import.meta.dirname, '__golden__', name);
const basic = parseComputeConfig({ parent: 'eth0' });
const full = parseComputeConfig({
  parent: 'lan0',
  storage: { pool: 'fast', driver: 'btrfs' },
  profile: 'lan',
  host_macvlan: { enabled: true, interface: 'lan0-host', address: '10.88.0.21/24' },
});

describe('preseed', () => {
  it('renders a dir pool, the root disk, the macvlan profile and no network', async () => {
    await expect(renderPreseedYaml(basic)).toMatchFileSnapshot(golden('preseed-basic.yaml'));
    await expect(renderPreseedYaml(full)).toMatchFileSnapshot(golden('preseed-full.yaml'));
    expect(renderPreseed(basic).networks).toEqual([]);
  });

  it('is deterministic', () => {
    expect(renderPreseedYaml(full)).toBe(renderPreseedYaml(full));
  });
});

describe('renderInstanceCreate', () => {
  it('fixes the MAC before first boot and adds labels and cloud-init keys', async () => {
    const body = renderInstanceCreate(full, {
      name: 'web1',
      image: 'debian-12',
      mac: '02:00:00:AA:00:01',
      labels: { 'instance-id': 'i-0001', owner: 'ops' },
      userData: '#cloud-config\n',
    });
    await expect(JSON.stringify(body, null, 2) + '\n').toMatchFileSnapshot(golden('instance-create.json'));
  });

  it('takes a fingerprint instead of an alias', () => {
    expect(renderInstanceCreate(basic, { name: 'a', image: 'abc123', fingerprint: true, mac: '02:00:00:00:00:01' }).source).toEqual({
      type: 'image',
      fingerprint: 'abc123',
    });
  });
});

describe('renderHostMacvlan', () => {
  it('adds a bridge-mode sibling with the address, or nothing when off', () => {
    expect(renderHostMacvlan(basic)).toEqual([]);
    expect(renderHostMacvlan(full)).toEqual([
      ['ip', 'link', 'add', 'lan0-host', 'link', 'lan0', 'type', 'macvlan', 'mode', 'bridge'],
      ['ip', 'address', 'replace', '10.88.0.21/24', 'dev', 'lan0-host'],
      ['ip', 'link', 'set', 'lan0-host', 'up'],
    ]);
  });
});
