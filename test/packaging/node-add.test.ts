/**
 * `mammatus node add` against Debian's real sshd on a fresh Debian 13 root (issue 17): an existing
 * cluster on this host (controller with gossip encryption, RPC key, credentials and nats-server)
 * adds a debootstrap chroot reachable only over SSH, (a) from nothing to `ok` in its `mammatus
 * status`, through the signed repository; (b) a second run changes nothing (no reinstall, no
 * restart); (c) a wrong host key is refused before any login; (d) a password-only sshd is refused
 * without a password ever being sent; (e) a second root whose repository is unreachable gets the
 * copied .deb and reaches `ok`; (e2) a re-run of the first node after the second joined still changes
 * nothing, and the second host is refused the first node's name; (f) `node remove` revokes first,
 * leaves a host that is another node alone, and purges the right one. Root, debootstrap and the
 * Debian mirror (or a cached tree) needed.
 */
import { cycleSteps } from '../helpers/steps.js';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { freePort } from '../../scripts/lib/ports.js';
import {
  PACKAGE_VERSION,
  run,
  sshRoot,
  startControllerBed,
  type ControllerBed,
  type SshRoot,
  type Sshd,
} from '../../scripts/lib/node-add-bed.js';
import { bundleBuilt } from '../../scripts/lib/mammatus-agent.js';
import { natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { serfAvailable } from '../../scripts/lib/serf-agent.js';
import { baseTarball, chrootSkipReason, removeDir } from './chroot.js';

const SUITE = 'trixie';
const skip =
  (await chrootSkipReason(SUITE)) ??
  (serfAvailable() ? undefined : 'serf is missing') ??
  (natsServerAvailable() ? undefined : 'nats-server is missing') ??
  (bundleBuilt() ? undefined : 'dist/mammatus.mjs is missing (npm run build)');
if (skip) console.warn(`[node-add] skipped: ${skip}`);

interface AddJson {
  node: string;
  steps: Array<{ name: string; ms: number; changed: boolean }>;
  total_ms: number;
}

describe.skipIf(skip !== undefined)('mammatus node add over SSH to a Debian 13 chroot', { timeout: 900_000 }, () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'mammatus-node-add-'));
  let bed: ControllerBed;
  let tarball = '';
  const roots: SshRoot[] = [];
  let host: SshRoot;
  let sshd: Sshd;
  let s2: Sshd;
  const knownHosts = path.join(work, 'operator', 'known_hosts');

  /** `node add` as the operator on the controller, with the operator key and its own known_hosts. */
  const add = (port: number, name: string, extra: readonly string[]) =>
    bed.cli([
      'node',
      'add',
      'root@127.0.0.1',
      '--port',
      String(port),
      '--identity',
      bed.sshKey,
      '--known-hosts',
      knownHosts,
      '--name',
      name,
      '--role',
      'storage',
      '--nats',
      bed.natsUrl,
      '--timeout',
      '3m',
      ...extra,
    ]);
  const nodeFlags = async () => ['--bind', `127.0.0.2:${await freePort()}`, '--rpc', `127.0.0.1:${await freePort()}`];
  const statusOf = async (name: string) => {
    const r = await bed.cli(['status', '--json']);
    const rows = JSON.parse(r.stdout) as Array<{
      node: string;
      trust: string;
      answer: { role_status: Record<string, { state: string }> } | null;
    }>;
    return rows.find((row) => row.node === name);
  };
  const step = cycleSteps();

  beforeAll(async () => {
    tarball = await baseTarball(SUITE, { onBuild: (m) => console.log(`[node-add] ${m}`) });
    bed = await startControllerBed(work);
    host = await sshRoot(tarball, bed.sshPub, path.join(work, 'logs-a'));
    roots.push(host);
    sshd = await host.startSshd();
    console.log(
      `[node-add] controller ${bed.serf.rpcAddr}, repository ${bed.repoUrl}, sshd on 127.0.0.1:${sshd.port} (openssh-server in ${(host.prepareMs / 1000).toFixed(1)} s)`,
    );
  }, 900_000);

  afterAll(async () => {
    for (const r of roots) await r.dispose().catch((err: unknown) => console.warn(`[node-add] cleanup: ${String(err)}`));
    await bed?.stop();
    removeDir(work);
  }, 120_000);

  step('a. brings a fresh host from nothing to ok in the cluster status, through the signed repository', async () => {
    expect(host.chroot.exists('/usr/bin/mammatus')).toBe(false);
    const r = await add(sshd.port, 'store-1', [
      '--accept-new',
      '--apt-repo',
      bed.repoUrl,
      '--apt-key',
      bed.repoKey,
      '--json',
      ...(await nodeFlags()),
    ]);
    console.log(`[node-add] first run (exit ${r.code}):\n${r.stderr.trim()}\n${r.stdout.trim()}`);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as AddJson;
    expect(out.node).toBe('store-1');
    expect(out.steps.map((s) => s.name)).toEqual(['ssh', 'credentials', 'configure', 'install', 'start', 'wait']);
    expect(out.steps.filter((s) => s.changed).map((s) => s.name)).toEqual(['credentials', 'configure', 'install', 'start', 'wait']);
    expect(r.stderr).toMatch(/\[4\/6\] install: serf, mammatus-agent from the cluster repository … done in/);
    expect(bed.repo.requests).toContain(`/mammatus-agent_${PACKAGE_VERSION}_all.deb`);
    // The host key was learned (accept-new) and only key authentication was used.
    expect(sshd.log()).toMatch(/Accepted publickey for root/);
    const row = await statusOf('store-1');
    expect(row?.answer?.role_status.storage?.state).toBe('ok');
    expect(row?.trust).toBe('admitted');
    // What landed on the host, with which modes.
    const modes = await host.chroot.run('stat', [
      '-c',
      '%a %U %n',
      '/var/lib/mammatus/credentials.json',
      '/etc/serf/mammatus.json',
      '/etc/mammatus/agent.d/10-bootstrap.yaml',
      '/var/lib/mammatus/authority.pub',
    ]);
    expect(modes.stdout.trim().split('\n')).toEqual([
      '600 root /var/lib/mammatus/credentials.json',
      '600 root /etc/serf/mammatus.json',
      '600 root /etc/mammatus/agent.d/10-bootstrap.yaml',
      '644 root /var/lib/mammatus/authority.pub',
    ]);
    expect(host.daemonPid('serf')).toBeGreaterThan(0);
    expect(host.daemonPid('agent')).toBeGreaterThan(0);
  });

  step('b. a second run changes nothing: every step unchanged, no package installed, no service restarted', async () => {
    const pids = [host.daemonPid('serf'), host.daemonPid('agent')];
    const dpkgLog = host.chroot.read('/var/log/dpkg.log');
    const creds = host.chroot.read('/var/lib/mammatus/credentials.json');
    const r = await add(sshd.port, 'store-1', ['--apt-repo', bed.repoUrl, '--apt-key', bed.repoKey, ...(await reuseFlags())]);
    console.log(`[node-add] second run (exit ${r.code}):\n${r.stdout.trim()}`);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    for (const n of [1, 2, 3, 4, 5, 6]) expect(lines.find((l) => l.startsWith(`[${n}/6]`))).toMatch(/unchanged \(\d+\.\d s\)$/);
    expect(lines.at(-1)).toMatch(/^store-1: nothing to change in /);
    expect([host.daemonPid('serf'), host.daemonPid('agent')]).toEqual(pids);
    expect(host.chroot.read('/var/log/dpkg.log')).toBe(dpkgLog);
    expect(host.chroot.read('/var/lib/mammatus/credentials.json')).toBe(creds);
  });

  step('c. a wrong host key in known_hosts is refused before any login or command', async () => {
    const good = host.hostKey();
    const other = path.join(work, 'other-host-key');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const wrong = readFileSync(`${other}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');
    writeFileSync(knownHosts, `[127.0.0.1]:${sshd.port} ${wrong}\n`);
    const accepted = (sshd.log().match(/Accepted publickey/g) ?? []).length;
    const dpkgLog = host.chroot.read('/var/log/dpkg.log');
    const r = await add(sshd.port, 'store-1', ['--accept-new', ...(await reuseFlags())]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /\[1\/6\] ssh failed: WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED .*SHA256:.*Nothing was sent to the host/,
    );
    // sshd saw no login at all (the client hung up during the key exchange), so no command ran.
    expect((sshd.log().match(/Accepted publickey/g) ?? []).length).toBe(accepted);
    expect(host.chroot.read('/var/log/dpkg.log')).toBe(dpkgLog);
    writeFileSync(knownHosts, `[127.0.0.1]:${sshd.port} ${good}\n`);
  });

  step('d. a password-only sshd is refused, and no password is ever sent', async () => {
    const pw = await host.startSshd([
      'PubkeyAuthentication=no',
      'PasswordAuthentication=yes',
      'KbdInteractiveAuthentication=yes',
      'PermitRootLogin=yes',
    ]);
    const r = await add(pw.port, 'store-1', ['--accept-new', ...(await reuseFlags())]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\[1\/6\] ssh failed: .*refused every key mammatus offered.*mammatus never sends passwords/);
    expect(pw.log()).not.toMatch(/Accepted|Failed password|Failed keyboard-interactive/);
  });

  step('e. a host that cannot reach the repository gets the copied .deb and reaches ok', async () => {
    const second = await sshRoot(tarball, bed.sshPub, path.join(work, 'logs-e'));
    roots.push(second);
    s2 = await second.startSshd();
    const closed = `http://127.0.0.1:${await freePort()}/`;
    const r = await add(s2.port, 'store-2', [
      '--accept-new',
      '--apt-repo',
      closed,
      '--apt-key',
      bed.repoKey,
      '--deb',
      bed.deb,
      ...(await nodeFlags()),
    ]);
    console.log(`[node-add] unreachable repository (exit ${r.code}):\n${r.stdout.trim()}\n${r.stderr.trim()}`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /\[4\/6\] install: serf, mammatus-agent from the copied mammatus-agent_[\d.]+_all\.deb \(repository unreachable\) … done in/,
    );
    // The unreachable source was taken out again: the host's apt-get update keeps working.
    expect(second.chroot.exists('/etc/apt/sources.list.d/mammatus.sources')).toBe(false);
    expect((await statusOf('store-2'))?.answer?.role_status.storage?.state).toBe('ok');
  });

  const roster = async () =>
    JSON.parse((await bed.cli(['node', 'list', '--json', '--nats', bed.natsUrl])).stdout) as Array<{ node: string; nkey: string }>;

  step("e2. a re-run after another node joined changes nothing; a host is refused another node's name", async () => {
    const pids = [host.daemonPid('serf'), host.daemonPid('agent')];
    const conf = host.chroot.read('/etc/serf/mammatus.json');
    const r = await add(sshd.port, 'store-1', ['--apt-repo', bed.repoUrl, '--apt-key', bed.repoKey, ...(await reuseFlags())]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').at(-1)).toMatch(/^store-1: nothing to change in /);
    expect([host.daemonPid('serf'), host.daemonPid('agent')]).toEqual(pids);
    expect(host.chroot.read('/etc/serf/mammatus.json')).toBe(conf);

    const before = (await roster()).find((n) => n.node === 'store-1');
    const taken = await add(s2.port, 'store-1', ['--deb', bed.deb, ...(await nodeFlags())]);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toMatch(
      /\[2\/6\] credentials failed: the roster already lists store-1 with another key .*Give this host its own name with --name NAME, or take the name over with --replace/,
    );
    expect((await roster()).find((n) => n.node === 'store-1')).toEqual(before);
  });

  step("f. node remove revokes first, leaves another node's host alone, then purges the right host", async () => {
    const pids = [host.daemonPid('serf'), host.daemonPid('agent')];
    const remove = (port: number) =>
      bed.cli([
        'node',
        'remove',
        'store-1',
        'root@127.0.0.1',
        '--port',
        String(port),
        '--identity',
        bed.sshKey,
        '--known-hosts',
        knownHosts,
        '--purge',
        '--nats',
        bed.natsUrl,
      ]);
    // store-2's host given by mistake: store-1 is revoked, store-2 is not touched.
    const wrong = await remove(s2.port);
    console.log(`[node-add] node remove at the wrong host (exit ${wrong.code}):\n${wrong.stdout.trim()}\n${wrong.stderr.trim()}`);
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toMatch(/\[1\/3\] revoke: store-1 removed from the roster/);
    expect(wrong.stderr).toMatch(
      /\[3\/3\] purge failed: root@127\.0\.0\.1 is node store-2, not store-1: nothing stopped or purged there\. store-1 IS revoked/,
    );
    expect((await roster()).map((n) => n.node)).toEqual(expect.arrayContaining(['store-2']));
    expect(roots[1].chroot.exists('/var/lib/mammatus/credentials.json')).toBe(true);
    expect(roots[1].daemonPid('agent')).toBeGreaterThan(0);

    const r = await remove(sshd.port);
    console.log(`[node-add] node remove --purge (exit ${r.code}):\n${r.stdout.trim()}\n${r.stderr.trim()}`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\[1\/3\] revoke: store-1 is not in the roster/);
    expect(r.stdout).toMatch(/\[3\/3\] purge: stopped agent, stopped serf, purged mammatus-agent/);
    for (const pid of pids) expect(() => process.kill(pid!, 0)).toThrow();
    for (const f of [
      '/usr/bin/mammatus',
      '/var/lib/mammatus/credentials.json',
      '/etc/serf/mammatus.json',
      '/etc/mammatus/agent.d/10-bootstrap.yaml',
    ])
      expect(host.chroot.exists(f), f).toBe(false);
    expect((await roster()).map((n) => n.node)).not.toContain('store-1');
    const members = JSON.parse((await bed.cli(['members', '--json'])).stdout) as Array<{ name: string; status: string }>;
    expect(members.find((m) => m.name === 'store-1')?.status ?? 'left').toMatch(/left|leaving/);
  });

  /** The --bind/--rpc a node already has (a re-run must not change them). */
  async function reuseFlags(): Promise<string[]> {
    const conf = JSON.parse(host.chroot.read('/etc/serf/mammatus.json')) as { bind: string; rpc_addr: string };
    return ['--bind', conf.bind, '--rpc', conf.rpc_addr];
  }
});
