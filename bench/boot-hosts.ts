/**
 * Part 2 of bench/boot.ts: the requests a booting host makes that the agent answers, through the
 * real code path, as test/integration/metadata-hosts.test.ts starts it but with the controllers'
 * real host API instead of stand-ins: a nats-server holds the registry and the join secrets; the
 * controllers' admission (`serveHosts`, src/hosts/hosted.ts, signing with the authority's seed);
 * the metadata service (`buildMetadataApp` with `metadata.hosts`, its registry view and
 * `natsHostApi`); the gateway's metadata proxy (`buildMetadataProxy`) finding the caller's MAC in a
 * dnsmasq lease file. Each host calls from its own loopback address (127.0.1.N), leased to its MAC.
 * All of it runs in the benchmark's process; every request is a fresh connection, as iPXE and
 * cloud-init make them.
 */
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { createUser } from '@nats-io/nkeys';
import pino from 'pino';
import { connectNats } from '../core/nats.js';
import { Hosts } from '../src/hosts/hosts.js';
import { serveHosts } from '../src/hosts/hosted.js';
import { JoinSecrets } from '../src/hosts/joins.js';
import { newBoxKeyPair } from '../src/hosts/sealed.js';
import { natsHostApi } from '../src/metadata/host-api.js';
import { buildMetadataProxy } from '../src/metadata/proxy.js';
import { buildMetadataApp } from '../src/metadata/server.js';
import { TokenAuthority } from '../src/metadata/tokens.js';
import { InstanceRegistry } from '../src/registry/registry.js';
import { RegistryView } from '../src/registry/view.js';
import { leaseFileLookup } from '../roles/gateway/leases.js';
import { sharedTrust, startNatsServer } from '../scripts/lib/nats-server.js';
import { waitFor } from '../scripts/lib/wait.js';
import type { Cleanup } from './lib.js';

/** The steps of one host's boot that the agent answers, in order. */
export const STEPS = [
  'boot.ipxe (gateway boot server)',
  'per-MAC iPXE script',
  'nocloud/meta-data',
  'nocloud/user-data',
  'nocloud/vendor-data',
  'nocloud/network-config',
  'PUT latest/api/token',
  'POST mammatus/join',
] as const;

/** One HTTP exchange's answer. */
export interface Answer {
  readonly status: number;
  readonly body: Buffer;
  readonly ms: number;
}

/** One request on a fresh connection from `localAddress`; the time runs to the last body byte. */
export function request(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string; from?: string } = {},
): Promise<Answer> {
  const u = new URL(url);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: Number(u.port),
        path: `${u.pathname}${u.search}`,
        method: opts.method ?? 'GET',
        headers: opts.headers,
        agent: false,
        localAddress: opts.from,
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (b: Buffer) => chunks.push(b));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), ms: performance.now() - started }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer in 10 s`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** The running bed. */
export interface HostsBed {
  /** Boots planned host `i` (0-based, fewer than `count`): every step's answer, in STEPS order. */
  boot(i: number): Promise<Answer[]>;
}

const SECRET = Buffer.alloc(32, 19);
const SEED = {
  aptUrl: 'http://10.88.0.1:8777/apt/',
  aptKeyUrl: 'http://10.88.0.1:8777/apt/mammatus-archive-keyring.gpg',
  aptKeyFingerprint: '0123456789ABCDEF0123456789ABCDEF01234567',
};

/** Starts the bed with `count` planned hosts registered; `bootBase` is the gateway boot server's URL. */
export async function startHostsBed(dir: string, bootBase: string, count: number, cleanup: Cleanup): Promise<HostsBed> {
  if (count > 250) throw new Error('at most 250 hosts (one loopback address each)');
  // The services log at info, as on a node, to nowhere (the cost of building the lines stays).
  const log = pino({ level: 'info' }, new Writable({ write: (_c, _e, done) => done() }));
  const nats = await startNatsServer({ name: 'boot', dir: path.join(dir, 'nats') });
  cleanup.add(() => nats.stop());
  const nc = await connectNats(nats.url, { name: 'bench', credentials: nats.credentials });
  cleanup.add(() => nc.close());
  const ctlNc = await connectNats(nats.url, { name: 'controller', credentials: nats.credentials });
  cleanup.add(() => ctlNc.close());
  const svcNc = await connectNats(nats.url, { name: 'metadata', persistent: true, credentials: nats.credentials });
  cleanup.add(() => svcNc.close());

  const registry = await InstanceRegistry.open(nc);
  const joins = await JoinSecrets.open(nc);
  const hosts = new Hosts(registry, joins);
  const controller = { name: 'controller-1', addr: '127.0.0.1', port: 7946, tags: { role: 'controller' }, status: 'alive' as const };
  const creds = { ...nats.credentials, authority_seed: sharedTrust().authoritySeed };
  const api = serveHosts(
    ctlNc,
    { credentials: () => creds, gossipKey: () => Promise.resolve(undefined), replicas: () => 1 },
    () => [controller],
    log,
    controller.name,
  );
  cleanup.add(() => api.close());

  const planned: { id: string; mac: string; ip: string }[] = [];
  for (let i = 0; i < count; i++) {
    const mac = `52:54:00:19:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
    const rec = await hosts.register({ name: `metal-${i + 1}`, mac, roles: ['compute'], arch: 'bios' });
    planned.push({ id: rec.id, mac, ip: `127.0.1.${i + 1}` });
  }
  const leases = path.join(dir, 'dnsmasq.leases');
  writeFileSync(leases, planned.map((h) => `0 ${h.mac} ${h.ip} metal *\n`).join(''));

  const view = RegistryView.start(svcNc, log, 1);
  cleanup.add(() => view.stop());
  if (!(await waitFor(() => view.available && planned.every((h) => view.byId(h.id)), 20_000)))
    throw new Error('the metadata service did not see the planned hosts within 20 s');
  const app = buildMetadataApp({
    lookup: view,
    secret: SECRET,
    tokens: new TokenAuthority(SECRET),
    tokenMode: 'optional',
    trustSourceAddress: true,
    domain: 'mammatus',
    availabilityZone: 'dc1a',
    vendorData: () => Promise.resolve(''),
    hosts: natsHostApi(() => svcNc, SEED),
    log,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  cleanup.add(() => app.close());
  const mdBase = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const proxy = buildMetadataProxy({ upstreams: [mdBase], secret: SECRET, macOf: leaseFileLookup(leases), log });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  cleanup.add(() => new Promise((r) => proxy.close(r)));
  const px = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;

  return {
    async boot(i) {
      const h = planned[i];
      // What the host reads from its user-data; read here, untimed, instead of parsing the YAML.
      const secret = (await joins.get(h.id))?.secret;
      if (!secret) throw new Error(`no join secret for ${h.id}`);
      const body = JSON.stringify({ secret, nkey: createUser().getPublicKey(), box: newBoxKeyPair().publicKey });
      const from = h.ip;
      const out: Answer[] = [];
      const step = async (a: Promise<Answer>) => {
        const r = await a;
        if (r.status !== 200) throw new Error(`${STEPS[out.length]} for ${h.mac}: ${r.status} ${r.body.toString().slice(0, 200)}`);
        out.push(r);
        return r;
      };
      await step(request(`${bootBase}/boot.ipxe`, { from }));
      await step(request(`${px}/mammatus/ipxe?boot_url=http://10.88.0.1:8777`, { from }));
      for (const f of ['meta-data', 'user-data', 'vendor-data', 'network-config']) await step(request(`${px}/nocloud/${f}`, { from }));
      const token = await step(
        request(`${px}/latest/api/token`, { method: 'PUT', from, headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } }),
      );
      const joined = await step(
        request(`${px}/mammatus/join`, {
          method: 'POST',
          from,
          body,
          headers: { 'content-type': 'application/json', 'x-aws-ec2-metadata-token': token.body.toString() },
        }),
      );
      const answer = JSON.parse(joined.body.toString()) as { ok?: boolean; error?: string };
      if (!answer.ok) throw new Error(`join of ${h.mac} refused: ${answer.error}`);
      return out;
    },
  };
}
