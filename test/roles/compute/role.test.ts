/**
 * The compute role against a simulated LXD on a unix socket and an in-memory registry link: LXD
 * set up from the preseed (created, then updated with ETags), instances reconciled to the
 * registry, addresses written back, unknown containers reported and left alone.
 */
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildComputeRole, computeConfigured, registryServersPath, type ComputeRole } from '../../../roles/compute/index.js';
import type { ComputeRegistry } from '../../../core/contracts.js';
import type { StartContext, DesiredState } from '../../../roles/types.js';
import type { InstanceRecord } from '../../../core/instance-record.js';
import { memoryFiles } from '../../helpers/memory-files.js';
import { commandFailed, recordingRun } from '../../helpers/recording-run.js';
import { startLxdSim, type LxdSim } from '../../helpers/lxd-sim.js';
import { exposition } from '../../../core/metrics.js';
import { seriesValues } from '../../helpers/metrics.js';

const T = '2025-01-01T00:00:00.000Z';
const log = pino({ level: 'silent' });

/** An in-memory registry link: records the test edits, writes the role makes. */
function memoryRegistry(initial: InstanceRecord[] = []) {
  const records = new Map(initial.map((r) => [r.id, r]));
  let onChange: () => void = () => undefined;
  const writes: string[] = [];
  /** `observed` writes, kept apart: every pass after an action writes one. */
  const observed: string[] = [];
  const link: ComputeRegistry = {
    snapshot: () => [...records.values()],
    async setIps(id, ips) {
      writes.push(`ips ${id} ${ips.join(',')}`);
      const r = records.get(id);
      if (r) records.set(id, { ...r, ips: [...ips] });
    },
    async setObserved(id, o) {
      observed.push(`${id} ${o.status}${o.error ? ` ${o.error}` : ''}`);
      const r = records.get(id);
      if (r) records.set(id, { ...r, observed: { ...o, at: T } });
    },
    async remove(id) {
      writes.push(`remove ${id}`);
      records.delete(id);
    },
    stop: async () => undefined,
  };
  return {
    link,
    records,
    writes,
    observed,
    factory: (_servers: readonly string[], change: () => void) => {
      onChange = change;
      return link;
    },
    set(r: InstanceRecord) {
      records.set(r.id, r);
      onChange();
    },
  };
}

function rec(name: string, n: number, extra: Partial<InstanceRecord> = {}): InstanceRecord {
  const hex = n.toString(16).padStart(2, '0');
  return {
    id: `i-000000000000000${hex}`,
    name,
    node: 'cn1',
    macs: [`02:00:00:00:00:${hex}`],
    ips: [],
    ssh_keys: [],
    vendor_data: {},
    tags: { image: 'debian-12' },
    state: 'running',
    created_at: T,
    updated_at: T,
    ...extra,
  };
}

let sim: LxdSim;
let role: ComputeRole;
let reg: ReturnType<typeof memoryRegistry>;
const files = memoryFiles();
let run = recordingRun();

function ctx(config: Record<string, unknown>): StartContext {
  const desired: DesiredState = { node: 'cn1', config, members: [] };
  return { run, files, log, desired };
}
const config = () => ({
  parent: 'lan0',
  lxd: { socket: sim.socketPath },
  registry: { nats: ['nats://10.88.0.10:4222'] },
  paths: { preseed: '/etc/mc/preseed.yaml' },
});

beforeEach(async () => {
  sim = await startLxdSim();
  reg = memoryRegistry();
  run = recordingRun();
  role = buildComputeRole({ instanceFeed: reg.factory, pollMs: 60_000, lxd: { requestTimeoutMs: 2000, operationTimeoutMs: 2000 } });
});
afterEach(async () => {
  await role.stop?.();
  await sim.close();
});

describe('render', () => {
  it('renders the preseed and the registry servers; nothing when no parent is configured', () => {
    const out = role.render({ node: 'cn1', config: config(), members: [] });
    expect(out.map((f) => f.path)).toEqual(['/etc/mc/preseed.yaml', '/etc/mc/registry-servers']);
    expect(out[1].content).toContain('nats://10.88.0.10:4222\n');
    expect(registryServersPath({ paths: { preseed: '/a/b.yaml' } } as never)).toBe('/a/registry-servers');
    expect(role.render({ node: 'cn1', config: {}, members: [] })).toEqual([]);
    expect(computeConfigured({ parent: null })).toBe(false);
  });
});

describe('LXD setup', () => {
  it('creates the pool and profiles, then finds nothing to do', async () => {
    await role.start!(ctx(config()));
    expect(sim.pools.get('mammatus')?.driver).toBe('dir');
    expect(sim.profiles.get('default')?.value.devices).toEqual({ root: { path: '/', pool: 'mammatus', type: 'disk' } });
    expect(sim.profiles.get('mammatus')?.value.devices).toEqual({
      eth0: { name: 'eth0', nictype: 'macvlan', parent: 'lan0', type: 'nic' },
    });
    const before = sim.calls().filter((c) => !c.startsWith('GET')).length;
    await role.reload!({ ...ctx(config()), changed: ['/etc/mc/preseed.yaml'], prior: () => undefined }).catch(() => undefined); // no file in memory: skipped
    await files.write('/etc/mc/preseed.yaml', 'x');
    await role.reload!({ ...ctx(config()), changed: ['/etc/mc/preseed.yaml'], prior: () => undefined });
    expect(sim.calls().filter((c) => !c.startsWith('GET')).length).toBe(before);
  });

  it("updates a changed profile with its ETag and keeps the operator's extra keys", async () => {
    sim.profiles.set('mammatus', {
      value: {
        name: 'mammatus',
        config: { 'limits.cpu': '2' },
        devices: { eth0: { type: 'nic', nictype: 'macvlan', parent: 'old0', name: 'eth0' } },
      },
      etag: 7,
    });
    await role.start!(ctx(config()));
    const put = sim.fake.requests.find((r) => r.method === 'PUT' && r.path === '/1.0/profiles/mammatus')!;
    expect(put.headers['if-match']).toBe('"7"');
    expect(sim.profiles.get('mammatus')?.value).toMatchObject({ config: { 'limits.cpu': '2' }, devices: { eth0: { parent: 'lan0' } } });
  });

  it('fails the start when LXD cannot be set up (the agent reports the role in error)', async () => {
    sim.fail('POST /1.0/storage-pools', 500, 'Failed to create storage pool');
    await expect(role.start!(ctx(config()))).rejects.toThrow(/Failed to create storage pool/);
  });

  it('gives the host its macvlan sibling through the runner, creating it only when missing', async () => {
    const cfg = { ...config(), host_macvlan: { enabled: true, address: '10.88.0.21/24' } };
    run = recordingRun((argv) => (argv[1] === '-o' ? commandFailed(argv, 1, 'Device "mammatus0" does not exist.') : undefined));
    await role.start!(ctx(cfg));
    expect(run.calls).toEqual([
      ['ip', '-o', 'link', 'show', 'dev', 'mammatus0'],
      ['ip', 'link', 'add', 'mammatus0', 'link', 'lan0', 'type', 'macvlan', 'mode', 'bridge'],
      ['ip', 'address', 'replace', '10.88.0.21/24', 'dev', 'mammatus0'],
      ['ip', 'link', 'set', 'mammatus0', 'up'],
    ]);
  });
});

describe('instances', () => {
  it('creates and starts a launched instance with its MAC fixed, then writes its address back', async () => {
    reg.records.set('i-00000000000000001', rec('web', 1));
    await role.start!(ctx(config()));
    await role.reconcileNow();
    const web = sim.instances.get('web')!;
    expect(web).toMatchObject({
      status: 'Running',
      config: { 'volatile.eth0.hwaddr': '02:00:00:00:00:01', 'user.mammatus.instance-id': 'i-00000000000000001' },
    });
    expect(sim.calls().filter((c) => /^(POST|PUT) \/1.0\/instances/.test(c))).toEqual([
      'POST /1.0/instances',
      'PUT /1.0/instances/web/state',
    ]);
    expect(reg.writes).toEqual([]);
    // The pass after the start reads LXD again and records what the instance really does.
    expect(reg.observed).toEqual(['i-00000000000000001 absent', 'i-00000000000000001 running']);
    web.ips = ['10.88.0.150'];
    await role.reconcileNow();
    expect(reg.writes).toEqual(['ips i-00000000000000001 10.88.0.150']);
    expect(role.report()).toMatchObject({ done: ['address web 10.88.0.150'], failed: [], awaitingAddress: 0 });
    await role.reconcileNow();
    expect(role.report()?.done).toEqual([]);
  });

  it('stops, starts and deletes as the record says; a delete removes the record', async () => {
    await role.start!(ctx(config()));
    reg.set(rec('db', 2));
    await role.reconcileNow();
    reg.set({ ...reg.records.get('i-00000000000000002')!, state: 'stopped' });
    await role.reconcileNow();
    expect(sim.instances.get('db')?.status).toBe('Stopped');
    reg.set({ ...reg.records.get('i-00000000000000002')!, state: 'running' });
    await role.reconcileNow();
    expect(sim.instances.get('db')?.status).toBe('Running');
    reg.set({ ...reg.records.get('i-00000000000000002')!, state: 'deleting' });
    await role.reconcileNow();
    expect(sim.instances.has('db')).toBe(false);
    expect(reg.records.size).toBe(0);
    expect(reg.writes).toEqual(['remove i-00000000000000002']);
  });

  it('reports containers the registry does not know and never touches them', async () => {
    sim.instances.set('by-hand', { name: 'by-hand', config: {}, profiles: ['default'], status: 'Running', ips: [] });
    await role.start!(ctx(config()));
    await role.reconcileNow();
    expect(role.report()?.unmanaged).toEqual([{ name: 'by-hand', reason: 'not created by mammatus' }]);
    expect(sim.instances.get('by-hand')?.status).toBe('Running');
    expect(sim.calls().some((c) => c.includes('by-hand'))).toBe(false);
  });

  it('an LXD error fails that instance only; the next pass tries again', async () => {
    reg.records.set('i-00000000000000003', rec('bad', 3, { tags: { image: 'missing' } }));
    reg.records.set('i-00000000000000004', rec('good', 4));
    await role.start!(ctx(config()));
    await role.reconcileNow();
    expect(role.report()?.failed).toEqual([expect.stringMatching(/^create bad: .*Image alias not found/)]);
    expect(sim.instances.get('good')?.status).toBe('Running');
    // Why is written to the record, once (the next passes fail the same way and write nothing).
    expect(reg.records.get('i-00000000000000003')?.observed).toMatchObject({
      status: 'error',
      error: expect.stringMatching(/^create: .*Image alias not found/),
    });
    expect(reg.records.get('i-00000000000000004')?.observed?.status).toBe('running');
    const writes = reg.observed.length;
    await role.reconcileNow();
    expect(reg.observed.length).toBe(writes);
    reg.set({ ...reg.records.get('i-00000000000000003')!, tags: { image: 'debian-12' } });
    await role.reconcileNow();
    expect(sim.instances.get('bad')?.status).toBe('Running');
  });

  it('does nothing before the registry has been read', async () => {
    sim.instances.set('by-hand', { name: 'by-hand', config: {}, profiles: [], status: 'Running', ips: [] });
    reg.link.snapshot = () => undefined;
    await role.start!(ctx(config()));
    await role.reconcileNow();
    expect(role.report()).toMatchObject({ unmanaged: [], done: [] });
  });
});

describe('volumes and the initiator', () => {
  it('publishes the initiator as the tag iscsi and follows the attached volumes of this node', async () => {
    await role.stop?.();
    const opened: string[] = [];
    role = buildComputeRole({
      instanceFeed: reg.factory,
      volumeFeed: async (servers, node, onChange) => {
        opened.push(`${node} ${servers.join(',')}`);
        onChange([]);
        return { close: async () => undefined };
      },
      initiatorNameFile: '/etc/iscsi/initiatorname.iscsi',
      pollMs: 60_000,
      lxd: { requestTimeoutMs: 2000, operationTimeoutMs: 2000 },
    });
    await files.write('/etc/iscsi/initiatorname.iscsi', '## generated\nInitiatorName=iqn.1993-08.org.debian:01:cafe\n');
    await role.start!(ctx(config()));
    await role.reconcileNow();
    expect(opened).toEqual(['cn1 nats://10.88.0.10:4222']);
    expect(role.facts().tags).toEqual({ iscsi: 'iqn.1993-08.org.debian:01:cafe' });
    // No volume here: the first pass only read open-iscsi's state (to log out what was detached meanwhile).
    await new Promise((r) => setTimeout(r, 20));
    expect(run.calls.filter((c) => c[0] === 'iscsiadm').map((c) => c.join(' '))).toEqual(['iscsiadm -m session', 'iscsiadm -m node']);
    expect(role.facts().summary).toBe('0 instances (0 running)');
  });

  it('without an initiator name no tag is wanted', async () => {
    await files.remove('/etc/iscsi/initiatorname.iscsi');
    await role.start!(ctx(config()));
    expect(role.facts().tags).toEqual({});
  });
});

describe('metrics', () => {
  /** The values of these series (0 when absent: a histogram that observed nothing yet). */
  const values = async (...series: string[]) => (await seriesValues(...series)).map((v) => v ?? 0);
  const launches = ['mammatus_compute_launch_seconds_count', 'mammatus_compute_launch_seconds_sum'];

  it('exports instances by status and times each launch once; nothing after stop', async () => {
    const created = new Date(Date.now() - 5000).toISOString();
    reg.records.set('i-00000000000000003', rec('bad', 3, { tags: { image: 'missing' }, created_at: created }));
    reg.records.set('i-00000000000000004', rec('good', 4, { created_at: created }));
    reg.records.set('i-00000000000000005', rec('idle', 5, { state: 'stopped', created_at: created }));
    const [count, sum] = await values(...launches);
    await role.start!(ctx(config()));
    await role.reconcileNow();
    const byStatus = ['running', 'error', 'stopped'].map((s) => `mammatus_compute_instances{status="${s}"}`);
    expect(await values(...byStatus)).toEqual([1, 1, 1]);
    const [count1, sum1] = await values(...launches);
    expect(count1 - count).toBe(1);
    expect(sum1 - sum).toBeGreaterThanOrEqual(5);
    expect(sum1 - sum).toBeLessThan(60);
    // Stopped and started again: no second launch.
    reg.set({ ...reg.records.get('i-00000000000000004')!, state: 'stopped' });
    await role.reconcileNow();
    reg.set({ ...reg.records.get('i-00000000000000004')!, state: 'running' });
    await role.reconcileNow();
    expect((await values(...launches))[0]).toBe(count1);
    expect(await values(...byStatus)).toEqual([1, 1, 1]);
    await role.stop!();
    expect(await exposition()).not.toMatch(/^mammatus_compute_instances\{/m);
  });
});
