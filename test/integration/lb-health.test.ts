/**
 * Target health end to end (issue 21: "`lb list` shows each balancer's targets with their health"):
 * the real haproxy 2.6 checks two servers on loopback (one answers, one refuses), the gateway's
 * reporter (roles/gateway/lb/health-report.ts) asks its admin socket and publishes through the
 * gateway's sink with a gateway's credentials into a real nats-server with the cluster's
 * permissions; the reader sees one up, one down; the dead server coming up is published at the next
 * poll; a balancer no longer served has its report deleted.
 */
import http from 'node:http';
import type net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRun, buildSpawn } from '../../core/exec.js';
import { buildFileOps } from '../../core/files.js';
import type { LbHealthReport } from '../../core/lb-health.js';
import type { ResolvedBalancer } from '../../core/lb-record.js';
import { connectNats } from '../../core/nats.js';
import { HaproxySupervisor } from '../../roles/gateway/lb/haproxy-supervisor.js';
import { LbHealthReporter } from '../../roles/gateway/lb/health-report.js';
import { HAPROXY_DEFAULTS, renderHaproxy, type HaproxySettings } from '../../roles/gateway/lb/render-haproxy.js';
import { openLbHealthBucket, openLbHealthSink, readLbHealth } from '../../src/lb/health.js';
import { healthSummary, reportsOf } from '../../agent/cli/lb-health.js';
import { findOnPath } from '../../scripts/lib/daemon.js';
import { freePort } from '../../scripts/lib/ports.js';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../scripts/lib/nats-server.js';
import { resolvedBalancer } from '../helpers/lb-resolved.js';

const skip =
  process.getuid?.() !== 0
    ? 'needs root'
    : !findOnPath('haproxy')
      ? 'haproxy is not installed'
      : natsServerAvailable()
        ? undefined
        : 'nats-server is missing';
if (skip) console.warn(`lb-health tests skipped: ${skip}`);

const log = pino({ level: process.env.TEST_LOG ?? 'silent' });

async function httpApp(port = 0): Promise<http.Server> {
  const server = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return server;
}

describe.skipIf(skip !== undefined)('target health from a real HAProxy into the health bucket', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lb-health-'));
  const files = buildFileOps();
  const run = buildRun();
  const settings: HaproxySettings = {
    ...HAPROXY_DEFAULTS,
    configDir: join(dir, 'haproxy'),
    adminSocket: join(dir, 'admin.sock'),
    certDir: join(dir, 'haproxy', 'certs'),
    placeholderCert: join(dir, 'haproxy', 'placeholder.pem'),
    wildcardAddrs: ['127.0.0.1'],
    timeouts: { ...HAPROXY_DEFAULTS.timeouts, checkInterval: 300 },
  };
  let sup: HaproxySupervisor;
  let nats: NatsServer;
  let admin: NatsConnection;
  let reporter: LbHealthReporter;
  const apps: http.Server[] = [];
  let balancers: ResolvedBalancer[];
  let deadPort: number;

  beforeAll(async () => {
    nats = await startNatsServer({ name: 'lbhealth', dir: join(dir, 'nats') });
    admin = await connectNats(nats.url, { name: 'admin', credentials: nats.credentials });
    await openLbHealthBucket(admin, { create: true });
    apps.push(await httpApp());
    deadPort = await freePort();
    const live = (apps[0].address() as net.AddressInfo).port;
    balancers = [
      resolvedBalancer(
        'web',
        await freePort(),
        [
          { name: `i-web1-${live}`, addr: '127.0.0.1', port: live },
          { name: `i-web2-${deadPort}`, addr: '127.0.0.1', port: deadPort },
        ],
        {
          targets: [
            { selector: { kind: 'instance', name: 'web1' }, port: live },
            { selector: { kind: 'tag', key: 'app', value: 'web' }, port: deadPort },
          ],
        },
      ),
    ];
    for (const f of renderHaproxy(balancers, settings)) await files.write(f.path, f.content, f.mode);
    sup = new HaproxySupervisor({ spawn: await buildSpawn(), run, files, log, settings, masterSocket: join(dir, 'master.sock') });
    await sup.ensureRunning();
    const sink = openLbHealthSink([nats.url], log, { node: 'gw1', credentials: await nats.admit('gw1', ['gateway']) });
    reporter = new LbHealthReporter(sink, log, 200, 1000);
  }, 60_000);
  afterAll(async () => {
    await reporter?.stop();
    await sup?.stop();
    for (const a of apps) a.close();
    await admin?.close();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Waits until the bucket's reports satisfy `ok`. */
  const waitFor = async (ok: (r: LbHealthReport[]) => boolean, ms = 10_000): Promise<LbHealthReport[]> => {
    const kv = await openLbHealthBucket(admin);
    const deadline = Date.now() + ms;
    for (;;) {
      const { reports } = await readLbHealth(kv);
      if (ok(reports)) return reports;
      if (Date.now() > deadline) throw new Error(`reports not as expected within ${ms} ms: ${JSON.stringify(reports)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const states = (r: LbHealthReport[]) => r.flatMap((x) => x.servers.map((s) => `${x.gateway}.${x.balancer} ${s.target} ${s.status}`));

  it('publishes one server up and the refused one down, with its check', async () => {
    reporter.update(settings.adminSocket, balancers);
    const live = (apps[0].address() as net.AddressInfo).port;
    const reports = await waitFor((r) => states(r).join() === `gw1.web instance:web1:${live} up,gw1.web tag:app=web:${deadPort} down`);
    const down = reports[0].servers[1];
    expect(down).toMatchObject({ machine: 'web2', addr: '127.0.0.1', port: deadPort });
    expect(down.check).toMatch(/^L4CON/);
    expect(healthSummary(reportsOf('web', reports, new Date()))).toBe('1/2 up');
  }, 20_000);

  it('publishes the change when the dead server comes up, and refreshes an unchanged report', async () => {
    apps.push(await httpApp(deadPort));
    const reports = await waitFor((r) => r[0]?.servers.every((s) => s.status === 'up'));
    const first = reports[0].at;
    // Nothing changes now: the report is written again within the refresh period (1 s here).
    await waitFor((r) => r[0] !== undefined && r[0].at !== first, 5000);
  }, 20_000);

  it('deletes the report of a balancer it no longer serves', async () => {
    reporter.update(settings.adminSocket, []);
    await waitFor((r) => r.length === 0);
  }, 20_000);
});
