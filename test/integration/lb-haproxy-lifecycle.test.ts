/**
 * The gateway's HAProxy lifecycle against the real haproxy 2.6, each case injecting its fault:
 * the workers run as the haproxy user while the agent keeps the sockets; a reload that fails
 * (a port taken) leaves the live set unknown, so the next apply reloads whole; validate with other
 * settings stops nothing, so a refused config leaves the old HAProxy serving; a master left by a
 * killed agent is ended before ours starts; `stop` is bounded with a connection open; and a bind
 * on an address the host does not hold starts (`transparent`), in a network namespace.
 */
import { spawn as spawnChild, spawnSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Run, Spawn } from '../../core/contracts.js';
import type { LbServer, ResolvedBalancer } from '../../core/lb-record.js';
import { findPasswdUser } from '../../core/users.js';
import { buildRun, buildSpawn } from '../../core/exec.js';
import { buildFileOps } from '../../core/files.js';
import { parseGatewayConfig } from '../../roles/gateway/config.js';
import { haproxySettings, masterSocket } from '../../roles/gateway/lb/config.js';
import { GatewayHaproxy } from '../../roles/gateway/lb/gateway-haproxy.js';
import { HaproxyMaster, HaproxyRuntime } from '../../roles/gateway/lb/haproxy-runtime.js';
import { HaproxySupervisor } from '../../roles/gateway/lb/haproxy-supervisor.js';
import { configPath, renderHaproxy } from '../../roles/gateway/lb/render-haproxy.js';
import { userConfigPath } from '../../roles/gateway/lb/render-haproxy-global.js';
import type { ApplyContext } from '../../roles/types.js';
import { canUseNetns } from '../../scripts/lib/netns-bed.js';
import { procIdentity } from '../../scripts/lib/proc.js';
import { findOnPath } from '../../scripts/lib/daemon.js';
import { freePort } from '../../scripts/lib/ports.js';
import { resolvedBalancer } from '../helpers/lb-resolved.js';

const skip = process.getuid?.() !== 0 ? 'needs root' : findOnPath('haproxy') ? undefined : 'haproxy is not installed';
if (skip) console.warn(`lb-haproxy-lifecycle tests skipped: ${skip}`);

const log = pino({ level: process.env.TEST_LOG ?? 'silent' });

/** Running, and not a zombie nobody reaped (PID 1 here may not reap). */
function running(pid: number): boolean {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return st[st.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

/** One GET with Host web.test: the body, or the error. */
function get(port: number, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, headers: { host: 'web.test', connection: 'close' }, agent: false, timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe.skipIf(skip !== undefined)("the gateway's HAProxy lifecycle", () => {
  const dir = mkdtempSync(join(tmpdir(), 'lb-life-'));
  const run = buildRun();
  const files = buildFileOps();
  const gateways: GatewayHaproxy[] = [];
  /** Processes this test started outside a supervisor (the orphan), killed at the end if alive. */
  const ours: number[] = [];
  let spawn: Spawn;
  let app: http.Server;
  let appPort: number;

  beforeAll(async () => {
    spawn = await buildSpawn();
    app = http.createServer((_req, res) => res.end('app'));
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    appPort = (app.address() as net.AddressInfo).port;
  });
  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    for (const pid of ours) if (running(pid)) process.kill(pid, 'SIGKILL');
    app?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const gateway = () => {
    const g = new GatewayHaproxy(spawn);
    gateways.push(g);
    return g;
  };
  const setup = (name: string) => {
    const config = { lb: { dir: join(dir, name, 'etc'), run_dir: join(dir, name, 'run'), bind: ['127.0.0.1'] } };
    return { config, cfg: parseGatewayConfig(config) };
  };
  type Setup = ReturnType<typeof setup>;
  const balancer = (name: string, port: number, servers: LbServer[] = [{ name: 'app', addr: '127.0.0.1', port: appPort }]) =>
    resolvedBalancer(name, port, servers, { hosts: ['web.test'] });

  /** Writes what `balancers` render, as an apply would, and returns that apply's hook context. */
  async function write(s: Setup, balancers: ResolvedBalancer[]): Promise<ApplyContext> {
    const prior = new Map<string, string | undefined>();
    for (const f of renderHaproxy(balancers, haproxySettings(s.cfg.lb))) {
      const before = await files.read(f.path);
      if (before === f.content) continue;
      prior.set(f.path, before);
      await files.write(f.path, f.content, f.mode);
    }
    const desired = { node: 'gw', config: s.config, members: [], balancers };
    return { run, files, log, changed: [...prior.keys()], prior: (p) => prior.get(p), desired };
  }
  async function apply(g: GatewayHaproxy, s: Setup, balancers: ResolvedBalancer[]): Promise<void> {
    const ctx = await write(s, balancers);
    await g.validate(ctx, s.cfg);
    await g.reload(ctx, s.cfg);
    await g.health(ctx, s.cfg);
  }
  const procs = (s: Setup) => new HaproxyMaster(masterSocket(s.cfg.lb)).processes();
  const pidOf = async (s: Setup, type: string) => (await procs(s)).find((p) => p.type === type && p.reloads === 0)!.pid;

  it('the workers run as the haproxy user; the master stays root and the agent keeps both sockets', async (t) => {
    const user = findPasswdUser(readFileSync('/etc/passwd', 'utf8'), 'haproxy');
    if (!user) {
      console.warn("workers-as-haproxy test skipped: no haproxy user (Debian's haproxy package creates it)");
      return t.skip();
    }
    const s = setup('user');
    const port = await freePort();
    const g = gateway();
    await apply(g, s, [balancer('web', port)]);
    expect(await get(port)).toBe('app');
    const worker = procIdentity(await pidOf(s, 'worker'));
    expect(worker.uids).toEqual(Array(4).fill(user.uid));
    expect(worker.gids).toEqual(Array(4).fill(user.gid));
    expect([worker.groups, worker.capEff, worker.capPrm]).toEqual([[], '0000000000000000', '0000000000000000']);
    expect(procIdentity(await pidOf(s, 'master')).uids[0]).toBe(0);
    expect((await new HaproxyRuntime(haproxySettings(s.cfg.lb).adminSocket).info()).Pid).toBe(String(await pidOf(s, 'worker')));
    // Bounded stop with a client connection open: SIGTERM ends the workers at once.
    const client = net.connect(port, '127.0.0.1');
    await new Promise((r) => client.once('connect', r));
    const [master, workerPid] = [await pidOf(s, 'master'), await pidOf(s, 'worker')];
    const started = Date.now();
    await g.stop();
    client.destroy();
    expect(Date.now() - started).toBeLessThan(6000);
    for (let i = 0; i < 50 && running(workerPid); i++) await new Promise((r) => setTimeout(r, 20));
    expect([running(master), running(workerPid)]).toEqual([false, false]);
  });

  it('a reload that fails leaves the live set unknown: the next change from the failed set reloads whole', async () => {
    const s = setup('failed');
    const [port, busyPort] = [await freePort(), await freePort()];
    const g = gateway();
    await apply(g, s, [balancer('web', port)]);
    // The fault: a second balancer on a port another program holds. haproxy -c passes (it binds
    // nothing); the reload's new worker cannot bind, the old worker serves on.
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(busyPort, '127.0.0.1', r));
    const failedSet = [balancer('web', port), balancer('busy', busyPort)];
    const ctx = await write(s, failedSet);
    await g.validate(ctx, s.cfg);
    await expect(g.reload(ctx, s.cfg)).rejects.toThrow(/reload failed|did not come up/);
    expect(await get(port)).toBe('app');
    await new Promise<void>((r) => busy.close(() => r()));
    // A runtime-only change against the failed set: had reload claimed that set live, the new
    // server would go in through the runtime API and the busy frontend would never start.
    const reloads = (await procs(s)).find((p) => p.type === 'master')!.reloads;
    const second = { name: 'app2', addr: '127.0.0.1', port: appPort };
    await apply(g, s, [balancer('web', port), balancer('busy', busyPort, [second])]);
    expect((await procs(s)).find((p) => p.type === 'master')!.reloads).toBe(reloads + 1);
    expect(await get(busyPort)).toBe('app');
    await g.stop();
  });

  it('validate with other settings stops nothing: a refused config leaves the old HAProxy serving; reload switches', async () => {
    const [a, b] = [setup('switch-a'), setup('switch-b')];
    const [portA, portB] = [await freePort(), await freePort()];
    const g = gateway();
    await apply(g, a, [balancer('web', portA)]);
    const masterA = await pidOf(a, 'master');
    // Two servers of one name: only haproxy -c refuses it.
    const dup = [1, 2].map(() => ({ name: 'dup', addr: '127.0.0.1', port: appPort }));
    await expect(g.validate(await write(b, [balancer('web', portB, dup)]), b.cfg)).rejects.toThrow(/haproxy -c refused/);
    expect(running(masterA)).toBe(true);
    expect(await get(portA)).toBe('app');
    await apply(g, b, [balancer('web', portB)]);
    expect(await get(portB)).toBe('app');
    expect(running(masterA)).toBe(false);
    await expect(get(portA)).rejects.toThrow();
    await g.stop();
  });

  it('a master left by a killed agent (still holding the ports) is ended before ours starts', async () => {
    const s = setup('orphan');
    const port = await freePort();
    const settings = haproxySettings(s.cfg.lb);
    await write(s, [balancer('web', port)]);
    const sup = new HaproxySupervisor({ spawn, run, files, log, settings, masterSocket: masterSocket(s.cfg.lb) });
    await sup.prepare();
    // What the agent before this one started, as it started it; that agent is gone (SIGKILL).
    const argv = ['-W', '-S', `${masterSocket(s.cfg.lb)},mode,600`, '-f', userConfigPath(settings), '-f', configPath(settings)];
    const orphan = spawnChild('haproxy', argv, { detached: true, stdio: 'ignore' });
    ours.push(orphan.pid!);
    orphan.unref();
    for (let i = 0; i < 100 && !(await get(port).catch(() => '')); i++) await new Promise((r) => setTimeout(r, 50));
    const before = (await procs(s)).map((p) => p.pid);
    ours.push(...before);
    const g = gateway();
    await g.start({ run, files, log, desired: { node: 'gw', config: s.config, members: [], balancers: [] } }, s.cfg);
    const master = await pidOf(s, 'master');
    expect(before).not.toContain(master);
    expect(before.filter(running)).toEqual([]);
    expect(await get(port)).toBe('app');
    await g.stop();
  });
});

const noNetns = skip ?? canUseNetns();
describe.skipIf(noNetns !== undefined)('a bind on an address the gateway does not hold', () => {
  const ns = `lbt-${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), 'lb-transparent-'));
  const ip = (...args: string[]) => spawnSync('ip', args, { stdio: 'pipe', encoding: 'utf8' });
  beforeAll(() => {
    ip('netns', 'add', ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    // Routed to the namespace, not held by it: what a provider's extra address looks like.
    ip('-n', ns, 'route', 'add', '198.51.100.0/24', 'dev', 'lo');
  });
  afterAll(() => {
    ip('netns', 'del', ns);
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts with transparent; the same bind without it is refused', async () => {
    const config = { lb: { dir: join(dir, 'etc'), run_dir: join(dir, 'run') } };
    const cfg = parseGatewayConfig(config);
    const settings = haproxySettings(cfg.lb);
    const files = buildFileOps();
    const app = [{ name: 'app', addr: '127.0.0.1', port: 9 }];
    const lb = resolvedBalancer('web', 8080, app, { listen: { port: 8080, addr: '198.51.100.7' }, mode: 'tcp', hosts: [] });
    for (const f of renderHaproxy([lb], settings)) await files.write(f.path, f.content, f.mode);
    expect(readFileSync(configPath(settings), 'utf8')).toContain('bind 198.51.100.7:8080 transparent');
    // HAProxy inside the namespace; its sockets are files, reachable from here.
    const inNs = (file: string, args: readonly string[]): [string, string[]] => ['ip', ['netns', 'exec', ns, file, ...args]];
    const real = await buildSpawn();
    const realRun = buildRun();
    const nsSpawn: Spawn = (file, args, opts) => real(...inNs(file, args), opts);
    const nsRun: Run = (file, args, opts) => (file === 'haproxy' ? realRun(...inNs(file, args), opts) : realRun(file, args, opts));
    const sup = new HaproxySupervisor({ spawn: nsSpawn, run: nsRun, files, log, settings, masterSocket: masterSocket(cfg.lb) });
    try {
      await sup.validate();
      await sup.ensureRunning();
      await sup.health();
    } finally {
      await sup.stop();
    }
    const plain = join(dir, 'plain.cfg');
    writeFileSync(
      plain,
      readFileSync(configPath(settings), 'utf8').replace(' transparent', '').replace(settings.adminSocket, join(dir, 'plain.sock')),
    );
    const r = spawnSync('ip', ['netns', 'exec', ns, 'haproxy', '-db', '-f', plain], { encoding: 'utf8', timeout: 5000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/cannot bind socket \(Cannot assign requested address\) for \[198\.51\.100\.7:8080\]/);
  });
});
