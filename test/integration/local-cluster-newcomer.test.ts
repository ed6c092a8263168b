/**
 * The README's first command, as a newcomer runs it: on a fresh copy of the repository (what a
 * clone holds: tracked and new files, no node_modules, no dist, an empty npm cache — only the
 * instance image cache is shared), as root, `bash scripts/cluster.sh` sets everything up and ends
 * its demo with a container launched, reachable by name, reading its metadata and serving a page
 * this host gets through the gateway's load balancer. Then every command it prints is run as
 * printed, in a shell, and must work. On that cluster, the findings of
 * issue 13 as end-to-end checks: a deleted instance's name is gone within 1 s of its record, and
 * the next instance on its address is the only name there; a registration the gateway will not
 * serve is explained by the CLI. Ctrl-C then removes everything. (The second README command is
 * what CI itself runs on a clean checkout.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LAN, localLanLeftovers } from '../../scripts/lib/local-lan.js';
import { LXD_BASE } from '../../scripts/lib/local-root.js';
import { lxdInstalled, runCommand } from '../../scripts/lib/lxd-node.js';
import { WEB_HOST, webCurlArgs } from '../../scripts/lib/local-lb-demo.js';
import { InstanceRegistry } from '../../src/registry/registry.js';
import { connectNats } from '../../core/nats.js';
import { readCredentials } from '../../core/trust.js';
import { missingTools } from '../../scripts/lib/netns-bed.js';
import { until, sleep } from '../../scripts/lib/wait.js';
import { skipReason } from './harness.js';

const repo = path.join(import.meta.dirname, '../..');
const skip =
  skipReason() ??
  (process.getuid?.() === 0 ? undefined : 'needs root (the gateway and LXD run in network namespaces)') ??
  (lxdInstalled() ? undefined : 'lxd is not installed (apt-get install lxd)') ??
  missingTools(['git', 'ip', 'dig', 'dnsmasq', 'dhcp_release', 'iptables-restore', 'nats-server', 'debootstrap']);
if (skip) console.warn(`local cluster newcomer test skipped: ${skip}`);

const LXD = { LXD_DIR: path.join(LXD_BASE, 'lxd') };
const NATS = `nats://${LAN.host}:4232`;
const USER_DATA = '#cloud-config\nruncmd:\n  - [sh, -c, "echo user-data-applied > /run/mammatus-lc-test"]\n';

/** The repository as a clone would have it: every tracked or new (not ignored) file that exists. */
async function freshCopy(to: string): Promise<void> {
  const r = await runCommand('git', ['-C', repo, 'ls-files', '-z', '--cached', '--others', '--exclude-standard']);
  if (r.code !== 0) throw new Error(`git ls-files: ${r.stderr}`);
  for (const file of r.stdout.split('\0').filter(Boolean)) {
    const from = path.join(repo, file);
    if (!existsSync(from)) continue; // deleted in the working tree
    mkdirSync(path.dirname(path.join(to, file)), { recursive: true });
    cpSync(from, path.join(to, file), { verbatimSymlinks: true });
  }
}

/** Processes whose command line names the compute node's LXD directory (its daemon, container monitors). */
function lxdProcesses(): string[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(LXD_BASE);
      } catch {
        return false;
      }
    });
}

/** dig at the gateway: the answer lines (empty for NXDOMAIN). */
async function dig(name: string, type = 'A'): Promise<string[]> {
  const r = await runCommand('dig', [`@${LAN.gateway}`, name, type, '+short', '+time=1', '+tries=1']);
  return r.stdout.trim().split('\n').filter(Boolean);
}

describe.skipIf(Boolean(skip))("the README's first command on a fresh copy, as root", () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-newcomer-'));
  const clone = path.join(tmp, 'mammatus');
  let cluster: ChildProcess | undefined;
  let out = '';
  const exited = () => cluster!.exitCode !== null || cluster!.signalCode !== null;
  const stopCluster = async () => {
    if (!cluster || exited()) return;
    const gone = new Promise((r) => cluster!.once('exit', r));
    cluster.kill('SIGINT');
    await Promise.race([gone, sleep(120_000)]);
  };
  /** What the cluster prints to export for its commands: the serf RPC key, the controller's credentials. */
  let access: Record<string, string> = {};
  const mammatus = (args: string[], timeoutMs = 60_000) =>
    runCommand(process.execPath, [path.join(clone, 'dist/mammatus.mjs'), '--rpc-addr', '127.0.0.1:7375', ...args], access, timeoutMs);

  afterAll(async () => {
    await stopCluster();
    rmSync(tmp, { recursive: true, force: true });
  }, 150_000);

  it('sets up and runs the demo; every printed command works; names follow deletes; skips are explained; Ctrl-C cleans up', async () => {
    await freshCopy(clone);
    expect(existsSync(path.join(clone, 'node_modules'))).toBe(false);
    const env = { ...process.env, npm_config_cache: path.join(tmp, 'npm-cache') };
    cluster = spawn('bash', ['scripts/cluster.sh'], { cwd: clone, env, stdio: ['ignore', 'pipe', 'pipe'] });
    cluster.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    cluster.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    await until(
      '"Press Ctrl-C"',
      async () => {
        if (exited()) throw new Error('exited');
        return out.includes('Press Ctrl-C') ? true : undefined;
      },
      1_200_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: the local cluster did not come up:\n${out}`);
    });
    for (const role of ['gateway', 'compute', 'storage', 'controller'])
      expect(out).toMatch(new RegExp(`^${role}-1\\s.*alive\\s+${role}\\s.*ok$`, 'm'));

    // The demo: launched, named at the gateway, reading its metadata.
    const ip = /^web-1 \(i-[0-9a-f]{17}\) runs on compute-1 at (10\.213\.0\.\d+)$/m.exec(out)?.[1];
    expect(ip, out).toBeDefined();
    expect(out).toContain(`$ dig @${LAN.gateway} web-1.mammatus +short\n${ip}\n`);
    expect(out).toMatch(/lxc exec web-1 -- curl -s -m 5 http:\/\/169\.254\.169\.254\/latest\/meta-data\/instance-id\ni-[0-9a-f]{17}\n/);
    // ... serving its page, which this host (the gateway's WAN side) gets through the gateway's balancer by name.
    expect(out).toContain(`created web: http on *:80 for ${WEB_HOST}, 1 target\n`);
    expect(out).toContain(`$ curl ${webCurlArgs().join(' ')}\nhello from web-1\n`);

    // Every suggested command, pasted into a shell as printed.
    const tryBlock = out.slice(out.indexOf('Try, in another terminal'), out.indexOf('\nLogs: '));
    const lines = tryBlock
      .split('\n')
      .slice(1)
      .map((l) => l.trim())
      .filter(Boolean);
    expect(lines.length).toBeGreaterThan(10);
    // The first line exports what the others need (as in one terminal, where they are pasted).
    const exported = /^export SERF_RPC_AUTH=(\S+) MAMMATUS_CREDENTIALS=(\S+)$/.exec(lines[0]);
    expect(exported, lines[0]).not.toBeNull();
    access = { SERF_RPC_AUTH: exported![1], MAMMATUS_CREDENTIALS: path.join(clone, exported![2]) };
    const said: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const r = await runCommand('bash', ['-c', `cd ${JSON.stringify(clone)} && ${lines[0]} && ${line}`], {}, 300_000);
      expect(r.code, `${line}\n${r.stdout}\n${r.stderr}`).toBe(0);
      said[line] = r.stdout;
    }
    // The balancer sends requests to both tagged instances in turn, once web-2 serves.
    const rounds = Object.entries(said).find(([line]) => line.startsWith('for i in 1 2 3 4; do curl '));
    expect(rounds?.[1].split('\n').filter(Boolean).sort(), JSON.stringify(said)).toEqual([
      'hello from web-1',
      'hello from web-1',
      'hello from web-2',
      'hello from web-2',
    ]);
    const shown = Object.entries(said).find(([line]) => / lb show web /.test(line));
    expect(shown?.[1]).toMatch(/^targets: +tag:app=web:8080$/m);
    // The controller's Prometheus scrapes every member (through its agent, over NATS): `top` shows them up.
    const top = Object.entries(said).find(([line]) => / top --once /.test(line));
    for (const node of ['compute-1', 'controller-1', 'gateway-1', 'storage-1'])
      expect(top?.[1], top?.[1]).toMatch(new RegExp(`^ +${node} +up `, 'm'));

    // A deleted instance's name goes within 1 s of its record, and its lease with it.
    const credentials = await readCredentials(access.MAMMATUS_CREDENTIALS);
    const nc = await connectNats(NATS, { name: 'newcomer-test', credentials });
    try {
      const registry = await InstanceRegistry.open(nc);
      const web1 = await registry.get('web-1');
      expect(await dig('web-1.mammatus')).toEqual([ip]);
      expect((await mammatus(['instance', 'delete', 'web-1', '--nats', NATS])).code).toBe(0);
      let removedAt = 0;
      await until(
        "web-1's record removed",
        async () => {
          for (let i = 0; i < 25; i++) {
            if (!(await registry.find('web-1'))) return (removedAt = Date.now());
            await sleep(20);
          }
          return undefined;
        },
        120_000,
      );
      while ((await dig('web-1.mammatus')).length > 0 && Date.now() - removedAt < 5000) await sleep(20);
      const took = Date.now() - removedAt;
      console.log(`local cluster: web-1.mammatus gone ${took} ms after its record`);
      expect(took, `web-1.mammatus answered ${took} ms after its record was removed`).toBeLessThan(1000);

      // The next instance on the same MAC takes the same address; only its name points there.
      writeFileSync(path.join(tmp, 'user-data'), USER_DATA);
      const again = await mammatus(
        [
          'instance',
          'launch',
          'web-3',
          '--image',
          'debian-bookworm',
          '--node',
          'compute-1',
          '--mac',
          web1.macs[0],
          '--user-data',
          path.join(tmp, 'user-data'),
          '--wait',
          '--nats',
          NATS,
        ],
        300_000,
      );
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout).toContain(`at ${ip}`);
      await until('web-3.mammatus', async () => ((await dig('web-3.mammatus'))[0] === ip ? true : undefined), 10_000);
      expect(await dig('web-1.mammatus')).toEqual([]);
      expect(await dig(ip!.split('.').reverse().join('.') + '.in-addr.arpa', 'PTR')).toEqual(['web-3.mammatus.']);
      const status = await runCommand('lxc', ['exec', 'web-3', '--', 'cloud-init', 'status', '--wait', '--long'], LXD, 240_000);
      expect(status.stdout).toMatch(/status: done/);
      expect(status.stdout).toMatch(/DataSourceNoCloudNet.*http:\/\/169\.254\.169\.254\/nocloud\//);
      expect((await runCommand('lxc', ['exec', 'web-3', '--', 'cat', '/run/mammatus-lc-test'], LXD)).stdout.trim()).toBe(
        'user-data-applied',
      );
    } finally {
      await nc.close();
    }

    // A registration the gateway will not serve says why, at once and in the list.
    const reg = await mammatus(['instance', 'register', 'web-4', '--mac', '02:00:00:00:00:44', '--ip', LAN.host, '--nats', NATS]);
    expect(reg.code).toBe(0);
    expect(reg.stderr).toMatch(
      new RegExp(`warning: gateway-1 leaves web-4 out: address ${LAN.host.replace(/\./g, '\\.')} is member \\S+'s address`),
    );
    await until(
      'the reason in instance list',
      async () =>
        (await mammatus(['instance', 'list', '--nats', NATS])).stdout.includes('! gateway-1 leaves web-4 out: address') ? true : undefined,
      10_000,
    );
    expect((await mammatus(['instance', 'rm', 'web-4', '--nats', NATS])).code).toBe(0);

    await stopCluster();
    expect(exited(), out).toBe(true);
    expect(out).toContain('Stopped.');
    expect(localLanLeftovers()).toEqual([]);
    for (const link of ['mmc-lan', 'mmc-wan']) expect((await runCommand('ip', ['link', 'show', link])).code, link).not.toBe(0);
    expect(existsSync(LXD_BASE)).toBe(false);
    expect(lxdProcesses()).toEqual([]);
  }, 1_800_000);
});
