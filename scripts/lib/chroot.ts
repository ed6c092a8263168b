/**
 * A throw-away Debian chroot for the package tests and the node-add benchmark: `debootstrap --variant=minbase` once, cached as a
 * tarball, then each run extracts it into a fresh temp dir, mounts /proc, runs commands with `chroot`,
 * and on `dispose()` stops what it started (by PID), unmounts and deletes the tree. Root only.
 */
import { execFile, spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { findOnPath } from './daemon.js';

const exec = promisify(execFile);

/** The Debian mirror debootstrap and the chroot's apt use. */
export const DEBIAN_MIRROR = process.env.MAMMATUS_TEST_MIRROR || 'http://deb.debian.org/debian';
/** Where the debootstrapped trees are kept as tarballs between runs. */
export const CACHE_DIR = process.env.MAMMATUS_TEST_CACHE || '/var/cache/mammatus-tests';

const CHROOT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Is `name` an executable on PATH (or the sbin dirs a root shell has)? */
export function commandAvailable(name: string): boolean {
  return findOnPath(name, ['/usr/sbin', '/sbin']) !== undefined;
}

/** Does `url` answer an HTTP HEAD with 200 within `timeoutMs`? */
export function httpReachable(url: string, timeoutMs = 10_000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.request(url, { method: 'HEAD', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
    req.end();
  });
}

/** Why a chroot of `suite` cannot be built here, or undefined when it can. */
export async function chrootSkipReason(suite: string, mirror = DEBIAN_MIRROR): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'chroot tests need Linux';
  if (process.getuid?.() !== 0) return 'chroot tests need root (debootstrap, chroot, mount)';
  for (const tool of ['debootstrap', 'chroot', 'mount', 'umount', 'tar']) {
    if (!commandAvailable(tool)) return `${tool} is missing (apt-get install debootstrap)`;
  }
  // A cached tree needs no debootstrap script, but apt in the chroot still needs the mirror.
  if (!existsSync(tarballPath(suite)) && !existsSync(`/usr/share/debootstrap/scripts/${suite}`)) {
    return `this debootstrap has no script for ${suite}`;
  }
  const release = `${mirror}/dists/${suite}/Release`;
  if (!(await httpReachable(release))) return `the Debian mirror is not reachable (${release})`;
  return undefined;
}

/** Path of the cached tarball of a minbase `suite` tree. */
export function tarballPath(suite: string): string {
  return path.join(CACHE_DIR, `${suite}-minbase.tar`);
}

/** Mount points at or below `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  const prefix = path.resolve(dir);
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1])
    .filter((m): m is string => m !== undefined)
    .map((m) => m.replace(/\\040/g, ' '))
    .filter((m) => m === prefix || m.startsWith(prefix + '/'))
    .sort((a, b) => b.length - a.length);
}

/** Unmounts everything below `dir` (lazily if busy); throws if something stays mounted. */
async function unmountAll(dir: string): Promise<void> {
  for (const m of mountsUnder(dir)) {
    await exec('umount', [m]).catch(() => exec('umount', ['-l', m]));
  }
  const left = mountsUnder(dir);
  if (left.length > 0) throw new Error(`still mounted: ${left.join(', ')}`);
}

/** `rm -rf` that refuses to cross into mounts: a proc or bind mount left in the tree is never walked. */
async function removeTree(dir: string): Promise<void> {
  await unmountAll(dir);
  await exec('rm', ['-rf', '--one-file-system', dir]);
}

/**
 * Returns the tarball of a debootstrapped minbase `suite`, building it first if the cache has none.
 * `onBuild` hears about the (slow) build.
 */
export async function baseTarball(suite: string, opts: { mirror?: string; onBuild?: (msg: string) => void } = {}): Promise<string> {
  const tarball = tarballPath(suite);
  if (existsSync(tarball)) return tarball;
  mkdirSync(CACHE_DIR, { recursive: true });
  const dir = mkdtempSync(path.join(CACHE_DIR, `${suite}-build-`));
  const started = Date.now();
  try {
    opts.onBuild?.(`debootstrap --variant=minbase ${suite} (cached afterwards as ${tarball})`);
    await exec('debootstrap', ['--variant=minbase', suite, dir, opts.mirror ?? DEBIAN_MIRROR], { maxBuffer: 64 << 20 });
    await unmountAll(dir); // debootstrap unmounts /proc and /sys itself; make sure
    // Downloaded .debs would only make the tarball larger.
    const archives = path.join(dir, 'var/cache/apt/archives');
    if (existsSync(archives)) for (const f of readdirSync(archives)) if (f.endsWith('.deb')) rmSync(path.join(archives, f));
    const tmp = `${tarball}.${process.pid}.tmp`;
    await exec('tar', ['-C', dir, '--numeric-owner', '-cf', tmp, '.']);
    renameSync(tmp, tarball); // atomic: a parallel run sees either no tarball or a whole one
    opts.onBuild?.(`debootstrap of ${suite} took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await removeTree(dir);
  }
  return tarball;
}

/** The outcome of one command in the chroot. */
export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Options of `Chroot.run`. */
export interface RunOptions {
  readonly env?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
}

/** Options of `Chroot.spawn`. */
export interface SpawnOptions {
  readonly env?: Readonly<Record<string, string>>;
  readonly stdio?: StdioOptions;
}

/** An extracted chroot with /proc mounted. */
export class Chroot {
  private readonly children = new Set<ChildProcess>();
  private disposed = false;

  private constructor(readonly root: string) {}

  /** Extracts `tarball` into a fresh temp dir, copies the host's resolv.conf in, and mounts /proc. */
  static async create(tarball: string, prefix = 'mammatus-chroot-'): Promise<Chroot> {
    const root = mkdtempSync(path.join(os.tmpdir(), prefix));
    const c = new Chroot(root);
    try {
      await exec('tar', ['-C', root, '--numeric-owner', '-xpf', tarball]);
      if (existsSync('/etc/resolv.conf')) copyFileSync('/etc/resolv.conf', c.path('/etc/resolv.conf'));
      mkdirSync(c.path('/proc'), { recursive: true });
      await exec('mount', ['-t', 'proc', 'proc', c.path('/proc')]);
    } catch (err) {
      await c.dispose();
      throw err;
    }
    return c;
  }

  /** Host path of `p`, an absolute path inside the chroot. */
  path(p: string): string {
    return path.join(this.root, p);
  }

  /** Writes a file inside the chroot, creating its directory. */
  write(p: string, content: string | Buffer, mode = 0o644): void {
    const file = this.path(p);
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
    writeFileSync(file, content, { mode });
  }

  /** Reads a file inside the chroot. */
  read(p: string): string {
    return readFileSync(this.path(p), 'utf8');
  }

  /** Does a path exist inside the chroot (a dangling symlink counts)? */
  exists(p: string): boolean {
    try {
      lstatSync(this.path(p));
      return true;
    } catch {
      return false;
    }
  }

  /** The environment commands get: nothing from the host but what is listed here. */
  env(extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv {
    return { PATH: CHROOT_PATH, HOME: '/root', LC_ALL: 'C.UTF-8', TERM: 'dumb', DEBIAN_FRONTEND: 'noninteractive', ...extra };
  }

  /**
   * Runs `cmd args` in the chroot with stdin closed (/dev/null: any prompt fails instead of waiting)
   * and resolves with its exit code and output; never rejects on a non-zero exit.
   */
  run(cmd: string, args: readonly string[] = [], opts: RunOptions = {}): Promise<RunResult> {
    const started = performance.now();
    const child = this.spawn(cmd, args, { env: opts.env ?? {}, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timeoutMs = opts.timeoutMs ?? 300_000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`${cmd} ${args.join(' ')}: no exit after ${timeoutMs} ms\n${stdout}\n${stderr}`));
      }, timeoutMs);
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr, ms: performance.now() - started });
      });
    });
  }

  /** Starts `cmd args` in the chroot; the process is stopped by PID in `dispose()` if still running. */
  spawn(cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): ChildProcess {
    if (this.disposed) throw new Error('chroot already disposed');
    const child = spawn('chroot', [this.root, cmd, ...args], { env: this.env(opts.env), stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Stops the processes it started (SIGTERM, then SIGKILL), unmounts, and deletes the tree. Idempotent. */
  async dispose(): Promise<void> {
    this.disposed = true;
    await Promise.all([...this.children].map((c) => stopProcess(c)));
    if (existsSync(this.root)) await removeTree(this.root);
  }
}

/** Sends `signal` to a child by its PID and waits for it to exit; SIGKILL after `graceMs`. */
export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    process.kill(child.pid, signal);
  } catch {
    return; // already gone
  }
  const timer = setTimeout(() => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

/** Removes a host directory tree (used for the test's own temp dirs). */
export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
