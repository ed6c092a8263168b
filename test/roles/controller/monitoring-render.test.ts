/**
 * The monitoring stack's renderers against golden files, each golden also checked with the real
 * tools (promtool check config and check rules, amtool check-config, influxd config) when they are
 * installed. Each `__fixtures__/controller-monitoring/<case>.yaml` holds `roles.controller` settings
 * and members; every rendered file is compared with `__golden__/controller-monitoring/<case>/<path>`.
 * A missing golden is written by a plain run; to rewrite them run
 * `npx vitest run test/roles/controller/monitoring-render.test.ts -u` (only this file's goldens
 * change: check `git status`) and review the diff like code.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Member } from '../../../core/contracts.js';
import { parseControllerConfig } from '../../../roles/controller/config.js';
import { renderController } from '../../../roles/controller/render.js';
import { findProgram } from '../../../roles/controller/ca-launch.js';
import { memberTargets, monitoringPaths, renderMonitoringFiles, snsTopicArn } from '../../../roles/controller/monitoring/index.js';
import { fixedCredentials } from '../../helpers/trust.js';

const fixturesDir = join(import.meta.dirname, '..', '__fixtures__', 'controller-monitoring');
const goldenRoot = join(import.meta.dirname, '..', '__golden__', 'controller-monitoring');
const cases = readdirSync(fixturesDir)
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => f.slice(0, -'.yaml'.length))
  .sort();

function loadFixture(name: string): { node: string; config: Record<string, unknown>; members: Member[] } {
  const raw = parse(readFileSync(join(fixturesDir, `${name}.yaml`), 'utf8')) as {
    node: string;
    config: Record<string, unknown>;
    members: Member[];
  };
  return { ...raw, members: [...raw.members].sort((a, b) => (a.name < b.name ? -1 : 1)) };
}

const renderCase = (name: string) => {
  const f = loadFixture(name);
  const mon = parseControllerConfig(f.config).monitoring;
  return { mon, files: renderMonitoringFiles(mon, f.members, f.node) };
};

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => `/${relative(dir, join(e.parentPath, e.name))}`);
}

describe('monitoring goldens', () => {
  it('has the four cases', () => {
    expect(cases).toEqual(['custom', 'influxdb', 'prometheus', 'sns-only']);
  });

  it.each(cases)('%s renders the golden files', async (name) => {
    const { files } = renderCase(name);
    expect(renderCase(name).files).toEqual(files);
    for (const file of files) await expect(file.content).toMatchFileSnapshot(join(goldenRoot, name, file.path));
  });

  it.each(cases)('%s has no stale golden files', async (name) => {
    const rendered = new Set(renderCase(name).files.map((f) => f.path));
    expect((await listFiles(join(goldenRoot, name))).filter((p) => !rendered.has(p))).toEqual([]);
  });
});

const tools = { promtool: findProgram('promtool'), amtool: findProgram('amtool'), influxd: findProgram('influxd') };

describe('the goldens as the real tools read them', () => {
  /** The case's goldens in a scratch directory, their paths moved there (the tools open the rule and SD files). */
  function stage(name: string): { dir: string; paths: ReturnType<typeof monitoringPaths> } {
    const { mon, files } = renderCase(name);
    const dir = mkdtempSync(join(tmpdir(), 'mon-golden-'));
    for (const f of files) {
      const text = readFileSync(join(goldenRoot, name, f.path), 'utf8')
        .split(mon.config_dir)
        .join(dir);
      writeFileSync(join(dir, f.path.slice(mon.config_dir.length + 1)), text);
    }
    return { dir, paths: monitoringPaths({ config_dir: dir }) };
  }
  const check = (program: string, args: string[]) => execFileSync(program, args, { encoding: 'utf8', stdio: 'pipe' });

  it.skipIf(!tools.promtool).each(cases)('%s: promtool check config and check rules accept them', (name) => {
    const { dir, paths } = stage(name);
    try {
      expect(check(tools.promtool!, ['check', 'config', paths.prometheus])).toMatch(/SUCCESS: \d+ rules found/);
      expect(check(tools.promtool!, ['check', 'rules', paths.rules])).toContain('SUCCESS: 8 rules found');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!tools.amtool).each(cases.filter((c) => c !== 'custom'))('%s: amtool check-config accepts alertmanager.yml', (name) => {
    const { dir, paths } = stage(name);
    try {
      expect(check(tools.amtool!, ['check-config', paths.alertmanager])).toContain('SUCCESS');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!tools.influxd)('influxdb: influxd config reads influxdb.conf as rendered (tsi1, addresses, directories)', () => {
    const { dir, paths } = stage('influxdb');
    try {
      const merged = check(tools.influxd!, ['config', '-config', paths.influxdb]);
      expect(merged).toContain('index-version = "tsi1"');
      expect(merged).toContain('bind-address = "127.0.0.1:8186"');
      expect(merged).toContain('bind-address = "127.0.0.1:8188"');
      expect(merged).toContain('dir = "/var/lib/mammatus/influxdb/data"');
      expect(merged).toContain('wal-dir = "/var/lib/mammatus/influxdb/wal"');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!tools.promtool)('promtool refuses a broken rule (what validation relies on)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mon-bad-'));
    try {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'rules.yml'), 'groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: up ==\n');
      expect(() => check(tools.promtool!, ['check', 'rules', join(dir, 'rules.yml')])).toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('what the files say', () => {
  it('renders nothing without a store', () => {
    expect(renderMonitoringFiles(parseControllerConfig({}).monitoring, loadFixture('prometheus').members, 'ctl-1')).toEqual([]);
    expect(renderMonitoringFiles(parseControllerConfig({ monitoring: { alerts: { for: '5m' } } }).monitoring, [], 'ctl-1')).toEqual([]);
  });

  it('scrapes alive, failed and leaving members through the local agent, by name', () => {
    const groups = memberTargets(loadFixture('prometheus').members, '0.0.0.0:9475');
    expect(groups.map((g) => g.labels.node)).toEqual(['bare', 'cn-1', 'cn_3+b', 'ctl-1', 'gw-1']);
    expect(groups.every((g) => g.targets.length === 1 && g.targets[0] === '127.0.0.1:9475')).toBe(true);
    expect(groups.find((g) => g.labels.node === 'cn_3+b')!.labels).toEqual({
      node: 'cn_3+b',
      node_roles: 'compute',
      __metrics_path__: '/members/cn_3%2Bb/metrics',
    });
    expect(groups.find((g) => g.labels.node === 'gw-1')!.labels.node_roles).toBe('compute,gateway');
    expect(groups.find((g) => g.labels.node === 'bare')!.labels.node_roles).toBe('');
  });

  it('remote-writes to InfluxDB and keeps 2 days locally only with store influxdb', () => {
    const influx = renderCase('influxdb');
    const prom = influx.files.find((f) => f.path === monitoringPaths(influx.mon).prometheus)!.content;
    expect(prom).toContain('url: http://127.0.0.1:8186/api/v1/prom/write?db=metrics');
    expect(prom).toContain('--storage.tsdb.retention.time=2d');
    const plain = renderCase('prometheus');
    expect(plain.files.find((f) => f.path.endsWith('prometheus.yml'))!.content).not.toContain('remote_write');
    expect(plain.mon.prometheus.retention).toBe('15d');
    expect(plain.files.some((f) => f.path.endsWith('influxdb.conf'))).toBe(false);
  });

  it('keeps alertmanager.yml (the SNS secret) 0640 and points SNS at our topic ARN', () => {
    const { mon, files } = renderCase('influxdb');
    const am = files.find((f) => f.path === monitoringPaths(mon).alertmanager)!;
    expect(am.mode).toBe(0o640);
    expect(snsTopicArn(mon.alerts.sns!)).toBe('arn:aws:sns:eu-west-1:123456789012:mammatus-alerts');
    expect(am.content).toContain('topic_arn: arn:aws:sns:eu-west-1:123456789012:mammatus-alerts');
    const defaults = renderCase('sns-only');
    expect(snsTopicArn(defaults.mon.alerts.sns!)).toBe('arn:aws:sns:us-east-1:000000000000:mammatus-alerts');
    expect(defaults.mon.alerts.sns!.endpoint).toBe('http://127.0.0.1:9324');
  });

  it('is part of the controller role render, beside NATS', () => {
    const f = loadFixture('prometheus');
    const desired = { node: f.node, config: f.config, members: f.members, credentials: fixedCredentials(f.node, ['controller']) };
    const paths = Object.values(monitoringPaths(parseControllerConfig(f.config).monitoring));
    const rendered = renderController(desired).map((r) => r.path);
    expect(paths.filter((p) => rendered.includes(p)).sort()).toEqual(paths.filter((p) => !p.endsWith('influxdb.conf')).sort());
  });
});
