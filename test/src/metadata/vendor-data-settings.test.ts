/** `metadata.vendor_data`: defaults, and an error naming the key for every kind of mistake. */
import { describe, expect, it } from 'vitest';
import { parseVendorDataSettings } from '../../../src/metadata/vendor-data.js';
import { SettingsError } from '../../../core/validation.js';
import { GOSSIP_KEY } from './vendor-fixtures.js';

const VAULT = { address: 'https://vault.lab:8200', role_id: 'r-1', role_name: 'instances', token_file: '/etc/mammatus/vault-token' };

describe('parseVendorDataSettings', () => {
  it.each([undefined, null, {}])('applies every default to %j', (raw) => {
    expect(parseVendorDataSettings(raw)).toEqual({
      consul: { enabled: true, datacenter: 'dc1' },
      vault: { enabled: false, approle_path: 'auth/approle', wrap_ttl: '15m' },
      telegraf: { enabled: true, database: 'mammatus' },
      ca: { enabled: true, acme_directory: 'https://ca.mammatus:9000/acme/acme/directory' },
    });
  });

  it('takes the CA part switch and ACME directory, and refuses a URL that is not a directory', () => {
    expect(parseVendorDataSettings({ ca: { enabled: false, acme_directory: 'https://ca.mammatus:9443/acme/hosts/directory' } }).ca).toEqual(
      {
        enabled: false,
        acme_directory: 'https://ca.mammatus:9443/acme/hosts/directory',
      },
    );
    expect(() => parseVendorDataSettings({ ca: { acme_directory: 'http://ca.mammatus/acme/acme/directory' } })).toThrow(
      /metadata.vendor_data.ca.acme_directory: must be https:\/\/HOST\[:PORT\]\/acme\/<provisioner>\/directory/,
    );
  });

  it('turns Vault on when its address is set, and normalises URLs', () => {
    const s = parseVendorDataSettings({
      vault: { ...VAULT, address: 'https://vault.lab:8200/' },
      telegraf: { influxdb_url: 'http://10.0.0.1:8086/' },
    });
    expect(s.vault).toEqual({ ...VAULT, enabled: true, approle_path: 'auth/approle', wrap_ttl: '15m' });
    expect(s.telegraf.influxdb_url).toBe('http://10.0.0.1:8086');
  });

  it('keeps Vault off when told so, even with an address', () => {
    expect(parseVendorDataSettings({ vault: { address: 'http://v:8200', enabled: false } }).vault.enabled).toBe(false);
  });

  it('accepts gossip keys of 16, 24 and 32 bytes', () => {
    for (const n of [16, 24, 32]) {
      const key = Buffer.alloc(n, 9).toString('base64');
      expect(parseVendorDataSettings({ consul: { gossip_key: key } }).consul.gossip_key).toBe(key);
    }
  });

  it('does not change the object it was given', () => {
    const raw = Object.freeze({ consul: Object.freeze({ gossip_key: GOSSIP_KEY }) });
    expect(() => parseVendorDataSettings(raw)).not.toThrow();
    expect(raw).toEqual({ consul: { gossip_key: GOSSIP_KEY } });
  });

  it.each([
    [[], 'metadata.vendor_data: must be a mapping'],
    [{ nomad: {} }, 'metadata.vendor_data.nomad: unknown key'],
    [{ consul: { enabled: 'yes' } }, 'metadata.vendor_data.consul.enabled: must be true or false'],
    [{ consul: { dc: 'x' } }, 'metadata.vendor_data.consul.dc: unknown key'],
    [{ consul: { datacenter: 'dc 1' } }, 'metadata.vendor_data.consul.datacenter: must be 1–64 of A-Z, a-z, 0-9, - and _'],
    [
      { consul: { gossip_key: 'c2VjcmV0' } },
      'metadata.vendor_data.consul.gossip_key: must be base64 of 16, 24 or 32 bytes (consul keygen)',
    ],
    [{ consul: { gossip_key: `${GOSSIP_KEY.slice(0, -1)}!` } }, 'metadata.vendor_data.consul.gossip_key: must be base64'],
    [{ consul: { servers: [] } }, 'metadata.vendor_data.consul.servers: must not be empty'],
    [{ consul: { servers: ['10.0.0.1', 'a b'] } }, 'metadata.vendor_data.consul.servers[1]: must be an address without spaces'],
    [{ consul: { servers: ['a\u0000'] } }, 'metadata.vendor_data.consul.servers.0: must not contain control characters'],
    [{ vault: { enabled: true } }, 'metadata.vendor_data.vault.address: is required when vault is enabled'],
    [{ vault: { address: 'http://v:8200' } }, 'metadata.vendor_data.vault.role_id: is required when vault is enabled'],
    [{ vault: { ...VAULT, token_file: undefined } }, 'metadata.vendor_data.vault.token_file: is required when vault is enabled'],
    [{ vault: { ...VAULT, token_file: 'token' } }, 'metadata.vendor_data.vault.token_file: must be an absolute path'],
    [{ vault: { ...VAULT, address: 'vault:8200' } }, 'metadata.vendor_data.vault.address: must be an http:// or https:// URL'],
    [{ vault: { ...VAULT, address: 'https://v:8200/v1' } }, 'metadata.vendor_data.vault.address: must not have a path'],
    [{ vault: { ...VAULT, role_name: 'a/b' } }, 'metadata.vendor_data.vault.role_name: must be 1–4095 of'],
    [{ vault: { ...VAULT, approle_path: '/auth/approle' } }, 'metadata.vendor_data.vault.approle_path: must be the auth mount'],
    [{ vault: { ...VAULT, wrap_ttl: '2h' } }, 'metadata.vendor_data.vault.wrap_ttl: must be at most 1h'],
    [{ vault: { ...VAULT, wrap_ttl: 'soon' } }, 'metadata.vendor_data.vault.wrap_ttl: must be a duration'],
    [{ vault: { ...VAULT, secret_id_ttl: '0' } }, 'metadata.vendor_data.vault.secret_id_ttl: must be at least 1s'],
    [
      { telegraf: { influxdb_url: 'http://admin:pw@10.0.0.1:8086' } },
      'metadata.vendor_data.telegraf.influxdb_url: must not carry credentials',
    ],
    [
      { telegraf: { influxdb_url: 'udp://10.0.0.1:8089' } },
      'metadata.vendor_data.telegraf.influxdb_url: must be an http:// or https:// URL',
    ],
    [{ telegraf: { database: 'my db' } }, 'metadata.vendor_data.telegraf.database: must be 1–64 of'],
  ])('refuses %j', (raw, message) => {
    let error: unknown;
    try {
      parseVendorDataSettings(raw);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(SettingsError);
    expect((error as Error).message).toContain(message);
    expect((error as SettingsError).key).toBe(message.split(':')[0]);
  });
});
