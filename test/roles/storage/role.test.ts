/**
 * The storage role with a fake volume feed: its settings, the backend choice, the refusal to run
 * next to the other backend, and the apply path of both backends (tgt against a scripted tgtd,
 * LIO against the simulated targetcli of lio-sim.ts): what it serves, what it reports per volume,
 * that a second pass changes and reports nothing, and that a failure keeps the last good state.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { FileOps, Member, Run, RunResult } from '../../../core/contracts.js';
import type { VolumeRecord } from '../../../core/volume-record.js';
import { parseStorageConfig } from '../../../roles/storage/config.js';
import { buildStorageCapacity, parseStorageCapacity, STORAGE_CAPACITY_QUERY } from '../../../roles/storage/capacity.js';
import { buildStorageRole, STORAGE_SETTINGS_PATH, type VolumeFeed, type VolumeObserved } from '../../../roles/storage/index.js';
import { chooseBackend, otherBackendProblem } from '../../../roles/storage/serve.js';
import { tgtSizeMb } from '../../../roles/storage/tgt-show.js';
import type { StartContext } from '../../../roles/types.js';
import { memoryFiles } from '../../helpers/memory-files.js';
import { commandFailed, recordingRun } from '../../helpers/recording-run.js';
import { lioSim } from './lio-sim.js';
import { seriesValues } from '../../helpers/metrics.js';
import { volumesByState } from '../../../roles/storage/metrics.js';

const log = pino({ level: 'silent' });
const GiB = 2 ** 30;
const CP = 'iqn.1993-08.org.debian:01:c0ffee01';
const SPACE = async () => ({ free: 88 * GiB, total: 100 * GiB });
const NOW = () => new Date('2026-12-06T12:00:00Z');

function volume(name: string, over: Partial<VolumeRecord> = {}): VolumeRecord {
  return {
    name,
    size_bytes: GiB,
    node: 'st1',
    backing: { kind: 'file', path: `/var/lib/mammatus/volumes/${name}.img` },
    state: 'available',
    chap: { user: `${name}-chap`, secret: 'Aa1-aaaabbbbcccc' },
    created_at: '2026-12-01T00:00:00Z',
    updated_at: '2026-12-01T00:00:00Z',
    ...over,
  };
}
const data = volume('data', { attached: { instance: 'web-1', node: 'cn1', initiator: CP } });
const spare = volume('spare');
const other = volume('theirs', { node: 'st2' });

/** A feed the test drives: `set` is a registry change; `reports` what the role wrote back. */
function fakeFeed() {
  let push: (v: readonly VolumeRecord[]) => void = () => undefined;
  const reports: [string, VolumeObserved][] = [];
  const opened: string[][] = [];
  let closed = 0;
  const feed: VolumeFeed = async (servers, node, onChange) => {
    opened.push([...servers, node]);
    push = onChange;
    return {
      close: async () => void closed++,
      report: async (name, observed) => void reports.push([name, observed]),
    };
  };
  return { feed, reports, opened, closed: () => closed, set: (v: readonly VolumeRecord[]) => push(v) };
}

const member = (name: string, addr: string): Member => ({ name, addr, port: 7946, tags: {}, status: 'alive' });

function ctx(config: Record<string, unknown>, run: Run, files: FileOps): StartContext {
  return { run, files, log, desired: { node: 'st1', config, members: [member('st1', '10.0.0.5')] } };
}

const REGISTRY = { registry: { nats: ['nats://10.0.0.10:4222'] } };
const ok = (stdout = ''): RunResult => ({ stdout, stderr: '', exitCode: 0 });

/** A scripted tgtd: targets appear on `tgt-admin --update IQN` as the volumes say, vanish on `--delete`. */
function fakeTgt(volumes: () => readonly VolumeRecord[], ss = '') {
  const live = new Map<string, VolumeRecord>();
  const sizes = new Map<string, number>();
  const iqn = (v: VolumeRecord) => `iqn.2026-12.mammatus:volume.${v.name}`;
  const show = () =>
    [...live.entries()]
      .map(
        ([i, v], n) =>
          `Target ${n + 1}: ${i}\n    System information:\n        Driver: iscsi\n        State: ready\n    I_T nexus information:\n` +
          `    LUN information:\n        LUN: 0\n            Type: controller\n            Size: 0 MB, Block size: 1\n            Backing store type: null\n            Backing store path: None\n` +
          `        LUN: 1\n            Type: disk\n            SCSI ID: IET     00010001\n            Size: ${tgtSizeMb(v.size_bytes)} MB, Block size: 512\n            Backing store type: rdwr\n            Backing store path: ${(v.backing as { path: string }).path}\n            Backing store flags: \n` +
          `    Account information:\n        ${v.chap.user}\n    ACL information:\n        255.255.255.255\n${v.attached ? `        ${v.attached.initiator}\n` : ''}`,
      )
      .join('');
  const run = recordingRun((argv) => {
    const [cmd, ...args] = argv;
    if (cmd === 'ss') return ok(ss);
    if (cmd === 'stat') return sizes.has(argv.at(-1)!) ? ok(`${sizes.get(argv.at(-1)!)} 600\n`) : commandFailed(argv);
    if (cmd === 'truncate') sizes.set(argv.at(-1)!, Number(args[1].slice(1)));
    if (cmd === 'tgtadm' && args.includes('target') && args.includes('show')) return ok(show());
    if (cmd === 'tgtadm' && args.includes('portal') && args.includes('show')) return ok('Portal: 10.0.0.5:3260,1\n');
    if (cmd === 'tgt-admin' && args.includes('--update')) {
      const v = volumes().find((x) => iqn(x) === argv.at(-1));
      if (v) live.set(iqn(v), v);
    }
    if (cmd === 'tgt-admin' && args[0] === '--delete') live.delete(args[1]);
    return undefined;
  });
  return { run, live };
}

describe('roles.storage settings', () => {
  it('applies the defaults', () => {
    expect(parseStorageConfig({})).toEqual({
      backend: 'auto',
      path: '/var/lib/mammatus/volumes',
      lvm: { volume_groups: [] },
      registry: { nats: [] },
    });
    expect(parseStorageConfig({ backend: 'tgt', portal: '10.0.0.7', lvm: { volume_groups: ['vg0'] } })).toMatchObject({
      backend: 'tgt',
      portal: '10.0.0.7',
      lvm: { volume_groups: ['vg0'] },
    });
  });

  it.each([
    [{ backend: 'iet' }, /^roles\.storage\.backend: must be one of/],
    [{ path: 'volumes' }, /^roles\.storage\.path: must be an absolute path/],
    [{ portal: 'eth0' }, /^roles\.storage\.portal: must be an IPv4 address/],
    [{ lvm: { volume_groups: ['a b'] } }, /^roles\.storage\.lvm\.volume_groups\[0\]: must be an LVM volume group name/],
    [{ registry: { nats: ['http://x'] } }, /^roles\.storage\.registry\.nats\[0\]: must be a NATS URL/],
    [{ volumes: 1 }, /^roles\.storage/],
  ])('names the key at fault: %j', (raw, message) => {
    expect(() => parseStorageConfig(raw)).toThrow(message);
  });
});

describe('backend choice and the other backend on port 3260', () => {
  it('auto is LIO when its configfs tree exists or modprobe finds the module, else tgt', async () => {
    const all = recordingRun();
    expect(await chooseBackend('auto', all)).toBe('lio');
    expect(all.calls).toEqual([['test', '-d', '/sys/kernel/config/target']]);
    const modOnly = recordingRun((a) => (a[0] === 'test' ? commandFailed(a) : undefined));
    expect(await chooseBackend('auto', modOnly)).toBe('lio');
    expect(modOnly.calls.at(-1)).toEqual(['modprobe', '-n', 'target_core_mod']);
    expect(
      await chooseBackend(
        'auto',
        recordingRun((a) => commandFailed(a)),
      ),
    ).toBe('tgt');
    const none = recordingRun();
    expect(await chooseBackend('tgt', none)).toBe('tgt');
    expect(none.calls).toEqual([]);
  });

  it('refuses LIO while tgtd listens on 3260, and tgt while the kernel does', async () => {
    const tgtd = 'LISTEN 0 4096 0.0.0.0:3260 0.0.0.0:* users:(("tgtd",pid=812,fd=6))\n';
    const kernel = 'LISTEN 0 256 10.0.0.5:3260 0.0.0.0:*\n';
    const say = (out: string) => recordingRun((a) => (a[0] === 'ss' ? ok(out) : undefined));
    expect(await otherBackendProblem('lio', say(tgtd))).toMatch(/tgtd listens on port 3260, so LIO cannot serve there/);
    expect(await otherBackendProblem('tgt', say(tgtd))).toBeUndefined();
    expect(await otherBackendProblem('tgt', say(kernel))).toMatch(/the kernel's LIO target listens on port 3260/);
    expect(await otherBackendProblem('lio', say(kernel))).toBeUndefined();
    expect(
      await otherBackendProblem(
        'lio',
        recordingRun((a) => commandFailed(a)),
      ),
    ).toBeUndefined();
  });
});

describe('the storage role', () => {
  it('without roles.storage.registry.nats renders nothing, runs nothing and says so', async () => {
    const f = fakeFeed();
    const role = buildStorageRole({ volumeFeed: f.feed, space: SPACE });
    const run = recordingRun();
    expect(role.render({ node: 'st1', config: {}, members: [] })).toEqual([]);
    await role.start!(ctx({}, run, memoryFiles()));
    expect(run.calls).toEqual([]);
    expect(f.opened).toEqual([]);
    expect(role.facts()).toMatchObject({ ready: false, summary: 'serves nothing: no registry: roles.storage.registry.nats is not set' });
    // Without a feed at all (the agent follows no registry), the same: nothing served.
    const bare = buildStorageRole({ space: SPACE });
    await bare.start!(ctx(REGISTRY, run, memoryFiles()));
    expect(bare.facts()).toMatchObject({ ready: false, reason: 'this agent follows no registry: no volume is served' });
  });

  it('renders its resolved settings, the portal defaulting to the Serf address', () => {
    const role = buildStorageRole();
    const files = role.render({
      node: 'st1',
      config: { ...REGISTRY, lvm: { volume_groups: ['vg0'] } },
      members: [member('st1', '10.0.0.5')],
    });
    expect(files).toEqual([
      {
        path: STORAGE_SETTINGS_PATH,
        mode: 0o644,
        content:
          '# managed by mammatus role=storage: the settings the storage role serves volumes with\n' +
          'backend auto\npath /var/lib/mammatus/volumes\nportal 10.0.0.5\nvolume_group vg0\nregistry nats://10.0.0.10:4222\n',
      },
    ]);
  });

  it('tgt: serves its volumes, reports each once, changes nothing on a second pass, and reports a deleted one absent', async () => {
    const f = fakeFeed();
    let current: readonly VolumeRecord[] = [data, spare, other];
    const tgt = fakeTgt(() => current);
    const files = memoryFiles();
    const role = buildStorageRole({ volumeFeed: f.feed, space: SPACE, now: NOW });
    await role.start!(ctx({ ...REGISTRY, backend: 'tgt' }, tgt.run, files));
    expect(f.opened).toEqual([['nats://10.0.0.10:4222', 'st1']]);
    f.set(current);
    await role.serveNow();
    expect(tgt.run.calls.filter((c) => c[0] === 'tgt-admin').map((c) => c.at(-1))).toEqual([
      'iqn.2026-12.mammatus:volume.data',
      'iqn.2026-12.mammatus:volume.spare',
    ]);
    expect(files.entries.get('/etc/tgt/conf.d/mammatus.conf')?.mode).toBe(0o600);
    expect(f.reports).toEqual([
      ['data', { state: 'serving', lun: 1, portal: '10.0.0.5', at: '2026-12-06T12:00:00.000Z' }],
      ['spare', { state: 'serving', lun: 1, portal: '10.0.0.5', at: '2026-12-06T12:00:00.000Z' }],
    ]);
    expect(role.facts()).toMatchObject({ summary: '2 volumes, 2 of 100 GiB, 1 attached (tgt)', ready: true, free_bytes: 88 * GiB });

    const before = tgt.run.calls.length;
    f.set(current);
    await role.serveNow();
    expect(tgt.run.calls.slice(before).filter((c) => c[0] === 'tgt-admin')).toEqual([]);
    expect(f.reports).toHaveLength(2);

    current = [data, { ...spare, state: 'deleting' }];
    f.set(current);
    await role.serveNow();
    expect(f.reports.at(-1)).toEqual(['spare', { state: 'absent', at: '2026-12-06T12:00:00.000Z' }]);
    expect(tgt.live.has('iqn.2026-12.mammatus:volume.spare')).toBe(false);
    expect(role.facts().summary).toBe('1 volumes, 1 of 100 GiB, 1 attached (tgt)');

    await role.stop!();
    expect(f.closed()).toBe(1);
  });

  it('lio (auto, the kernel has it): serves with one-target restores, LUN 0, and nothing again on a second pass', async () => {
    const sim = lioSim();
    const run: Run = (file, args, o) => (file === 'test' || file === 'ss' ? Promise.resolve(ok()) : sim.run(file, args, o));
    const f = fakeFeed();
    const role = buildStorageRole({ volumeFeed: f.feed, space: SPACE, now: NOW });
    await role.start!(ctx(REGISTRY, run, sim.files));
    f.set([data, spare, other]);
    await role.serveNow();
    expect(sim.live.targets.map((t) => String(t.wwn)).sort()).toEqual([
      'iqn.2026-12.mammatus:volume.data',
      'iqn.2026-12.mammatus:volume.spare',
    ]);
    expect(f.reports.map(([n, o]) => [n, o.state, o.lun])).toEqual([
      ['data', 'serving', 0],
      ['spare', 'serving', 0],
    ]);
    expect(role.facts().backend).toBe('lio');

    const restores = () => sim.run.calls.filter((c) => c[1] === 'restoreconfig').length;
    const n = restores();
    f.set([data, spare, other]);
    await role.serveNow();
    expect(restores()).toBe(n);
    expect(f.reports).toHaveLength(2);

    // The live config cannot be read: nothing changes, every volume says why, the targets stay.
    sim.faults.fail = (argv) => (argv[0] === 'targetctl' ? commandFailed(argv, 1, "FileNotFoundError: '/proc/modules'") : undefined);
    f.set([data, { ...spare, size_bytes: 2 * GiB }]);
    await role.serveNow();
    expect(f.reports.slice(2).map(([n, o]) => [n, o.state])).toEqual([
      ['data', 'error'],
      ['spare', 'error'],
    ]);
    expect(f.reports.at(-1)?.[1].error).toMatch(/cannot read LIO's live config/);
    expect(sim.live.targets).toHaveLength(2);
    expect(role.facts()).toMatchObject({
      ready: false,
      summary: expect.stringMatching(/^2 volumes, 3 of 100 GiB, 1 attached, 2 failing, not ready: cannot read LIO's live config/),
    });
  });

  it('refuses to serve with LIO while tgtd holds port 3260, and touches neither', async () => {
    const run = recordingRun((a) =>
      a[0] === 'ss' ? ok('LISTEN 0 4096 0.0.0.0:3260 0.0.0.0:* users:(("tgtd",pid=812,fd=6))\n') : undefined,
    );
    const f = fakeFeed();
    const role = buildStorageRole({ volumeFeed: f.feed, space: SPACE, now: NOW });
    await role.start!(ctx({ ...REGISTRY, backend: 'lio' }, run, memoryFiles()));
    f.set([data]);
    await role.serveNow();
    expect(new Set(run.calls.map((c) => c[0]))).toEqual(new Set(['ss']));
    expect(f.reports).toEqual([
      ['data', expect.objectContaining({ state: 'error', error: expect.stringMatching(/^tgtd listens on port 3260/) })],
    ]);
    // Not ready, so the volume CLI places nothing here.
    expect(role.facts().reason).toMatch(/^tgtd listens on port 3260/);
  });

  it('is not ready while tgtd does not answer, even with no volume to serve', async () => {
    const run = recordingRun((a) =>
      a[0] === 'tgtadm' ? commandFailed(a, 22, 'tgtadm: failed to send request hdr to tgt daemon') : undefined,
    );
    const f = fakeFeed();
    const role = buildStorageRole({ volumeFeed: f.feed, space: SPACE });
    await role.start!(ctx({ ...REGISTRY, backend: 'tgt' }, run, memoryFiles()));
    f.set([]);
    await role.serveNow();
    expect(role.facts()).toMatchObject({ ready: false, reason: expect.stringMatching(/^tgtd does not answer \(is it running\?\)/) });
    expect(buildStorageCapacity('st1', role.facts())).toMatchObject({ ready: false });
  });

  it('retries a feed that could not be opened, and the poll re-creates a target tgtd lost', async () => {
    const f = fakeFeed();
    let tries = 0;
    const flaky: VolumeFeed = async (...args) => {
      if (tries++ === 0) throw new Error('connect ECONNREFUSED 10.0.0.10:4222');
      const l = await f.feed(...args);
      args[2]([data]);
      return l;
    };
    const tgt = fakeTgt(() => [data]);
    const role = buildStorageRole({ volumeFeed: flaky, space: SPACE, now: NOW, pollMs: 10 });
    await role.start!(ctx({ ...REGISTRY, backend: 'tgt' }, tgt.run, memoryFiles()));
    expect(role.facts().reason).toBe('cannot open the volume registry: connect ECONNREFUSED 10.0.0.10:4222');
    const until = async (done: () => boolean) => {
      for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 10));
    };
    await until(() => f.reports.length === 1);
    expect(f.reports.map(([n, o]) => [n, o.state])).toEqual([['data', 'serving']]);
    // tgtd restarted empty: the next poll re-creates the target (and reports nothing: it serves as before).
    tgt.live.clear();
    await until(() => tgt.live.size === 1);
    expect(tgt.live.has('iqn.2026-12.mammatus:volume.data')).toBe(true);
    await role.stop!();
  });

  it('a registry that never answers (node not admitted yet) holds neither the apply nor the stop', async () => {
    const never: VolumeFeed = () => new Promise(() => undefined);
    const role = buildStorageRole({ volumeFeed: never, space: SPACE });
    const t0 = Date.now();
    await role.start!(ctx({ ...REGISTRY, backend: 'tgt' }, recordingRun(), memoryFiles()));
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(role.facts().reason).toBe('connecting to the volume registry');
    await role.stop!();
  }, 10_000);

  it(`answers ${STORAGE_CAPACITY_QUERY} with its room and volumes`, async () => {
    const f = fakeFeed();
    const tgt = fakeTgt(() => [data]);
    const role = buildStorageRole({ volumeFeed: f.feed, space: SPACE });
    const c = ctx({ ...REGISTRY, backend: 'tgt' }, tgt.run, memoryFiles());
    await role.start!(c);
    f.set([data]);
    await role.serveNow();
    const answer = role.queries![STORAGE_CAPACITY_QUERY](Buffer.alloc(0), c.desired);
    expect(answer).toEqual({
      kind: 'storage',
      node: 'st1',
      ready: true,
      backend: 'tgt',
      free_bytes: 88 * GiB,
      total_bytes: 100 * GiB,
      allocated_bytes: GiB,
      volumes: 1,
      attached: 1,
      path: '/var/lib/mammatus/volumes',
    });
    expect(parseStorageCapacity(JSON.stringify(answer))).toEqual(answer);
    expect(parseStorageCapacity('{"node":"x"}')).toBe('bad answer');
    expect(buildStorageCapacity('st9', undefined)).toMatchObject({ ready: false, reason: 'the storage role reports nothing yet' });
  });
});

describe('metrics', () => {
  const values = seriesValues;
  const states = ['serving', 'error', 'absent'].map((state) => `mammatus_storage_volumes{state="${state}"}`);
  const series = [...states, 'mammatus_storage_allocated_bytes', 'mammatus_storage_capacity_bytes'];

  it('exports volumes by state, the bytes given to them and the store size while the role runs', async () => {
    const f = fakeFeed();
    let current: readonly VolumeRecord[] = [data, spare, other];
    const tgt = fakeTgt(() => current);
    const role = buildStorageRole({ volumeFeed: f.feed, space: SPACE, now: NOW });
    await role.start!(ctx({ ...REGISTRY, backend: 'tgt' }, tgt.run, memoryFiles()));
    f.set(current);
    await role.serveNow();
    expect(await values(...series)).toEqual([2, 0, 0, 2 * GiB, 100 * GiB]);
    current = [data, { ...spare, state: 'deleting' }];
    f.set(current);
    await role.serveNow();
    expect(await values(...series)).toEqual([1, 0, 1, GiB, 100 * GiB]);
    await role.stop!();
    expect(await values(...series)).toEqual([undefined, undefined, undefined, undefined, undefined]);
  });

  it('counts every state, 0 when none', () => {
    expect(Object.fromEntries(volumesByState(new Map()))).toEqual({ serving: 0, error: 0, absent: 0 });
    const observed = new Map([
      ['a', { state: 'error' as const, error: 'x' }],
      ['b', { state: 'error' as const }],
      ['c', { state: 'serving' as const, lun: 1 }],
    ]);
    expect(Object.fromEntries(volumesByState(observed))).toEqual({ serving: 1, error: 2, absent: 0 });
  });
});
