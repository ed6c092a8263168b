/**
 * The gateway's HAProxy end to end (issue 21), with the real haproxy 2.6 on loopback high ports and
 * tiny node backends in this process: two HTTP applications on one port by Host, a TCP balancer, a
 * backend killed and taken out by its health check, then back; a server added through the runtime
 * API taking traffic without a reload; a bad balancer refused with the running config untouched;
 * and no request lost while servers are added and removed and the config is reloaded.
 * Applies go through the roles' own transaction (roles/apply.ts) with a test-sized role.
 */
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LbServer, LoadBalancerRecord, ResolvedBalancer } from '../../core/lb-record.js';
import { buildRun, buildSpawn } from '../../core/exec.js';
import { buildFileOps } from '../../core/files.js';
import { applyRole } from '../../roles/apply.js';
import type { Role } from '../../roles/types.js';
import { HaproxySupervisor, selfSignedCertArgv } from '../../roles/gateway/lb/haproxy-supervisor.js';
import { planRuntimeChanges } from '../../roles/gateway/lb/plan-runtime.js';
import { configPath, HAPROXY_DEFAULTS, renderHaproxy, type HaproxySettings } from '../../roles/gateway/lb/render-haproxy.js';
import { findOnPath } from '../../scripts/lib/daemon.js';
import { httpGet } from '../../scripts/lib/http-load.js';
import { freePort } from '../../scripts/lib/ports.js';

const skip = process.getuid?.() !== 0 ? 'needs root' : findOnPath('haproxy') ? undefined : 'haproxy is not installed';
if (skip) console.warn(`lb-haproxy tests skipped: ${skip}`);

const log = pino({ level: process.env.TEST_LOG ?? 'silent' });
const T = '2026-12-01T00:00:00Z';
type RecordInput = Omit<LoadBalancerRecord, 'created_at' | 'updated_at' | 'targets' | 'tls' | 'balance'> &
  Partial<Pick<LoadBalancerRecord, 'tls'>>;
const rec = (r: RecordInput): LoadBalancerRecord => ({
  targets: [],
  tls: 'none',
  balance: 'roundrobin',
  created_at: T,
  updated_at: T,
  ...r,
});

/** An HTTP backend answering its name (and 200 on /healthz); `kill` closes it and its connections. */
async function httpApp(name: string, port = 0): Promise<{ name: string; port: number; kill(): Promise<void> }> {
  const server = http.createServer((req, res) => res.end(req.url === '/healthz' ? 'ok' : name));
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const bound = (server.address() as net.AddressInfo).port;
  return {
    name,
    port: bound,
    kill: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** One GET through the balancer without keep-alive: status and body, or the error. */
const get = (port: number, host: string, path = '/') => httpGet(new URL(`http://127.0.0.1:${port}${path}`), host, false, 5000);

/** What the TCP balancer's server said on connect. */
function tcpHello(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1');
    let data = '';
    c.setTimeout(3000, () => c.destroy(new Error('timeout')));
    c.on('data', (d) => (data += d.toString()));
    c.on('end', () => resolve(data.trim()));
    c.on('error', reject);
  });
}

/** A self-signed certificate and key for `name`, as one PEM file. */
function certFor(file: string, name: string): string {
  const [openssl, args] = selfSignedCertArgv(file, name);
  execFileSync(openssl, [...args], { stdio: 'pipe' });
  return readFileSync(file, 'utf8');
}

/** A TLS server saying its name once the handshake is done (what passthrough must reach untouched). */
async function tlsApp(name: string, pem: string): Promise<{ server: tls.Server; port: number }> {
  const server = tls.createServer({ cert: pem, key: pem }, (c) => c.end(`${name}\n`));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as net.AddressInfo).port };
}

/** Connects with TLS asking for `servername`: what the far end said, or the error. */
function tlsHello(port: number, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = tls.connect({ port, host: '127.0.0.1', servername, rejectUnauthorized: false });
    let data = '';
    c.setTimeout(3000, () => c.destroy(new Error('timeout')));
    c.on('data', (d) => (data += d.toString()));
    c.on('end', () => resolve(data.trim()));
    c.on('error', reject);
  });
}

/** An HTTPS GET by name (SNI and Host): the body and the certificate's subject name. */
function httpsGet(port: number, host: string): Promise<{ body: string; cn: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, servername: host, headers: { host }, agent: false, rejectUnauthorized: false },
      (res) => {
        const cn = String((res.socket as tls.TLSSocket).getPeerCertificate().subject.CN);
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ body, cn }));
      },
    );
    req.setTimeout(3000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

const srv = (app: { name: string; port: number }): LbServer => ({ name: `${app.name}-${app.port}`, addr: '127.0.0.1', port: app.port });

describe.skipIf(skip !== undefined)('gateway load balancer on HAProxy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lb-haproxy-'));
  const settings: HaproxySettings = {
    ...HAPROXY_DEFAULTS,
    configDir: dir,
    adminSocket: join(dir, 'admin.sock'),
    certDir: join(dir, 'certs'),
    placeholderCert: join(dir, 'placeholder.pem'),
    wildcardAddrs: ['127.0.0.1'],
    timeouts: { ...HAPROXY_DEFAULTS.timeouts, checkInterval: 300 },
  };
  const files = buildFileOps();
  const run = buildRun();
  let sup: HaproxySupervisor;
  let live: ResolvedBalancer[] = [];
  let owned: string[] = [];
  let webPort: number;
  let tcpPort: number;
  const apps: Record<string, Awaited<ReturnType<typeof httpApp>>> = {};
  const tcpServers: net.Server[] = [];
  const tlsServers: tls.Server[] = [];

  /** A test-sized gateway role: render, haproxy -c, runtime changes or a reload, health. */
  const role: Role<{ balancers: ResolvedBalancer[] }> = {
    name: 'gateway',
    render: (d) => renderHaproxy(d.config.balancers, settings),
    validate: () => sup.validate(),
    async reload(ctx) {
      const plan = planRuntimeChanges(live, ctx.desired.config.balancers);
      // A rollback (prior = what was attempted) or a shape change reloads; churn stays runtime.
      const errors = plan.reload.length || !sup.process.running ? ['reload'] : await sup.applyChanges(plan.changes, 1000);
      if (errors.length) await sup.reload();
      live = ctx.desired.config.balancers;
    },
    health: () => sup.health(),
  };
  const apply = async (balancers: ResolvedBalancer[]) => {
    const report = await applyRole(role, { node: 'gw', config: { balancers }, members: [] }, { run, files, log, previous: owned });
    owned = report.owned;
    return report;
  };
  const balancers = (web: LbServer[], api: LbServer[]): ResolvedBalancer[] => [
    {
      record: rec({
        name: 'web',
        listen: { port: webPort },
        mode: 'http',
        hosts: ['web.test'],
        health: { kind: 'http', path: '/healthz' },
      }),
      servers: web,
    },
    { record: rec({ name: 'api', listen: { port: webPort }, mode: 'http', hosts: ['api.test'], health: { kind: 'tcp' } }), servers: api },
    {
      record: rec({ name: 'db', listen: { port: tcpPort }, mode: 'tcp', hosts: [], health: { kind: 'tcp' } }),
      servers: tcpServers.map((s, i) => ({ name: `t${i}`, addr: '127.0.0.1', port: (s.address() as net.AddressInfo).port })),
    },
  ];
  const waitState = async (server: string, up: boolean, ms = 5000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const s = (await sup.runtime.serversState()).find((x) => x.server === server);
      if (s && s.up === up) return;
      if (Date.now() > deadline) throw new Error(`${server} not ${up ? 'up' : 'down'} within ${ms} ms: ${JSON.stringify(s)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const masterReloads = async () => (await sup.master.processes()).find((p) => p.type === 'master')?.reloads;

  beforeAll(async () => {
    [webPort, tcpPort] = [await freePort(), await freePort()];
    for (const n of ['w1', 'w2', 'a1']) apps[n] = await httpApp(n);
    for (const name of ['t0', 't1']) {
      const s = net.createServer((c) => c.end(`${name}\n`));
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      tcpServers.push(s);
    }
    sup = new HaproxySupervisor({ spawn: await buildSpawn(), run, files, log, settings, masterSocket: join(dir, 'master.sock') });
    await sup.prepare();
  });
  afterAll(async () => {
    await sup?.stop();
    await Promise.all(Object.values(apps).map((a) => a.kill()));
    for (const s of [...tcpServers, ...tlsServers]) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts with two applications on one port by Host and a TCP balancer', async () => {
    const report = await apply(balancers([srv(apps.w1), srv(apps.w2)], [srv(apps.a1)]));
    expect(report, report.error).toMatchObject({ ok: true });
    await waitState(srv(apps.w1).name, true);
    await waitState(srv(apps.w2).name, true);
    const web = new Set<string>();
    for (let i = 0; i < 6; i++) web.add((await get(webPort, 'web.test')).body);
    expect([...web].sort()).toEqual(['w1', 'w2']);
    expect(await get(webPort, 'API.test:8080', '/x')).toEqual({ status: 200, body: 'a1' });
    expect(await get(webPort, 'nobody.test')).toEqual({ status: 503, body: 'no such service' });
    const tcp = new Set<string>();
    for (let i = 0; i < 4; i++) tcp.add(await tcpHello(tcpPort));
    expect([...tcp].sort()).toEqual(['t0', 't1']);
  });

  it('a killed backend is taken out by its health check and comes back', async () => {
    const port = apps.w2.port;
    await apps.w2.kill();
    await waitState(srv(apps.w2).name, false);
    for (let i = 0; i < 6; i++) expect(await get(webPort, 'web.test')).toEqual({ status: 200, body: 'w1' });
    apps.w2 = await httpApp('w2', port);
    await waitState(srv(apps.w2).name, true);
  });

  it('a server added through the runtime API takes traffic without a reload', async () => {
    const reloads = await masterReloads();
    apps.w3 = await httpApp('w3');
    const report = await apply(balancers([srv(apps.w1), srv(apps.w2), srv(apps.w3)], [srv(apps.a1)]));
    expect(report, report.error).toMatchObject({ ok: true });
    await waitState(srv(apps.w3).name, true);
    const seen = new Set<string>();
    for (let i = 0; i < 9; i++) seen.add((await get(webPort, 'web.test')).body);
    expect(seen).toContain('w3');
    expect(await masterReloads()).toBe(reloads);
    // Persisted: the written file names it, so a reload keeps it.
    expect(readFileSync(configPath(settings), 'utf8')).toContain(`server ${srv(apps.w3).name} 127.0.0.1:${apps.w3.port}`);
  });

  it('a bad balancer is refused with a clear error and the running config untouched', async () => {
    const before = readFileSync(configPath(settings), 'utf8');
    const reloads = await masterReloads();
    const good = balancers([srv(apps.w1), srv(apps.w2), srv(apps.w3)], [srv(apps.a1)]);
    // The renderer's own refusal: a second protocol on the HTTP port.
    const clash = await apply([
      ...good,
      { record: rec({ name: 'x', listen: { port: webPort }, mode: 'tcp', hosts: [], health: { kind: 'tcp' } }), servers: [] },
    ]);
    expect(clash).toMatchObject({ ok: false, error: expect.stringMatching(/^render: balancer x: port \d+ is http\/none/) });
    // An address that is no IP address is the renderer's to refuse: it never reaches a file.
    const badAddr = await apply([...good.slice(1), { ...good[0], servers: [{ name: 'bad', addr: '999.1.1.1', port: 80 }] }]);
    expect(badAddr).toMatchObject({ ok: false, error: expect.stringMatching(/^render: .*"999\.1\.1\.1" is not an IP address/) });
    // What only haproxy -c catches: two servers of one name in a backend.
    const dup = [1, 2].map((port) => ({ name: 'dup', addr: '127.0.0.1', port }));
    const bad = await apply([...good.slice(1), { ...good[0], servers: dup }]);
    expect(bad).toMatchObject({
      ok: false,
      rolledBack: true,
      error: expect.stringMatching(/^validate: haproxy -c refused the config: .*another server named 'dup'/),
    });
    expect(readFileSync(configPath(settings), 'utf8')).toBe(before);
    expect(await masterReloads()).toBe(reloads);
    expect(await get(webPort, 'api.test')).toEqual({ status: 200, body: 'a1' });
  });

  it('no request lost while servers are added and removed and the config reloads', async () => {
    const total = 3000;
    const workers = 12;
    let sent = 0;
    const failures: string[] = [];
    const bodies = new Map<string, number>();
    const started = Date.now();
    let changesDone = Infinity;
    let lastSent = 0;
    const load = async () => {
      while (sent < total) {
        // Request n leaves at n × 5 s / total: 3,000 over about 5 s, whatever the latency.
        const due = started + (sent++ * 5000) / total;
        await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
        lastSent = Date.now();
        try {
          const r = await get(webPort, 'web.test');
          if (r.status !== 200) failures.push(`${r.status} ${r.body}`);
          bodies.set(r.body, (bodies.get(r.body) ?? 0) + 1);
        } catch (err) {
          failures.push(String(err));
        }
      }
    };
    const changes = async () => {
      const step = (ms: number) => new Promise((r) => setTimeout(r, ms));
      await step(500);
      apps.w4 = await httpApp('w4');
      expect((await apply(balancers([srv(apps.w1), srv(apps.w2), srv(apps.w3), srv(apps.w4)], [srv(apps.a1)]))).ok).toBe(true);
      await step(500);
      expect((await apply(balancers([srv(apps.w2), srv(apps.w3), srv(apps.w4)], [srv(apps.a1)]))).ok).toBe(true);
      await step(500);
      // A shape change (a host added to api) takes a full reload.
      const shaped = balancers([srv(apps.w2), srv(apps.w3), srv(apps.w4)], [srv(apps.a1)]);
      shaped[1] = { ...shaped[1], record: { ...shaped[1].record, hosts: ['api.test', 'api2.test'] } };
      const reloads = await masterReloads();
      expect((await apply(shaped)).ok).toBe(true);
      expect(await masterReloads()).toBe((reloads ?? 0) + 1);
      changesDone = Date.now();
    };
    await Promise.all([...Array.from({ length: workers }, load), changes()]);
    const seconds = (Date.now() - started) / 1000;
    console.log(
      `lb no-loss: ${total} requests in ${seconds.toFixed(1)} s, ${failures.length} failed; changes done at ${((changesDone - started) / 1000).toFixed(1)} s; by server ${JSON.stringify([...bodies])}`,
    );
    expect(failures).toEqual([]);
    // The load outlasted every change.
    expect(changesDone).toBeLessThan(lastSent);
    expect(bodies.get('w4')).toBeGreaterThan(0);
    expect(await get(webPort, 'api2.test')).toEqual({ status: 200, body: 'a1' });
  });

  it('TLS: passthrough routed by SNI untouched, acme terminated with the placeholder until a certificate arrives', async () => {
    const [sniPort, httpsPort] = [await freePort(), await freePort()];
    const pem = certFor(join(dir, 'backend.pem'), 'backend.test');
    const one = await tlsApp('one', pem);
    const two = await tlsApp('two', pem);
    tlsServers.push(one.server, two.server);
    const base = balancers([srv(apps.w2), srv(apps.w3), srv(apps.w4)], [srv(apps.a1)]);
    const pass = (name: string, host: string, port: number): ResolvedBalancer => ({
      record: rec({ name, listen: { port: sniPort }, mode: 'tcp', hosts: [host], tls: 'passthrough', health: { kind: 'tcp' } }),
      servers: [{ name: `${name}-${port}`, addr: '127.0.0.1', port }],
    });
    const secure: ResolvedBalancer = {
      record: rec({ name: 'secure', listen: { port: httpsPort }, mode: 'http', hosts: ['web.test'], tls: 'acme', health: { kind: 'tcp' } }),
      servers: [srv(apps.w2)],
    };
    const report = await apply([...base, pass('one', 'one.test', one.port), pass('two', 'two.test', two.port), secure]);
    expect(report, report.error).toMatchObject({ ok: true });
    expect(await tlsHello(sniPort, 'one.test')).toBe('one');
    expect(await tlsHello(sniPort, 'TWO.test')).toBe('two');
    // An unknown name is refused: the connection ends before any server spoke.
    expect(await tlsHello(sniPort, 'nobody.test').catch(() => '')).toBe('');
    expect(await httpsGet(httpsPort, 'web.test')).toEqual({ body: 'w2', cn: 'placeholder.invalid' });
    // The certificate owner drops a certificate in; a reload (hitless) serves it by SNI.
    certFor(join(dir, 'web.pem'), 'web.test');
    copyFileSync(join(dir, 'web.pem'), join(settings.certDir, 'web.test.pem'));
    await sup.validate();
    await sup.reload();
    expect(await httpsGet(httpsPort, 'web.test')).toEqual({ body: 'w2', cn: 'web.test' });
  });
});
