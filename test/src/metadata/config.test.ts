/** The metadata: config section and instance records: defaults and errors that name the key. */
import { describe, expect, it } from 'vitest';
import { parseMetadataSettings } from '../../../src/metadata/config.js';
import { buildRecord, normalizeMac, validateRecord } from '../../../core/instance-record.js';

describe('metadata settings', () => {
  it('has defaults', () => {
    const s = parseMetadataSettings(undefined);
    expect(s).toMatchObject({
      listen: '0.0.0.0:8775',
      nats: 'nats://127.0.0.1:4222',
      tokens: 'optional',
      trustSourceAddress: true,
      availabilityZone: 'dc1a',
      domain: 'mammatus',
      registryReplicas: 1,
    });
    expect(s.proxy).toEqual({ listen: '0.0.0.0:8776', upstreams: [], leasesFile: '/var/lib/misc/dnsmasq.leases' });
    expect(s.proxySecret).toBeUndefined();
  });
  it('reads the secret from a file', () => {
    const s = parseMetadataSettings({ proxy_secret_file: '/x' }, () => 'ab'.repeat(32) + '\n');
    expect(s.proxySecret).toHaveLength(32);
  });
  it.each([
    [{ listen: 'nope' }, /metadata.listen: must match host:port/],
    [{ tokens: 'sometimes' }, /metadata.tokens: must be optional or required/],
    [{ nats: 'http://x' }, /metadata.nats/],
    [{ bogus: 1 }, /metadata.bogus: unknown key/],
    [{ proxy: { upstreams: ['ftp://x'] } }, /metadata.proxy.upstreams/],
    [{ proxy: { extra: 1 } }, /metadata.proxy.extra: unknown key/],
    [{ proxy_secret: 'short' }, /metadata.proxy_secret: must be at least 32/],
    [{ proxy_secret: 'ab'.repeat(32), proxy_secret_file: '/x' }, /not both/],
    [{ registry_replicas: 2 }, /metadata.registry_replicas/],
    [{ availability_zone: 'DC 1' }, /metadata.availability_zone/],
    [{ hosts: { apt_url: 'http://10.88.0.1:8777/apt' } }, /metadata.hosts.apt_url: must be an http:\/\/ or https:\/\/ URL ending in \//],
    [
      { hosts: { apt_url: 'http://10.88.0.1:8777/apt/' } },
      /metadata.hosts.apt_key_fingerprint: is required when the key is fetched over plain http/,
    ],
    [
      { hosts: { apt_url: 'http://10.88.0.1:8777/apt/', apt_key_fingerprint: 'ABCD' } },
      /metadata.hosts.apt_key_fingerprint: must be the key fingerprint/,
    ],
    [{ hosts: { apt_key_fingerprint: 'A'.repeat(40) } }, /metadata.hosts.apt_url: is required/],
    [{ hosts: { apt_url: 'http://x/apt/', other: 1 } }, /metadata.hosts.other: unknown key/],
  ])('refuses %j', (raw, message) => expect(() => parseMetadataSettings(raw)).toThrow(message));

  it('reads metadata.hosts: the key defaults to the one repo-build.sh writes beside the repository, its fingerprint normalised', () => {
    expect(parseMetadataSettings(undefined).hosts).toBeUndefined();
    const s = parseMetadataSettings({
      hosts: { apt_url: 'http://10.88.0.1:8777/apt/', apt_key_fingerprint: '0123 4567 89ab cdef 0123  4567 89AB CDEF 0123 4567' },
    });
    expect(s.hosts).toEqual({
      aptUrl: 'http://10.88.0.1:8777/apt/',
      aptKeyUrl: 'http://10.88.0.1:8777/apt/mammatus-archive-keyring.gpg',
      aptKeyFingerprint: '0123456789ABCDEF0123456789ABCDEF01234567',
    });
    expect(parseMetadataSettings({ hosts: { apt_url: 'https://repo.example/apt/' } }).hosts?.aptKeyFingerprint).toBeUndefined();
  });
});

describe('instance records', () => {
  it('normalises MACs in the usual spellings', () => {
    for (const m of ['52:54:00:AB:CD:EF', '52-54-00-ab-cd-ef', '525400abcdef', '5254.00ab.cdef'])
      expect(normalizeMac(m)).toBe('52:54:00:ab:cd:ef');
    for (const m of ['52:54:00:ab:cd', '52:54-00:ab:cd:ef', 'gg:54:00:ab:cd:ef']) expect(() => normalizeMac(m)).toThrow(/not a MAC/);
  });
  it('validates what a foreign writer stored', () => {
    const good = buildRecord({ name: 'x', macs: ['02:00:00:00:00:01'] }, new Date(0), 'i-00000000000000001');
    expect(validateRecord(JSON.parse(JSON.stringify(good)))).toEqual(good);
    expect(() => validateRecord({ ...good, extra: 1 })).toThrow(/extra: unknown field/);
    expect(() => validateRecord({ ...good, state: 'flying' })).toThrow(/state: must be one of/);
    expect(() => validateRecord({ ...good, macs: ['02:00:00:00:00:01', '02:00:00:00:00:01'] })).toThrow(/unique/);
    expect(() => validateRecord({ ...good, tags: { 'a/b': 'x' } })).toThrow(/tags.a\/b/);
    expect(() => validateRecord({ ...good, vendor_data: { consul: 'yes' } })).toThrow(/vendor_data.consul/);
    expect(() => validateRecord({ ...good, user_data: '***' })).toThrow(/user_data: must be base64/);
    const observed = { status: 'running', at: '2026-01-01T00:00:00.000Z' };
    expect(validateRecord({ ...good, observed })).toEqual({ ...good, observed });
    expect(validateRecord({ ...good, observed: { ...observed, status: 'error', error: 'create: no image' } }).observed?.error).toBe(
      'create: no image',
    );
    expect(() => validateRecord({ ...good, observed: { ...observed, status: 'Running!' } })).toThrow(
      /observed.status: must be a lower-case word/,
    );
    expect(() => validateRecord({ ...good, observed: { ...observed, error: 'x'.repeat(301) } })).toThrow(/observed.error/);
    expect(() => validateRecord({ ...good, observed: { ...observed, pid: 1 } })).toThrow(/observed.pid: unknown field/);
    expect(() => validateRecord({ ...good, observed: { status: 'running' } })).toThrow(/observed.at/);
  });
});
