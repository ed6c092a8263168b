/**
 * The metadata path in a gateway test bed, shared by the tests that need it: a controller host in
 * `ctl` (nats-server and `mammatus metadata serve`), reachable from this (root) namespace through a
 * unix-socket bridge — unix sockets cross network namespaces — so in-process roles follow the very
 * registry the service reads; and a gateway agent running in-process, its role acting in `gw`, with
 * the metadata proxy pointed at `ctl` and the registry feed on the bridge.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { pino } from 'pino';
import net from 'node:net';
import path from 'node:path';
import type { Agent } from '../../agent/daemon.js';
import type { Logger } from '../../core/contracts.js';
import { BUNDLE } from './mammatus-agent.js';
import { startSerfAgent, type SerfAgent } from './serf-agent.js';
import { openInstanceFeed } from '../../src/registry/gateway-feed.js';
import { bedGatewayYaml, startBedGatewayAgent } from './gateway-ns.js';
import type { GatewayBed } from './netns-bed.js';
import { until } from './wait.js';
import { TestTrust } from './nats-server.js';
import type { NodeCredentials } from '../../core/trust.js';
import { connectNats } from '../../core/nats.js';
import { serveNodeWrites } from '../../src/registry/node-writes.js';
import { InstanceRegistry } from '../../src/registry/registry.js';

/** The controller host in `ctl`. */
export interface ControllerHost extends AsyncDisposable {
  /** `nats://127.0.0.1:PORT`: ctl's nats-server, through the bridge, from the root namespace. */
  readonly natsUrl: string;
  /** The cluster secret file the service and the gateway's proxy share. */
  readonly secretFile: string;
  /** The authority; its `admin` is what tests connect with. Admitted up front: gw1 (gateway), cn1 (compute). */
  readonly trust: TestTrust;
  readonly credentials: NodeCredentials;
  readonly credentialsFile: string;
  /** The credentials of a node admitted up front. */
  node(name: 'gw1' | 'cn1'): NodeCredentials;
  close(): Promise<void>;
}

/** Starts nats-server, the bridge and the metadata service (trusting signed callers only) in `ctl`. */
export async function startControllerHost(bed: GatewayBed, dir: string): Promise<ControllerHost> {
  mkdirSync(dir, { recursive: true });
  const secretFile = path.join(dir, 'secret');
  writeFileSync(secretFile, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
  mkdirSync(path.join(dir, 'nats'), { recursive: true });
  const trust = new TestTrust();
  const admitted = { gw1: trust.mint('gw1', ['gateway']), cn1: trust.mint('cn1', ['compute']) };
  const credentialsFile = await trust.writeCredentials(trust.admin, path.join(dir, 'admin.creds.json'));
  writeFileSync(
    path.join(dir, 'nats.conf'),
    JSON.stringify({
      host: '127.0.0.1',
      port: 4222,
      jetstream: { store_dir: path.join(dir, 'nats/js') },
      authorization: trust.authorization(),
    }),
    { mode: 0o600 },
  );
  bed.spawn('ctl', ['nats-server', '-c', path.join(dir, 'nats.conf')]);
  const sock = path.join(dir, 'nats.sock');
  const forward = `const net=require('node:net');net.createServer((c)=>{const u=net.connect(4222,'127.0.0.1');c.pipe(u).pipe(c);c.on('error',()=>u.destroy());u.on('error',()=>c.destroy());}).listen(process.argv[1]);`;
  bed.spawn('ctl', [process.execPath, '-e', forward, sock]);
  await until('the NATS bridge', () => existsSync(sock), 10_000);
  const bridge = net.createServer((c) => {
    const u = net.connect(sock);
    c.pipe(u).pipe(c);
    c.on('error', () => u.destroy());
    u.on('error', () => c.destroy());
  });
  await new Promise<void>((r) => bridge.listen(0, '127.0.0.1', r));
  const conf = path.join(dir, 'controller.yaml');
  writeFileSync(conf, `metadata: { proxy_secret_file: ${JSON.stringify(secretFile)}, trust_source_address: false }\n`);
  bed.spawn('ctl', [
    process.execPath,
    BUNDLE,
    '--credentials',
    credentialsFile,
    'metadata',
    'serve',
    '--nats',
    'nats://127.0.0.1:4222',
    '--listen',
    '0.0.0.0:8775',
    '--config',
    conf,
  ]);
  const healthz = ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:8775/healthz'];
  await until('the metadata service', async () => (await bed.exec('ctl', healthz)).stdout === '200', 20_000);
  const natsUrl = `nats://127.0.0.1:${(bridge.address() as net.AddressInfo).port}`;
  // The controllers' write API for compute nodes, as a controller hosts it.
  const nc = await connectNats(natsUrl, { name: 'bed-registry-writes', persistent: true, credentials: trust.admin });
  serveNodeWrites(nc, () => InstanceRegistry.open(nc), pino({ level: 'silent' }));
  return {
    /** Stops it when a test's `await using` scope ends. */
    [Symbol.asyncDispose](this: ControllerHost) {
      return this.close();
    },
    natsUrl,
    secretFile,
    trust,
    credentials: trust.admin,
    credentialsFile,
    node: (name) => admitted[name],
    close: async () => {
      await nc.close().catch(() => undefined);
      await new Promise<void>((r) => bridge.close(() => r()));
    },
  };
}

/** A running in-process gateway agent and its serf agent. */
export interface BedGateway extends AsyncDisposable {
  readonly agent: Agent;
  readonly serf: SerfAgent;
  stop(): Promise<void>;
}

/** Starts serf `gw1` and a gateway agent (DHCP without PXE/TFTP, the proxy, the registry feed). */
export async function startBedGateway(bed: GatewayBed, dir: string, host: ControllerHost, log: Logger): Promise<BedGateway> {
  const p = (name: string) => path.join(dir, name);
  const serf = await startSerfAgent({ name: 'gw1', dir: p('serf'), tags: { role: 'gateway' } });
  writeFileSync(
    p('agent.yaml'),
    bedGatewayYaml(
      bed,
      dir,
      serf.rpcAddr,
      [
        '    tftp: { enabled: false }',
        '    pxe: { enabled: false }',
        `    metadata: { secret_file: ${JSON.stringify(host.secretFile)}, upstreams: ["http://10.88.0.10:8775"] }`,
        `    registry: { nats: ["${host.natsUrl}"] }`,
      ],
      { metadata_proxy: p('metadata-proxy.yaml') },
    ),
  );
  const agent = await startBedGatewayAgent(bed, p('agent.yaml'), log, {
    mammatus: [process.execPath, [BUNDLE]],
    instanceFeed: (servers, onChange, l) => openInstanceFeed(servers, onChange, l, host.node('gw1')),
  });
  await until('the gateway role', () => agent.view.roleStatus().gateway?.state === 'ok', 30_000).catch(() => undefined);
  return {
    /** Stops it when a test's `await using` scope ends. */
    [Symbol.asyncDispose](this: BedGateway) {
      return this.stop();
    },
    agent,
    serf,
    async stop() {
      await agent.stop();
      await serf.stop();
    },
  };
}
