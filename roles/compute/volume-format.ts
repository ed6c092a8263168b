/**
 * A volume attached with a mount point must hold a filesystem: LXD mounts the block device and
 * does not make one. A new volume is all zeros (a sparse file or a thin LV), so before its first
 * mount the compute node makes ext4 on it — but only on a device that holds nothing at all: no
 * signature `blkid` knows (filesystem, partition table, RAID or LVM member) and only zeros in its
 * first MiB. A device with data blkid cannot name (a raw volume used without `--path` before) is
 * never formatted: the attachment fails with why, and nothing is lost.
 */
import { open } from 'node:fs/promises';
import type { Run } from '../../core/contracts.js';
import { CommandFailedError } from '../../core/exec.js';

/** How much of the device must be zeros before it is taken as blank. */
export const BLANK_PROBE_BYTES = 1 << 20;
/** blkid's exit code when it found no signature at all. */
const BLKID_NOTHING_FOUND = 2;

/** What the check needs. */
export interface FormatDeps {
  readonly run: Run;
  /** The first `bytes` of `device` (default: read from the device); tests give their own. */
  readonly readHead?: (device: string, bytes: number) => Promise<Buffer>;
}

async function readDeviceHead(device: string, bytes: number): Promise<Buffer> {
  const fh = await open(device, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    const { bytesRead } = await fh.read(buf, 0, bytes, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
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
  const head = await (deps.readHead ?? readDeviceHead)(device, BLANK_PROBE_BYTES);
  if (head.some((b) => b !== 0))
    throw new Error(`it holds data but no filesystem blkid knows: not formatted (make one yourself, or attach it without --path)`);
  await deps.run('mkfs.ext4', ['-q', '-L', ext4Label(volume), device], { timeoutMs: 300_000 });
  return 'made';
}
