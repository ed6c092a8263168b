/** Sizes as the volume commands take and print them, and `--wait` for a volume's storage node. */
import type { VolumeRecord } from '../../core/volume-record.js';
import type { VolumeRegistry } from '../../src/registry/volumes.js';
import { UsageError } from './common.js';

const UNITS: Readonly<Record<string, number>> = { K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/**
 * Parses a size: a whole number with an optional unit K, M, G or T (powers of 1024; `10G`, `10GiB`
 * and `10g` are the same), or a number of bytes. @throws UsageError
 */
export function parseSize(text: string | undefined): number {
  const m = /^\s*(\d+)\s*(?:([KMGTkmgt])(?:i?[Bb])?)?\s*$/.exec(text ?? '');
  if (!m) throw new UsageError(`--size: expected a size like 512M, 10G or 1T (powers of 1024), got ${JSON.stringify(text ?? '')}`);
  const bytes = Number(m[1]) * (m[2] ? UNITS[m[2].toUpperCase()] : 1);
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`--size ${text}: too large`);
  if (bytes < UNITS.M) throw new UsageError(`--size ${text}: a volume has at least 1M`);
  return bytes;
}

/** A size in the largest unit it is at least one of, with at most one decimal: `10G`, `1.5T`, `512M`. */
export function formatSize(bytes: number): string {
  for (const unit of ['T', 'G', 'M', 'K']) {
    const u = UNITS[unit];
    if (bytes >= u) return `${String(Math.round((bytes / u) * 10) / 10)}${unit}`;
  }
  return `${bytes}B`;
}

/**
 * Polls the record until its storage node reports it `serving` (or, for `gone`, until the record
 * is removed), reports an error, or the time is up. Polling the registry works from any node.
 */
export async function waitVolume(
  registry: VolumeRegistry,
  name: string,
  until: 'serving' | 'gone',
  timeoutMs: number,
): Promise<{ record?: VolumeRecord } | { error: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await registry.find(name);
    if (!v) return until === 'gone' ? {} : { error: 'its record was removed while waiting' };
    if (v.observed?.state === 'error') return { error: v.observed.error ?? 'its storage node reports an error' };
    if (until === 'serving' && v.observed?.state === 'serving') return { record: v };
    if (Date.now() > deadline) {
      const what = until === 'serving' ? 'not served' : 'not removed';
      return {
        error: `${what} after ${Math.round(timeoutMs / 1000)} s (observed: ${v.observed?.state ?? 'pending'}; see \`mammatus volume show ${name}\`)`,
      };
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
