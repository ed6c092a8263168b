/**
 * A volume attached with a mount point must hold a filesystem: LXD mounts the block device and
 * does not make one. A new volume is all zeros (a sparse file or a thin LV), so before its first
 * mount the compute node makes ext4 on it — but only on a device that holds nothing at all: no
 * signature `blkid` knows (filesystem, partition table, RAID or LVM member) and only zeros in its
 * first, middle and last MiB. A device with data blkid cannot name (a raw volume used without
 * `--path` before) is never formatted: the attachment fails with why, and nothing is lost. mkfs
 * runs with `nodiscard`, so even a mistaken format would not trim every block of the device.
 */
import { open } from 'node:fs/promises';
import type { Run } from '../../core/contracts.js';
import { CommandFailedError } from '../../core/exec.js';

/** How much of the device, at its start, middle and end, must be zeros before it is taken as blank. */
export const BLANK_PROBE_BYTES = 1 << 20;
/** blkid's exit code when it found no signature at all. */
const BLKID_NOTHING_FOUND = 2;

/** What the check needs. */
export interface FormatDeps {
  readonly run: Run;
  /** `length` bytes of `device` at `offset` (default: read from the device); tests give their own. */
  readonly readRange?: (device: string, offset: number, length: number) => Promise<Buffer>;
}

async function readDeviceRange(device: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(device, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Why the device is not blank, if it is not: start, middle and end sampled, a short read refused. */
async function notBlank(device: string, size: number, deps: FormatDeps): Promise<string | undefined> {
  const length = Math.min(BLANK_PROBE_BYTES, size);
  const offsets = [...new Set([0, Math.floor((size - length) / 2 / 512) * 512, size - length])];
  for (const offset of offsets) {
    const got = await (deps.readRange ?? readDeviceRange)(device, offset, length);
    if (got.length !== length) return `reading it at byte ${offset} gave ${got.length} of ${length} bytes`;
    if (got.some((b) => b !== 0)) return 'it holds data but no filesystem blkid knows';
  }
  return undefined;
}

/** ext4's label holds at most 16 bytes; volume names are DNS labels (ASCII), cut to fit. */
export function ext4Label(volume: string): string {
  return volume.slice(0, 16);
}

/**
 * Makes ext4 on `device` if it is blank; `'made'` when it did, `'present'` when a signature is
 * there already. @throws when the device holds data but no signature, or a command fails.
 */
export async function ensureFilesystem(device: string, volume: string, deps: FormatDeps): Promise<'made' | 'present'> {
  try {
    // -p: low-level probe of the device itself, not blkid's cache.
    await deps.run('blkid', ['-p', device]);
    return 'present';
  } catch (err) {
    if (!(err instanceof CommandFailedError && err.exitCode === BLKID_NOTHING_FOUND)) throw err;
  }
  const size = Number((await deps.run('blockdev', ['--getsize64', device])).stdout.trim());
  if (!Number.isSafeInteger(size) || size <= 0) throw new Error(`cannot read its size (blockdev --getsize64): not formatted`);
  const why = await notBlank(device, size, deps);
  if (why) throw new Error(`${why}: not formatted (make one yourself, or attach it without --path)`);
  await deps.run('mkfs.ext4', ['-q', '-E', 'nodiscard', '-L', ext4Label(volume), device], { timeoutMs: 300_000 });
  return 'made';
}
