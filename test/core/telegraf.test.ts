/**
 * The nodes' Telegraf drop-in (core/telegraf.ts) against golden files
 * (`__golden__/telegraf/<case>/etc/telegraf/telegraf.d/mammatus.conf`; a missing golden is written
 * by a run: delete it to regenerate, then review the diff), read back by a real TOML parser, and by
 * `telegraf --test` where the binary exists (InfluxData's package; not in Debian).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Member } from '../../core/contracts.js';
import { findOnPath } from '../../core/exec.js';
import { influxdbControllers, influxdbUrls, METRICS_STORE_TAG, renderTelegraf, type TelegrafOptions } from '../../core/telegraf.js';
import { NO_TOMLLIB, readToml } from '../helpers/toml.js';

const GOLDEN = join(import.meta.dirname, '__golden__', 'telegraf');

const CASES: Readonly<Record<string, TelegrafOptions>> = {
  influxdb: { node: 'ctl-1', influxdb: ['fd00::3', '10.0.0.10', '10.0.0.2'] },
  prometheus: { node: 'gw-1', influxdb: [] },
  custom: { node: 'odd "name"', influxdb: ['10.0.0.2'], database: 'lab', agentMetricsUrl: 'http://127.0.0.1:19475/metrics' },
};

const member = (name: string, addr: string, tags: Record<string, string>, status: Member['status'] = 'alive'): Member => ({
  name,
  addr,
  port: 7946,
  tags,
  status,
});

interface Conf {
  global_tags: Record<string, string>;
  inputs: Record<string, { urls?: string[] }[]>;
  outputs?: { influxdb: { urls: string[]; database: string; skip_database_creation: boolean }[] };
}

describe('renderTelegraf', () => {
  it.each(Object.keys(CASES))('%s renders the golden file', async (name) => {
    const file = renderTelegraf(CASES[name]);
    expect(renderTelegraf(CASES[name])).toEqual(file);
    expect(file.path).toBe('/etc/telegraf/telegraf.d/mammatus.conf');
    await expect(file.content).toMatchFileSnapshot(join(GOLDEN, name, file.path));
  });

  it('writes to every InfluxDB store, in address order, IPv6 in brackets', () => {
    expect(influxdbUrls(['fd00::3', '10.0.0.10', '10.0.0.2', '10.0.0.2'])).toEqual([
      'http://10.0.0.2:8086',
      'http://10.0.0.10:8086',
      'http://[fd00::3]:8086',
    ]);
  });

  it('says in a comment why there is no output', () => {
    const { content } = renderTelegraf(CASES.prometheus);
    expect(content).not.toContain('[[outputs.');
    expect(content).toContain('# No output: no controller runs InfluxDB');
  });
});

describe('influxdbControllers', () => {
  it('takes the alive controllers whose metrics tag says influxdb', () => {
    const members = [
      member('ctl-2', '10.0.0.10', { role: 'controller', [METRICS_STORE_TAG]: 'influxdb' }),
      member('ctl-1', '10.0.0.2', { role: 'gateway,controller', [METRICS_STORE_TAG]: 'influxdb' }),
      member('ctl-3', '10.0.0.3', { role: 'controller', [METRICS_STORE_TAG]: 'prometheus' }),
      member('ctl-4', '10.0.0.4', { role: 'controller', [METRICS_STORE_TAG]: 'influxdb' }, 'failed'),
      member('cmp-1', '10.0.0.5', { role: 'compute', [METRICS_STORE_TAG]: 'influxdb' }),
      { ...member('ctl-5', '10.0.0.6', { role: 'controller', [METRICS_STORE_TAG]: 'influxdb' }), trusted: ['compute'] },
    ];
    expect(influxdbControllers(members)).toEqual(['10.0.0.2', '10.0.0.10']);
  });
});

describe.skipIf(NO_TOMLLIB !== undefined)(`TOML${NO_TOMLLIB === undefined ? '' : ` (skipped: ${NO_TOMLLIB})`}`, () => {
  it('reads back as the inputs, tags and outputs meant', () => {
    const conf = readToml(renderTelegraf(CASES.custom).content) as Conf;
    expect(conf.global_tags).toEqual({ node: 'odd "name"' });
    expect(Object.keys(conf.inputs).sort()).toEqual(['cpu', 'disk', 'mem', 'net', 'prometheus', 'system']);
    expect(conf.inputs.prometheus[0].urls).toEqual(['http://127.0.0.1:19475/metrics']);
    expect(conf.outputs?.influxdb).toEqual([{ urls: ['http://10.0.0.2:8086'], database: 'lab', skip_database_creation: true }]);
    const many = readToml(renderTelegraf(CASES.influxdb).content) as Conf;
    expect(many.outputs?.influxdb.map((o) => o.urls)).toEqual([
      ['http://10.0.0.2:8086'],
      ['http://10.0.0.10:8086'],
      ['http://[fd00::3]:8086'],
    ]);
    expect((readToml(renderTelegraf(CASES.prometheus).content) as Conf).outputs).toBeUndefined();
  });
});

const telegraf = findOnPath('telegraf');
describe.skipIf(!telegraf)(`telegraf --test${telegraf ? '' : ' (skipped: telegraf is not installed; InfluxData repository)'}`, () => {
  it.each(Object.keys(CASES))('%s loads', (name) => {
    const dir = mkdtempSync(join(tmpdir(), 'telegraf-'));
    try {
      const file = join(dir, 'mammatus.conf');
      writeFileSync(file, renderTelegraf(CASES[name]).content);
      // --test gathers the inputs once and prints them, writing to no output; a config error exits non-zero.
      execFileSync(telegraf!, ['--test', '--config', file, '--input-filter', 'mem:system'], { timeout: 30_000, stdio: 'pipe' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
