/**
 * The gateway's HAProxy hooks (roles/gateway/lb/gateway-haproxy.ts) through the roles' own
 * transaction (roles/apply.ts) with the real HAProxy on loopback: which way a change goes (runtime
 * API or master reload), and the rollback after a health failure that follows a runtime change,
 * where `ctx.desired` still holds the failed set and the restored files must be reloaded whole;
 * and a settings switch (another dir) whose new HAProxy cannot bind, rolled back to the old one.
 */
import http from 'node:http';
import type net from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ResolvedBalancer } from '../../core/lb-record.js';
import { buildRun, buildSpawn } from '../../core/exec.js';
import { buildFileOps } from '../../core/files.js';
import { applyRole } from '../../roles/apply.js';
import { parseGatewayConfig } from '../../roles/gateway/config.js';
import { masterSocket } from '../../roles/gateway/lb/config.js';
import { GatewayHaproxy } from '../../roles/gateway/lb/gateway-haproxy.js';
import { HaproxyMaster, HaproxyRuntime } from '../../roles/gateway/lb/haproxy-runtime.js';
import { renderGatewayLb } from '../../roles/gateway/lb/render-lb.js';
import type { Role } from '../../roles/types.js';
import { findOnPath } from '../../scripts/lib/daemon.js';
import { freePort } from '../../scripts/lib/ports.js';
import { resolvedBalancer } from '../helpers/lb-resolved.js';

const skip = process.getuid?.() !== 0 ? 'needs root' : findOnPath('haproxy') ? undefined : 'haproxy is not installed';
if (skip) console.warn(`lb-gateway-rollback tests skipped: ${skip}`);

const log = pino({ level: process.env.TEST_LOG ?? 'silent' });

describe.skipIf(skip !== undefined)("the gateway's HAProxy hooks in the roles' transaction", () => {
  const dir = mkdtempSync(join(tmpdir(), 'lb-gw-rb-'));
  const config = { lb: { dir: join(dir, 'haproxy'), run_dir: join(dir, 'run'), bind: ['127.0.0.1'] } };
  const cfg = parseGatewayConfig(config);
  const files = buildFileOps();
  const run = buildRun();
  const master = new HaproxyMaster(masterSocket(cfg.lb));
  const admin = new HaproxyRuntime(join(cfg.lb.run_dir, 'admin.sock'));
  const apps: http.Server[] = [];
  const ports: number[] = [];
  let haproxy: GatewayHaproxy;
  let listen: number;
  let failHealth = false;
  let owned: string[] = [];

  /** The gateway's render of HAProxy's part and its hooks, and a health check the test can fail. */
  const role: Role = {
    name: 'gateway',
    render: (d) => renderGatewayLb(cfg, d).files,
    validate: (ctx) => haproxy.validate(ctx, cfg),
    reload: (ctx) => haproxy.reload(ctx, cfg),
    async health(ctx) {
      await haproxy.health(ctx, cfg);
      if (failHealth) throw new Error('dnsmasq is not running (the test says so)');
    },
  };
  const web = (n: number): ResolvedBalancer[] => [
    resolvedBalancer(
      'web',
      listen,
      ports.slice(0, n).map((port, i) => ({ name: `i-s${i}-${port}`, addr: '127.0.0.1', port })),
    ),
  ];
  const apply = async (balancers: ResolvedBalancer[]) => {
    const report = await applyRole(role, { node: 'gw', config, members: [], balancers }, { run, files, log, previous: owned });
    owned = report.owned;
    return report;
  };
  const reloads = async () => (await master.processes()).find((p) => p.type === 'master')?.reloads;
  const servers = async () => (await admin.serversState('lb_web')).map((s) => s.server).sort();

  beforeAll(async () => {
    listen = await freePort();
    for (let i = 0; i < 3; i++) {
      const s = http.createServer((_req, res) => res.end(`s${i}`));
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      apps.push(s);
      ports.push((s.address() as net.AddressInfo).port);
    }
    haproxy = new GatewayHaproxy(await buildSpawn());
  });
  afterAll(async () => {
    await haproxy?.stop();
    for (const s of apps) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts HAProxy on the first balancer', async () => {
    expect(await apply(web(1))).toMatchObject({ ok: true });
    expect(await servers()).toEqual([`i-s0-${ports[0]}`]);
  });

  it('a health failure after a runtime change rolls back with a whole reload of the old files', async () => {
    const before = readFileSync(join(cfg.lb.dir, 'haproxy.cfg'), 'utf8');
    const reloadsBefore = (await reloads()) ?? 0;
    failHealth = true;
    const report = await apply(web(2));
    failHealth = false;
    expect(report).toMatchObject({ ok: false, rolledBack: true, error: expect.stringMatching(/^health: dnsmasq is not running/) });
    expect(readFileSync(join(cfg.lb.dir, 'haproxy.cfg'), 'utf8')).toBe(before);
    // The runtime change (add s1) took no reload; the rollback took exactly one, of the old files.
    expect(await reloads()).toBe(reloadsBefore + 1);
    expect(await servers()).toEqual([`i-s0-${ports[0]}`]);
  });

  it('after a rollback the next change reloads (what runs is not known to be live), then runtime again', async () => {
    const r0 = (await reloads()) ?? 0;
    expect(await apply(web(2))).toMatchObject({ ok: true });
    expect(await reloads()).toBe(r0 + 1);
    expect(await servers()).toEqual([`i-s0-${ports[0]}`, `i-s1-${ports[1]}`]);
    expect(await apply(web(3))).toMatchObject({ ok: true });
    expect(await reloads()).toBe(r0 + 1);
    expect(await servers()).toHaveLength(3);
  });

  it('no balancer left: files removed, HAProxy stopped', async () => {
    const removed = ['balancers.json', 'haproxy.cfg', `hosts-${listen}.map`].map((f) => join(cfg.lb.dir, f));
    const report = await apply([]);
    expect(report.ok).toBe(true);
    expect([...report.removed].sort()).toEqual(removed);
    await expect(master.processes()).rejects.toThrow();
  });
});

describe.skipIf(skip !== undefined)('a settings switch whose new HAProxy fails rolls back to the old one', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lb-gw-switch-'));
  const settings = (name: string) => ({ lb: { dir: join(dir, name), run_dir: join(dir, `${name}-run`), bind: ['127.0.0.1'] } });
  const files = buildFileOps();
  const run = buildRun();
  let haproxy: GatewayHaproxy;
  let app: http.Server;
  let owned: string[] = [];
  const cfgOf = (config: Record<string, unknown>) => parseGatewayConfig(config);
  /** The gateway's HAProxy part with its settings from the desired state, as the role reads them. */
  const role: Role = {
    name: 'gateway',
    render: (d) => renderGatewayLb(cfgOf(d.config), d).files,
    validate: (ctx) => haproxy.validate(ctx, cfgOf(ctx.desired.config)),
    reload: (ctx) => haproxy.reload(ctx, cfgOf(ctx.desired.config)),
    health: (ctx) => haproxy.health(ctx, cfgOf(ctx.desired.config)),
  };
  const apply = async (config: Record<string, unknown>, balancers: ResolvedBalancer[]) => {
    const report = await applyRole(role, { node: 'gw', config, members: [], balancers }, { run, files, log, previous: owned });
    owned = report.owned;
    return report;
  };
  const get = (port: number) =>
    new Promise<string>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, headers: { host: 'web.test' }, agent: false, timeout: 3000 }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve(body));
        })
        .on('error', reject);
    });

  beforeAll(async () => {
    app = http.createServer((_req, res) => res.end('app'));
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    haproxy = new GatewayHaproxy(await buildSpawn());
  });
  afterAll(async () => {
    await haproxy?.stop();
    app?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the new master cannot bind: the old settings, files and HAProxy are back', async () => {
    const server = [{ name: 'app', addr: '127.0.0.1', port: (app.address() as net.AddressInfo).port }];
    const [port, busyPort] = [await freePort(), await freePort()];
    const a = settings('a');
    expect(await apply(a, [resolvedBalancer('web', port, server, { hosts: ['web.test'] })])).toMatchObject({ ok: true });
    expect(await get(port)).toBe('app');
    // The fault: the new settings' balancer port is another program's.
    const busy = http.createServer();
    await new Promise<void>((r) => busy.listen(busyPort, '127.0.0.1', r));
    try {
      const report = await apply(settings('b'), [resolvedBalancer('web', busyPort, server, { hosts: ['web.test'] })]);
      expect(report).toMatchObject({ ok: false, rolledBack: true, error: expect.stringMatching(/^reload: haproxy did not come up/) });
    } finally {
      busy.close();
    }
    expect(readFileSync(join(a.lb.dir, 'haproxy.cfg'), 'utf8')).toContain(`:${port}`);
    expect(await get(port)).toBe('app');
  });
});
