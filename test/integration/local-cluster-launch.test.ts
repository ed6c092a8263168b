/**
 * Keeps the README's root path honest: the local cluster, run as root with lxd installed, stays up;
 * the `instance launch` command it prints runs a container on compute-1, which takes a DHCP address
 * from the gateway's dnsmasq, resolves there by name, runs cloud-init from NoCloud at
 * 169.254.169.254 through the gateway's metadata proxy with our user-data applied, and reads its id
 * there; `instance delete` removes it; Ctrl-C (SIGINT) tears everything down, no namespace left.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LAN, localLanLeftovers } from '../../scripts/lib/local-lan.js';
import { LXD_BASE } from '../../scripts/lib/local-root.js';
import { lxdInstalled, runCommand } from '../../scripts/lib/lxd-node.js';
import { missingTools } from '../helpers/netns.js';
import { skipReason } from './harness.js';
import { until } from '../helpers/eventually.js';

const repo = path.join(import.meta.dirname, '../..');
const skip =
  skipReason() ??
  (process.getuid?.() === 0 ? undefined : 'needs root (the gateway and LXD run in network namespaces)') ??
  (lxdInstalled() ? undefined : 'lxd is not installed (apt-get install lxd)') ??
  missingTools(['ip', 'dig', 'dnsmasq', 'iptables-restore', 'nats-server']);
if (skip) console.warn(`local cluster launch test skipped: ${skip}`);

const USER_DATA = '#cloud-config\nruncmd:\n  - [sh, -c, "echo user-data-applied > /run/mammatus-lc-test"]\n';
const LXD = { LXD_DIR: path.join(LXD_BASE, 'lxd') };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


/** The image: scripts/build-image.sh's (instant when cached); undefined when it cannot be had in time. */
async function image(): Promise<string | undefined> {
  const r = await runCommand(path.join(repo, 'scripts/build-image.sh'), [], {}, 900_000);
  if (r.code !== 0) console.warn(`local cluster launch test: no image (build-image.sh exit ${r.code}): ${r.stderr.trim().split('\n').pop()}`);
  return r.code === 0 ? r.stdout.trim() : undefined;
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

describe.skipIf(Boolean(skip))('the local cluster as root: launch an LXD instance end to end', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-lc-launch-'));
  let cluster: ChildProcess | undefined;
  let out = '';
  const exited = () => cluster!.exitCode !== null || cluster!.signalCode !== null;
  const stopCluster = async () => {
    if (!cluster || exited()) return;
    const gone = new Promise((r) => cluster!.once('exit', r));
    cluster.kill('SIGINT');
    await Promise.race([gone, sleep(120_000)]);
  };
  const mammatus = (args: string[]) => runCommand(process.execPath, [path.join(repo, 'dist/mammatus.mjs'), ...args], {}, 60_000);

  afterAll(async () => {
    await stopCluster();
    rmSync(tmp, { recursive: true, force: true });
  }, 150_000);

  it('launches web-1 from the printed command, serves it DHCP, DNS and metadata, deletes it, tears down', async (ctx) => {
    const tarball = await image();
    if (!tarball) return ctx.skip('the instance image is not cached and could not be built');
    // --no-image: the image is cached now, so nothing is built inside the cluster's start.
    cluster = spawn(process.execPath, ['--import', 'tsx', 'scripts/local-cluster.ts', '--no-image'], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
    cluster.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    cluster.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    await until('"Press Ctrl-C"', async () => {
      if (exited()) throw new Error(`the local cluster exited:\n${out}`);
      return out.includes('Press Ctrl-C') ? true : undefined;
    }, 180_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${out}`);
    });
    expect(out).toMatch(/^compute-1\s.*alive\s+compute\s.*ok$/m);
    expect(out).toMatch(/^gateway-1\s.*alive\s+gateway\s.*ok$/m);

    // The command as printed (without its leading "node dist/mammatus.mjs"), plus our user-data.
    const printed = /^\s+node \S+mammatus\.mjs (.*instance launch web-1 .*)$/m.exec(out)?.[1];
    expect(printed, out).toBeDefined();
    writeFileSync(path.join(tmp, 'user-data'), USER_DATA);
    const launched = await mammatus([...printed!.trim().split(/\s+/), '--user-data', path.join(tmp, 'user-data'), '--json']);
    expect(launched.code, launched.stderr).toBe(0);
    const id = (JSON.parse(launched.stdout) as { id: string }).id;
    const nats = /--nats (\S+)/.exec(printed!)![1]!;

    const ip = await until('web-1 running with an address', async () => {
      const r = await runCommand('lxc', ['list', 'web-1', '--format', 'csv', '-c', 's4'], LXD);
      return /^RUNNING,(10\.213\.0\.\d+) \(eth0\)/.exec(r.stdout.trim())?.[1];
    }, 180_000);
    const status = await runCommand('lxc', ['exec', 'web-1', '--', 'cloud-init', 'status', '--wait', '--long'], LXD, 240_000);
    expect(status.stdout).toMatch(/status: done/);
    expect(status.stdout).toMatch(/DataSourceNoCloudNet.*http:\/\/169\.254\.169\.254\/nocloud\//);
    expect((await runCommand('lxc', ['exec', 'web-1', '--', 'cat', '/run/mammatus-lc-test'], LXD)).stdout.trim()).toBe('user-data-applied');
    const imds = await runCommand('lxc', ['exec', 'web-1', '--', 'curl', '-s', '-m', '5', 'http://169.254.169.254/latest/meta-data/instance-id'], LXD);
    expect(imds.stdout.trim()).toBe(id);
    await until('web-1.mammatus at the gateway', async () => {
      const r = await runCommand('dig', [`@${LAN.gateway}`, 'web-1.mammatus', '+short', '+time=2', '+tries=1']);
      return r.stdout.trim() === ip ? true : undefined;
    }, 30_000);
    await until('the address written back', async () => {
      const r = await mammatus(['instance', 'show', 'web-1', '--nats', nats, '--json']);
      return (JSON.parse(r.stdout) as { ips: string[] }).ips[0] === ip ? true : undefined;
    }, 30_000);

    expect((await mammatus(['instance', 'delete', 'web-1', '--nats', nats])).code).toBe(0);
    await until('web-1 deleted', async () => ((await runCommand('lxc', ['list', '--format', 'csv', '-c', 'n'], LXD)).stdout.trim() === '' ? true : undefined), 60_000);

    await stopCluster();
    expect(exited(), out).toBe(true);
    expect(out).toContain('Stopped.');
    expect(localLanLeftovers()).toEqual([]);
    expect((await runCommand('ip', ['link', 'show', 'mmc-lan'])).code).not.toBe(0);
    expect(existsSync(LXD_BASE)).toBe(false);
    expect(lxdProcesses()).toEqual([]);
  }, 900_000);
});
