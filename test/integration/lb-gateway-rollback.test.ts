/**
 * The gateway's HAProxy hooks (roles/gateway/lb/gateway-haproxy.ts) through the roles' own
 * transaction (roles/apply.ts) with the real HAProxy on loopback: which way a change goes (runtime
 * API or master reload), and the rollback after a health failure that follows a runtime change,
 * where `ctx.desired` still holds the failed set and the restored files must be reloaded whole.
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

const skip = process.getuid?.() !== 0 ? 'needs root' : findOnPath('haproxy') ? undefined : 'haproxy is not installed';
if (skip) console.warn(`lb-gateway-rollback tests skipped: ${skip}`);

const T = '2026-12-01T00:00:00Z';
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
    {
      record: {
        name: 'web',
        listen: { port: listen },
        mode: 'http',
        hosts: ['web.test'],
        targets: [],
        health: { kind: 'tcp' },
        tls: 'none',
        balance: 'roundrobin',
        created_at: T,
        updated_at: T,
      },
      servers: ports.slice(0, n).map((port, i) => ({ name: `i-s${i}-${port}`, addr: '127.0.0.1', port })),
    },
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
