/**
 * Planned hosts at the metadata service (issue 19), end to end with a real nats-server: the
 * registry and the join secrets in JetStream, the service and the gateway's proxy on loopback, and
 * small stand-ins on `mammatus.hosts.progress` / `mammatus.hosts.join` for the controllers'
 * admission service (built elsewhere), which record what they get, write the steps through the
 * real Hosts API and take the secret with the real JoinSecrets.consume.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { promisify } from 'node:util';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { connectNats } from '../../core/nats.js';
import { HOST_JOIN_SUBJECT, HOST_PROGRESS_SUBJECT, type HostJoinRequest, type HostProgressRequest } from '../../core/host-record.js';
import { Hosts } from '../../src/hosts/hosts.js';
import { JoinSecrets, JoinRefused } from '../../src/hosts/joins.js';
import { natsHostApi } from '../../src/metadata/host-api.js';
import { bodySha256, signIdentity, type CallerIdentity } from '../../src/metadata/identity.js';
import { buildMetadataProxy } from '../../src/metadata/proxy.js';
import { buildMetadataApp, type MetadataApp } from '../../src/metadata/server.js';
import { TokenAuthority } from '../../src/metadata/tokens.js';
import { InstanceRegistry } from '../../src/registry/registry.js';
import { RegistryView } from '../../src/registry/view.js';
import { leaseFileLookup } from '../../roles/gateway/leases.js';
import { eventually } from '../../scripts/lib/wait.js';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../scripts/lib/nats-server.js';

const skip = natsServerAvailable() ? undefined : 'nats-server is missing';
if (skip) console.warn(`metadata host tests skipped: ${skip}`);
const PY = '/usr/bin/python3';
const hasCloudInit = existsSync(PY) && existsSync('/usr/lib/python3/dist-packages/cloudinit');
if (!hasCloudInit)
  console.warn("the cloud-init reader test is skipped: Debian's cloud-init (/usr/lib/python3/dist-packages/cloudinit) is missing");

const SECRET = Buffer.alloc(32, 9);
const HOST_MAC = '52:54:00:19:00:01';
const PROXIED_IP = '127.0.0.2';
const NKEY = `U${'A'.repeat(55)}`;
const BOX = Buffer.alloc(32, 1).toString('base64');
const SEED = {
  aptUrl: 'http://10.88.0.1:8777/apt/',
  aptKeyUrl: 'http://10.88.0.1:8777/apt/mammatus-archive-keyring.gpg',
  aptKeyFingerprint: '0123456789ABCDEF0123456789ABCDEF01234567',
};

describe.skipIf(Boolean(skip))('planned hosts at the metadata service', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-mdh-'));
  const logged: string[] = [];
  const log = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        logged.push(chunk.toString());
        done();
      },
    }),
  );
  let nats: NatsServer;
  let nc: NatsConnection;
  let svcNc: NatsConnection;
  let hosts: Hosts;
  let joins: JoinSecrets;
  let view: RegistryView;
  let app: MetadataApp;
  let base: string;
  let proxy: http.Server;
  let proxyPort: number;
  let hostId: string;
  let joinSub: Subscription | undefined;
  const progress: HostProgressRequest[] = [];
  const joinRequests: HostJoinRequest[] = [];
  let vendorCalls = 0;

  /** Headers of the gateway's proxy vouching for `id` on `METHOD url` with `body`. */
  const signed = (url: string, id: CallerIdentity, method = 'GET', body = Buffer.alloc(0)) =>
    signIdentity(SECRET, { method, url, host: new URL(base).host, bodySha256: bodySha256(body) }, id, Date.now());
  const asHost = { ip: '10.88.0.50', mac: HOST_MAC };
  const get = (url: string, id: CallerIdentity = asHost) => fetch(`${base}${url}`, { headers: signed(url, id) });
  const tokenFor = async (id: CallerIdentity) => {
    const res = await fetch(`${base}/latest/api/token`, {
      method: 'PUT',
      headers: { ...signed('/latest/api/token', id, 'PUT'), 'x-aws-ec2-metadata-token-ttl-seconds': '60' },
    });
    expect(res.status).toBe(200);
    return res.text();
  };
  const post = async (url: string, value: unknown, id: CallerIdentity = asHost, token?: string) => {
    const body = Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));
    return fetch(`${base}${url}`, {
      method: 'POST',
      body,
      headers: {
        ...signed(url, id, 'POST', body),
        'content-type': 'application/json',
        ...(token ? { 'x-aws-ec2-metadata-token': token } : {}),
      },
    });
  };
  const record = () => view.byId(hostId)!;
  const joinBody = (secret: string) => ({ secret, nkey: NKEY, box: BOX });

  /** The stand-in for the admission service's join: takes the secret for real, records `joined`. */
  const answerJoins = () => {
    joinSub = nc.subscribe(HOST_JOIN_SUBJECT, {
      callback: (_err, msg) => {
        const req = msg.json<HostJoinRequest>();
        joinRequests.push(req);
        joins.consume(req.host_id, req, new Date()).then(
          async () => {
            await hosts.progress(req.host_id, 'joined');
            msg.respond(JSON.stringify({ ok: true, sealed: 'sealed-grant' }));
          },
          (err: unknown) => msg.respond(JSON.stringify({ ok: false, error: err instanceof JoinRefused ? err.message : String(err) })),
        );
      },
    });
  };

  beforeAll(async () => {
    nats = await startNatsServer({ name: 'mdh', dir: path.join(tmp, 'nats') });
    nc = await connectNats(nats.url, { name: 'test', credentials: nats.credentials });
    const registry = await InstanceRegistry.open(nc);
    joins = await JoinSecrets.open(nc);
    hosts = new Hosts(registry, joins);
    hostId = (await hosts.register({ name: 'metal-1', mac: HOST_MAC, roles: ['compute'], arch: 'efi64', install_disk: '/dev/vda' })).id;
    await registry.register({ name: 'web-1', macs: ['00:16:3e:19:00:02'], ips: ['10.88.0.60'] });
    // The progress stand-in writes the step as the admission service will.
    nc.subscribe(HOST_PROGRESS_SUBJECT, {
      callback: (_err, msg) => {
        const req = msg.json<HostProgressRequest>();
        progress.push(req);
        hosts.progress(req.host_id, req.step).then(
          () => msg.respond(JSON.stringify({ ok: true })),
          (err: unknown) => msg.respond(JSON.stringify({ ok: false, error: String(err) })),
        );
      },
    });
    answerJoins();
    await nc.flush();
    svcNc = await connectNats(nats.url, { name: 'svc', persistent: true, credentials: nats.credentials });
    view = RegistryView.start(svcNc, log, 1);
    await eventually(() => expect(view.available && view.byId(hostId)).toBeTruthy(), 5000);
    app = buildMetadataApp({
      lookup: view,
      secret: SECRET,
      tokens: new TokenAuthority(SECRET),
      tokenMode: 'optional',
      trustSourceAddress: true,
      domain: 'mammatus',
      availabilityZone: 'dc1a',
      vendorData: async () => (vendorCalls++, 'vendor-for-instances'),
      hosts: natsHostApi(() => svcNc, SEED),
      log,
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const leases = path.join(tmp, 'dnsmasq.leases');
    writeFileSync(leases, `0 ${HOST_MAC} ${PROXIED_IP} metal-1 *\n`);
    proxy = buildMetadataProxy({ upstreams: [base], secret: SECRET, macOf: leaseFileLookup(leases), log });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    proxyPort = (proxy.address() as AddressInfo).port;
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

  it('serves a registered host its iPXE script (live system), records booted; a bad boot_url is 400', async () => {
    const res = await get('/mammatus/ipxe?boot_url=http://10.88.0.1:8777');
    expect(res.status).toBe(200);
    const script = await res.text();
    expect(script).toMatch(/^#!ipxe\n/);
    expect(script).toContain('kernel http://10.88.0.1:8777/live/amd64/vmlinuz initrd=initrd.img boot=live');
    expect(script).toContain('ds=nocloud;s=http://169.254.169.254/nocloud/');
    expect(await (await get('/mammatus/ipxe')).text()).toContain('kernel ${boot-url}/live/amd64/vmlinuz');
    expect((await get('/mammatus/ipxe?boot_url=http://10.88.0.1:8777%20initrd=x')).status).toBe(400);
    await eventually(() => expect(record().host?.progress.booted).toBeTruthy(), 5000);
    expect(progress.filter((p) => p.step === 'booted').length).toBeGreaterThanOrEqual(1);
  });

  it('serves its seed: meta-data names it, user-data holds the join secret once; seeded is recorded', async () => {
    const meta = parse(await (await get('/nocloud/meta-data')).text()) as Record<string, unknown>;
    expect(meta).toMatchObject({ 'instance-id': hostId, 'local-hostname': 'metal-1' });
    const secret = (await joins.get(hostId))!.secret;
    const ud = await (await get('/nocloud/user-data')).text();
    expect(ud.startsWith('#cloud-config\n')).toBe(true);
    const doc = parse(ud) as { write_files: { path: string; content: string }[]; runcmd: unknown[] };
    expect(doc.write_files.find((f) => f.path === '/run/mammatus-join-secret')?.content).toBe(`${secret}\n`);
    expect(doc.runcmd.at(-1)).toEqual(['mammatus-install-to-disk', '/dev/vda']);
    expect(await (await get('/nocloud/vendor-data')).text()).toBe('');
    // network-config: 200 and empty, so cloud-init does not retry a 404 ten times.
    const net = await get('/nocloud/network-config');
    expect([net.status, await net.text()]).toEqual([200, '']);
    await eventually(() => expect(record().host?.progress.seeded).toBeTruthy(), 5000);
  });

  it.skipIf(!hasCloudInit)("cloud-init's NoCloudNet reader, through the gateway's proxy, gets the host's name and seed", async () => {
    // A second proxy whose leases give 127.0.0.1 (where cloud-init's reader calls from) the host's MAC.
    const leases = path.join(tmp, 'leases-local');
    writeFileSync(leases, `0 ${HOST_MAC} 127.0.0.1 metal-1 *\n`);
    const local = buildMetadataProxy({ upstreams: [base], secret: SECRET, macOf: leaseFileLookup(leases), log });
    await new Promise<void>((r) => local.listen(0, '127.0.0.1', r));
    try {
      const script =
        'import json,sys,tempfile; from cloudinit import helpers,distros; from cloudinit.sources import DataSourceNoCloud as N; t=tempfile.mkdtemp(); p=helpers.Paths({"cloud_dir":t,"run_dir":t}); d=N.DataSourceNoCloudNet({"datasource":{"NoCloud":{"seedfrom":sys.argv[1],"fs_label":None}}}, distros.fetch("debian")("debian",{},p), p); ok=d.get_data(); print(json.dumps({"ok":ok,"id":d.get_instance_id(),"host":d.get_hostname().hostname,"ud":d.get_userdata_raw().decode()}))';
      const { stdout } = await promisify(execFile)(
        PY,
        ['-c', script, `http://127.0.0.1:${(local.address() as AddressInfo).port}/nocloud/`],
        {
          timeout: 60_000,
        },
      );
      const out = JSON.parse(stdout.trim().split('\n').pop()!) as { ok: boolean; id: string; host: string; ud: string };
      expect(out).toMatchObject({ ok: true, id: hostId, host: 'metal-1' });
      expect(out.ud).toContain(`- path: /run/mammatus-join-secret`);
      expect(out.ud).toContain((await joins.get(hostId))!.secret);
    } finally {
      await new Promise((r) => local.close(r));
    }
  });

  it('answers 404 to an unregistered MAC, to an instance, and to a host not vouched for by its MAC', async () => {
    const stranger = { ip: '10.88.0.99', mac: '52:54:00:99:99:99' };
    for (const url of ['/mammatus/ipxe', '/nocloud/user-data', '/nocloud/meta-data']) expect((await get(url, stranger)).status).toBe(404);
    expect((await post('/mammatus/join', joinBody('A'.repeat(43)), stranger)).status).toBe(404);
    expect((await post('/mammatus/installed', '', stranger)).status).toBe(404);
    // An instance is no planned host: no script, and its own seed as before.
    const web = { ip: '10.88.0.60', mac: '00:16:3e:19:00:02' };
    expect((await get('/mammatus/ipxe', web)).status).toBe(404);
    expect(await (await get('/nocloud/vendor-data', web)).text()).toBe('vendor-for-instances');
    // The host's record found by IP alone (no MAC signed): its seed holds a secret, so no.
    expect((await get('/nocloud/user-data', { ip: '10.88.0.50', mac: '' })).status).toBe(404);
  });

  it('serves a host neither the EC2 nor the OpenStack tree (no vendor-data built for it), but gives it a token', async () => {
    const token = await tokenFor(asHost);
    const calls = vendorCalls;
    for (const id of [asHost, { ip: '10.88.0.50', mac: '' }])
      for (const url of [
        '/latest/meta-data/',
        '/latest/meta-data/instance-id',
        '/2009-04-04/user-data',
        '/openstack',
        '/openstack/latest/meta_data.json',
        '/openstack/latest/vendor_data.json',
        '/openstack/latest/vendor_data2.json',
      ]) {
        const res = await fetch(`${base}${url}`, { headers: { ...signed(url, id), 'x-aws-ec2-metadata-token': token } });
        expect([url, res.status]).toEqual([url, 404]);
      }
    expect(vendorCalls).toBe(calls);
    // An instance still gets both.
    const web = { ip: '10.88.0.60', mac: '00:16:3e:19:00:02' };
    expect((await get('/latest/meta-data/instance-id', web)).status).toBe(200);
    expect(await (await get('/openstack/latest/vendor_data.json', web)).text()).toContain('vendor-for-instances');
    expect(vendorCalls).toBe(calls + 1);
  });

  it('refuses a join without a token (401), with a bad body (400), and one too large (413)', async () => {
    const secret = (await joins.get(hostId))!.secret;
    expect((await post('/mammatus/join', joinBody(secret))).status).toBe(401);
    const token = await tokenFor(asHost);
    expect((await post('/mammatus/join', { secret, nkey: 'nope', box: BOX }, asHost, token)).status).toBe(400);
    expect((await post('/mammatus/join', 'not json', asHost, token)).status).toBe(400);
    expect((await post('/mammatus/join', { ...joinBody(secret), pad: 'x'.repeat(2000) }, asHost, token)).status).toBe(413);
    expect(joinRequests).toEqual([]);
    expect((await joins.get(hostId))?.secret).toBe(secret);
  });

  it('answers 503 when no controller answers the join, and the secret stays', async () => {
    await joinSub?.drain();
    const secret = (await joins.get(hostId))!.secret;
    const res = await post('/mammatus/join', joinBody(secret), asHost, await tokenFor(asHost));
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ ok: false });
    expect((await joins.get(hostId))?.secret).toBe(secret);
    answerJoins();
    await nc.flush(); // the server has the subscription before the next test asks
  });

  it('forwards a join through the gateway proxy (POST body passed on) and returns the answer; then the seed has no secret', async () => {
    const secret = (await joins.get(hostId))!.secret;
    // As the host does it: PUT a token, then POST, both through the proxy from the leased address.
    const viaProxy = (method: string, url: string, headers: Record<string, string>, body = '') =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: proxyPort, localAddress: PROXIED_IP, method, path: url, headers }, (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        });
        req.on('error', reject);
        req.end(body);
      });
    const token = await viaProxy('PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60' });
    expect(token.status).toBe(200);
    const body = JSON.stringify(joinBody(secret));
    const res = await viaProxy(
      'POST',
      '/mammatus/join',
      { 'content-type': 'application/json', 'x-aws-ec2-metadata-token': token.text },
      body,
    );
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({ ok: true, sealed: 'sealed-grant' });
    expect(joinRequests).toEqual([{ host_id: hostId, mac: HOST_MAC, secret, nkey: NKEY, box: BOX }]);
    await eventually(() => expect(record().host?.progress.joined).toBeTruthy(), 5000);
    // Joined: the seed carries no secret.
    const ud = await (await get('/nocloud/user-data')).text();
    expect(ud).not.toContain(secret);
    expect(ud).not.toContain('mammatus-join-secret');
    // The host repeating its join (its answer was lost) is forwarded and answered again; another
    // box key is refused by the controllers.
    const again = await post('/mammatus/join', joinBody(secret), asHost, await tokenFor(asHost));
    expect(await again.json()).toEqual({ ok: true, sealed: 'sealed-grant' });
    const other = await post(
      '/mammatus/join',
      { ...joinBody(secret), box: Buffer.alloc(32, 2).toString('base64') },
      asHost,
      await tokenFor(asHost),
    );
    expect(await other.json()).toMatchObject({ ok: false, error: expect.stringMatching(/used already/) as unknown });
    expect(joinRequests).toHaveLength(3);
    // Once no repeat can pass (the spent secret gone), the service refuses by itself.
    await joins.remove(hostId);
    const late = await post('/mammatus/join', joinBody(secret), asHost, await tokenFor(asHost));
    expect(await late.json()).toEqual({ ok: false, error: 'this host has joined already (mammatus host rejoin NAME for a new secret)' });
    expect(joinRequests).toHaveLength(3);
  });

  it('records installed (token required), after which the script boots the local disk', async () => {
    expect((await post('/mammatus/installed', '')).status).toBe(401);
    const res = await post('/mammatus/installed', '', asHost, await tokenFor(asHost));
    expect([res.status, await res.json()]).toEqual([200, { ok: true }]);
    await eventually(() => expect(record().host?.progress.installed).toBeTruthy(), 5000);
    // This host is UEFI: the boot image's local-disk.efi, with `exit` when it cannot be fetched.
    expect((await (await get('/mammatus/ipxe')).text()).split('\n')).toContainEqual(
      expect.stringMatching(/^chain \S+\/local-disk\.efi \|\| exit$/),
    );
  });

  it('logged no join secret', async () => {
    expect(logged.join('')).toContain('host join forwarded');
    for (const req of joinRequests) expect(logged.join('')).not.toContain(req.secret);
  });
});
