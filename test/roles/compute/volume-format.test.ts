/** The filesystem check before a volume is mounted: ext4 on a blank device only, never over data. */
import { describe, expect, it } from 'vitest';
import type { Run } from '../../../core/contracts.js';
import { ensureFilesystem, ext4Label, BLANK_PROBE_BYTES } from '../../../roles/compute/volume-format.js';
import { volumePass } from '../../../roles/compute/volume-attach.js';
import { commandFailed, recordingRun, type RecordingRun } from '../../helpers/recording-run.js';
import { memoryFiles } from '../../helpers/memory-files.js';
import { dev, iscsi, memoryLxd, vol } from '../../helpers/iscsi-fakes.js';

const DEV = '/dev/disk/by-path/ip-10.88.0.31:3260-iscsi-iqn.2026-12.mammatus:volume.data-lun-1';
const SIZE = 64 << 20;
const zeros = async (_d: string, _o: number, n: number) => Buffer.alloc(n);
/** blkid exits `blkidExit`, blockdev says SIZE, the rest succeeds. */
const disk = (blkidExit: number, inner: Run = recordingRun()): RecordingRun => {
  const calls: string[][] = [];
  const run: Run = async (f, a, o) => {
    calls.push([f, ...a]);
    if (f === 'blkid' && blkidExit) throw commandFailed([f, ...a], blkidExit);
    if (f === 'blockdev') return { stdout: `${SIZE}\n`, stderr: '', exitCode: 0 };
    return inner(f, a, o);
  };
  return Object.assign(run, { calls });
};

describe('ensureFilesystem', () => {
  it('leaves a device with a signature alone', async () => {
    const run = disk(0);
    expect(await ensureFilesystem(DEV, 'data', { run, readRange: zeros })).toBe('present');
    expect(run.calls).toEqual([['blkid', '-p', DEV]]);
  });

  it('makes ext4 (no discard), labelled with the volume, on a device zero at its start, middle and end', async () => {
    const run = disk(2);
    const read: number[] = [];
    const readRange = async (d: string, o: number, n: number) => (read.push(o), zeros(d, o, n));
    expect(await ensureFilesystem(DEV, 'a-very-long-volume-name', { run, readRange })).toBe('made');
    expect(read).toEqual([0, (SIZE - BLANK_PROBE_BYTES) / 2, SIZE - BLANK_PROBE_BYTES]);
    expect(run.calls.at(-1)).toEqual(['mkfs.ext4', '-q', '-E', 'nodiscard', '-L', 'a-very-long-volu', DEV]);
    expect(ext4Label('db')).toBe('db');
  });

  it.each([
    ['data at its start', 0, /holds data but no filesystem.*not formatted/],
    ['data in its middle', (SIZE - BLANK_PROBE_BYTES) / 2, /holds data/],
    ['data at its end', SIZE - BLANK_PROBE_BYTES, /holds data/],
  ])('never formats a device with %s', async (_what, at, error) => {
    const run = disk(2);
    const readRange = async (_d: string, o: number, n: number) =>
      o === at ? Buffer.concat([Buffer.alloc(n - 1), Buffer.from([7])]) : Buffer.alloc(n);
    await expect(ensureFilesystem(DEV, 'data', { run, readRange })).rejects.toThrow(error);
    expect(run.calls.map((c) => c[0])).toEqual(['blkid', 'blockdev']);
  });

  it('a short read is not a blank device', async () => {
    const run = disk(2);
    const readRange = async (_d: string, _o: number, n: number) => Buffer.alloc(n - 512);
    await expect(ensureFilesystem(DEV, 'data', { run, readRange })).rejects.toThrow(/gave 1048064 of 1048576 bytes: not formatted/);
  });

  it('a failing blkid (not "nothing found") is an error, not a blank device', async () => {
    const run = disk(4);
    await expect(ensureFilesystem(DEV, 'data', { run, readRange: zeros })).rejects.toThrow(/blkid/);
    expect(run.calls.map((c) => c[0])).toEqual(['blkid']);
  });
});

describe('a pass with a mount point', () => {
  it('formats a blank volume before its first mount, and only then', async () => {
    const l = memoryLxd({ web1: {} });
    const base = iscsi();
    let blank = true;
    const calls: string[] = [];
    const run = Object.assign(
      async (f: string, a: readonly string[], o?: Parameters<typeof base>[2]) => {
        if (f === 'blkid' || f === 'blockdev' || f === 'mkfs.ext4') calls.push(f);
        if (f === 'blkid' && blank) throw commandFailed([f, ...a], 2);
        if (f === 'blockdev') return { stdout: `${SIZE}`, stderr: '', exitCode: 0 };
        if (f === 'mkfs.ext4') blank = false;
        return base(f, a, o);
      },
      { calls: base.calls },
    );
    const deps = { lxd: l.lxd, run, files: memoryFiles(), node: 'cn1', portals: new Map([['st1', '10.88.0.31']]), readRange: zeros };
    const first = await volumePass([vol('data', 'web1', '/mnt/data')], deps);
    expect(first.done).toEqual(['record data', 'login data', 'mkfs data', 'lxd web1']);
    expect(l.instances.get('web1')!.devices['mammatus-vol-data']).toEqual({ type: 'disk', source: dev('data'), path: '/mnt/data' });
    const second = await volumePass([vol('data', 'web1', '/mnt/data')], deps);
    expect(second.done).toEqual([]);
    expect(calls).toEqual(['blkid', 'blockdev', 'mkfs.ext4']); // mounted now: not checked again
  });

  it('a volume with data but no filesystem fails with why and gets no device; the others go on', async () => {
    const l = memoryLxd({ web1: {} });
    const r = await volumePass([vol('data', 'web1', '/mnt/data'), vol('raw')], {
      lxd: l.lxd,
      run: disk(2, iscsi()),
      files: memoryFiles(),
      node: 'cn1',
      portals: new Map([['st1', '10.88.0.31']]),
      readRange: async (d, o, n) => (d.includes('volume.data-') ? Buffer.from('not zeros'.padEnd(n, 'x')) : zeros(d, o, n)),
    });
    expect(r.failed).toEqual([
      { volume: 'data', error: expect.stringMatching(/^cannot mount it at \/mnt\/data: it holds data but no filesystem/) },
    ]);
    expect(r.attached).toEqual(['raw→web1']);
    expect(Object.keys(l.instances.get('web1')!.devices)).toEqual(['mammatus-vol-raw']);
  });
});
