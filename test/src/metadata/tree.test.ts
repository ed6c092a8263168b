/** The metadata trees: format rules cloud-init relies on, and golden documents. */
import { describe, expect, it } from 'vitest';
import { buildRecord } from '../../../core/instance-record.js';
import {
  ec2Tree,
  isEc2Version,
  keyNames,
  listing,
  nocloudMetaData,
  openstackTree,
  regionOf,
  walk,
  type Dir,
} from '../../../src/metadata/tree.js';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExampl op@ctl';
const record = buildRecord(
  {
    name: 'web-1',
    macs: ['00:16:3e:aa:bb:cc'],
    ips: ['10.0.0.21'],
    ssh_keys: [KEY, 'ssh-rsa AAAAB3NzaC1yc2E='],
    user_data: Buffer.from('#cloud-config\n'),
    tags: { team: 'ops' },
  },
  new Date('2026-11-25T12:00:00Z'),
  'i-0123456789abcdef0',
);
const ctx = { domain: 'mammatus', availabilityZone: 'dc1a' };
const leaf = (tree: Dir, path: string) => {
  const n = walk(tree, path.split('/'));
  return n?.kind === 'leaf' ? n.body.toString() : n ? listing(n) : undefined;
};

describe('EC2 tree', () => {
  const tree = ec2Tree(record, ctx);
  it('lists directories with a trailing slash and leaves without', () => {
    expect(leaf(tree, '')).toBe('dynamic/\nmeta-data/\nuser-data');
    expect(leaf(tree, 'meta-data')).toMatchSnapshot();
  });
  it('has no trailing newline on scalar leaves', () => {
    expect(leaf(tree, 'meta-data/instance-id')).toBe('i-0123456789abcdef0');
    expect(leaf(tree, 'meta-data/local-hostname')).toBe('web-1');
    expect(leaf(tree, 'meta-data/hostname')).toBe('web-1.mammatus');
    expect(leaf(tree, 'meta-data/placement/region')).toBe('dc1');
  });
  it('lists public keys as 0=<name> with openssh-key below', () => {
    expect(leaf(tree, 'meta-data/public-keys')).toBe('0=op@ctl\n1=key-1');
    expect(leaf(tree, 'meta-data/public-keys/0')).toBe('openssh-key');
    expect(leaf(tree, 'meta-data/public-keys/1/openssh-key')).toBe('ssh-rsa AAAAB3NzaC1yc2E=');
  });
  it('omits user-data and public-keys when there are none', () => {
    const bare = ec2Tree(buildRecord({ name: 'b', macs: ['02:00:00:00:00:01'] }, new Date(0), 'i-00000000000000001'), {
      ...ctx,
      callerIp: '10.0.0.9',
    });
    expect(leaf(bare, '')).toBe('dynamic/\nmeta-data/');
    expect(leaf(bare, 'meta-data/public-keys')).toBeUndefined();
    expect(leaf(bare, 'meta-data/local-ipv4')).toBe('10.0.0.9');
  });
  it('serves the identity document as JSON', () => {
    expect(JSON.parse(leaf(tree, 'dynamic/instance-identity/document')!)).toMatchSnapshot();
  });
});

describe('NoCloud and OpenStack documents', () => {
  it('renders NoCloud meta-data', () => expect(nocloudMetaData(record, ctx)).toMatchSnapshot());
  it('renders OpenStack meta_data.json and vendor_data.json', () => {
    const tree = openstackTree(record, ctx, '#cloud-config\n');
    expect(JSON.parse(leaf(tree, 'meta_data.json')!)).toMatchSnapshot();
    expect(JSON.parse(leaf(tree, 'vendor_data.json')!)).toEqual({ 'cloud-init': '#cloud-config\n' });
    expect(JSON.parse(leaf(openstackTree(record, ctx, ''), 'vendor_data.json')!)).toEqual({});
  });
});

describe('helpers', () => {
  it('accepts dated version prefixes', () => {
    for (const v of ['latest', '1.0', '2009-04-04', '2021-03-23', '2030-01-01']) expect(isEc2Version(v)).toBe(true);
    for (const v of ['', 'nocloud', '2009-4-4', 'latest2']) expect(isEc2Version(v)).toBe(false);
  });
  it('derives the region as cloud-init does', () => expect(regionOf('dc1-rack1')).toBe('dc1-rack'));
  it('names keys by comment when usable', () => expect(keyNames([KEY, 'ssh-rsa AAAA a b c'])).toEqual(['op@ctl', 'key-1']));
});
