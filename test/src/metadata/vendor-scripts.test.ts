/**
 * The rendered vendor-data parts run by real shells (dash is Debian's /bin/sh) in a sandbox with a
 * temporary MAMMATUS_ROOT and fake apt-get, apt-cache, systemctl and curl: the first run installs,
 * writes and restarts; a second run changes nothing; nothing in a value is ever executed.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { renderVendorDataParts, type VendorDataInput, type VendorDataPartName } from '../../../src/metadata/vendor-data.js';
import { createSandbox, FAKE_SECRET_ID, type Sandbox } from './vendor-fakes.js';
import { vendorInput } from './vendor-fixtures.js';

// Every POSIX shell at hand, once each (on Debian /bin/sh is dash).
const SHELLS = [
  ...new Map(['/bin/sh', '/usr/bin/dash', '/bin/bash'].filter((s) => existsSync(s)).map((s) => [realpathSync(s), s])).values(),
];

/** The script of one part. */
function script(input: VendorDataInput, name: VendorDataPartName): string {
  const part = renderVendorDataParts(input).parts.find((p) => p.name === name);
  if (!part) throw new Error(`no ${name} part`);
  return part.content;
}

/** Modification and change times of every file given, to prove a second run touched none. */
function times(root: string, files: readonly string[]): string[] {
  return files.map((f) => {
    const s = statSync(join(root, f));
    return `${f} ${s.mtimeMs} ${s.ctimeMs} ${(s.mode & 0o777).toString(8)}`;
  });
}

let box: Sandbox;
beforeEach(() => {
  box = createSandbox();
});
afterEach(() => box.cleanup());

describe('syntax', () => {
  it.each(SHELLS)('every part parses with %s -n', async (shell) => {
    const input = await vendorInput();
    for (const part of renderVendorDataParts(input).parts) {
      expect(() => execFileSync(shell, ['-n'], { input: part.content, stdio: ['pipe', 'pipe', 'pipe'] }), part.filename).not.toThrow();
    }
  });
});

describe.each(SHELLS)('with %s', (shell) => {
  const CASES = [
    { name: 'consul', pkg: 'consul', unit: 'consul.service', files: { '/etc/consul.d/mammatus.json': '640' } },
    { name: 'telegraf', pkg: 'telegraf', unit: 'telegraf.service', files: { '/etc/telegraf/telegraf.d/mammatus.conf': '644' } },
    {
      name: 'vault',
      pkg: 'vault',
      unit: 'mammatus-vault-agent.service',
      files: {
        '/etc/vault-agent.d/agent.hcl': '644',
        '/etc/vault-agent.d/role-id': '600',
        '/etc/vault-agent.d/secret-id': '600',
        '/etc/systemd/system/mammatus-vault-agent.service': '644',
        '/var/lib/mammatus/vendor-data/vault-unwrapped': '600',
      },
    },
  ] as const;

  it.each(CASES)('$name: the first run installs, writes and restarts; the second changes nothing', async ({ name, pkg, unit, files }) => {
    const text = script(await vendorInput(), name);
    box.bootSystemd();
    const env = { FAKE_APT_KNOWS: pkg };
    const first = await box.run(shell, text, env);
    expect(first.code, first.stderr).toBe(0);
    const calls = box.calls();
    expect(calls).toContain(`apt-cache show ${pkg}`);
    expect(calls).toContain(`apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold ${pkg}`);
    expect(calls).toContain(`systemctl enable ${unit}`);
    expect(calls.at(-1)).toBe(`systemctl --no-block restart ${unit}`);
    for (const [file, mode] of Object.entries(files)) {
      expect((statSync(join(box.root, file)).mode & 0o777).toString(8), file).toBe(mode);
    }
    const before = times(box.root, Object.keys(files));

    box.clearCalls();
    const second = await box.run(shell, text, env);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toContain('nothing changed');
    expect(box.calls()).toEqual([]);
    expect(times(box.root, Object.keys(files))).toEqual(before);
  });

  it.each(CASES)('$name: without the package in apt, it says so and exits 0', async ({ name, pkg }) => {
    const run = await box.run(shell, script(await vendorInput(), name));
    expect(run.code).toBe(0);
    expect(run.stderr).toContain(`apt knows no package '${pkg}' (add the repository that has it): skipping`);
    // (For Vault this means the wrapping token is not spent.)
    expect(box.calls()).toEqual([`apt-cache show ${pkg}`, 'apt-get update -q', `apt-cache show ${pkg}`]);
  });

  it('consul: writes exactly the rendered config; enables, but does not start, without a running systemd', async () => {
    const input = await vendorInput();
    const run = await box.run(shell, script(input, 'consul'), { FAKE_APT_KNOWS: 'consul' });
    expect(run.code, run.stderr).toBe(0);
    const config = JSON.parse(readFileSync(join(box.root, 'etc/consul.d/mammatus.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({
      datacenter: 'lab',
      node_name: 'web-1',
      bind_addr: '10.0.0.21',
      retry_join: ['10.0.0.2', '10.0.0.3', '10.0.0.10'],
      server: false,
    });
    expect(box.calls().filter((c) => c.startsWith('systemctl'))).toEqual(['systemctl enable consul.service']);
    expect(run.stderr).toContain('systemd is not running: consul.service enabled, not started');
  });

  it('a changed config is rewritten and restarts the service again', async () => {
    box.bootSystemd();
    const env = { FAKE_APT_KNOWS: 'telegraf' };
    expect((await box.run(shell, script(await vendorInput(), 'telegraf'), env)).code).toBe(0);
    box.clearCalls();
    const moved = await vendorInput({ influxdb: ['10.0.0.7'] });
    expect((await box.run(shell, script(moved, 'telegraf'), env)).code).toBe(0);
    expect(box.calls()).toEqual(['systemctl enable telegraf.service', 'systemctl --no-block restart telegraf.service']);
    expect(readFileSync(join(box.root, 'etc/telegraf/telegraf.d/mammatus.conf'), 'utf8')).toContain('urls = ["http://10.0.0.7:8086"]');
  });

  it('vault: unwraps with the token on stdin, never in argv, before installing', async () => {
    const input = await vendorInput();
    const run = await box.run(shell, script(input, 'vault'), { FAKE_APT_KNOWS: 'vault' });
    expect(run.code, run.stderr).toBe(0);
    const calls = box.calls();
    expect(calls.slice(0, 3)).toEqual([
      'apt-cache show vault',
      'curl -sS -f --connect-timeout 10 --max-time 30 -X POST -H @- https://10.0.0.1:8200/v1/sys/wrapping/unwrap',
      'apt-cache show vault',
    ]);
    expect(calls[3]).toMatch(/^apt-get install .* vault$/);
    expect(calls.join('\n')).not.toContain(input.vaultWrappedSecretId);
    expect(box.curlStdin()).toBe(`X-Vault-Token: ${input.vaultWrappedSecretId}\n`);
    expect(readFileSync(join(box.root, 'etc/vault-agent.d/secret-id'), 'utf8')).toBe(`${FAKE_SECRET_ID}\n`);
    expect(readFileSync(join(box.root, 'etc/vault-agent.d/role-id'), 'utf8')).toBe('59d6d1ca-47bb-4e7e-a40b-8be3bc5a0ba8\n');
    expect(readFileSync(join(box.root, 'etc/systemd/system/mammatus-vault-agent.service'), 'utf8')).toContain(
      `ExecStart=${box.bin}/vault agent -config=/etc/vault-agent.d/agent.hcl\n`,
    );
  });

  it('vault: a token that does not unwrap fails the part loudly', async () => {
    const run = await box.run(shell, script(await vendorInput(), 'vault'), { FAKE_APT_KNOWS: 'vault', FAKE_CURL_FAIL: '1' });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('cannot unwrap the secret_id at https://10.0.0.1:8200: the token expired, or was already used');
    expect(existsSync(join(box.root, 'etc/vault-agent.d'))).toBe(false);
  });

  it('vault: without a wrapped token it says so and does nothing', async () => {
    const run = await box.run(shell, script(await vendorInput({ vaultWrappedSecretId: undefined }), 'vault'), { FAKE_APT_KNOWS: 'vault' });
    expect(run.code).toBe(0);
    expect(run.stderr).toContain('vendor-data carries no wrapped secret_id');
    expect(box.calls()).toEqual([]);
  });

  it('hostile values end up literally in the files and run nothing', async () => {
    const hostile =
      'x\'; touch "$MAMMATUS_ROOT/pwned"; \'$(touch "$MAMMATUS_ROOT/pwned")`touch "$MAMMATUS_ROOT/pwned"`\nline2 ${HOME} \\ café';
    const input = await vendorInput({ instance: { id: 'i-0123456789abcdef0', name: hostile, ips: ['10.0.0.21'] } });
    const run = await box.run(shell, script(input, 'telegraf'), { FAKE_APT_KNOWS: 'telegraf' });
    expect(run.code, run.stderr).toBe(0);
    expect(existsSync(join(box.root, 'pwned'))).toBe(false);
    const written = readFileSync(join(box.root, 'etc/telegraf/telegraf.d/mammatus.conf'), 'utf8');
    expect(written).toContain(`  instance_name = ${JSON.stringify(hostile)}\n`);
    const consul = await box.run(shell, script(input, 'consul'), { FAKE_APT_KNOWS: 'consul' });
    expect(consul.code, consul.stderr).toBe(0);
    const config = JSON.parse(readFileSync(join(box.root, 'etc/consul.d/mammatus.json'), 'utf8')) as { node_name: string };
    expect(config.node_name).toBe(hostile);
    expect(existsSync(join(box.root, 'pwned'))).toBe(false);
  });
});
