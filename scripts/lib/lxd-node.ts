/**
 * An LXD daemon of its own inside a network namespace, for the local cluster's compute node and the
 * compute end-to-end test (docs/compute.md "What runs where"): a private mount namespace
 * (`unshare -m`) where the host's cgroup tree is rbound aside, `ip netns exec` (which remounts /sys
 * for the namespace, so LXD finds the macvlan parent there) and the cgroups bound back; a private
 * `LXD_DIR`, so it runs next to any other LXD and leaves nothing in /var/lib/lxd. Its mounts live
 * in that mount namespace only and vanish with the daemon. Stopped by its PID after `lxd shutdown`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { errorMessage } from '../../core/errors.js';
import { findOnPath } from './daemon.js';

/** What a command run to completion gave; `code` 124 = timed out or could not start. */
export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `file args` to completion with `env` added to ours; never throws. */
export function runCommand(
  file: string,
  args: readonly string[],
  env: Record<string, string> = {},
  timeoutMs = 30_000,
): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, env: { ...process.env, ...env }, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 124) : 0;
      resolve({ code, stdout, stderr: stderr || (err?.message ?? '') });
    });
  });
}

/** Like {@link runCommand}, but a non-zero exit is an error naming the command. */
export async function mustRun(file: string, args: readonly string[], env?: Record<string, string>, timeoutMs?: number): Promise<string> {
  const r = await runCommand(file, args, env, timeoutMs);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Where to run the daemon. */
export interface LxdDaemonSpec {
  /** An existing network namespace (its interfaces are what containers' macvlan NICs can use). */
  readonly ns: string;
  /** The daemon's private directory: `LXD_DIR` is `dir/lxd`, `dir/cg` the cgroup mount point. */
  readonly dir: string;
  /** Where `lxd.log` and `lxd.out` go (default `dir`). */
  readonly logDir?: string;
}

/** A running daemon. */
export interface LxdDaemon extends AsyncDisposable {
  readonly ns: string;
  readonly lxdDir: string;
  /** `LXD_DIR/unix.socket`: what the compute role and `mammatus image import` talk to. */
  readonly socket: string;
  readonly logFile: string;
  /** Runs `lxc …` against this daemon; never throws. */
  lxc(args: readonly string[], timeoutMs?: number): Promise<CommandResult>;
  log(): string;
  /** Force-stops its containers, `lxd shutdown`, waits for the PID (SIGKILL after 5 s). */
  stop(): Promise<void>;
}

/** Are `lxd`, `lxc` and `unshare` on PATH? */
export function lxdInstalled(): boolean {
  return ['lxd', 'lxc', 'unshare'].every((tool) => findOnPath(tool) !== undefined);
}

/** Starts LXD in `spec.ns` and waits until it answers (60 s). */
export async function startLxdDaemon(spec: LxdDaemonSpec): Promise<LxdDaemon> {
  const lxdDir = path.join(spec.dir, 'lxd');
  const cg = path.join(spec.dir, 'cg');
  const logDir = spec.logDir ?? spec.dir;
  for (const d of [lxdDir, cg, logDir]) mkdirSync(d, { recursive: true });
  const logFile = path.join(logDir, 'lxd.log');
  const env = { LXD_DIR: lxdDir };
  // `ip netns exec` remounts /sys, which hides /sys/fs/cgroup (every container would die at start):
  // bind the host's cgroup tree aside first, then back over the namespace's /sys.
  const inner = `mount --rbind "$1" /sys/fs/cgroup && exec env LXD_DIR="$2" lxd --group lxd --logfile "$3"`;
  const outer = `mount --rbind /sys/fs/cgroup "$1" && exec ip netns exec "$4" sh -c '${inner}' sh "$1" "$2" "$3"`;
  const fd = openSync(path.join(logDir, 'lxd.out'), 'a');
  let daemon: ChildProcess;
  try {
    // Its own process group: a Ctrl-C in the terminal must not kill it before `lxd shutdown` runs.
    daemon = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', outer, 'sh', cg, lxdDir, logFile, spec.ns], {
      stdio: ['ignore', fd, fd],
      detached: true,
    });
  } finally {
    closeSync(fd);
  }
  daemon.on('error', () => undefined);
  const running = () => daemon.exitCode === null && daemon.signalCode === null;
  const node: LxdDaemon = {
    /** Stops it when a test's `await using` scope ends. */
    [Symbol.asyncDispose](this: LxdDaemon) {
      return this.stop();
    },
    ns: spec.ns,
    lxdDir,
    socket: path.join(lxdDir, 'unix.socket'),
    logFile,
    lxc: (args, timeoutMs) => runCommand('lxc', args, env, timeoutMs ?? 60_000),
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    async stop() {
      if (!daemon.pid || !running()) return;
      // Forced: a clean stop of each container would take LXD up to 30 s per instance.
      await runCommand('lxc', ['stop', '--all', '--force'], env, 60_000);
      await runCommand('lxd', ['shutdown', '--timeout=20'], env, 30_000);
      // `lxd shutdown` returns before the daemon's process is gone.
      const gone = new Promise<void>((r) => daemon.once('exit', () => r()));
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5_000))]);
      if (running()) process.kill(daemon.pid, 'SIGKILL');
    },
  };
  try {
    await mustRun('lxd', ['waitready', '--timeout=60'], env, 70_000);
  } catch (err) {
    await node.stop().catch(() => undefined);
    throw new Error(`${errorMessage(err)} (see ${logFile})`, { cause: err });
  }
  return node;
}

/**
 * Stops a daemon a crashed run left behind in `dir` (its containers with it), if it still answers.
 * Then the caller deletes the namespace's remaining processes and the directory.
 */
export async function stopLeftoverLxd(dir: string): Promise<void> {
  const env = { LXD_DIR: path.join(dir, 'lxd') };
  if (!existsSync(path.join(env.LXD_DIR, 'unix.socket'))) return;
  if ((await runCommand('lxd', ['waitready', '--timeout=2'], env, 5_000)).code !== 0) return;
  await runCommand('lxc', ['stop', '--all', '--force'], env, 60_000);
  await runCommand('lxd', ['shutdown', '--timeout=20'], env, 30_000);
}
