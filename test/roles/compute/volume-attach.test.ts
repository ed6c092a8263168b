/** One volume pass of the compute node: LXD device removal, then open-iscsi, then LXD devices, with per-volume failures. */
import { describe, expect, it } from 'vitest';
import type { Member } from '../../../core/contracts.js';
import { storagePortals, volumePass, type VolumePassDeps } from '../../../roles/compute/volume-attach.js';
import { memoryFiles } from '../../helpers/memory-files.js';
import { dev, iqn, iscsi, memoryLxd, vol } from '../../helpers/iscsi-fakes.js';
import { commandFailed, recordingRun } from '../../helpers/recording-run.js';

const base = (lxd: VolumePassDeps['lxd'], run: VolumePassDeps['run']): VolumePassDeps => ({
  lxd,
  run,
  files: memoryFiles(),
  node: 'cn1',
  portals: new Map([['st1', '10.88.0.31']]),
});

describe('volumePass', () => {
  it('first attach: login, then the device (disk with a path, unix-block without), PUT with the ETag', async () => {
    const l = memoryLxd({ web1: { root: { type: 'disk', path: '/', pool: 'default' } }, db: {} });
    const run = iscsi();
    const r = await volumePass([vol('data', 'web1', '/mnt/data'), vol('raw', 'db')], base(l.lxd, run));
    expect(r.failed).toEqual([]);
    expect(r.attached).toEqual(['data→web1', 'raw→db']);
    expect(l.instances.get('web1')!.devices['mammatus-vol-data']).toEqual({ type: 'disk', source: dev('data'), path: '/mnt/data' });
    expect(l.instances.get('db')!.devices['mammatus-vol-raw']).toEqual({
      type: 'unix-block',
      source: dev('raw'),
      path: '/dev/mammatus/raw',
    });
    expect(l.puts.map((p) => `${p.name} ${p.etag}`)).toEqual(['db e-db', 'web1 e-web1']);
    expect(run.calls.filter((c) => c.includes('--login'))).toHaveLength(2);
  });

  it('second pass: nothing changes', async () => {
    const l = memoryLxd({ web1: {} });
    const run = iscsi();
    const deps = base(l.lxd, run);
    expect((await volumePass([vol('data')], deps)).done).toEqual(['record data', 'login data', 'lxd web1']);
    l.puts.length = 0;
    run.calls.length = 0;
    const r = await volumePass([vol('data')], deps);
    expect(r.done).toEqual([]);
    expect(r.attached).toEqual(['data→web1']);
    expect(l.puts).toEqual([]);
    expect(run.calls).toEqual([
      ['iscsiadm', '-m', 'session'],
      ['iscsiadm', '-m', 'node'],
    ]);
  });

  it('detach: the LXD device goes before the logout', async () => {
    const l = memoryLxd({ web1: { 'mammatus-vol-data': { type: 'unix-block', source: dev('data'), path: '/dev/mammatus/data' } } });
    const order: string[] = [];
    const run = iscsi([`${iqn('data')} 10.88.0.31`], [`${iqn('data')} 10.88.0.31`]);
    const lxd = {
      ...l.lxd,
      updateInstance: async (...a: Parameters<typeof l.lxd.updateInstance>) => (order.push('lxd'), l.lxd.updateInstance(...a)),
    };
    const tracked: VolumePassDeps['run'] = async (file, args, o) => (args.includes('--logout') && order.push('logout'), run(file, args, o));
    const r = await volumePass([], base(lxd, tracked));
    expect(r.failed).toEqual([]);
    expect(order).toEqual(['lxd', 'logout']);
    expect(l.instances.get('web1')!.devices).toEqual({});
    expect(run.calls.at(-1)).toEqual(['iscsiadm', '-m', 'node', '-o', 'delete', '-T', iqn('data'), '-p', '10.88.0.31:3260']);
  });

  it('a device LXD will not remove keeps its session', async () => {
    const l = memoryLxd(
      { web1: { 'mammatus-vol-data': { type: 'unix-block', source: dev('data'), path: '/dev/mammatus/data' } } },
      { failPut: 'web1' },
    );
    const run = iscsi([`${iqn('data')} 10.88.0.31`], [`${iqn('data')} 10.88.0.31`]);
    const r = await volumePass([], base(l.lxd, run));
    expect(r.failed).toEqual([{ volume: 'data', error: 'cannot remove it from web1: LXD: device busy' }]);
    expect(run.calls.some((c) => c.includes('--logout') || c.includes('delete'))).toBe(false);
  });

  it('a failed login of one volume: the other is attached, the failed one keeps an existing device', async () => {
    const l = memoryLxd({ web1: { 'mammatus-vol-bad': { type: 'unix-block', source: dev('bad'), path: '/dev/mammatus/bad' } } });
    const run = iscsi([], [], iqn('bad'));
    const r = await volumePass([vol('bad'), vol('good')], base(l.lxd, run));
    expect(r.failed).toEqual([{ volume: 'bad', error: 'login: login refused: CHAP authentication failed (exit 24)' }]);
    expect(r.attached).toEqual(['good→web1']);
    expect(Object.keys(l.instances.get('web1')!.devices).sort()).toEqual(['mammatus-vol-bad', 'mammatus-vol-good']);
  });

  it('an operator’s container or a missing instance: waiting, never touched', async () => {
    const l = memoryLxd({ web1: {} }, { unmanaged: ['web1'] });
    const r = await volumePass([vol('data'), vol('logs', 'later')], base(l.lxd, iscsi()));
    expect(r.waiting).toEqual([
      { volume: 'logs', reason: 'instance later does not exist on this node yet' },
      { volume: 'data', reason: 'web1 was not created by mammatus: not touched' },
    ]);
    expect(l.puts).toEqual([]);
  });

  it('iscsiadm failing outright fails every attached volume with the reason, and changes nothing', async () => {
    const l = memoryLxd({ web1: {} });
    const run = recordingRun((argv) => commandFailed(argv, 6, 'iscsiadm: Could not open netlink socket'));
    const r = await volumePass([vol('data')], base(l.lxd, run));
    expect(r.failed).toEqual([{ volume: 'data', error: expect.stringContaining('exit code 6') }]);
    expect(l.puts).toEqual([]);
  });

  it('portals: alive storage nodes with an IPv4 Serf address', () => {
    const m = (name: string, addr: string, role: string, status: Member['status'] = 'alive'): Member => ({
      name,
      addr,
      port: 7946,
      tags: { role },
      status,
    });
    const p = storagePortals([
      m('st1', '10.88.0.31', 'storage'),
      m('st2', 'fd00::2', 'storage'),
      m('cn1', '10.88.0.20', 'compute'),
      m('st3', '10.88.0.33', 'storage', 'failed'),
    ]);
    expect([...p]).toEqual([['st1', '10.88.0.31']]);
  });
});

describe('volumePass when the portal moves', () => {
  it('takes the device out of the instance before the old session ends, then gives it the new one', async () => {
    const l = memoryLxd({ web1: { 'mammatus-vol-data': { type: 'disk', source: dev('data'), path: '/mnt/data' } } });
    const run = iscsi([`${iqn('data')} 10.88.0.31`], [`${iqn('data')} 10.88.0.31`]);
    const order: string[] = [];
    const update = l.lxd.updateInstance;
    const lxd = {
      ...l.lxd,
      updateInstance: async (...a: Parameters<typeof update>) => (
        order.push(`put ${Object.keys(a[1].devices).join(',') || '-'}`),
        update(...a)
      ),
    };
    const logged = Object.assign(
      async (f: string, a: readonly string[], o?: Parameters<typeof run>[2]) => {
        if (a.includes('--login') || a.includes('--logout')) order.push(`${a.at(-1)} ${a[a.indexOf('-p') + 1]}`);
        return run(f, a, o);
      },
      { calls: run.calls },
    );
    const moved = { ...vol('data', 'web1', '/mnt/data'), observed: { state: 'serving' as const, lun: 1, portal: '10.99.0.5' } };
    const r = await volumePass([moved], { ...base(lxd, logged), portals: new Map([['st1', '10.88.0.31']]) });
    expect(r.failed).toEqual([]);
    expect(order).toEqual(['put -', '--login 10.99.0.5:3260', '--logout 10.88.0.31:3260', 'put mammatus-vol-data']);
    expect(l.instances.get('web1')!.devices['mammatus-vol-data']?.source).toBe(dev('data').replace('10.88.0.31', '10.99.0.5'));
  });
});
