/**
 * The Grafana provisioning renderer against golden files (`__golden__/grafana/<case>/<path>`), and
 * the rules of the dashboards' JSON as assertions. Regenerate the goldens by deleting
 * `test/roles/__golden__/grafana` and running this file (missing goldens are written), then review
 * the diff like code. test/integration/grafana-dashboards.test.ts runs every query on Prometheus.
 */
import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { dashboardQueries, renderGrafana, type GrafanaOptions } from '../../../roles/controller/grafana/render.js';
import { SCHEMA_VERSION } from '../../../roles/controller/grafana/model.js';

const goldenRoot = join(import.meta.dirname, '..', '__golden__', 'grafana');

const CASES: Readonly<Record<string, GrafanaOptions>> = {
  prometheus: {},
  influxdb: {
    prometheusUrl: 'http://127.0.0.1:19090',
    influxdb: { url: 'http://127.0.0.1:8086', database: 'mammatus' },
    provisioningDir: '/srv/grafana/provisioning',
    dashboardsDir: '/srv/mammatus/dashboards',
    scrapeInterval: '30s',
  },
};

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => `/${relative(dir, join(e.parentPath, e.name))}`);
}

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: { expr: string; refId: string; datasource: { uid: string } }[];
}

const dashboards = () =>
  renderGrafana()
    .filter((f) => f.path.endsWith('.json'))
    .map((f) => JSON.parse(f.content) as { uid: string; schemaVersion: number; panels: Panel[]; templating: { list: { name: string }[] } });

describe('renderGrafana', () => {
  // The dashboards do not depend on the options (their datasource is a variable): one golden copy.
  const golden = (name: string) => renderGrafana(CASES[name]).filter((f) => name === 'prometheus' || !f.path.endsWith('.json'));

  it.each(Object.keys(CASES))('%s renders the golden files', async (name) => {
    const files = renderGrafana(CASES[name]);
    expect(renderGrafana(CASES[name])).toEqual(files);
    const json = (o: GrafanaOptions) => renderGrafana(o).flatMap((f) => (f.path.endsWith('.json') ? [f.content] : []));
    expect(json(CASES[name])).toEqual(json({}));
    for (const f of golden(name)) await expect(f.content).toMatchFileSnapshot(join(goldenRoot, name, f.path));
  });

  it.each(Object.keys(CASES))('%s has no stale golden files', async (name) => {
    const rendered = new Set(golden(name).map((f) => f.path));
    for (const path of await listFiles(join(goldenRoot, name))) expect(rendered, `stale golden ${path}`).toContain(path);
  });

  it('provisions Prometheus as the default datasource, InfluxDB only when it is the store', () => {
    const [plain] = renderGrafana();
    const doc = parse(plain.content) as { datasources: { uid: string; url: string; isDefault?: boolean }[]; deleteDatasources?: unknown[] };
    expect(doc.datasources).toEqual([
      expect.objectContaining({ uid: 'mammatus-prometheus', url: 'http://127.0.0.1:9090', isDefault: true }),
    ]);
    expect(doc.deleteDatasources).toHaveLength(1);
    const [withInflux] = renderGrafana(CASES.influxdb);
    const influx = parse(withInflux.content) as {
      datasources: { type: string; jsonData: { dbName?: string } }[];
      deleteDatasources?: unknown;
    };
    expect(influx.datasources.map((d) => d.type)).toEqual(['prometheus', 'influxdb']);
    expect(influx.datasources[1].jsonData.dbName).toBe('mammatus');
    expect(influx.deleteDatasources).toBeUndefined();
  });

  it('points the file provider at the dashboards directory', () => {
    const files = renderGrafana(CASES.influxdb);
    const provider = parse(files[1].content) as { providers: { type: string; options: { path: string } }[] };
    expect(provider.providers[0]).toMatchObject({ type: 'file', options: { path: '/srv/mammatus/dashboards' } });
    expect(files.slice(2).every((f) => f.path.startsWith('/srv/mammatus/dashboards/'))).toBe(true);
  });

  it('renders the five dashboards with stable, distinct uids', () => {
    expect(dashboards().map((d) => d.uid)).toEqual([
      'mammatus-cluster',
      'mammatus-node',
      'mammatus-gateway',
      'mammatus-controller',
      'mammatus-compute',
    ]);
  });

  it('lays panels on the grid without overlap, with unique ids and a datasource variable', () => {
    for (const d of dashboards()) {
      expect(d.schemaVersion).toBe(SCHEMA_VERSION);
      expect(d.templating.list[0].name).toBe('datasource');
      const ids = d.panels.map((p) => p.id);
      expect(new Set(ids).size).toBe(ids.length);
      const cells = new Set<string>();
      for (const p of d.panels) {
        expect(p.gridPos.x + p.gridPos.w, `${d.uid} ${p.title}`).toBeLessThanOrEqual(24);
        for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
          for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
            expect(cells.has(`${x},${y}`), `${d.uid} ${p.title} overlaps at ${x},${y}`).toBe(false);
            cells.add(`${x},${y}`);
          }
        }
        if (p.type === 'row') continue;
        expect(p.targets?.length, `${d.uid} ${p.title}`).toBeGreaterThan(0);
        for (const t of p.targets ?? []) expect(t.datasource.uid).toBe('${datasource}');
      }
    }
  });

  it('lists every panel query and variable selector once', () => {
    const queries = dashboardQueries();
    const targets = dashboards().flatMap((d) => d.panels.flatMap((p) => p.targets ?? []));
    expect(queries.filter((q) => !q.panel.startsWith('$')).map((q) => q.expr)).toEqual(targets.map((t) => t.expr));
    expect(queries.filter((q) => q.panel === '$node').map((q) => q.dashboard)).toEqual(['mammatus-node', 'mammatus-gateway']);
    // Agent series carry job="mammatus"; only Prometheus' own ALERTS series does not.
    for (const q of queries) if (!q.expr.includes('ALERTS')) expect(q.expr, q.panel).toContain('job="mammatus"');
  });
});
