/**
 * The service's vendor-data source: real templates, a fetch stand-in for Vault (no Vault binary is
 * installable here; vault.test.ts checks the request shape against a fake Vault server), mint reuse
 * within a boot and a failed mint that leaves the other parts intact.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { parseMetadataSettings } from '../../../src/metadata/config.js';
import { buildRecord } from '../../../core/instance-record.js';
import { buildVendorDataSource } from '../../../src/metadata/vendor-source.js';
import { CA } from './vendor-fixtures.js';
import type { Member } from '../../../core/contracts.js';
import { influxdbControllers, METRICS_STORE_TAG } from '../../../core/telegraf.js';

const tokenFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'mammatus-vs-')), 'vault.token');
writeFileSync(tokenFile, 'hvs.controller\n');
const settings = parseMetadataSettings({
  vendor_data: {
    consul: { gossip_key: Buffer.alloc(32, 1).toString('base64') },
    vault: { address: 'http://10.0.0.2:8200', role_id: 'role-1', role_name: 'instances', token_file: tokenFile },
  },
});
const record = buildRecord({ name: 'web-1', macs: ['02:00:00:00:00:01'], ips: ['10.0.0.21'] }, new Date(0), 'i-00000000000000001');
const log = pino({ level: 'silent' });

describe('vendor-data source', () => {
  it('mints one wrapped secret-id per instance per minute and puts it in the Vault part', async () => {
    let mints = 0;
    let clock = 0;
    const fetchStub = (async () => {
      mints++;
      return new Response(JSON.stringify({ wrap_info: { token: `hvs.wrapped-${mints}` } }), {
        status: 200,
        headers: { 'content-type': 'application/json' },
      });
    }) as typeof fetch;
    const source = await buildVendorDataSource({ settings, controllers: () => ['10.0.0.2'], log, fetch: fetchStub, now: () => clock });
    const first = await source(record, '10.0.0.21');
    expect(first).toContain('mammatus-consul.sh');
    expect(first).toContain('mammatus-vault.sh');
    expect(first).toContain('hvs.wrapped-1');
    expect(first).not.toContain('hvs.controller');
    clock = 30_000;
    expect(await source(record, '10.0.0.21')).toContain('hvs.wrapped-1');
    clock = 61_000;
    expect(await source(record, '10.0.0.21')).toContain('hvs.wrapped-2');
    expect(mints).toBe(2);
  });

  it('sends Telegraf to the controllers tagged metrics=influxdb, as membership says at each request', async () => {
    const ctl = (addr: string, store: string): Member => ({
      name: `ctl-${addr}`,
      addr,
      port: 7946,
      tags: { role: 'controller', [METRICS_STORE_TAG]: store },
      status: 'alive',
    });
    let members: Member[] = [ctl('10.0.0.2', 'prometheus')];
    const source = await buildVendorDataSource({
      settings,
      controllers: () => ['10.0.0.2'],
      influxdb: () => influxdbControllers(members),
      log,
      fetch: async () => new Response('{}'),
    });
    expect(await source(record, '10.0.0.21')).not.toContain('mammatus-telegraf.sh');
    members = [ctl('10.0.0.2', 'influxdb'), ctl('10.0.0.3', 'prometheus')];
    const doc = await source(record, '10.0.0.21');
    expect(doc).toContain('mammatus-telegraf.sh');
    expect(doc.match(/urls = \[.*\]/g)).toEqual(['urls = ["http://10.0.0.2:8086"]']);
  });

  it('serves the other parts when Vault cannot mint', async () => {
    const failing = (async () => new Response('{"errors":["permission denied"]}', { status: 403 })) as typeof fetch;
    const source = await buildVendorDataSource({ settings, controllers: () => ['10.0.0.2'], log, fetch: failing });
    const doc = await source(record, '10.0.0.21');
    expect(doc).toContain('mammatus-consul.sh');
    expect(doc).not.toContain('hvs.');
  });

  it('honours the instance switches and refuses bad settings at start', async () => {
    const source = await buildVendorDataSource({ settings, controllers: () => ['10.0.0.2'], log, fetch: async () => new Response('{}') });
    const off = buildRecord(
      { name: 'quiet', macs: ['02:00:00:00:00:02'], vendor_data: { consul: false, telegraf: false, vault: false } },
      new Date(0),
    );
    expect(await source(off, '10.0.0.22')).toBe('');
    await expect(
      buildVendorDataSource({
        settings: parseMetadataSettings({ vendor_data: { consul: { datacenter: 'bad dc' } } }),
        controllers: () => [],
        log,
      }),
    ).rejects.toThrow(/metadata.vendor_data.consul.datacenter/);
  });

  it('puts the CA parts first once there is a root, with the configured directory; none when switched off', async () => {
    const rootPem = CA.rootPem;
    const box: { root?: string } = {};
    const caRoot = async () => box.root;
    const source = await buildVendorDataSource({
      settings,
      controllers: () => ['10.0.0.2'],
      log,
      fetch: async () => new Response('{}'),
      caRoot,
    });
    expect(await source(record, '10.0.0.21')).not.toContain('mammatus-ca');
    box.root = rootPem;
    const doc = await source(record, '10.0.0.21');
    expect(doc).toContain('filename="mammatus-ca.cfg"');
    expect(doc).toContain("'https://ca.mammatus:9000/acme/acme/directory'");
    const moved = parseMetadataSettings({ vendor_data: { ca: { acme_directory: 'https://ca.mammatus:9443/acme/hosts/directory' } } });
    const other = await buildVendorDataSource({ settings: moved, controllers: () => [], log, caRoot });
    expect(await other(record, '10.0.0.21')).toContain("'https://ca.mammatus:9443/acme/hosts/directory'");
    const off = parseMetadataSettings({ vendor_data: { ca: { enabled: false } } });
    expect(await (await buildVendorDataSource({ settings: off, controllers: () => [], log, caRoot }))(record, '10.0.0.21')).not.toContain(
      'mammatus-ca',
    );
  });
});
