/**
 * mammatus-install-to-disk's refusals, on this machine's real block devices: a zram disk (lsblk type
 * `disk`) holding a partition table, a filesystem, or a mounted filesystem, and a loop device's
 * partition, are all refused with exit status 2 and not one byte of them changes. Every case stops
 * in the checks before the command writes anything, so it is safe to run on a test machine; the
 * install itself is proven in QEMU (pxe-install.test.ts). Root only (zram, loop, mount).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findOnPath } from '../../scripts/lib/daemon.js';

const exec = promisify(execFile);
const SCRIPT = path.resolve(import.meta.dirname, '../../scripts/boot-image/mammatus-install-to-disk');
const ZRAM = '/sys/class/zram-control';

const skip =
  process.platform !== 'linux'
    ? 'Linux only'
    : process.getuid?.() !== 0
      ? 'needs root (zram and loop devices, mount)'
      : !existsSync(ZRAM)
        ? 'no zram (the zram module is not loaded)'
        : ['sgdisk', 'wipefs', 'lsblk', 'losetup', 'mkfs.ext4'].find((t) => !findOnPath(t));
if (skip)
  console.warn(`install-to-disk refusal test skipped: ${typeof skip === 'string' && skip.includes(' ') ? skip : `${skip} is missing`}`);

/** Runs the command (never with --force) and returns its exit status and output. */
async function run(...args: string[]): Promise<{ code: number; out: string }> {
  // --no-reboot and a dead metadata address: even a broken check could neither reboot this machine
  // nor report anything.
  const argv = [SCRIPT, '--no-reboot', '--metadata', 'http://127.0.0.1:9', ...args];
  try {
    const r = await exec('bash', argv, { timeout: 30_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

const digest = (dev: string) => createHash('sha256').update(readFileSync(dev)).digest('hex');

describe.skipIf(Boolean(skip))('mammatus-install-to-disk refuses what it must not touch', { timeout: 120_000 }, () => {
  let zram: string;
  let zramId: string;
  let dir: string;
  let loop: string | undefined;
  let mounted: string | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'install-refusal-'));
    zramId = readFileSync(path.join(ZRAM, 'hot_add'), 'utf8').trim();
    zram = `/dev/zram${zramId}`;
    writeFileSync(`/sys/block/zram${zramId}/disksize`, '64M');
  });

  afterAll(async () => {
    if (mounted) await exec('umount', [mounted]).catch(() => undefined);
    if (loop) await exec('losetup', ['-d', loop]).catch(() => undefined);
    if (zramId !== undefined) {
      try {
        writeFileSync(path.join(ZRAM, 'hot_remove'), zramId);
      } catch {
        // Busy: the kernel keeps it until reboot; nothing of ours is on it.
      }
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('usage: no disk, two disks, an unknown option, not a block device', async () => {
    expect((await run()).code).toBe(2);
    expect((await run(zram, zram)).code).toBe(2);
    expect((await run('--wipe', zram)).code).toBe(2);
    const file = path.join(dir, 'plain');
    writeFileSync(file, 'x');
    const r = await run(file);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/REFUSED: .* is not a block device/);
  });

  it('a disk with a partition table, then with a filesystem: refused, not one byte changed', async () => {
    await exec('sgdisk', ['-o', '-n', '1:0:0', zram]);
    let before = digest(zram);
    let r = await run(zram);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/REFUSED: .* is not empty \(.*(gpt|PMBR).*\); .*--force/);
    expect(digest(zram)).toBe(before);

    await exec('wipefs', ['--all', '--quiet', zram]);
    await exec('mkfs.ext4', ['-F', '-q', zram]);
    before = digest(zram);
    r = await run(zram);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/REFUSED: .* is not empty \(signatures: ext4/);
    expect(digest(zram)).toBe(before);
  });

  it('a mounted disk is refused even with --force', async () => {
    mounted = path.join(dir, 'mnt');
    await exec('mkdir', ['-p', mounted]);
    await exec('mount', [zram, mounted]);
    // --force here is safe: the mount check comes first and stops it.
    const r = await run('--force', zram);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(new RegExp(`REFUSED: ${zram} is mounted on ${mounted}`));
    await exec('umount', [mounted]);
    mounted = undefined;
  });

  it('a partition or a loop device is not a whole disk', async () => {
    const img = path.join(dir, 'disk.img');
    await exec('truncate', ['-s', '32M', img]);
    await exec('sgdisk', ['-o', '-n', '1:0:0', img]);
    loop = (await exec('losetup', ['--find', '--show', '--partscan', img])).stdout.trim();
    for (let i = 0; i < 50 && !existsSync(`${loop}p1`); i++) await new Promise((r) => setTimeout(r, 100));
    const before = readFileSync(img).toString('base64');
    // Some kernels or containers make no partition devices for loop devices (no partscan here):
    // the loop device itself is then the only case.
    const devs = existsSync(`${loop}p1`) ? [loop, `${loop}p1`] : [loop];
    if (devs.length === 1) console.warn(`no ${loop}p1 (no loop partition scanning here): only the loop device is checked`);
    for (const dev of devs) {
      const r = await run(dev);
      expect(r.code).toBe(2);
      expect(r.out).toMatch(/REFUSED: .* is a (loop|part), not a whole disk/);
    }
    expect(readFileSync(img).toString('base64')).toBe(before);
  });
});
