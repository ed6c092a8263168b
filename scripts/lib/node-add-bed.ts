/**
 * The bed of `mammatus node add` (test/packaging/node-add.test.ts and bench/node-add.ts): an
 * existing cluster on this host (a controller: real serf with gossip encryption and an RPC key, its
 * agent from the bundle with credentials, its nats-server), the .deb and its signed flat repository
 * served on loopback, an operator SSH key, and fresh Debian roots (debootstrap chroots) each with
 * Debian's own openssh-server running on a free loopback port. Everything is stopped by PID.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CREDENTIALS_FILE } from '../../core/trust.js';
import { Chroot, stopProcess } from './chroot.js';
import { BUNDLE, startMammatusAgent, type MammatusAgent } from './mammatus-agent.js';
import { freePort, waitForPort } from './ports.js';
import { serveRepo, type RepoServer } from './repo-server.js';
import { startSerfAgent, type SerfAgent } from './serf-agent.js';

const exec = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The version in package.json: the .deb's and the CLI's. */
export const PACKAGE_VERSION = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** Builds the mammatus-agent .deb into `out` with scripts/package.mjs; returns its path. */
export async function buildDeb(out: string): Promise<string> {
  await exec(process.execPath, [path.join(ROOT, 'scripts/package.mjs'), '--out', out], { cwd: ROOT, maxBuffer: 16 << 20 });
  const deb = path.join(out, `mammatus-agent_${PACKAGE_VERSION}_all.deb`);
  if (!existsSync(deb)) throw new Error(`${deb} was not built`);
  return deb;
}

/** A command's result; never rejects on a non-zero exit. */
export async function run(cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv, timeoutMs = 900_000) {
  const started = performance.now();
  return exec(cmd, [...args], { maxBuffer: 32 << 20, timeout: timeoutMs, ...(env ? { env } : {}) }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - started }),
    (e: { code?: number | string; stdout?: string; stderr?: string; message: string }) => ({
      code: typeof e.code === 'number' ? e.code : 1,
      stdout: e.stdout ?? '',
      stderr: e.stderr ?? e.message,
      ms: performance.now() - started,
    }),
  );
}

/** The existing cluster and what an operator on its controller has. */
export interface ControllerBed {
  readonly work: string;
  readonly rpcAuth: string;
  readonly serf: SerfAgent;
  readonly agent: MammatusAgent;
  readonly natsUrl: string;
  readonly credentials: string;
  readonly deb: string;
  /** The signed repository's URL and its public key file. */
  readonly repoUrl: string;
  readonly repoKey: string;
  readonly repo: RepoServer;
  /** The operator's private key (ed25519, no passphrase) and its public line. */
  readonly sshKey: string;
  readonly sshPub: string;
  /** The bundled CLI as root on the controller: its serf, RPC key, credentials. */
  cli(args: readonly string[], env?: NodeJS.ProcessEnv): ReturnType<typeof run>;
  stop(): Promise<void>;
}

/** Starts the controller, builds the .deb and its repository, makes the operator key. */
export async function startControllerBed(work: string): Promise<ControllerBed> {
  const stops: Array<() => Promise<unknown>> = [];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  };
  try {
    const rpcAuth = 'node-add-bed-rpc-key';
    const gossipKey = (await exec('serf', ['keygen'])).stdout.trim();
    const deb = await buildDeb(path.join(work, 'dist'));
    const repoDir = path.join(work, 'repo');
    const gnupg = path.join(work, 'gnupg');
    await exec('bash', [path.join(ROOT, 'scripts/repo-build.sh'), '--out', repoDir, '--gnupg-home', gnupg, deb]);
    stops.push(() => stopGpgAgent(gnupg));
    const repo = await serveRepo(repoDir);
    stops.push(() => repo.close());
    const sshKey = path.join(work, 'operator', 'id_ed25519');
    mkdirSync(path.dirname(sshKey), { recursive: true, mode: 0o700 });
    await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'operator@node-add-bed', '-f', sshKey]);

    const serf = await startSerfAgent({
      name: 'ctl-1',
      dir: path.join(work, 'ctl-1', 'serf'),
      tags: { role: 'controller' },
      rpcAuth,
      encryptKey: gossipKey,
    });
    stops.push(() => serf.stop());
    const dir = path.join(work, 'ctl-1');
    const credentials = path.join(dir, 'agent', 'state', CREDENTIALS_FILE);
    const cli = (args: readonly string[], env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: path.join(work, 'operator') }) =>
      run(process.execPath, [BUNDLE, '--rpc-addr', serf.rpcAddr, '--rpc-auth', rpcAuth, '--credentials', credentials, ...args], env);
    const boot = await cli(['node', 'admit', 'ctl-1', '--role', 'controller']);
    if (boot.code !== 0) throw new Error(`node admit ctl-1: ${boot.stderr}`);
    const [client, cluster, monitor, md] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const p = (f: string) => JSON.stringify(path.join(dir, f));
    const extraYaml = [
      'watch_config: false',
      'roles:',
      '  controller:',
      `    nats: { listen: "127.0.0.1:${client}", cluster_listen: "127.0.0.1:${cluster}", monitor_listen: "127.0.0.1:${monitor}", store_dir: ${p('nats')}, binary: nats-server }`,
      `    paths: { nats_conf: ${p('nats.conf')}, members: ${p('members')}, roster: ${p('roster.json')}, firewall: ${p('firewall.rules')} }`,
      // The host's own firewall stays untouched.
      '    firewall: { enabled: false }',
      `metadata: { listen: "127.0.0.1:${md}", proxy_secret: "${'cd'.repeat(32)}" }`,
    ].join('\n');
    const agent = await startMammatusAgent({ dir: path.join(dir, 'agent'), rpcAddr: serf.rpcAddr, rpcAuth, extraYaml });
    stops.push(() => agent.stop());
    const repoKey = path.join(repoDir, 'mammatus-archive-keyring.gpg');
    return {
      work,
      rpcAuth,
      serf,
      agent,
      natsUrl: `nats://127.0.0.1:${client}`,
      credentials,
      deb,
      repoUrl: `http://127.0.0.1:${repo.port}/`,
      repoKey,
      repo,
      sshKey,
      sshPub: readFileSync(`${sshKey}.pub`, 'utf8').trim(),
      cli,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** repo-build.sh's gpg started a gpg-agent for its GNUPGHOME: stop that one by its PID. */
async function stopGpgAgent(gnupg: string): Promise<void> {
  if (!existsSync(gnupg)) return;
  const r = await run('gpg-connect-agent', ['--homedir', gnupg, '--no-autostart', 'getinfo pid', '/bye']);
  const pid = Number(/^D (\d+)$/m.exec(r.stdout)?.[1]);
  if (pid > 0) process.kill(pid, 'SIGTERM');
}

/** A fresh Debian root with openssh-server installed, root's authorized key, and sshd to start. */
export interface SshRoot {
  readonly chroot: Chroot;
  /** `apt-get update` + `apt-get install openssh-server` in ms. */
  readonly prepareMs: number;
  /** Starts (another) sshd on a free loopback port with extra `-o` options; returns it. */
  startSshd(options?: readonly string[]): Promise<Sshd>;
  /** The host's ed25519 public key line (`ssh-ed25519 AAAA…`). */
  hostKey(): string;
  /** PID of a daemon `node add` started without systemd (from its pid file), if running. */
  daemonPid(service: 'serf' | 'agent'): number | undefined;
  /** Stops what node add started there (by PID), sshd, and deletes the tree. */
  dispose(): Promise<void>;
}

/** A running sshd. */
export interface Sshd {
  readonly port: number;
  readonly logFile: string;
  readonly process: ChildProcess;
  log(): string;
}

/**
 * Extracts `tarball`, installs Debian's openssh-server from the mirror (with a policy-rc.d, so no
 * package starts anything) and authorizes `pubKey` for root.
 */
export async function sshRoot(tarball: string, pubKey: string, logDir: string): Promise<SshRoot> {
  const chroot = await Chroot.create(tarball, 'mammatus-node-add-');
  const sshds: ChildProcess[] = [];
  const daemonPid = (service: 'serf' | 'agent') => {
    const file = chroot.path(`/run/mammatus-node/${service}.pid`);
    const pid = existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) : NaN;
    if (!(pid > 0)) return undefined;
    try {
      process.kill(pid, 0);
      return pid;
    } catch {
      return undefined;
    }
  };
  const dispose = async () => {
    for (const s of ['agent', 'serf'] as const) {
      const pid = daemonPid(s);
      if (pid) await killPid(pid, s === 'serf' ? 'SIGINT' : 'SIGTERM');
    }
    for (const s of sshds) await stopProcess(s);
    await chroot.dispose();
  };
  try {
    chroot.write('/usr/sbin/policy-rc.d', '#!/bin/sh\nexit 101\n', 0o755);
    const t0 = performance.now();
    for (const argv of [['update'], ['install', '-y', '--no-install-recommends', 'openssh-server']]) {
      const r = await chroot.run('apt-get', argv, { timeoutMs: 600_000 });
      if (r.code !== 0) throw new Error(`apt-get ${argv.join(' ')} in the chroot: ${r.stderr.slice(-2000)}`);
    }
    const prepareMs = performance.now() - t0;
    chroot.write('/root/.ssh/authorized_keys', `${pubKey}\n`, 0o600);
    mkdirSync(chroot.path('/run/sshd'), { recursive: true, mode: 0o755 });
    mkdirSync(logDir, { recursive: true });
    const startSshd = async (options: readonly string[] = []): Promise<Sshd> => {
      const port = await freePort();
      const logFile = path.join(logDir, `sshd-${port}.log`);
      const fd = openSync(logFile, 'a');
      // -e: log to stderr (our file); no PAM (no login sessions to account for in a chroot).
      const args = [
        '-D',
        '-e',
        '-p',
        String(port),
        '-o',
        'ListenAddress=127.0.0.1',
        '-o',
        'UsePAM=no',
        ...options.flatMap((o) => ['-o', o]),
      ];
      const child = chroot.spawn('/usr/sbin/sshd', args, { stdio: ['ignore', fd, fd] });
      closeSync(fd);
      sshds.push(child);
      await waitForPort(port, '127.0.0.1', 15_000);
      return { port, logFile, process: child, log: () => readFileSync(logFile, 'utf8') };
    };
    return {
      chroot,
      prepareMs,
      startSshd,
      hostKey: () => chroot.read('/etc/ssh/ssh_host_ed25519_key.pub').trim().split(' ').slice(0, 2).join(' '),
      daemonPid,
      dispose,
    };
  } catch (err) {
    await dispose().catch(() => undefined);
    throw err;
  }
}

/** Signals a PID we know we started (through node add) and waits up to 10 s, then SIGKILL. */
async function killPid(pid: number, signal: NodeJS.Signals): Promise<void> {
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  process.kill(pid, signal);
  for (let i = 0; i < 100 && alive(); i++) await new Promise((r) => setTimeout(r, 100));
  if (alive()) process.kill(pid, 'SIGKILL');
}
