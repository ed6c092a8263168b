/**
 * The metadata service end to end: a real nats-server holds the registry, the service and the proxy
 * listen on loopback, and cloud-init's own readers (Debian's cloud-init, run with /usr/bin/python3)
 * read it the way an instance does. Asserts the values cloud-init ends up with, not just statuses.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { NatsConnection } from '@nats-io/transport-node';
import type { MetadataApp } from '../../src/metadata/server.js';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IDENTITY_HEADERS } from '../../src/metadata/identity.js';
import { signFor } from '../helpers/metadata-sign.js';
import { buildMetadataProxy } from '../../src/metadata/proxy.js';
import { InstanceRegistry, registryKeys } from '../../src/registry/registry.js';
import { eventually } from '../../scripts/lib/wait.js';
import { RegistryView } from '../../src/registry/view.js';
import { buildMetadataApp } from '../../src/metadata/server.js';
import { TokenAuthority } from '../../src/metadata/tokens.js';
import { connectNats } from '../../core/nats.js';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../scripts/lib/nats-server.js';
import { leaseFileLookup } from '../../roles/gateway/leases.js';
import type { Server } from 'node:http';
import { MetadataService } from '@aws-sdk/ec2-metadata-service';

const exec = promisify(execFile);
const PY = '/usr/bin/python3';
const hasCloudInit = existsSync(PY) && existsSync('/usr/lib/python3/dist-packages/cloudinit');
const skip = natsServerAvailable() ? undefined : 'nats-server is missing';
if (skip) console.warn(`metadata tests skipped: ${skip}`);
if (!hasCloudInit) console.warn('cloud-init reader tests skipped: Debian cloud-init (/usr/lib/python3/dist-packages/cloudinit) is missing');

const SECRET = Buffer.alloc(32, 7);
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExampl operator';
const USER_DATA = '#cloud-config\nruncmd:\n - [touch, /run/ud-ran]\n';
const VENDOR =
  'Content-Type: multipart/mixed; boundary="b"\nMIME-Version: 1.0\n\n--b\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho hi\n--b--\n';

async function py(script: string, ...args: string[]): Promise<unknown> {
  const { stdout } = await exec(PY, ['-c', script, ...args], { timeout: 60_000 });
  return JSON.parse(stdout.trim().split('\n').pop()!);
}

describe.skipIf(Boolean(skip))('metadata service with a real registry', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-md-'));
  const log = pino({ level: 'silent' });
  let nats: NatsServer;
  let nc: NatsConnection;
  let svcNc: NatsConnection;
  let registry: InstanceRegistry;
  let view: RegistryView;
  let app: MetadataApp;
  let base: string;
  let proxy: Server;
  let proxyBase: string;
  const leases = path.join(tmp, 'dnsmasq.leases');

  /** The service over the test's registry view, with IMDSv2 tokens `optional` or `required`. */
  const appWith = (tokenMode: 'optional' | 'required') =>
    buildMetadataApp({
      lookup: view,
      secret: SECRET,
      tokens: new TokenAuthority(SECRET),
      tokenMode: tokenMode,
      trustSourceAddress: true,
      domain: 'mammatus',
      availabilityZone: 'dc1a',
      vendorData: async () => VENDOR,
      log,
    });

  beforeAll(async () => {
    nats = await startNatsServer({ name: 'md', dir: path.join(tmp, 'nats') });
    nc = await connectNats(nats.url, { name: 'test', credentials: nats.credentials });
    registry = await InstanceRegistry.open(nc);
    // The caller of every loopback request is 127.0.0.1: register it as web-1's address.
    await registry.register({
      name: 'web-1',
      macs: ['00:16:3e:aa:bb:cc'],
      ips: ['127.0.0.1'],
      ssh_keys: [KEY],
      user_data: Buffer.from(USER_DATA),
      tags: { team: 'ops' },
    });
    await registry.register({ name: 'db-1', macs: ['00:16:3e:00:00:02'], ips: ['10.9.0.2'] });
    svcNc = await connectNats(nats.url, { name: 'svc', persistent: true, credentials: nats.credentials });
    view = RegistryView.start(svcNc, log, 1);
    for (let i = 0; i < 100 && !view.available; i++) await new Promise((r) => setTimeout(r, 50));
    app = appWith('optional');
    await app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    writeFileSync(leases, `0 00:16:3e:aa:bb:cc 127.0.0.1 web-1 *\n`);
    proxy = buildMetadataProxy({ upstreams: ['http://127.0.0.1:1', base], secret: SECRET, macOf: leaseFileLookup(leases), log });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    proxyBase = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    if (proxy) await new Promise((r) => proxy.close(r));
    await app?.close();
    view?.stop();
    await svcNc?.close();
    await nc?.close();
    await nats?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it("never serves a record its claims do not point at: a forged record with a victim's MAC and IP, a record that lost a claim", async () => {
    const db = await registry.get('db-1');
    // Written straight into the bucket beside the registry's code: a new id claiming db-1's MAC and IP.
    const forged = { ...db, id: 'i-0000000000000f00d', name: 'evil', user_data: Buffer.from('#!/bin/sh\nid\n').toString('base64') };
    await registry.kv.put(registryKeys.record(forged.id), JSON.stringify(forged));
    await new Promise((r) => setTimeout(r, 300));
    expect(view.byId(forged.id)).toBeUndefined();
    expect(view.byMac(db.macs[0])?.id).toBe(db.id);
    expect(view.byIp('10.9.0.2')?.id).toBe(db.id);
    expect(view.records().map((r) => r.name)).not.toContain('evil');
    // A record whose IP claim goes away is no longer served, by any of its keys.
    const claim = await registry.kv.get(registryKeys.ip('10.9.0.2'));
    await registry.kv.delete(registryKeys.ip('10.9.0.2'));
    await eventually(() => expect(view.byMac(db.macs[0])).toBeUndefined(), 5000);
    expect(view.records().map((r) => r.name)).not.toContain('db-1');
    // Claimed again, served again.
    await registry.kv.put(registryKeys.ip('10.9.0.2'), claim!.string());
    await eventually(() => expect(view.byMac(db.macs[0])?.id).toBe(db.id), 5000);
    await registry.kv.delete(registryKeys.record(forged.id));
  });

  it('serves the EC2 tree in the format cloud-init parses', async () => {
    expect(await (await fetch(`${base}/latest/meta-data/instance-id`)).text()).toMatch(/^i-[0-9a-f]{17}$/);
    expect(await (await fetch(`${base}/2009-04-04/meta-data/public-keys/`)).text()).toBe('0=operator');
    const listing = await (await fetch(`${base}/latest/meta-data`)).text();
    expect(listing.split('\n')).toEqual(expect.arrayContaining(['instance-id', 'placement/', 'public-keys/', 'local-hostname']));
    expect((await fetch(`${base}/latest/meta-data/nothing`)).status).toBe(404);
    const doc = (await (await fetch(`${base}/latest/dynamic/instance-identity/document`)).json()) as Record<string, unknown>;
    expect(doc).toMatchObject({ region: 'dc1', availabilityZone: 'dc1a', privateIp: '127.0.0.1' });
    expect(await (await fetch(`${base}/latest/meta-data/tags/instance/team`)).text()).toBe('ops');
    const head = await fetch(`${base}/latest/meta-data/instance-id`, { method: 'HEAD' });
    expect([head.status, head.headers.get('content-length')]).toEqual([200, '19']);
    expect((await fetch(`${base}/latest/meta-data/instance-id`, { method: 'POST', body: 'x' })).status).toBe(405);
    expect(
      (
        await fetch(`${base}/latest/api/token`, {
          method: 'PUT',
          body: 'x'.repeat(5000),
          headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' },
        })
      ).status,
    ).toBe(413);
    expect((await fetch(`${base}/`)).status).toBe(200);
  });

  it.skipIf(!hasCloudInit)('cloud-init reads the EC2 tree: keys, hostname, zone and user-data', async () => {
    const out = (await py(
      'import json,sys,tempfile; from cloudinit import util,helpers,distros; from cloudinit.sources import DataSourceEc2 as E; util._DNS_REDIRECT_IP=set(); E.identify_platform=lambda: E.CloudNames.UNKNOWN; t=tempfile.mkdtemp(); p=helpers.Paths({"cloud_dir":t,"run_dir":t}); d=E.DataSourceEc2({"datasource":{"Ec2":{"metadata_urls":[sys.argv[1]],"strict_id":False,"max_wait":10,"timeout":2}}}, distros.fetch("debian")("debian",{},p), p); ok=d.get_data(); print(json.dumps({"ok":ok,"id":d.get_instance_id(),"host":d.get_hostname().hostname,"keys":d.get_public_ssh_keys(),"az":d.availability_zone,"region":d.region,"ud":d.get_userdata_raw().decode()}))',
      base,
    )) as Record<string, unknown>;
    expect(out).toMatchObject({ ok: true, host: 'web-1', keys: [KEY], az: 'dc1a', region: 'dc1', ud: USER_DATA });
    expect(out.id).toMatch(/^i-/);
  });

  it.skipIf(!hasCloudInit)('cloud-init reads the NoCloud seed: meta-data, user-data and vendor-data', async () => {
    const out = (await py(
      'import json,sys,tempfile; from cloudinit import helpers,distros; from cloudinit.sources import DataSourceNoCloud as N; t=tempfile.mkdtemp(); p=helpers.Paths({"cloud_dir":t,"run_dir":t}); d=N.DataSourceNoCloudNet({"datasource":{"NoCloud":{"seedfrom":sys.argv[1],"fs_label":None}}}, distros.fetch("debian")("debian",{},p), p); ok=d.get_data(); print(json.dumps({"ok":ok,"id":d.get_instance_id(),"host":d.get_hostname().hostname,"keys":d.get_public_ssh_keys(),"ud":d.get_userdata_raw().decode(),"vd":d.get_vendordata_raw().decode()}))',
      `${base}/nocloud/`,
    )) as Record<string, unknown>;
    expect(out).toMatchObject({ ok: true, host: 'web-1', keys: [KEY], ud: USER_DATA, vd: VENDOR });
  });

  it.skipIf(!hasCloudInit)('cloud-init reads the OpenStack tree', async () => {
    const out = (await py(
      'import json,sys; from cloudinit.sources.helpers import openstack as o; r=o.MetadataReader(sys.argv[1], timeout=2, retries=0); r._read_ec2_metadata=lambda: {}; d=r.read_v2(); print(json.dumps({"id":d["metadata"]["instance-id"],"host":d["metadata"]["local-hostname"],"keys":d["metadata"]["public_keys"],"vd":d["vendordata"]}))',
      base,
    )) as Record<string, unknown>;
    expect(out).toMatchObject({ host: 'web-1.mammatus', keys: { operator: KEY }, vd: { 'cloud-init': VENDOR } });
  });

  it('NoCloud user-data answers 200 with an empty body for an instance without user-data', async () => {
    const r = await registry.register({ name: 'bare', macs: ['02:00:00:00:00:99'], ips: ['10.9.0.99'] });
    for (let i = 0; i < 50 && !view.byId(r.id); i++) await new Promise((res) => setTimeout(res, 20));
    const headers = signFor(SECRET, base, '/nocloud/user-data', { ip: '10.9.0.99', mac: '02:00:00:00:00:99' }, Date.now());
    const res = await fetch(`${base}/nocloud/user-data`, { headers });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');
    const ud = await fetch(`${base}/latest/user-data`, {
      headers: signFor(SECRET, base, '/latest/user-data', { ip: '10.9.0.99', mac: '' }, Date.now()),
    });
    expect(ud.status).toBe(404);
  });

  describe('IMDSv2 tokens', () => {
    const put = (url: string, headers: Record<string, string>) => fetch(`${base}${url}`, { method: 'PUT', headers });
    it('mints a token and accepts it on GETs; a bad token is 401', async () => {
      const res = await put('/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60' });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-aws-ec2-metadata-token-ttl-seconds')).toBe('60');
      const token = await res.text();
      expect((await fetch(`${base}/latest/meta-data/instance-id`, { headers: { 'x-aws-ec2-metadata-token': token } })).status).toBe(200);
      expect((await fetch(`${base}/latest/meta-data/instance-id`, { headers: { 'x-aws-ec2-metadata-token': `${token}x` } })).status).toBe(
        401,
      );
    });
    it('refuses a token for another instance', async () => {
      const other = new TokenAuthority(SECRET).mint('i-00000000000000000', 60, Date.now());
      expect((await fetch(`${base}/latest/meta-data/instance-id`, { headers: { 'x-aws-ec2-metadata-token': other } })).status).toBe(401);
    });
    it('refuses missing or out-of-range TTLs (400), dated paths and X-Forwarded-For (403)', async () => {
      expect((await put('/latest/api/token', {})).status).toBe(400);
      expect((await put('/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '0' })).status).toBe(400);
      expect((await put('/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '21601' })).status).toBe(400);
      expect((await put('/2021-03-23/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60' })).status).toBe(403);
      expect((await put('/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60', 'x-forwarded-for': '1.2.3.4' })).status).toBe(
        403,
      );
    });
    it('an expired token is 401', async () => {
      const expired = new TokenAuthority(SECRET).mint((await registry.get('web-1')).id, 1, Date.now() - 5000);
      expect((await fetch(`${base}/latest/meta-data/instance-id`, { headers: { 'x-aws-ec2-metadata-token': expired } })).status).toBe(401);
    });
  });

  describe('caller identity', () => {
    it('through the proxy: identified by the lease MAC, identity headers from the caller stripped', async () => {
      const res = await fetch(`${proxyBase}/latest/meta-data/local-hostname`, {
        headers: { [IDENTITY_HEADERS.ip]: '10.9.0.2', [IDENTITY_HEADERS.mac]: '00:16:3e:00:00:02' },
      });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('web-1');
      const token = await (
        await fetch(`${proxyBase}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '30' } })
      ).text();
      expect((await fetch(`${proxyBase}/latest/meta-data/mac`, { headers: { 'x-aws-ec2-metadata-token': token } })).status).toBe(200);
    });
    it('is no open proxy: absolute-form and backslash targets are 400, `//host` stays on the upstream, nothing else is reached', async () => {
      // Another HTTP service the gateway could reach (its loopback, the NATS monitor, Vault…).
      let reached = 0;
      const other = http.createServer((_q, r) => void (reached++, r.end('secret')));
      await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
      const port = (other.address() as AddressInfo).port;
      const proxyPort = Number(new URL(proxyBase).port);
      /** Sends one raw request line (fetch would normalize it) and returns the status code. */
      const raw = (target: string) =>
        new Promise<number>((resolve, reject) => {
          const s = net.connect(proxyPort, '127.0.0.1', () =>
            s.write(`GET ${target} HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n`),
          );
          let text = '';
          s.on('data', (d: Buffer) => (text += d.toString()));
          s.on('end', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)));
          s.on('error', reject);
        });
      try {
        for (const target of [`http://127.0.0.1:${port}/x`, `/\\127.0.0.1:${port}/x`, `/\\/127.0.0.1:${port}/x`, '*']) {
          expect([target, await raw(target)]).toEqual([target, 400]);
        }
        // `//host/x` is a path on the metadata service's own host (leading slashes count as one).
        expect(await raw(`//127.0.0.1:${port}/x`)).toBe(404);
        expect(await raw('//latest/meta-data/local-hostname')).toBe(200);
        // An origin-form target still works, at the upstream's own host.
        expect(await raw('/latest/meta-data/local-hostname')).toBe(200);
        expect(reached).toBe(0);
      } finally {
        await new Promise((r) => other.close(r));
      }
    });

    it('a signed identity names the instance; a forged one is 403; a stale one is 403', async () => {
      const url = '/latest/meta-data/local-hostname';
      const ok = signFor(SECRET, base, url, { ip: '10.9.0.2', mac: '00:16:3e:00:00:02' }, Date.now());
      expect(await (await fetch(`${base}${url}`, { headers: ok })).text()).toBe('db-1');
      const forged = signFor(Buffer.alloc(32, 1), base, url, { ip: '10.9.0.2', mac: '00:16:3e:00:00:02' }, Date.now());
      expect((await fetch(`${base}${url}`, { headers: forged })).status).toBe(403);
      const stale = signFor(SECRET, base, url, { ip: '10.9.0.2', mac: '00:16:3e:00:00:02' }, Date.now() - 120_000);
      expect((await fetch(`${base}${url}`, { headers: stale })).status).toBe(403);
      // Valid for another path only: replaying it here fails.
      const other = signFor(SECRET, base, '/latest/meta-data/instance-id', { ip: '10.9.0.2', mac: '00:16:3e:00:00:02' }, Date.now());
      expect((await fetch(`${base}${url}`, { headers: other })).status).toBe(403);
      const partial = { [IDENTITY_HEADERS.ip]: '10.9.0.2' };
      expect((await fetch(`${base}${url}`, { headers: partial })).status).toBe(403);
    });
    it("an IP claimed with another instance's MAC is 403; an unknown caller is 404", async () => {
      const url = '/latest/meta-data/instance-id';
      const spoof = signFor(SECRET, base, url, { ip: '10.9.0.2', mac: '00:16:3e:aa:bb:cc' }, Date.now());
      expect((await fetch(`${base}${url}`, { headers: spoof })).status).toBe(403);
      const unknown = signFor(SECRET, base, url, { ip: '10.9.0.200', mac: '02:00:00:00:12:34' }, Date.now());
      expect((await fetch(`${base}${url}`, { headers: unknown })).status).toBe(404);
      expect((await fetch(`${base}${url}`, { headers: { 'x-forwarded-for': '127.0.0.1' } })).status).toBe(404);
    });
  });

  it('a huge user-data is refused at register time; the largest allowed one is served intact', async () => {
    await expect(
      registry.register({ name: 'huge', macs: ['02:00:00:00:00:77'], user_data: Buffer.alloc(256 * 1024 + 1, 65) }),
    ).rejects.toThrow(/user_data: .* more than the limit/);
    const big = Buffer.alloc(256 * 1024, 66);
    const r = await registry.register({ name: 'big', macs: ['02:00:00:00:00:78'], ips: ['10.9.0.78'], user_data: big });
    for (let i = 0; i < 50 && !view.byId(r.id); i++) await new Promise((res) => setTimeout(res, 20));
    const res = await fetch(`${base}/nocloud/user-data`, {
      headers: signFor(SECRET, base, '/nocloud/user-data', { ip: '10.9.0.78', mac: '' }, Date.now()),
    });
    expect(Buffer.from(await res.arrayBuffer()).equals(big)).toBe(true);
  });

  it("the AWS SDK's MetadataService works as its README shows, with IMDSv2 required; repeated slashes count as one on every tree", async () => {
    const strict = appWith('required');
    await strict.listen({ host: '127.0.0.1', port: 0 });
    try {
      const endpoint = `http://127.0.0.1:${(strict.server.address() as AddressInfo).port}`;
      const id = (await registry.get('web-1')).id;
      // As the package's README has it (it sends GET //latest/…, after a token PUT).
      const sdk = new MetadataService({ endpoint });
      expect(await sdk.request('/latest/meta-data/instance-id', {})).toBe(id);
      expect(await sdk.request('/latest/meta-data/local-hostname', {})).toBe('web-1');
      expect(await sdk.request('/latest/meta-data/', {})).toContain('instance-id');
      await expect(
        new MetadataService({ endpoint, disableFetchToken: true }).request('/latest/meta-data/instance-id', {}),
      ).rejects.toThrow();
      // The other trees (token rules aside) read repeated slashes the same way.
      expect(await (await fetch(`${base}//latest//meta-data///local-hostname`)).text()).toBe('web-1');
      expect(await (await fetch(`${base}//nocloud//meta-data`)).text()).toContain('local-hostname: web-1');
      expect(await (await fetch(`${base}//openstack//latest//meta_data.json`)).json()).toMatchObject({ name: 'web-1' });
    } finally {
      await strict.close();
    }
  });

  it("with tokens required, every tree needs proof: a token, or (NoCloud, OpenStack) cloud-init's own reader", async () => {
    const strict = appWith('required');
    await strict.listen({ host: '127.0.0.1', port: 0 });
    try {
      const endpoint = `http://127.0.0.1:${(strict.server.address() as AddressInfo).port}`;
      // What a plain SSRF gets: a URL fetched by some program, no token, its own User-Agent.
      for (const p of ['/nocloud/user-data', '/nocloud/vendor-data', '/openstack/latest/user_data', '/openstack/latest/vendor_data.json'])
        expect([p, (await fetch(`${endpoint}${p}`, { headers: { 'user-agent': 'python-requests/2.28' } })).status]).toEqual([p, 401]);
      const token = await (
        await fetch(`${endpoint}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } })
      ).text();
      expect((await fetch(`${endpoint}/nocloud/user-data`, { headers: { 'x-aws-ec2-metadata-token': token } })).status).toBe(200);
      expect((await fetch(`${endpoint}/nocloud/user-data`, { headers: { 'user-agent': 'Cloud-Init/22.4.2' } })).status).toBe(200);
      if (hasCloudInit) {
        // cloud-init's NoCloud reader, unchanged, still reads everything.
        const out = (await py(
          'import json,sys,tempfile; from cloudinit import helpers,distros; from cloudinit.sources import DataSourceNoCloud as N; t=tempfile.mkdtemp(); p=helpers.Paths({"cloud_dir":t,"run_dir":t}); d=N.DataSourceNoCloudNet({"datasource":{"NoCloud":{"seedfrom":sys.argv[1],"fs_label":None}}}, distros.fetch("debian")("debian",{},p), p); ok=d.get_data(); print(json.dumps({"ok":ok,"ud":d.get_userdata_raw().decode(),"vd":d.get_vendordata_raw().decode()}))',
          `${endpoint}/nocloud/`,
        )) as Record<string, unknown>;
        expect(out).toMatchObject({ ok: true, ud: USER_DATA, vd: VENDOR });
      }
    } finally {
      await strict.close();
    }
  });

  it('a signed request replayed to the service is 403; the proxy signs each request afresh', async () => {
    const url = '/latest/meta-data/local-hostname';
    const captured = signFor(SECRET, base, url, { ip: '10.9.0.2', mac: '00:16:3e:00:00:02' });
    expect((await fetch(`${base}${url}`, { headers: captured })).status).toBe(200);
    expect((await fetch(`${base}${url}`, { headers: captured })).status).toBe(403);
    // Through the proxy the same request twice is two signatures: both answered.
    for (let i = 0; i < 2; i++) expect((await fetch(`${proxyBase}${url}`)).status).toBe(200);
  });

  it('answers 503 while the registry is unreachable, stays up, and recovers', async () => {
    await nats.stop();
    for (let i = 0; i < 100 && view.available; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await fetch(`${base}/latest/meta-data/instance-id`)).status).toBe(503);
    expect((await fetch(`${base}/healthz`)).status).toBe(503);
    nats = await startNatsServer({ ...nats.spec, port: nats.port });
    for (let i = 0; i < 200 && !view.available; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await fetch(`${base}/latest/meta-data/local-hostname`)).status).toBe(200);
  });
});
