/**
 * Reads series from the process's exposition (core/metrics.ts), for tests of what a role exports.
 */
import { exposition } from '../../core/metrics.js';

/**
 * The values of `series` (each `name` or `name{labels}` as the text format writes it, labels in
 * definition order) in one fresh exposition; undefined where a series is absent.
 */
export async function seriesValues(...series: string[]): Promise<(number | undefined)[]> {
  const lines = (await exposition()).split('\n');
  return series.map((s) => {
    const line = lines.find((l) => l.startsWith(`${s} `));
    return line === undefined ? undefined : Number(line.slice(s.length + 1));
  });
}
