/**
 * Every query of the Grafana dashboards (roles/controller/grafana) run against a real Prometheus:
 * Debian's `prometheus` on a free loopback port with an empty TSDB in a temp directory. An empty
 * store answers a valid query with `success` and no data, and a query it cannot parse with status
 * `error` (HTTP 400), so this catches every typo, bad function or wrong use of a vector kind.
 * Grafana's variables get values the way Grafana fills them (`$node` = All = `.*`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
  let base = '';
  let output = '';

  const query = async (expr: string): Promise<{ status: string; error?: string }> => {
    const res = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`, { signal: AbortSignal.timeout(5000) });
    return (await res.json()) as { status: string; error?: string };
  };

  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    writeFileSync(join(dir, 'prometheus.yml'), 'global:\n  scrape_interval: 15s\n');
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
    // Ready within 20 s (bounded), or the start failed: say why.
    for (let i = 0; i < 200; i++) {
      if (child.exitCode !== null) break;
      const ready = await fetch(`${base}/-/ready`, { signal: AbortSignal.timeout(1000) }).then(
        (r) => r.ok,
        () => false,
      );
      if (ready) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`prometheus did not become ready:\n${output.slice(-2000)}`);
  });

  afterAll(async () => {
    if (child?.pid !== undefined && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      process.kill(child.pid, 'SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    }
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
  });
});
