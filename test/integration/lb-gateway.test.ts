/**
 * The gateway serving the registry's load balancers end to end (issue 21): a real nats-server
 * holds the instance registry and the `mammatus-lb` bucket (what the controllers serve), written
 * by the real `mammatus lb` and the registry API; the gateway agent (in-process, real serf) follows
 * them with its own gateway credentials and runs the real HAProxy in the gateway namespace of a
 * netns bed. Backends are busybox httpd on extra LAN addresses of `ctl`; the client is `up`, on
 * the WAN side, reaching the gateway's WAN address.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../agent/config/load.js';
import { runCli } from '../../agent/cli/program.js';
import { createAgent, type Agent } from '../../agent/daemon.js';
import { buildFileOps } from '../../core/files.js';
import { connectNats } from '../../core/nats.js';
import { buildStatus, STATUS_MAX_BYTES } from '../../handlers/status.js';
import { buildGatewayRole } from '../../roles/gateway/index.js';
import { openLbHealthSink } from '../../src/lb/health.js';
import { HaproxyMaster } from '../../roles/gateway/lb/haproxy-runtime.js';
import { openLbFeed } from '../../src/lb/feed.js';
import { InstanceRegistry } from '../../src/registry/registry.js';
import { findOnPath } from '../../scripts/lib/daemon.js';
import { gatewayEffects } from '../../scripts/lib/gateway-ns.js';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../scripts/lib/nats-server.js';
import { buildGatewayBed, canUseNetns, missingTools, type GatewayBed } from '../../scripts/lib/netns-bed.js';
import { serfAvailable, startSerfAgent, type SerfAgent } from '../../scripts/lib/serf-agent.js';
import { until } from '../../scripts/lib/wait.js';

const skip =
  canUseNetns() ??
  missingTools(['busybox', 'dig', 'curl', 'dnsmasq', 'iptables-restore', 'haproxy']) ??
  (serfAvailable() ? undefined : 'serf is missing') ??
  (natsServerAvailable() ? undefined : 'nats-server is missing') ??
  (findOnPath('openssl') ? undefined : 'openssl is missing');
if (skip) console.warn(`lb-gateway tests skipped: ${skip}`);

/** The backends: an instance each, on its own LAN address of `ctl`, answering its name. */
const BACKENDS = { a1: '10.88.0.11', b1: '10.88.0.12', b2: '10.88.0.13' } as const;

describe.skipIf(Boolean(skip))('the gateway serving load balancers from the registry', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-lbgw-'));
  const p = (name: string) => path.join(tmp, name);
  let bed: GatewayBed;
  let serf: SerfAgent;
  let nats: NatsServer;
  let agent: Agent;
  let registry: InstanceRegistry;
  let closeNats: () => Promise<void> = () => Promise.resolve();
  let startAgent: () => Promise<void>;
  let natsDown = false;
  const logs: Record<string, unknown>[] = [];
  const master = new HaproxyMaster(p('run/master.sock'));
  const errors = () => JSON.stringify(logs.filter((l) => Number(l.level) >= 40).slice(-8));

  const cli = async (...args: string[]): Promise<{ code: number; out: string }> => {
    const out: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => out.push(l) };
    const code = await runCli(['--credentials', nats.credentialsFile, ...args, '--nats', nats.url], io, {});
    return { code, out: out.join('\n') };
  };
  /** One GET from the WAN client to the gateway's WAN address on port 80, with this Host. */
  const get = async (host: string) => {
    const r = await bed.curl('up', `http://${bed.addrs.gwWan}/`, { timeoutS: 3, args: ['-H', `Host: ${host}`] });
    return `${r.status} ${r.body.trim()}`;
  };
  /** The bodies `n` requests for `host` got. */
  const spread = async (host: string, n = 6) => {
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) seen.add(await get(host));
    return [...seen].sort();
  };
  const reloads = async () => (await master.processes()).find((x) => x.type === 'master')?.reloads;
  const running = async (name: string, tags: Record<string, string>) =>
    registry.update(name, (r) => ({ ...r, tags, state: 'running', observed: { status: 'running', at: new Date().toISOString() } }));

  beforeAll(async () => {
    chmodSync(tmp, 0o755);
    nats = await startNatsServer({ name: 'lbgw', dir: p('nats') });
    const gatewayCredentials = await nats.admit('gw1', ['gateway']);
    const nc = await connectNats(nats.url, { name: 'test', credentials: nats.credentials });
    closeNats = () => nc.close();
    registry = await InstanceRegistry.open(nc);
    let mac = 0x10;
    for (const [name, ip] of Object.entries(BACKENDS)) {
      await registry.register({ name, macs: [`02:00:00:00:21:${(mac++).toString(16)}`], ips: [ip] });
    }
    await running('a1', { app: 'a' });
    await running('b1', { app: 'b' });
    await running('b2', { app: 'spare' });

    bed = await buildGatewayBed({ prefix: 'lbg' });
    await bed.startUpstream();
    for (const [name, ip] of Object.entries(BACKENDS)) {
      const www = p(`www-${name}`);
      mkdirSync(www);
      writeFileSync(path.join(www, 'index.html'), `${name}\n`);
      await bed.exec('ctl', ['ip', 'addr', 'add', `${ip}/24`, 'dev', bed.ifaces.ctlLan]);
      bed.spawn('ctl', ['busybox', 'httpd', '-f', '-p', `${ip}:8080`, '-h', www]);
    }
    serf = await startSerfAgent({ name: 'gw1', dir: p('serf'), tags: { role: 'gateway' } });
    const configPath = p('agent.yaml');
    writeFileSync(
      configPath,
      [
        `state_dir: ${p('state')}`,
        `serf: { rpc_addr: "${serf.rpcAddr}" }`,
        'watch_config: false',
        'roles:',
        '  gateway:',
        `    lan: { interface: ${bed.ifaces.gwLan}, address: 10.88.0.1/24 }`,
        `    wan: { interface: ${bed.ifaces.gwWan} }`,
        '    upstream_dns: [203.0.113.1]',
        '    pxe: { enabled: false }',
        '    tftp: { enabled: false }',
        `    registry: { nats: ["${nats.url}"] }`,
        // Bound on the WAN address only: the test also shows the default wildcard is not needed.
        `    lb: { dir: ${p('haproxy')}, run_dir: ${p('run')}, bind: [${bed.addrs.gwWan}] }`,
        `    paths: { dnsmasq_conf: ${p('dnsmasq.conf')}, hosts_dir: ${p('hosts.d')}, leases: ${p('leases/dnsmasq.leases')}, iptables: ${p('iptables.rules')}, sysctl: ${p('sysctl.conf')}, lease_hook: ${p('lease-hook')}, dhcp_hosts_dir: ${p('dhcp-hosts.d')}, members: ${p('members')}, left_out: ${p('left-out')} }`,
      ].join('\n') + '\n',
    );
    const { run, spawn, probe } = await gatewayEffects(bed);
    const opts = { path: configPath, env: {} };
    startAgent = async () => {
      agent = createAgent({
        loaded: await loadConfig(opts),
        reloadConfig: () => loadConfig(opts),
        log: pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) }),
        run,
        files: buildFileOps(),
        roles: {
          gateway: buildGatewayRole({
            spawn,
            probe,
            // With the gateway's own credentials: the bucket must be readable by a gateway.
            lbFeed: (servers, onChange, log) => openLbFeed(servers, onChange, log, { credentials: gatewayCredentials, debounceMs: 50 }),
            // Target health, written with the gateway's credentials under its own name.
            lbHealth: (servers, log) => openLbHealthSink(servers, log, { node: 'gw1', credentials: gatewayCredentials }),
          }),
        },
        version: '0.0.0-test',
      });
      await agent.start();
      await until('the gateway applied', () => agent.view.roleStatus().gateway?.state === 'ok', 20_000);
    };
    await startAgent();
  }, 90_000);

  afterAll(async () => {
    await agent?.stop();
    await serf?.stop();
    await bed?.destroy();
    if (!natsDown) await closeNats();
    if (!natsDown) await nats?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('lb create: two host names on one WAN port reach two backends in the LAN', async () => {
    expect(existsSync(p('haproxy/haproxy.cfg'))).toBe(false);
    expect(
      await cli('lb', 'create', 'web', '--listen', '80', '--mode', 'http', '--host', 'web.test', '--target', 'tag:app=a:8080'),
    ).toMatchObject({ code: 0 });
    expect(
      await cli('lb', 'create', 'api', '--listen', '80', '--mode', 'http', '--host', 'api.test', '--target', 'tag:app=b:8080'),
    ).toMatchObject({ code: 0 });
    await until(`web.test served (${errors()})`, async () => (await get('web.test')) === '200 a1', 20_000);
    await until('api.test served', async () => (await get('api.test')) === '200 b1', 10_000);
    expect(await get('nobody.test')).toBe('503 no such service');
    // Exactly the listen port, from the WAN side.
    const input = (await bed.exec('gw', ['iptables', '-S', 'INPUT'])).stdout;
    expect(input.match(new RegExp(`^-A INPUT -i ${bed.ifaces.gwWan} .*$`, 'gm'))).toEqual([
      `-A INPUT -i ${bed.ifaces.gwWan} -p tcp -m tcp --dport 80 -j ACCEPT`,
    ]);
    // Not reachable from the LAN side: the firewall opens the port on the WAN interface only.
    const fromLan = await bed.curl('ctl', `http://${bed.addrs.gwWan}/`, { timeoutS: 2, args: ['-H', 'Host: web.test'] });
    expect(fromLan.status).toBe(0);
  }, 60_000);

  it('an instance that gets the selected tag takes traffic without a reload; status counts it', async () => {
    const before = await reloads();
    await running('b2', { app: 'b' });
    await until('b2 in the api spread', async () => (await spread('api.test')).includes('200 b2'), 15_000);
    expect(await spread('api.test', 8)).toEqual(['200 b1', '200 b2']);
    expect(await reloads()).toBe(before);
    // The status detail, asked until HAProxy's state was read (at most every 2 s).
    const detail = await until('status detail', () => {
      const d = agent.view.roleStatus().gateway?.detail;
      return d?.startsWith('2 balancers, 3/3 targets up') ? d : undefined;
    });
    expect(detail).toBe('2 balancers, 3/3 targets up');
    expect(Buffer.byteLength(JSON.stringify(buildStatus(agent.view)))).toBeLessThanOrEqual(STATUS_MAX_BYTES);
    // The same from the controller side: the gateway's reports in `lb list` and `lb show`.
    await until('lb list shows health', async () => /^api\s.*\s2\/2 up$/m.test((await cli('lb', 'list')).out), 15_000);
    expect((await cli('lb', 'list')).out).toMatch(/^web\s.*\s1\/1 up$/m);
    expect((await cli('lb', 'show', 'api')).out).toMatch(/^ {2}gateway gw1: 2\/2 up, reported \d+s ago$/m);
  }, 40_000);

  it('refuses a balancer on a port the gateway uses, keeping the last good HAProxy config running', async () => {
    const cfg = readFileSync(p('haproxy/haproxy.cfg'), 'utf8');
    // The CLI refuses the well-known ones (ssh, DNS...); the metadata proxy's port is the gateway's setting.
    const created = await cli('lb', 'create', 'mdp', '--listen', '8776', '--mode', 'tcp', '--target', 'tag:app=a:8080');
    expect(created, created.out).toMatchObject({ code: 0 });
    const status = await until('the refusal in the status', () => {
      const s = agent.view.roleStatus().gateway;
      return s?.state === 'error' ? s : undefined;
    });
    expect(status.error).toBe("render: balancer mdp: port 8776 is the gateway's metadata proxy (metadata.proxy_port)");
    expect(readFileSync(p('haproxy/haproxy.cfg'), 'utf8')).toBe(cfg);
    expect(await get('web.test')).toBe('200 a1');
    // dnsmasq goes on: the refusal stopped the gateway's apply at render, nothing else.
    expect((await bed.dig('gateway.mammatus', 'A', bed.addrs.gwLan, 'ctl')).answers).toEqual([bed.addrs.gwLan]);
    expect(await cli('lb', 'rm', 'mdp')).toMatchObject({ code: 0 });
    await until('ok again', () => agent.view.roleStatus().gateway?.state === 'ok', 15_000);
  }, 40_000);

  it('lb rm stops routing; the last one stops HAProxy, removes its files and closes the port', async () => {
    expect(await cli('lb', 'rm', 'api')).toMatchObject({ code: 0 });
    await until('api.test gone', async () => (await get('api.test')) === '503 no such service', 15_000);
    expect(await get('web.test')).toBe('200 a1');
    expect(await cli('lb', 'rm', 'web')).toMatchObject({ code: 0 });
    await until('haproxy files gone', () => !existsSync(p('haproxy/haproxy.cfg')), 15_000);
    // The files go before the reload hook stops HAProxy (the same apply).
    await until('port 80 closed', async () => (await get('web.test')).startsWith('0 '), 10_000);
    expect((await bed.exec('gw', ['iptables', '-S', 'INPUT'])).stdout).not.toContain('--dport 80');
    expect((await bed.exec('gw', ['pgrep', '-x', 'haproxy'])).code).not.toBe(0);
    expect(agent.view.roleStatus().gateway).toMatchObject({ state: 'ok' });
  }, 40_000);

  it('an agent restarted while the controllers are down serves the balancers it had', async () => {
    expect(
      await cli('lb', 'create', 'web', '--listen', '80', '--mode', 'http', '--host', 'web.test', '--target', 'tag:app=a:8080'),
    ).toMatchObject({ code: 0 });
    await until('web.test served again', async () => (await get('web.test')) === '200 a1', 15_000);
    await agent.stop();
    expect(await get('web.test')).toMatch(/^0 /);
    natsDown = true;
    await closeNats();
    await nats.stop();
    await startAgent();
    // From the copy beside HAProxy's files: no feed has read anything, the controllers are gone.
    await until('web.test served after the restart', async () => (await get('web.test')) === '200 a1', 15_000);
    expect((await bed.exec('gw', ['iptables', '-S', 'INPUT'])).stdout).toContain('--dport 80');
  }, 60_000);
});
