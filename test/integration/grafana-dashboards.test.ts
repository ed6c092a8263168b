/**
 * Every query of the Grafana dashboards (roles/controller/grafana) run against a real Prometheus:
 * Debian's `prometheus` on a free loopback port with a fresh TSDB in a temp directory, scraping two
 * "agents" (one loopback HTTP server serving __fixtures__/agent-metrics.prom, one of every series
 * docs/monitoring.md names, as targets labelled node=n1 and node=n2, job mammatus, as the
 * controllers' Prometheus labels them) every second, with one alert always firing. A query
 * Prometheus cannot parse answers status `error`; one that names a series the contract does not,
 * or matches wrongly, answers no data. Both fail here. Grafana's variables get values the way
 * Grafana fills them (`$node` = All = `.*`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { findOnPath } from '../../core/exec.js';
import { dashboardQueries } from '../../roles/controller/grafana/render.js';

const prometheus = findOnPath('prometheus');
const skip = prometheus ? undefined : 'prometheus is not installed (apt-get install prometheus)';
if (skip) console.warn(`grafana-dashboards: skipped: ${skip}`);

/** Grafana's variables as Grafana substitutes them before sending a query. */
function interpolate(expr: string): string {
  return expr.replaceAll('$__rate_interval', '1m').replaceAll('$node', '.*');
}

describe.skipIf(skip !== undefined)('Grafana dashboard queries on a real Prometheus', () => {
  const dir = mkdtempSync(join(tmpdir(), 'grafana-dashboards-'));
  let child: ChildProcess | undefined;
  let agent: Server | undefined;
  let base = '';
  let output = '';

  const query = async (expr: string): Promise<{ status: string; error?: string; data?: { result: unknown[] } }> => {
    const res = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`, { signal: AbortSignal.timeout(5000) });
    return (await res.json()) as { status: string; error?: string; data?: { result: unknown[] } };
  };

  beforeAll(async () => {
    const sample = readFileSync(join(import.meta.dirname, '__fixtures__', 'agent-metrics.prom'), 'utf8');
    let scrapes = 0;
    agent = createServer((_req, res) => {
      scrapes += 1;
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(sample.replaceAll('COUNT', String(scrapes)));
    });
    await new Promise<void>((r) => agent!.listen(0, '127.0.0.1', r));
    const target = `127.0.0.1:${(agent.address() as AddressInfo).port}`;
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s }',
        `rule_files: [${JSON.stringify(join(dir, 'rules.yml'))}]`,
        'scrape_configs:',
        '  - job_name: mammatus',
        '    static_configs:',
        `      - { targets: ["${target}"], labels: { node: n1 } }`,
        `      - { targets: ["${target}"], labels: { node: n2 } }`,
        '',
      ].join('\n'),
    );
    writeFileSync(join(dir, 'rules.yml'), 'groups:\n  - name: test\n    rules:\n      - { alert: MammatusTestFiring, expr: vector(1) }\n');
    child = spawn(
      prometheus!,
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    // Within 20 s (bounded), or the start failed: say why.
    for (let i = 0; i < 200; i++) {
      if (child.exitCode !== null) break;
      const ready = await fetch(`${base}/-/ready`, { signal: AbortSignal.timeout(1000) }).then(
        (r) => r.ok,
        () => false,
      );
      // Ready, and 3 scrapes of both targets and the alert in: rates have points to work with.
      if (ready) {
        const [scraped, firing] = await Promise.all([
          query('count(count_over_time(up{job="mammatus"}[1m]) >= 3) == 2'),
          query('ALERTS{alertstate="firing"}'),
        ]);
        if (scraped.data?.result.length && firing.data?.result.length) return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`prometheus did not become ready, scrape both targets and fire the alert:\n${output.slice(-2000)}`);
  });

  afterAll(async () => {
    if (child?.pid !== undefined && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      process.kill(child.pid, 'SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    }
    await new Promise((r) => (agent ? agent.close(r) : r(undefined)));
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports a parse error as status error (the check below can fail)', async () => {
    expect(await query('sum by (node (up)')).toMatchObject({ status: 'error' });
  });

  it('has queries for every dashboard', () => {
    expect(new Set(dashboardQueries().map((q) => q.dashboard)).size).toBe(5);
  });

  it.each(dashboardQueries().map((q) => [`${q.dashboard} / ${q.panel}: ${q.expr}`, q.expr] as const))('%s', async (_name, expr) => {
    const answer = await query(interpolate(expr));
    expect(answer.error ?? '').toBe('');
    expect(answer.status).toBe('success');
    expect(answer.data?.result.length, 'no data: a name or a match the contract does not have').toBeGreaterThan(0);
  });
});
