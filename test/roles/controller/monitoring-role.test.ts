/**
 * The monitoring stack inside the controller role, through the apply framework with fakes for
 * every effect (recording runner, in-memory files, fake spawner, scripted probe): missing binaries
 * leave the role ok and say so, tools refuse before anything runs, a membership change touches
 * members.json only, a config change SIGHUPs, a stack that will not answer never rolls NATS back,
 * and the daemons stop with the store or the role. The real daemons: test/integration/monitoring-stack.test.ts.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Member } from '../../../core/contracts.js';
import { applyRole } from '../../../roles/apply.js';
import { buildControllerRole } from '../../../roles/controller/index.js';
import type { DesiredState } from '../../../roles/types.js';
import { fixedCredentials } from '../../helpers/trust.js';
import { fakeSpawn } from '../../helpers/fake-spawn.js';
import { memoryFiles } from '../../helpers/memory-files.js';
import { commandFailed, recordingRun } from '../../helpers/recording-run.js';

const log = pino({ level: 'silent' });
const DIR = '/etc/mammatus/controller/monitoring';
const member = (name: string, role = 'controller'): Member => ({ name, addr: '10.0.0.1', port: 7946, tags: { role }, status: 'alive' });
const desired = (members: Member[], monitoring: Record<string, unknown> | undefined): DesiredState => ({
  node: 'c1',
  config: { firewall: { enabled: false }, ca: { enabled: false }, ...(monitoring ? { monitoring } : {}) },
  members,
  credentials: fixedCredentials('c1', ['controller']),
});

function setup(opts: { installed?: boolean; promtoolFails?: boolean; ready?: boolean } = {}) {
  const spawn = fakeSpawn();
  const run = recordingRun((argv) =>
    opts.promtoolFails && argv[0] === 'promtool' && argv[2] === 'config'
      ? commandFailed(argv, 1, 'FAILED: parsing YAML file rules.yml: bad expr')
      : undefined,
  );
  const files = memoryFiles();
  let stamp = 1;
  const probe = async (url: string) => {
    if (url.endsWith('/metrics')) return { status: 200, body: `prometheus_config_last_reload_success_timestamp_seconds ${stamp++}\n` };
    if (url.includes(':8222')) return { status: 200, body: '{"status":"ok"}' };
    return opts.ready === false ? { status: 503, body: 'not ready' } : { status: 200, body: 'ready' };
  };
  const role = buildControllerRole({
    spawn,
    probe,
    healthTimeoutMs: 100,
    natsUser: { euid: () => 1000 },
    monitoring: { probe, euid: () => 1000, which: (p) => (opts.installed === false ? undefined : `/usr/bin/${p}`), healthTimeoutMs: 300 },
  });
  let owned: string[] = [];
  const apply = async (d: DesiredState) => {
    const report = await applyRole(role, d, { run, files, log, previous: owned });
    owned = report.owned;
    return report;
  };
  const started = (file: string) => spawn.started.filter((p) => p.file === file);
  return { spawn, run, files, role, apply, started };
}

describe('the monitoring stack in the controller role', () => {
  it('renders and runs nothing without a store', async () => {
    const t = setup();
    expect((await t.apply(desired([member('c1')], undefined))).ok).toBe(true);
    expect(t.spawn.started.map((p) => p.file)).toEqual(['nats-server']);
    expect(await t.files.read(`${DIR}/prometheus.yml`)).toBeUndefined();
    // No status line; the node says it keeps no store (Telegraf writes to none of it).
    expect(t.role.facts?.(undefined)).toEqual({ tags: { metrics: 'none' } });
  });

  it('says what is not installed and leaves the role ok', async () => {
    const t = setup({ installed: false });
    const report = await t.apply(desired([member('c1')], { store: 'influxdb' }));
    expect(report.ok).toBe(true);
    expect(t.spawn.started.map((p) => p.file)).toEqual(['nats-server']);
    expect(t.role.facts?.(undefined)?.summary).toBe('monitoring influxdb: influxd, prometheus-alertmanager, prometheus not installed');
  });

  it('checks with promtool and amtool, starts the daemons, then follows membership by members.json alone', async () => {
    const t = setup();
    expect((await t.apply(desired([member('c1')], { store: 'prometheus' }))).ok).toBe(true);
    expect(t.run.calls.filter((c) => c[0] === 'promtool' || c[0] === 'amtool').map((c) => c.slice(0, 3))).toEqual([
      ['amtool', 'check-config', `${DIR}/alertmanager.yml`],
      ['promtool', 'check', 'config'],
      ['promtool', 'check', 'rules'],
    ]);
    const [am] = t.started('prometheus-alertmanager');
    const [prom] = t.started('prometheus');
    expect(prom.args).toContain(`--config.file=${DIR}/prometheus.yml`);
    expect(t.role.facts?.(undefined)).toMatchObject({ summary: 'monitoring prometheus ok', monitoring: { state: 'ok' } });

    const calls = t.run.calls.length;
    const report = await t.apply(desired([member('c1'), member('g1', 'gateway')], { store: 'prometheus' }));
    expect(report.changed).toEqual(expect.arrayContaining([`${DIR}/members.json`]));
    expect(report.changed.filter((p) => p.startsWith(DIR))).toEqual([`${DIR}/members.json`]);
    expect(t.run.calls.slice(calls).filter((c) => c[0] === 'promtool')).toEqual([]);
    expect([prom.signals, am.signals]).toEqual([[], []]);
    expect(t.spawn.started).toHaveLength(3);

    // A threshold: rules.yml changes, Prometheus reloads on SIGHUP (same process).
    await t.apply(desired([member('c1'), member('g1', 'gateway')], { store: 'prometheus', alerts: { disk_free: 0.2 } }));
    expect(prom.signals).toEqual(['SIGHUP']);
    expect(am.signals).toEqual([]);
    expect(t.spawn.started).toHaveLength(3);

    // The store removed: the files go, the daemons stop, NATS stays.
    await t.apply(desired([member('c1')], undefined));
    expect([prom.exitedYet, am.exitedYet]).toEqual([true, true]);
    expect(t.started('nats-server')[0].exitedYet).toBe(false);
    expect(t.role.facts?.(undefined)).toEqual({ tags: { metrics: 'none' } });
  });

  it('rolls back a file promtool refuses before anything runs, with its message', async () => {
    const t = setup({ promtoolFails: true });
    const report = await t.apply(desired([member('c1')], { store: 'prometheus' }));
    expect(report.ok).toBe(false);
    expect(report.error).toMatch(/validate: promtool check rejected .*prometheus\.yml: FAILED: parsing YAML file rules\.yml/);
    expect(t.started('prometheus')).toEqual([]);
  });

  it('refuses an https SNS endpoint whose root is missing (Alertmanager would not start)', async () => {
    const t = setup();
    const sns = { access_key_id: 'AKIA1', secret_access_key: 'x', endpoint: 'https://127.0.0.1:9324', ca_file: '/srv/root.crt' };
    const report = await t.apply(desired([member('c1')], { store: 'prometheus', alerts: { sns } }));
    expect(report.error).toMatch(/alerts\.sns\.ca_file \/srv\/root\.crt does not exist/);
    await t.files.write('/srv/root.crt', '-----BEGIN CERTIFICATE-----\n', 0o644);
    expect((await t.apply(desired([member('c1')], { store: 'prometheus', alerts: { sns } }))).ok).toBe(true);
  });

  it('a stack that never answers is the status error, never a NATS rollback; stop ends it', async () => {
    const t = setup({ ready: false });
    const report = await t.apply(desired([member('c1')], { store: 'prometheus' }));
    expect(report.ok).toBe(true);
    expect(t.role.facts?.(undefined)?.summary).toMatch(/^monitoring prometheus error: alertmanager not healthy after 0s: .*HTTP 503/);
    expect(t.started('nats-server')[0].exitedYet).toBe(false);
    await t.role.stop!();
    expect(t.spawn.started.every((p) => p.exitedYet)).toBe(true);
  });

  it("tags the node with its store, so every node's Telegraf knows where InfluxDB runs", () => {
    const role = buildControllerRole({ spawn: fakeSpawn() });
    expect(role.facts?.(desired([member('c1')], { store: 'influxdb' }))?.tags).toEqual({ metrics: 'influxdb' });
    expect(role.facts?.(desired([member('c1')], { store: 'prometheus' }))?.tags).toEqual({ metrics: 'prometheus' });
    // A config that does not parse says nothing about a store.
    expect(role.facts?.(desired([member('c1')], { store: 'graphite' }))?.tags).toEqual({ metrics: 'none' });
  });

  it("renders Grafana's provisioning for this stack when asked (or, with auto, when Grafana is installed)", () => {
    const role = buildControllerRole({ spawn: fakeSpawn() });
    const mon = { store: 'influxdb', grafana: { provision: 'always', provisioning_dir: '/etc/g', dashboards_dir: '/srv/d' } };
    const files = role.render(desired([member('c1')], mon)).filter((f) => f.path.startsWith('/etc/g/') || f.path.startsWith('/srv/d/'));
    expect(files.map((f) => f.path)).toContain('/etc/g/datasources/mammatus.yaml');
    const ds = files.find((f) => f.path === '/etc/g/datasources/mammatus.yaml')!.content;
    expect(ds).toContain('url: http://127.0.0.1:9090');
    expect(ds).toContain('url: http://127.0.0.1:8086');
    expect(files.filter((f) => f.path.endsWith('.json')).length).toBe(5);
    const never = { ...mon, grafana: { ...mon.grafana, provision: 'never' } };
    expect(role.render(desired([member('c1')], never)).some((f) => f.path.startsWith('/etc/g/'))).toBe(false);
  });
});
