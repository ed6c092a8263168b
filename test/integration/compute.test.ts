/**
 * The compute role end to end, in network namespaces: the gateway bed (dnsmasq for DHCP/DNS and the
 * metadata proxy, run by the gateway role in-process), the controller host `ctl` (nats-server and
 * the metadata service), and a compute node namespace with its own LXD whose macvlan parent is a
 * veth on the bed's switch. The compute role runs in-process (applied with the framework, then
 * started) and follows the same registry as the metadata service: `ctl`'s NATS, reached from this
 * (root) namespace through a unix-socket bridge, since unix sockets cross network namespaces.
 *
 * `mammatus instance launch` → the role creates and starts the container with its MAC fixed → it
 * gets an address from the gateway's DHCP → the role writes that address back → cloud-init inside
 * reports NoCloud with our user-data applied → the instance reads its id at 169.254.169.254;
 * `mammatus instance delete` → the container and the record are gone.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../agent/cli/program.js';
import { imageImportCommand } from '../../agent/cli/image.js';
import { loadConfig } from '../../agent/config/load.js';
import { createAgent, type Agent } from '../../agent/daemon.js';
import { buildRun } from '../../agent/exec.js';
import { buildFileOps } from '../../agent/files.js';
import { applyRole } from '../../roles/apply.js';
import { buildComputeRole, openComputeRegistry, type ComputeRole } from '../../roles/compute/index.js';
import { LxdClient } from '../../roles/compute/lxd-client.js';
import { buildGatewayRole } from '../../roles/gateway/index.js';
import type { DesiredState, Run } from '../../roles/types.js';
import { BUNDLE } from '../../scripts/lib/mammatus-agent.js';
import { natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { serfAvailable, startSerfAgent, type SerfAgent } from '../../scripts/lib/serf-agent.js';
import { openInstanceFeed } from '../../src/metadata/feed.js';
import { InstanceRegistry } from '../../src/metadata/registry.js';
import { connectNats } from '../../src/nats.js';
import { gatewayEffects } from '../helpers/gateway-ns.js';
import { buildGatewayBed, canUseNetns, missingTools, type GatewayBed } from '../helpers/netns.js';
import { startLxdNode, type LxdNode } from '../roles/compute/lxd-netns.js';

const IMAGE_SCRIPT = path.join(import.meta.dirname, '../../scripts/build-image.sh');
const skip =
  canUseNetns() ??
  missingTools(['lxd', 'lxc', 'unshare', 'busybox', 'curl', 'dig', 'dnsmasq', 'iptables-restore']) ??
  (serfAvailable() ? undefined : 'serf is missing') ??
  (natsServerAvailable() ? undefined : 'nats-server is missing') ??
  (existsSync(BUNDLE) ? undefined : `${BUNDLE} is missing (npm run build)`);
if (skip) console.warn(`compute end-to-end test skipped: ${skip}`);

const SECRET_HEX = 'cd'.repeat(32);
const USER_DATA = '#cloud-config\nruncmd:\n  - [sh, -c, "echo user-data-applied > /run/mammatus-e2e"]\n';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(500);
  }
}

describe.skipIf(Boolean(skip))('compute: launch a container on a compute node, end to end', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-compute-'));
  const p = (name: string) => path.join(tmp, name);
  const logs: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) });
  let bed: GatewayBed;
  let node: LxdNode;
  let serf: SerfAgent;
  let gateway: Agent;
  let compute: ComputeRole;
  let bridge: net.Server;
  let natsUrl = '';
  let registry: InstanceRegistry;
  let nc: Awaited<ReturnType<typeof connectNats>>;
  const cli = async (...argv: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(['--rpc-addr', '127.0.0.1:1', ...argv], { out: (l) => void out.push(l), err: (l) => void err.push(l) }, {});
    return { code, out: out.join('\n'), err: err.join('\n') };
  };

  beforeAll(async () => {
    chmodSync(tmp, 0o755); // dnsmasq drops to nobody
    // Built once and cached (a cache hit answers at once; a build takes minutes).
    const image = execFileSync(IMAGE_SCRIPT, [], { encoding: 'utf8', timeout: 900_000, stdio: ['ignore', 'pipe', 'inherit'] }).trim();
    bed = await buildGatewayBed({ prefix: 'cmp' });
    writeFileSync(p('secret'), `${SECRET_HEX}\n`, { mode: 0o600 });
    // The controller host: nats-server and the metadata service in `ctl`, a unix-socket bridge to it.
    mkdirSync(p('nats'));
    writeFileSync(p('nats.conf'), JSON.stringify({ host: '127.0.0.1', port: 4222, jetstream: { store_dir: p('nats/js') } }));
    bed.spawn('ctl', ['nats-server', '-c', p('nats.conf')]);
    const sock = p('nats.sock');
    const forward = `const net=require('node:net');net.createServer((c)=>{const u=net.connect(4222,'127.0.0.1');c.pipe(u).pipe(c);c.on('error',()=>u.destroy());u.on('error',()=>c.destroy());}).listen(process.argv[1],()=>console.log('listening'));`;
    bed.spawn('ctl', [process.execPath, '-e', forward, sock]);
    await until('the NATS bridge', async () => (existsSync(sock) ? true : undefined), 10_000);
    bridge = net.createServer((c) => {
      const u = net.connect(sock);
      c.pipe(u).pipe(c);
      c.on('error', () => u.destroy());
      u.on('error', () => c.destroy());
    });
    await new Promise<void>((r) => bridge.listen(0, '127.0.0.1', r));
    natsUrl = `nats://127.0.0.1:${(bridge.address() as net.AddressInfo).port}`;
    nc = await until('NATS through the bridge', () => connectNats(natsUrl, { name: 'test', timeoutMs: 2000 }), 20_000);
    registry = await InstanceRegistry.open(nc);
    writeFileSync(p('controller.yaml'), `metadata: { proxy_secret_file: ${JSON.stringify(p('secret'))}, trust_source_address: false }\n`);
    bed.spawn('ctl', [process.execPath, BUNDLE, 'metadata', 'serve', '--nats', 'nats://127.0.0.1:4222', '--listen', '0.0.0.0:8775', '--config', p('controller.yaml')]);
    await until('the metadata service', async () => ((await bed.exec('ctl', ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:8775/healthz'])).stdout === '200' ? true : undefined), 20_000);

    // The gateway, as in gateway-metadata.test.ts, following the same registry.
    serf = await startSerfAgent({ name: 'gw1', dir: p('serf'), tags: { role: 'gateway' } });
    writeFileSync(
      p('agent.yaml'),
      [
        `state_dir: ${p('state')}`,
        `serf: { rpc_addr: "${serf.rpcAddr}" }`,
        'watch_config: false',
        'roles:',
        '  gateway:',
        `    lan: { interface: ${bed.ifaces.gwLan}, address: 10.88.0.1/24 }`,
        `    wan: { interface: ${bed.ifaces.gwWan} }`,
        '    upstream_dns: [203.0.113.1]',
        '    tftp: { enabled: false }',
        '    pxe: { enabled: false }',
        `    metadata: { secret_file: ${JSON.stringify(p('secret'))}, upstreams: ["http://10.88.0.10:8775"] }`,
        `    registry: { nats: ["${natsUrl}"] }`,
        `    paths: { dnsmasq_conf: ${p('dnsmasq.conf')}, hosts_dir: ${p('hosts.d')}, leases: ${p('leases/dnsmasq.leases')}, iptables: ${p('iptables.rules')}, sysctl: ${p('sysctl.conf')}, lease_hook: ${p('lease-hook')}, metadata_proxy: ${p('metadata-proxy.yaml')}, dhcp_hosts_dir: ${p('dhcp-hosts.d')} }`,
      ].join('\n') + '\n',
    );
    const { run, spawn, probe } = gatewayEffects(bed);
    const opts = { path: p('agent.yaml'), env: {} };
    gateway = createAgent({
      loaded: await loadConfig(opts),
      reloadConfig: () => loadConfig(opts),
      log: log.child({ node: 'gw1' }),
      run,
      files: buildFileOps(),
      registry: { gateway: buildGatewayRole({ spawn, probe, mammatus: [process.execPath, [BUNDLE]], instanceFeed: openInstanceFeed }) },
      version: '0.0.0-test',
    });
    await gateway.start();
    await until('the gateway role', async () => (gateway.view.roleStatus().gateway?.state === 'ok' ? true : undefined), 30_000);

    // The compute node: its own LXD in its own namespace; the image imported through our CLI code.
    node = await startLxdNode(bed, p('cn'));
    const imported = await imageImportCommand(image, { alias: 'mammatus-test', lxdSocket: node.socket }, { out: () => undefined, err: (l) => console.error(l) });
    expect(imported).toBe(0);
    const inner = buildRun();
    const run2: Run = (file, args, o) => inner('ip', ['netns', 'exec', node.ns, file, ...args], o);
    compute = buildComputeRole({ instanceFeed: openComputeRegistry, pollMs: 1000 });
    const desired: DesiredState = {
      node: 'cn1',
      members: [],
      config: { parent: node.lan, lxd: { socket: node.socket }, registry: { nats: [natsUrl] }, paths: { preseed: p('compute/preseed.yaml') } },
    };
    const clog = log.child({ node: 'cn1' });
    const report = await applyRole(compute, desired, { run: run2, files: buildFileOps(), log: clog });
    expect(report.ok, report.error).toBe(true);
    await compute.start!({ run: run2, files: buildFileOps(), log: clog, desired, reconcile: () => undefined });
  }, 900_000);

  afterAll(async () => {
    await compute?.stop?.();
    await gateway?.stop();
    await nc?.close().catch(() => undefined);
    await new Promise((r) => (bridge ? bridge.close(r) : r(undefined)));
    await node?.destroy();
    await serf?.stop();
    await bed?.destroy();
    rmSync(tmp, { recursive: true, force: true });
  }, 120_000);

  it('set LXD up from the preseed: pool, profiles, no managed network', async () => {
    expect((await node.lxc(['storage', 'list', '--format', 'csv'])).stdout).toMatch(/^mammatus,dir,/m);
    expect((await node.lxc(['profile', 'device', 'get', 'mammatus', 'eth0', 'parent'])).stdout.trim()).toBe('cn-lan');
    expect((await node.lxc(['network', 'list', '--format', 'csv'])).stdout).not.toMatch(/managed|YES/);
  });

  it('launch → the container runs with its MAC, gets a DHCP address written back, cloud-init applies our user-data, metadata answers its id', async () => {
    writeFileSync(p('user-data'), USER_DATA);
    const launched = await cli('instance', 'launch', 'c1', '--image', 'mammatus-test', '--node', 'cn1', '--user-data', p('user-data'), '--nats', natsUrl);
    expect(launched.code, launched.err).toBe(0);
    const rec = await registry.get('c1');
    const ip = await until('the address in the registry', async () => (await registry.get('c1')).ips[0], 120_000);
    expect(ip).toMatch(/^10\.88\.0\.\d+$/);
    expect((await node.lxc(['config', 'get', 'c1', 'volatile.eth0.hwaddr'])).stdout.trim()).toBe(rec.macs[0]);
    const status = await node.lxc(['exec', 'c1', '--', 'cloud-init', 'status', '--wait', '--long'], 180_000);
    expect(status.stdout).toMatch(/status: done/);
    expect(status.stdout).toMatch(/DataSourceNoCloudNet.*169\.254\.169\.254/);
    expect((await node.lxc(['exec', 'c1', '--', 'cat', '/run/mammatus-e2e'])).stdout.trim()).toBe('user-data-applied');
    const id = await node.lxc(['exec', 'c1', '--', 'curl', '-s', '-m', '5', 'http://169.254.169.254/latest/meta-data/instance-id']);
    expect(id.stdout.trim()).toBe(rec.id);
    const dns = await until('c1.mammatus at the gateway', async () => {
      const r = await bed.dig('c1.mammatus', 'A', bed.addrs.gwLan, 'ctl');
      return r.answers[0] === ip ? r : undefined;
    }, 30_000);
    expect(dns.status).toBe('NOERROR');
  }, 400_000);

  it('stop and start follow the recorded state', async () => {
    expect((await cli('instance', 'stop', 'c1', '--nats', natsUrl)).code).toBe(0);
    await until('c1 stopped', async () => ((await node.lxc(['list', 'c1', '--format', 'csv', '-c', 's'])).stdout.trim() === 'STOPPED' ? true : undefined), 60_000);
    expect((await cli('instance', 'start', 'c1', '--nats', natsUrl)).code).toBe(0);
    await until('c1 running', async () => ((await node.lxc(['list', 'c1', '--format', 'csv', '-c', 's'])).stdout.trim() === 'RUNNING' ? true : undefined), 60_000);
  }, 150_000);

  it('a container the registry does not know is reported and left alone', async () => {
    const lxd = new LxdClient({ socketPath: node.socket });
    await lxd.createInstance({ name: 'stranger', profiles: ['default'], source: { type: 'image', alias: 'mammatus-test' } }).finally(() => lxd.close());
    await until('the report', async () => (compute.report()?.unmanaged.some((u) => u.name === 'stranger') ? true : undefined), 20_000);
    expect((await node.lxc(['list', 'stranger', '--format', 'csv', '-c', 'n'])).stdout.trim()).toBe('stranger');
    expect((await node.lxc(['delete', 'stranger'])).code).toBe(0);
  }, 150_000);

  it('delete → the container and its record are gone, and so is its reservation', async () => {
    expect((await cli('instance', 'delete', 'c1', '--nats', natsUrl)).code).toBe(0);
    await until('the record removed', async () => ((await registry.find('c1')) ? undefined : true), 60_000);
    expect((await node.lxc(['list', '--format', 'csv', '-c', 'n'])).stdout.trim()).toBe('');
    // dnsmasq keeps answering the name from the lease until it expires (gateway-metadata.test.ts).
    await until('the reservation file removed', async () => (existsSync(p('dhcp-hosts.d/c1')) ? undefined : true), 30_000);
  }, 120_000);
});
