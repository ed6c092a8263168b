/**
 * A planned host's NoCloud seed: its user-data (golden, with and without the secret and the install),
 * and which secret a seed may carry.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { hostUserData, seedSecret, type HostRecord, type HostSeedSettings } from '../../../src/metadata/host-seed.js';
import { nocloudMetaData } from '../../../src/metadata/tree.js';

const GOLDEN = join(import.meta.dirname, '__golden__', 'host-seed');
const SECRET = 'Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE';
const MAC = '52:54:00:12:34:56';

const SETTINGS: HostSeedSettings = {
  aptUrl: 'http://10.88.0.1:8777/apt/',
  aptKeyUrl: 'http://10.88.0.1:8777/apt/mammatus-archive-keyring.gpg',
  aptKeyFingerprint: '0123456789ABCDEF0123456789ABCDEF01234567',
};

const HOST: HostRecord = {
  id: 'i-0123456789abcdef0',
  name: 'metal-1',
  macs: [MAC],
  ips: [],
  ssh_keys: [],
  tags: {},
  created_at: '2026-12-06T17:00:00.000Z',
  host: {
    roles: ['compute', 'storage'],
    arch: 'efi64',
    install_disk: '/dev/vda',
    join_expires_at: '2026-12-07T17:00:00.000Z',
    progress: { registered: '2026-12-06T17:00:00.000Z' },
  },
} as unknown as HostRecord;

const NOW = new Date('2026-12-06T18:00:00.000Z');
const ENTRY = { secret: SECRET, mac: MAC, expires_at: HOST.host.join_expires_at };

describe('hostUserData', () => {
  it('with its secret and the install (golden)', async () => {
    await expect(hostUserData(HOST, SETTINGS, SECRET)).toMatchFileSnapshot(join(GOLDEN, 'install.yaml'));
  });

  it('diskless, after the join: no secret, no join, no install (golden)', async () => {
    const { install_disk: _d, ...plan } = HOST.host;
    void _d;
    const text = hostUserData({ ...HOST, host: plan }, SETTINGS, undefined);
    await expect(text).toMatchFileSnapshot(join(GOLDEN, 'joined.yaml'));
    expect(text).not.toContain('join-secret');
  });

  it('pins the repository key fetched from the gateway and names the host', () => {
    const doc = parse(hostUserData(HOST, SETTINGS, SECRET)) as { hostname: string; bootcmd: string[][] };
    expect(doc.hostname).toBe('metal-1');
    expect(doc.bootcmd[0]).toEqual(expect.arrayContaining([SETTINGS.aptKeyUrl, SETTINGS.aptKeyFingerprint]));
  });

  it('meta-data names the host by its record', () => {
    expect(parse(nocloudMetaData(HOST, { domain: 'mammatus', availabilityZone: 'dc1a' }))).toMatchObject({
      'instance-id': HOST.id,
      'local-hostname': 'metal-1',
    });
  });
});

describe('seedSecret', () => {
  it('is the stored secret while the host has not joined', () => expect(seedSecret(HOST, ENTRY, NOW)).toBe(SECRET));
  it('is none once the host joined', () => {
    const joined = { ...HOST, host: { ...HOST.host, progress: { ...HOST.host.progress, joined: NOW.toISOString() } } };
    expect(seedSecret(joined, ENTRY, NOW)).toBeUndefined();
  });
  it('is none when none waits, when it expired, or when it is bound to another MAC', () => {
    expect(seedSecret(HOST, undefined, NOW)).toBeUndefined();
    expect(seedSecret(HOST, { ...ENTRY, expires_at: '2026-12-06T17:59:59.000Z' }, NOW)).toBeUndefined();
    expect(seedSecret(HOST, { ...ENTRY, mac: '52:54:00:00:00:01' }, NOW)).toBeUndefined();
  });
});
