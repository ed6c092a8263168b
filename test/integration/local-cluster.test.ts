/** Keeps the README's first command honest: the local cluster starts, reports all four roles ok, stops. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { localLanLeftovers } from '../../scripts/lib/local-lan.js';
import { skipReason } from './harness.js';

const exec = promisify(execFile);
const skip = skipReason();

describe.skipIf(Boolean(skip))('the local cluster (scripts/local-cluster.ts)', () => {
  it('starts one node per role, prints a status with every role ok, and tears down', async () => {
    // --no-image: as root with lxd, a missing image is not built (minutes); a cached one is imported.
    const { stdout } = await exec(process.execPath, ['--import', 'tsx', 'scripts/local-cluster.ts', '--once', '--no-image', '--no-demo'], {
      timeout: 90_000,
    });
    // The gateway role needs root (it then runs in a network namespace); without root that node has none.
    const asRoot = process.getuid?.() === 0;
    for (const role of asRoot ? ['gateway', 'compute', 'storage', 'controller'] : ['compute', 'storage', 'controller']) {
      expect(stdout).toMatch(new RegExp(`^${role}-1\\s.*alive\\s+${role}\\s.*ok$`, 'm'));
    }
    if (!asRoot) expect(stdout).toMatch(/^gateway-1\s.*alive\s+-\s.*ok$/m);
    expect(stdout).toContain('Stopped.');
    if (asRoot) expect(localLanLeftovers()).toEqual([]);
  }, 120_000);
});
