// The shipped bundle checks settings with code generated at build time, the source with Ajv at run
// time (core/section-compiler.ts). An operator must read the same sentence either way: each bad
// config below goes through `mammatus render` from the bundle and from the source.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { BUNDLE, bundleBuilt } from '../../scripts/lib/mammatus-agent.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(path.join(os.tmpdir(), 'bundle-settings-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const BAD: Record<string, { role: string; yaml: string; says: RegExp }> = {
  'serf address': { role: 'gateway', yaml: 'serf: { rpc_addr: "nope" }', says: /serf\.rpc_addr: must match host:port/ },
  'unknown key': { role: 'gateway', yaml: 'bogus: 1', says: /bogus: unknown key/ },
  'gateway LAN without prefix': {
    role: 'gateway',
    yaml: 'roles: { gateway: { lan: { address: "10.88.0.1" } } }',
    says: /roles\.gateway\.lan\.address: must be an IPv4 address with a prefix length/,
  },
  'compute with a list': { role: 'compute', yaml: 'roles: { compute: { parent: [1] } }', says: /roles\.compute\.parent: must be/ },
  'gateway reservation MAC': {
    role: 'gateway',
    yaml: 'roles: { gateway: { dhcp: { reservations: [{ mac: "zz", ip: "10.88.0.5", name: "a" }] } } }',
    says: /roles\.gateway\.dhcp\.reservations\[0\]\.mac: must be a MAC address/,
  },
};

/** Exit code and stderr of a command that is expected to fail. */
async function failure(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    await promisify(execFile)(cmd, args, { cwd: ROOT });
    return { code: 0, stderr: '' };
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr.trim() };
  }
}

describe.skipIf(!bundleBuilt())('settings errors from the bundle', () => {
  for (const [name, bad] of Object.entries(BAD)) {
    it(`${name}: the same message as from the source`, async () => {
      const file = path.join(dir, `${name.replace(/\W+/g, '-')}.yaml`);
      writeFileSync(file, `${bad.yaml}\n`);
      const fromBundle = await failure(process.execPath, [BUNDLE, 'render', bad.role, '--config', file]);
      const fromSource = await failure(process.execPath, ['--import', 'tsx', 'agent/cli/bin.ts', 'render', bad.role, '--config', file]);
      expect(fromBundle.stderr).toMatch(bad.says);
      expect(fromBundle).toEqual(fromSource);
    });
  }
});
