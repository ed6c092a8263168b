/**
 * The gateway serving the registry's load balancers, as the lb tests and `bench/lb.ts` run it
 * (issue 21): a real nats-server holds the instance registry and the `mammatus-lb` bucket (what the
 * controllers serve); the gateway agent runs in this process with a real serf agent, follows them
 * with its own gateway credentials and runs the real HAProxy in the gateway namespace of a netns
 * bed (netns-bed.ts). Backends are busybox httpd on extra LAN addresses of `ctl`, each answering its
 * name; clients sit on the WAN side (`up`) and reach the gateway's WAN address.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { runCli } from '../../agent/cli/program.js';
import type { Agent } from '../../agent/daemon.js';
import { connectNats } from '../../core/nats.js';
import { HaproxyMaster } from '../../roles/gateway/lb/haproxy-runtime.js';
import { openLbFeed } from '../../src/lb/feed.js';
import { openLbHealthSink } from '../../src/lb/health.js';
import { InstanceRegistry } from '../../src/registry/registry.js';
import { findOnPath } from './daemon.js';
import { bedGatewayYaml, startBedGatewayAgent } from './gateway-ns.js';
import { natsServerAvailable, startNatsServer, type NatsServer } from './nats-server.js';
import { buildGatewayBed, canUseNetns, missingTools, type BedProcess, type GatewayBed } from './netns-bed.js';
import { serfAvailable, startSerfAgent, type SerfAgent } from './serf-agent.js';
import { until } from './wait.js';

/** Why the bed cannot run here (root, netns, haproxy, serf, nats-server, tools), or undefined. */
export function lbGatewaySkip(): string | undefined {
  return (
    canUseNetns() ??
    missingTools(['busybox', 'dig', 'curl', 'dnsmasq', 'iptables-restore', 'haproxy']) ??
    (serfAvailable() ? undefined : 'serf is missing') ??
    (natsServerAvailable() ? undefined : 'nats-server is missing') ??
    (findOnPath('openssl') ? undefined : 'openssl is missing')
  );
}

/** Options of `startLbGateway`. */
export interface LbGatewayOptions {
  /** Netns prefix (1-8 of [a-z0-9]). */
  readonly prefix: string;
  /** Backends to start: name → LAN address (10.88.0.x, not .1 or .10); each answers `<name>\n` on :8080. */
  readonly backends: Readonly<Record<string, string>>;
  /** Tags of the backends registered as running instances (a backend without tags is registered, not running). */
  readonly tags?: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** The feed's quiet period; undefined = the product's default (what the bench measures). */
  readonly debounceMs?: number;
  /** Addresses HAProxy binds (default: the gateway's WAN address). */
  readonly bind?: readonly string[];
  /** Called each time the agent's balancer feed reports a change (the benchmark times it). */
  readonly onFeedChange?: () => void;
  /** Agent log level (default debug: the tests print the warnings on failure). */
  readonly logLevel?: string;
}

/** A running bed (see the header). Every process and namespace goes with `destroy`. */
export interface LbGateway {
  readonly bed: GatewayBed;
  readonly nats: NatsServer;
  readonly registry: InstanceRegistry;
  /** The agent started last. */
  readonly agent: Agent;
  /** HAProxy's master socket. */
  readonly master: HaproxyMaster;
  /** HAProxy's admin socket (the worker's runtime API). */
  readonly adminSocket: string;
  /** A path in the bed's temp directory. */
  p(name: string): string;
  /** The agent's log lines as pino wrote them (`time` in epoch ms). */
  readonly logs: Record<string, unknown>[];
  /** The last warnings and errors, for a failure message. */
  errors(): string;
  /** The real `mammatus` CLI against the bed's nats-server with the test's credentials. */
  cli(...args: string[]): Promise<{ code: number; out: string }>;
  /** Marks an instance running with these tags (an observed status, as the compute role writes it). */
  running(name: string, tags: Record<string, string>): Promise<unknown>;
  /** Starts busybox httpd for `name` on `ip`:8080 (adding the address to `ctl` once). */
  startBackend(name: string, ip: string): Promise<BedProcess>;
  /** The httpd of each backend started. */
  readonly backends: Map<string, BedProcess>;
  /** Starts (again) the gateway agent and waits for its first good apply. */
  startAgent(): Promise<void>;
  /** Stops nats-server (and the test's connection) now; `destroy` then leaves it. */
  stopNats(): Promise<void>;
  destroy(): Promise<void>;
}

/** Starts the bed, the backends, nats-server, serf and the gateway agent (see the header). */
export async function startLbGateway(opts: LbGatewayOptions): Promise<LbGateway> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), `mammatus-${opts.prefix}-`));
  chmodSync(tmp, 0o755);
  const p = (name: string) => path.join(tmp, name);
  const logs: Record<string, unknown>[] = [];
  const backends = new Map<string, BedProcess>();
  let bed: GatewayBed | undefined;
  let serf: SerfAgent | undefined;
  let nats: NatsServer | undefined;
  let agent: Agent | undefined;
  let closeNats: (() => Promise<void>) | undefined;
  const destroy = async () => {
    await agent?.stop();
    await serf?.stop();
    await bed?.destroy();
    await closeNats?.();
    await nats?.stop();
    rmSync(tmp, { recursive: true, force: true });
  };
  try {
    nats = await startNatsServer({ name: opts.prefix, dir: p('nats') });
    const natsUrl = nats.url;
    const gatewayCredentials = await nats.admit('gw1', ['gateway']);
    const nc = await connectNats(nats.url, { name: 'lb-bed', credentials: nats.credentials });
    closeNats = () => nc.close();
    const registry = await InstanceRegistry.open(nc);
    const running = (name: string, tags: Record<string, string>) =>
      registry.update(name, (r) => ({ ...r, tags, state: 'running', observed: { status: 'running', at: new Date().toISOString() } }));
    let mac = 0x10;
    for (const [name, ip] of Object.entries(opts.backends)) {
      await registry.register({ name, macs: [`02:00:00:00:21:${(mac++).toString(16)}`], ips: [ip] });
      const tags = opts.tags?.[name];
      if (tags) await running(name, { ...tags });
    }

    const gwBed = (bed = await buildGatewayBed({ prefix: opts.prefix }));
    await gwBed.startUpstream();
    const addressed = new Set<string>();
    const startBackend = async (name: string, ip: string) => {
      const www = p(`www-${name}`);
      mkdirSync(www, { recursive: true });
      writeFileSync(path.join(www, 'index.html'), `${name}\n`);
      if (!addressed.has(ip)) await gwBed.exec('ctl', ['ip', 'addr', 'add', `${ip}/24`, 'dev', gwBed.ifaces.ctlLan]);
      addressed.add(ip);
      const proc = gwBed.spawn('ctl', ['busybox', 'httpd', '-f', '-p', `${ip}:8080`, '-h', www]);
      backends.set(name, proc);
      await until(
        `backend ${name} answers`,
        async () => (await gwBed.curl('ctl', `http://${ip}:8080/`, { timeoutS: 1 })).status === 200,
        5000,
      );
      return proc;
    };
    for (const [name, ip] of Object.entries(opts.backends)) await startBackend(name, ip);

    serf = await startSerfAgent({ name: 'gw1', dir: p('serf'), tags: { role: 'gateway' } });
    const configPath = p('agent.yaml');
    const bind = opts.bind ?? [gwBed.addrs.gwWan];
    writeFileSync(
      configPath,
      bedGatewayYaml(gwBed, tmp, serf.rpcAddr, [
        '    tftp: { enabled: false }',
        '    pxe: { enabled: false }',
        `    registry: { nats: ["${natsUrl}"] }`,
        `    lb: { dir: ${p('haproxy')}, run_dir: ${p('run')}, bind: [${bind.join(', ')}] }`,
      ]),
    );
    const feedOptions = { credentials: gatewayCredentials, ...(opts.debounceMs === undefined ? {} : { debounceMs: opts.debounceMs }) };
    const log = pino(
      { level: opts.logLevel ?? 'debug' },
      { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) },
    );
    const startAgent = async () => {
      agent = await startBedGatewayAgent(gwBed, configPath, log, {
        // With the gateway's own credentials: the bucket must be readable by a gateway.
        lbFeed: (servers, onChange, l) => {
          const changed = opts.onFeedChange ? () => (opts.onFeedChange?.(), onChange()) : onChange;
          return openLbFeed(servers, changed, l, feedOptions);
        },
        lbHealth: (servers, l) => openLbHealthSink(servers, l, { node: 'gw1', credentials: gatewayCredentials }),
      });
      await until('the gateway applied', () => agent?.view.roleStatus().gateway?.state === 'ok', 20_000);
    };
    await startAgent();

    const credentialsFile = nats.credentialsFile;
    return {
      bed: gwBed,
      nats,
      registry,
      get agent() {
        if (!agent) throw new Error('no agent started');
        return agent;
      },
      master: new HaproxyMaster(p('run/master.sock')),
      adminSocket: p('run/admin.sock'),
      p,
      logs,
      errors: () => JSON.stringify(logs.filter((l) => Number(l.level) >= 40).slice(-8)),
      async cli(...args: string[]) {
        const out: string[] = [];
        const io = { out: (l: string) => out.push(l), err: (l: string) => out.push(l) };
        const code = await runCli(['--credentials', credentialsFile, ...args, '--nats', natsUrl], io, {});
        return { code, out: out.join('\n') };
      },
      running,
      startBackend,
      backends,
      startAgent,
      async stopNats() {
        const [close, server] = [closeNats, nats];
        closeNats = undefined;
        nats = undefined;
        await close?.();
        await server?.stop();
      },
      destroy,
    };
  } catch (err) {
    await destroy();
    throw err;
  }
}
