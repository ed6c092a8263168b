/**
 * Thin LVs for volumes with real LVM: a VG on a loop device (a 256 MiB sparse file), a thin pool
 * in it, and the storage role's LVM step (lvm-apply.ts) through the real runner: it creates a
 * volume's LV tagged `mammatus` and with its record's identity tag, reads the pool's space, grows
 * the LV, leaves an LV it did not make and an earlier volume's leftover alone, and removes its own.
 * (Not run where this change was written: no device-mapper there.) Needs root, lvm2 and a kernel with device-mapper (dm-thin-pool);
 * skipped with the reason otherwise (containers often have no /dev/mapper/control).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRun } from '../../core/exec.js';
import type { VolumeRecord } from '../../core/volume-record.js';
import { prepareThinVolumes, readLvs, removeThinVolumes, thinPoolSpaceOf } from '../../roles/storage/lvm-apply.js';
import { missingTools } from '../../scripts/lib/netns-bed.js';

const MiB = 2 ** 20;

/** Every reason real LVM cannot be tested here (none: it can). */
function whyNot(): string | undefined {
  if (process.getuid?.() !== 0) return 'LVM needs root';
  const reasons: string[] = [];
  const missing = missingTools(['lvcreate', 'lvs', 'vgcreate', 'pvcreate', 'losetup', 'dmsetup']);
  if (missing) reasons.push(`${missing} (apt-get install lvm2)`);
  let targets = '';
  try {
    targets = execFileSync('dmsetup', ['targets'], { encoding: 'utf8', stdio: 'pipe', timeout: 10_000 });
  } catch {
    reasons.push('the kernel has no device-mapper here (dmsetup targets fails: no /dev/mapper/control)');
  }
  if (targets && !/^thin-pool\b/m.test(targets)) {
    try {
      execFileSync('modprobe', ['dm-thin-pool'], { stdio: 'pipe', timeout: 10_000 });
    } catch {
      reasons.push('the kernel has no dm-thin-pool target (modprobe dm-thin-pool fails)');
    }
  }
  return reasons.length ? reasons.join('; ') : undefined;
}

const skip = whyNot();
if (skip) console.warn(`storage LVM tests skipped: ${skip}`);

describe.skipIf(skip !== undefined)('thin LVs for volumes with real LVM', { timeout: 120_000 }, () => {
  const run = buildRun();
  const vg = `mammatus-test-${process.pid}`;
  const pool = { vg, pool: 'pool0' };
  let dir = '';
  let loop = '';

  const volume = (name: string, size: number, lv = `mammatus-${name}`, state: VolumeRecord['state'] = 'available'): VolumeRecord => ({
    name,
    size_bytes: size,
    node: 'st1',
    backing: { kind: 'lvm', vg, pool: 'pool0', lv },
    state,
    chap: { user: `${name}-user`, secret: 'Aa1-aaaabbbbcccc' },
    created_at: '2026-12-01T00:00:00Z',
    updated_at: '2026-12-01T00:00:00Z',
  });

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'mammatus-lvm-'));
    const img = path.join(dir, 'pv.img');
    await run('truncate', ['-s', `${256 * MiB}`, img]);
    loop = (await run('losetup', ['--find', '--show', img])).stdout.trim();
    await run('pvcreate', ['-q', loop]);
    await run('vgcreate', ['-q', vg, loop]);
    await run('lvcreate', ['-q', '--type', 'thin-pool', '-L', '128M', '-Z', 'y', '-n', 'pool0', vg]);
  });
  afterAll(async () => {
    if (loop) {
      await run('vgremove', ['-ff', '-y', vg]).catch(() => undefined);
      await run('pvremove', ['-ff', '-y', loop]).catch(() => undefined);
      await run('losetup', ['-d', loop]).catch(() => undefined);
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('creates, grows, serves at the real size, and removes only its own LVs', async () => {
    const first = await prepareThinVolumes([volume('data', 10 * MiB)], pool, [], run);
    expect([...first.errors]).toEqual([]);
    const lv = (await readLvs(run, pool)).find((l) => l.lv === 'mammatus-data');
    expect(lv).toMatchObject({ pool: 'pool0' });
    expect([...lv!.tags].sort()).toEqual(['mammatus', 'mammatus-created-20261201T000000Z']);
    expect(lv!.sizeBytes).toBeGreaterThanOrEqual(10 * MiB);
    expect(first.volumes[0].size_bytes).toBe(lv!.sizeBytes);
    expect(await thinPoolSpaceOf(run, pool)).toMatchObject({ total: 128 * MiB });

    const grown = await prepareThinVolumes([volume('data', 40 * MiB)], pool, [], run);
    expect([...grown.errors]).toEqual([]);
    expect((await readLvs(run, pool)).find((l) => l.lv === 'mammatus-data')!.sizeBytes).toBeGreaterThanOrEqual(40 * MiB);

    await run('lvcreate', ['-q', '-V', '8M', '-T', `${vg}/pool0`, '-n', 'mammatus-theirs']);
    const theirs = await prepareThinVolumes([volume('theirs', 8 * MiB)], pool, [], run);
    expect(theirs.errors.get('theirs')).toMatch(/exists but is not a thin volume/);
    // A leftover of an earlier volume `old` (another record's identity tag): refused, kept.
    const tags = ['--addtag', 'mammatus', '--addtag', 'mammatus-created-20261102T080000000Z'];
    await run('lvcreate', ['-q', '-V', '8M', '-T', `${vg}/pool0`, '-n', 'mammatus-old', ...tags]);
    const old = await prepareThinVolumes([volume('old', 8 * MiB, undefined, 'creating')], pool, [], run);
    expect(old.errors.get('old')).toMatch(/is a leftover of an earlier volume named old/);

    const lvs = await readLvs(run, pool);
    const removed = await removeThinVolumes(
      [
        volume('data', 40 * MiB, undefined, 'deleting'),
        volume('theirs', 8 * MiB, undefined, 'deleting'),
        volume('old', 8 * MiB, undefined, 'deleting'),
      ],
      pool,
      lvs,
      run,
    );
    expect([...removed.keys()]).toEqual(['old']);
    expect((await readLvs(run, pool)).map((l) => l.lv).sort()).toEqual(['mammatus-old', 'mammatus-theirs', 'pool0']);
  });
});
