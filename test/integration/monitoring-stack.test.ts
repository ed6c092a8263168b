/**
 * The controller's monitoring stack for real, without a controller or NATS: Debian's prometheus,
 * prometheus-alertmanager and influxd run through MonitoringStack (supervised, as the `prometheus`
 * and `influxdb` users) on free loopback ports, from the files our renderers make, in a temporary
 * directory. A stand-in for the agent's metrics address serves `/members/<name>/metrics` so the
 * targets are up. Checked: health, InfluxDB's database and retention, a membership change rewriting
 * only members.json and Prometheus following it without a restart, config changes reloaded in place
 * (same PIDs), a config the tools refuse while the old one keeps running, a crash restarted, and
 * stop ending every process (by PID). Needs root (the users) and the five binaries; skipped with a
 * message otherwise.
 */
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Member } from '../../core/contracts.js';
import { buildRun, buildSpawn, findOnPath } from '../../core/exec.js';
import { buildFileOps } from '../../core/files.js';
import { parseControllerConfig } from '../../roles/controller/config.js';
import { MonitoringStack, monitoringPaths, renderMonitoringFiles, type MonitoringConfig } from '../../roles/controller/monitoring/index.js';
import { freePort } from '../../scripts/lib/ports.js';
import { until } from '../../scripts/lib/wait.js';

const BINARIES = ['prometheus', 'promtool', 'prometheus-alertmanager', 'amtool', 'influxd'];
const missing = BINARIES.filter((b) => !findOnPath(b));
const skip =
  process.geteuid?.() !== 0
    ? 'not root (the daemons run as the prometheus and influxdb users)'
    : missing.length > 0
      ? `${missing.join(', ')} missing (apt-get install prometheus prometheus-alertmanager influxdb)`
      : undefined;
if (skip) console.warn(`monitoring stack tests skipped: ${skip}`);

const log = pino({ level: process.env.TEST_LOG ?? 'silent' });
const member = (name: string, role: string): Member => ({ name, addr: '10.88.0.9', port: 7946, status: 'alive', tags: { role } });
const alive = (pid: number | undefined) => {
  try {
    process.kill(pid!, 0);
    return true;
  } catch {
    return false;
  }
};
const uidOf = (pid: number) => statSync(`/proc/${pid}`).uid;
const getJson = async (url: string) => (await fetch(url, { signal: AbortSignal.timeout(3000) })).json() as Promise<Record<string, unknown>>;

describe.skipIf(skip)('the monitoring stack (prometheus, alertmanager, influxd)', () => {
  let dir: string;
  let agent: Server;
  let mon: MonitoringConfig;
  let stack: MonitoringStack;
  let members: Member[] = [member('ctl-1', 'controller'), member('gw-1', 'gateway')];
  const files = buildFileOps();
  const run = buildRun();
  const scraped: string[] = [];
  const ports: Record<string, number> = {};

  const settings = (extra: { alerts?: Record<string, unknown>; prometheus?: Record<string, unknown> } = {}) =>
    parseControllerConfig({
      nats: { store_dir: path.join(dir, 'nats') },
      paths: { nats_conf: path.join(dir, 'etc', 'nats.conf') },
      monitoring: {
        store: 'influxdb',
        agent_metrics: `127.0.0.1:${ports.agent}`,
        prometheus: { listen: `127.0.0.1:${ports.prometheus}`, scrape_interval: '1s', evaluation_interval: '1s', ...extra.prometheus },
        alertmanager: { listen: `127.0.0.1:${ports.alertmanager}` },
        influxdb: { listen: `127.0.0.1:${ports.influx}`, rpc_listen: `127.0.0.1:${ports.influxRpc}`, retention: '30d' },
        alerts: {
          sns: { access_key_id: 'AKIATEST', secret_access_key: 'not-a-real-secret', endpoint: 'http://127.0.0.1:9' },
          ...extra.alerts,
        },
      },
    }).monitoring;

  /** Writes what the renderers make, as the framework would; returns the paths whose content changed. */
  async function write(next: MonitoringConfig): Promise<string[]> {
    const changed: string[] = [];
    for (const f of renderMonitoringFiles(next, members, 'ctl-1')) {
      if ((await files.read(f.path)) === f.content) continue;
      await files.write(f.path, f.content, f.mode ?? 0o644);
      changed.push(f.path);
    }
    chmodSync(next.config_dir, 0o755);
    return changed;
  }

  const prom = (p: string) => getJson(`http://127.0.0.1:${ports.prometheus}${p}`);
  const influx = async (q: string) =>
    (await (
      await fetch(`http://127.0.0.1:${ports.influx}/query?${new URLSearchParams({ q }).toString()}`, { signal: AbortSignal.timeout(3000) })
    ).json()) as { results: { series?: { values: unknown[][] }[] }[] };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'monitoring-stack-'));
    // The daemons' users must reach their files: the temp dir is searchable (its files keep their own modes).
    chmodSync(dir, 0o711);
    for (const k of ['agent', 'prometheus', 'alertmanager', 'influx', 'influxRpc']) ports[k] = await freePort();
    // Stands in for the agent's metrics address (the lead's work): one gauge per member.
    agent = createServer((req, res) => {
      const m = /^\/members\/([^/]+)\/metrics$/.exec(req.url ?? '');
      if (!m) return void res.writeHead(404).end();
      scraped.push(decodeURIComponent(m[1]));
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end('mammatus_test_gauge 1\n');
    });
    await new Promise<void>((r) => agent.listen(ports.agent, '127.0.0.1', r));
    mon = settings();
    stack = new MonitoringStack({ spawn: await buildSpawn({ log }), run, files, log, minRestartMs: 100, healthTimeoutMs: 40_000 });
  });
  afterAll(async () => {
    await stack?.stop();
    agent?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('validates, starts all three as their users, health-checked, with the database made', async () => {
    const changed = await write(mon);
    await stack.validate(mon, changed);
    await stack.apply(mon, changed);
    expect(stack.state).toMatchObject({ state: 'ok', store: 'influxdb' });
    expect(stack.summary).toBe('monitoring influxdb ok');
    const pids = stack.state.pids!;
    expect(Object.keys(pids).sort()).toEqual(['alertmanager', 'influxdb', 'prometheus']);
    expect(uidOf(pids.prometheus!)).toBe(uidOf(pids.alertmanager!));
    expect(uidOf(pids.prometheus!)).not.toBe(0);
    expect(uidOf(pids.influxdb!)).not.toBe(0);
    // The SNS secret: root's file, readable by the alertmanager's group only.
    const am = statSync(monitoringPaths(mon).alertmanager);
    expect({ uid: am.uid, gid: am.gid, mode: am.mode & 0o777 }).toEqual({
      uid: 0,
      gid: statSync(`/proc/${pids.alertmanager}`).gid,
      mode: 0o640,
    });
    expect((await fetch(`http://127.0.0.1:${ports.alertmanager}/-/ready`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${ports.influx}/ping`)).status).toBe(204);
    const rps = await influx('SHOW RETENTION POLICIES ON "mammatus"');
    expect(rps.results[0].series![0].values[0].slice(0, 2)).toEqual(['mammatus', '720h0m0s']);
    // Scraped through the stand-in, remote-written into InfluxDB.
    await until('both members scraped', () => scraped.includes('ctl-1') && scraped.includes('gw-1'), 20_000);
    await until(
      'series in InfluxDB',
      async () => JSON.stringify(await influx('SHOW MEASUREMENTS ON "mammatus"')).includes('mammatus_test_gauge'),
      30_000,
    );
  }, 90_000);

  it('follows a member that joins by members.json alone: no restart, no reload', async () => {
    const pids = stack.state.pids!;
    members = [...members, member('cn-1', 'compute')];
    const changed = await write(mon);
    expect(changed).toEqual([monitoringPaths(mon).members]);
    await stack.validate(mon, changed);
    await stack.apply(mon, changed);
    await until(
      'cn-1 among the targets',
      async () => {
        const t = (await prom('/api/v1/targets')) as { data: { activeTargets: { labels: Record<string, string>; health: string }[] } };
        return t.data.activeTargets.some(
          (a) => a.labels.instance === 'cn-1' && a.labels.node === 'cn-1' && a.labels.job === 'mammatus' && a.health === 'up',
        );
      },
      { timeoutMs: 20_000, everyMs: 250 },
    );
    expect(stack.state.pids).toEqual(pids);
  }, 30_000);

  it('reloads a changed config in place (same PIDs) and refuses a bad one while the old keeps running', async () => {
    const pids = stack.state.pids!;
    mon = settings({ prometheus: { scrape_interval: '2s' }, alerts: { webhooks: ['http://127.0.0.1:9/hook'] } });
    const changed = await write(mon);
    const paths = monitoringPaths(mon);
    expect(changed.sort()).toEqual([paths.alertmanager, paths.prometheus].sort());
    await stack.validate(mon, changed);
    await stack.apply(mon, changed);
    expect(stack.state.pids).toEqual(pids);
    const cfg = (await prom('/api/v1/status/config')) as { data: { yaml: string } };
    expect(cfg.data.yaml).toContain('scrape_interval: 2s');
    const amStatus = await getJson(`http://127.0.0.1:${ports.alertmanager}/api/v2/status`);
    expect(JSON.stringify(amStatus)).toContain('http://127.0.0.1:9/hook');
    // The SNS secret is handed to the group again after the rewrite.
    expect(statSync(paths.alertmanager).gid).toBe(statSync(`/proc/${pids.alertmanager}`).gid);

    const good = (await files.read(paths.rules))!;
    await files.write(paths.rules, good.replace('== 1', '== =='), 0o644);
    await expect(stack.validate(mon, [paths.rules])).rejects.toThrow(/promtool check rejected .*prometheus\.yml/);
    // The framework puts the old file back; nothing was reloaded.
    await files.write(paths.rules, good, 0o644);
    await stack.apply(mon, [paths.rules]);
    expect(stack.state.pids).toEqual(pids);
    expect((await fetch(`http://127.0.0.1:${ports.prometheus}/-/ready`)).status).toBe(200);
  }, 60_000);

  it('restarts a daemon that dies, and a retention change restarts Prometheus', async () => {
    const before = stack.state.pids!;
    process.kill(before.alertmanager!, 'SIGKILL');
    await until(
      'alertmanager restarted',
      () => (stack.pid('alertmanager') !== before.alertmanager && alive(stack.pid('alertmanager')) ? true : undefined),
      20_000,
    );
    mon = settings({ prometheus: { scrape_interval: '2s', retention: '3d' }, alerts: { webhooks: ['http://127.0.0.1:9/hook'] } });
    const changed = await write(mon);
    expect(changed).toEqual([monitoringPaths(mon).prometheus]);
    await stack.apply(mon, changed);
    expect(stack.pid('prometheus')).not.toBe(before.prometheus);
    expect(alive(before.prometheus)).toBe(false);
    expect(stack.pid('influxdb')).toBe(before.influxdb);
  }, 60_000);

  it('stops every daemon when the store is removed', async () => {
    const pids = Object.values(stack.state.pids!);
    expect(pids).toHaveLength(3);
    await stack.apply({ ...mon, store: undefined }, []);
    expect(stack.state).toEqual({ state: 'off' });
    expect(pids.filter(alive)).toEqual([]);
  }, 30_000);
});
