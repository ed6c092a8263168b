/**
 * `mammatus top` against the real Prometheus (Debian's /usr/bin/prometheus) on a free loopback
 * port: it scrapes a tiny HTTP server of this test that serves a fixed exposition (the names of
 * docs/monitoring.md; the CPU counter grows half a second per second) every second, with the
 * `node` label Prometheus adds to every agent series, and evaluates one alert rule.
 * Then `top --once --json` must give those numbers and `top --once` must show the node.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findOnPath, trackDaemon, untilReady, type Daemon } from '../../scripts/lib/daemon.js';
import { freePort, waitForPort } from '../../scripts/lib/ports.js';
import { until } from '../../scripts/lib/wait.js';
import type { TopModel } from '../../agent/cli/top-model.js';
import { cliRunner } from '../helpers/run-cli.js';

const prometheusBin = findOnPath('prometheus', ['/usr/bin']);
if (!prometheusBin) console.warn('top.test.ts: skipped: prometheus is not installed (apt-get install prometheus)');

const started = Date.now();
/** False: the fake agent answers 503, as a node whose agent is gone (its scrape fails). */
let serving = true;
/** What the fake agent exposes; only the CPU counter moves. */
const exposition = () =>
  [
    '# TYPE mammatus_agent_info gauge',
    'mammatus_agent_info{version="0.0.0-test",roles="compute,controller"} 1',
    '# TYPE mammatus_role_state gauge',
    ...['ok', 'error', 'pending'].map((s) => `mammatus_role_state{role="compute",state="${s}"} ${s === 'error' ? 1 : 0}`),
    ...['ok', 'error', 'pending'].map((s) => `mammatus_role_state{role="controller",state="${s}"} ${s === 'ok' ? 1 : 0}`),
    '# TYPE mammatus_compute_instances gauge',
    'mammatus_compute_instances{status="running"} 3',
    'mammatus_compute_instances{status="stopped"} 1',
    '# TYPE mammatus_sqs_queue_messages gauge',
    'mammatus_sqs_queue_messages{queue="jobs",state="visible"} 12',
    'mammatus_sqs_queue_messages{queue="jobs",state="inflight"} 3',
    'mammatus_sqs_queue_messages{queue="jobs",state="delayed"} 0',
    'mammatus_sqs_queue_messages{queue="mail",state="visible"} 2',
    '# TYPE process_cpu_seconds_total counter',
    `process_cpu_seconds_total ${((Date.now() - started) / 2000).toFixed(3)}`,
    '# TYPE process_resident_memory_bytes gauge',
    `process_resident_memory_bytes ${50 * 2 ** 20}`,
    '',
  ].join('\n');

describe.skipIf(!prometheusBin)('mammatus top with a real Prometheus', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-top-'));
  const run = cliRunner();
  let server: http.Server;
  let prometheus: Daemon | undefined;
  let url = '';

  beforeAll(async () => {
    server = http.createServer((_req, res) =>
      serving ? res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(exposition()) : res.writeHead(503).end(),
    );
    const target = await freePort();
    await new Promise<void>((resolve) => server.listen(target, '127.0.0.1', resolve));
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    writeFileSync(
      path.join(tmp, 'rules.yml'),
      'groups:\n- name: mammatus\n  rules:\n  - alert: MammatusRoleError\n    expr: mammatus_role_state{state="error"} == 1\n    labels: {severity: critical}\n',
    );
    writeFileSync(
      path.join(tmp, 'prometheus.yml'),
      [
        'global: {scrape_interval: 1s, evaluation_interval: 1s}',
        'rule_files: [rules.yml]',
        'scrape_configs:',
        '- job_name: mammatus',
        '  static_configs:',
        `  - targets: ['127.0.0.1:${target}']`,
        '    labels: {node: node-a}',
        '',
      ].join('\n'),
    );
    const logFile = path.join(tmp, 'prometheus.log');
    const log = openSync(logFile, 'a');
    const child = spawn(
      prometheusBin!,
      [
        `--config.file=${path.join(tmp, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(tmp, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', log, log], cwd: tmp },
    );
    closeSync(log);
    prometheus = trackDaemon(child);
    await untilReady(prometheus, waitForPort(port, '127.0.0.1', 20_000), 'prometheus', logFile);
  });

  afterAll(async () => {
    await prometheus?.stop('SIGTERM');
    await new Promise((resolve) => server?.close(resolve));
    rmSync(tmp, { recursive: true, force: true });
  });

  it('shows the scraped node, its roles, CPU, RSS, instances, queues and the firing alert', async () => {
    // Two scrapes give the CPU rate; the alert fires at the first evaluation after a scrape.
    const model = await until(
      'a node with a CPU rate and a firing alert',
      async () => {
        const r = await run('top', '--prometheus', url, '--once', '--json');
        if (r.code !== 0) throw new Error(r.err);
        const m = JSON.parse(r.out) as TopModel;
        return m.nodes.rows[0]?.cpu_percent !== null && m.nodes.rows.length > 0 && m.alerts.rows.length > 0 && m;
      },
      { timeoutMs: 30_000, everyMs: 500 },
    );
    expect(model.prometheus).toBe(url);
    expect(model.nodes).toMatchObject({
      errors: [],
      rows: [
        {
          node: 'node-a',
          up: true,
          roles: ['compute', 'controller'],
          states: { compute: 'error', controller: 'ok' },
          rss_bytes: 50 * 2 ** 20,
        },
      ],
    });
    // The agent burns half a core; rate(…[1m]) divides by the whole minute, so with seconds of
    // samples it reads low (it reaches 50 % once Prometheus has a minute of them).
    expect(model.nodes.rows[0].cpu_percent).toBeGreaterThan(0);
    expect(model.nodes.rows[0].cpu_percent).toBeLessThanOrEqual(55);
    expect(model.role_errors).toEqual({
      rows: [{ node: 'node-a', role: 'compute', state: 'error', failed_applies: 0, rolled_back: 0 }],
      errors: [],
    });
    expect(model.instances).toEqual({
      rows: [
        { status: 'running', count: 3 },
        { status: 'stopped', count: 1 },
      ],
      errors: [],
    });
    expect(model.queues).toEqual({
      rows: [
        { queue: 'jobs', visible: 12, inflight: 3, delayed: 0, total: 15 },
        { queue: 'mail', visible: 2, inflight: 0, delayed: 0, total: 2 },
      ],
      errors: [],
    });
    expect(model.alerts.rows).toEqual([
      {
        alertname: 'MammatusRoleError',
        severity: 'critical',
        labels: { node: 'node-a', role: 'compute', state: 'error', instance: expect.any(String) },
      },
    ]);

    const text = await run('top', '--prometheus', url, '--once');
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/^ {2}node-a +up +compute,controller +compute:error controller:ok +\d+\.\d% +50\.0 MiB$/m);
    expect(text.out).toMatch(/^ {2}jobs +15 +12 +3 +0$/m);
  });

  it('shows a node whose scrape fails as down, with the roles it last reported', async () => {
    serving = false;
    const model = await until(
      'node-a down',
      async () => {
        const m = JSON.parse((await run('top', '--prometheus', url, '--json')).out) as TopModel;
        return m.nodes.rows[0]?.up === false && m;
      },
      { timeoutMs: 15_000, everyMs: 500 },
    );
    expect(model.nodes).toEqual({
      rows: [{ node: 'node-a', up: false, roles: ['compute', 'controller'], states: {}, cpu_percent: null, rss_bytes: null }],
      errors: [],
    });
    const text = await run('top', '--prometheus', url, '--once');
    expect(text.out).toMatch(/^NODES \(1, 1 down\)$/m);
    expect(text.out).toMatch(/^ {2}node-a +DOWN +compute,controller +- +- +-$/m);
  });
});
