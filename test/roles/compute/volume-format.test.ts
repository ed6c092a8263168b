/** The filesystem check before a volume is mounted: ext4 on a blank device only, never over data. */
import { describe, expect, it } from 'vitest';
import { ensureFilesystem, ext4Label, BLANK_PROBE_BYTES } from '../../../roles/compute/volume-format.js';
import { volumePass } from '../../../roles/compute/volume-attach.js';
import { commandFailed, recordingRun } from '../../helpers/recording-run.js';
import { memoryFiles } from '../../helpers/memory-files.js';
import { dev, iscsi, memoryLxd, vol } from '../../helpers/iscsi-fakes.js';

const DEV = '/dev/disk/by-path/ip-10.88.0.31:3260-iscsi-iqn.2026-12.mammatus:volume.data-lun-1';
const zeros = async (_d: string, n: number) => Buffer.alloc(n);
const blkid = (exit: number) => recordingRun((argv) => (argv[0] === 'blkid' && exit ? commandFailed(argv, exit) : undefined));

describe('ensureFilesystem', () => {
  it('leaves a device with a signature alone', async () => {
    const run = blkid(0);
    expect(await ensureFilesystem(DEV, 'data', { run, readHead: zeros })).toBe('present');
    expect(run.calls).toEqual([['blkid', '-p', DEV]]);
  });

  it('makes ext4, labelled with the volume, on a blank device', async () => {
    const run = blkid(2);
    let asked = 0;
    const readHead = async (d: string, n: number) => ((asked = n), zeros(d, n));
    expect(await ensureFilesystem(DEV, 'a-very-long-volume-name', { run, readHead })).toBe('made');
    expect(asked).toBe(BLANK_PROBE_BYTES);
    expect(run.calls.at(-1)).toEqual(['mkfs.ext4', '-q', '-L', 'a-very-long-volu', DEV]);
    expect(ext4Label('db')).toBe('db');
  });

  it('never formats a device holding data blkid cannot name', async () => {
    const run = blkid(2);
    const readHead = async (_d: string, n: number) => Buffer.concat([Buffer.alloc(n - 1), Buffer.from([7])]);
    await expect(ensureFilesystem(DEV, 'data', { run, readHead })).rejects.toThrow(/holds data but no filesystem.*not formatted/);
    expect(run.calls.map((c) => c[0])).toEqual(['blkid']);
  });

  it('a failing blkid (not "nothing found") is an error, not a blank device', async () => {
    const run = blkid(4);
    await expect(ensureFilesystem(DEV, 'data', { run, readHead: zeros })).rejects.toThrow(/blkid/);
    expect(run.calls.map((c) => c[0])).toEqual(['blkid']);
  });
});

describe('a pass with a mount point', () => {
  it('formats a blank volume before its first mount, and only then', async () => {
    const l = memoryLxd({ web1: {} });
    const base = iscsi();
    let blank = true;
    const run = Object.assign(
      (f: string, a: readonly string[], o?: Parameters<typeof base>[2]) =>
        f === 'blkid'
          ? blank
            ? Promise.reject(commandFailed([f, ...a], 2))
            : base(f, a, o)
          : f === 'mkfs.ext4'
            ? ((blank = false), base(f, a, o))
            : base(f, a, o),
      { calls: base.calls },
    );
    const deps = { lxd: l.lxd, run, files: memoryFiles(), node: 'cn1', portals: new Map([['st1', '10.88.0.31']]), readHead: zeros };
    const first = await volumePass([vol('data', 'web1', '/mnt/data')], deps);
    expect(first.done).toEqual(['record data', 'login data', 'mkfs data', 'lxd web1']);
    expect(l.instances.get('web1')!.devices['mammatus-vol-data']).toEqual({ type: 'disk', source: dev('data'), path: '/mnt/data' });
    const second = await volumePass([vol('data', 'web1', '/mnt/data')], deps);
    expect(second.done).toEqual([]);
    expect(base.calls.filter((c) => c[0] === 'blkid' || c[0] === 'mkfs.ext4')).toHaveLength(1); // mkfs only: blkid went to the stub
  });

  it('a volume with data but no filesystem fails with why and gets no device; the others go on', async () => {
    const l = memoryLxd({ web1: {} });
    const base = iscsi();
    const run = Object.assign(
      (f: string, a: readonly string[], o?: Parameters<typeof base>[2]) =>
        f === 'blkid' ? Promise.reject(commandFailed([f, ...a], 2)) : base(f, a, o),
      { calls: base.calls },
    );
    const readHead = async (d: string, n: number) => (d.includes('volume.data-') ? Buffer.from('not zeros') : zeros(d, n));
    const r = await volumePass([vol('data', 'web1', '/mnt/data'), vol('raw')], {
      lxd: l.lxd,
      run,
      files: memoryFiles(),
      node: 'cn1',
      portals: new Map([['st1', '10.88.0.31']]),
      readHead,
    });
    expect(r.failed).toEqual([
      { volume: 'data', error: expect.stringMatching(/^cannot mount it at \/mnt\/data: it holds data but no filesystem/) },
    ]);
    expect(r.attached).toEqual(['raw→web1']);
    expect(Object.keys(l.instances.get('web1')!.devices)).toEqual(['mammatus-vol-raw']);
  });
});
