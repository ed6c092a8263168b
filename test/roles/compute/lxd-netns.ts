/**
 * A compute node for the end-to-end test: a network namespace joined to a gateway bed's switch,
 * and an LXD daemon of its own inside it (docs/compute.md "What runs where"): a private mount
 * namespace (`unshare -m`) where the host's cgroup tree is rbound aside, `ip netns exec` (which
 * remounts /sys for the namespace, so LXD finds the macvlan parent there) and the cgroups bound
 * back; a private `LXD_DIR`, so it runs next to any other LXD and leaves nothing in /var/lib/lxd.
 * Nothing of it exists in the root network namespace. `destroy()` stops the daemon (by its PID),
 * deletes the namespace and the directory.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { GatewayBed } from '../../helpers/netns.js';

/** The compute node. */
export interface LxdNode {
  /** Its network namespace. */
  readonly ns: string;
  /** Its LAN interface (the macvlan parent), inside `ns`. */
  readonly lan: string;
  readonly lxdDir: string;
  readonly socket: string;
  /** Runs `lxc …` against this daemon; never throws. */
  lxc(args: readonly string[], timeoutMs?: number): Promise<{ code: number; stdout: string; stderr: string }>;
  log(): string;
  destroy(): Promise<void>;
}

function run(file: string, args: readonly string[], env: Record<string, string> = {}, timeoutMs = 30_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, env: { ...process.env, ...env }, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 124) : 0;
      resolve({ code, stdout, stderr: stderr || (err?.message ?? '') });
    });
  });
}

async function must(file: string, args: readonly string[], env?: Record<string, string>, timeoutMs?: number): Promise<string> {
  const r = await run(file, args, env, timeoutMs);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Creates the namespace `<bed id>-cn` with `cn-lan` on the bed's switch, and starts LXD in it. */
export async function startLxdNode(bed: GatewayBed, dir: string): Promise<LxdNode> {
  const ns = `${bed.id}-cn`;
  const lan = 'cn-lan';
  const lxdDir = path.join(dir, 'lxd');
  const cg = path.join(dir, 'cg');
  mkdirSync(lxdDir, { recursive: true });
  mkdirSync(cg, { recursive: true });
  const logFile = path.join(dir, 'lxd.log');
  let daemon: ChildProcess | undefined;
  const env = { LXD_DIR: lxdDir };
  const node: LxdNode = {
    ns,
    lan,
    lxdDir,
    socket: path.join(lxdDir, 'unix.socket'),
    lxc: (args, timeoutMs) => run('lxc', args, env, timeoutMs ?? 60_000),
    log: () => {
      try {
        return readFileSync(logFile, 'utf8');
      } catch {
        return '';
      }
    },
    async destroy() {
      if (daemon?.pid && daemon.exitCode === null && daemon.signalCode === null) {
        await run('lxd', ['shutdown', '--timeout=20'], env, 30_000);
        // `lxd shutdown` returns before the daemon's process is gone.
        const gone = new Promise<void>((r) => daemon!.once('exit', () => r()));
        await Promise.race([gone, new Promise((r) => setTimeout(r, 5_000))]);
        if (daemon.exitCode === null && daemon.signalCode === null) process.kill(daemon.pid, 'SIGKILL');
      }
      const pids = (await run('ip', ['netns', 'pids', ns])).stdout.split(/\s+/).filter(Boolean).map(Number);
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await run('ip', ['netns', 'del', ns]);
      // LXD's idmapped files need root to remove; the test runs as root.
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await must('ip', ['netns', 'add', ns]);
    await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    await must('ip', ['link', 'add', lan, 'netns', ns, 'type', 'veth', 'peer', 'name', 'p-cn', 'netns', bed.ns.sw]);
    await must('ip', ['-n', bed.ns.sw, 'link', 'set', 'p-cn', 'master', bed.ifaces.br]);
    await must('ip', ['-n', bed.ns.sw, 'link', 'set', 'p-cn', 'up']);
    await must('ip', ['-n', ns, 'link', 'set', lan, 'up']);
    const inner = `mount --rbind "$1" /sys/fs/cgroup && exec env LXD_DIR="$2" lxd --group lxd --logfile "$3"`;
    const outer = `mount --rbind /sys/fs/cgroup "$1" && exec ip netns exec "$4" sh -c '${inner}' sh "$1" "$2" "$3"`;
    const fd = openSync(path.join(dir, 'lxd.out'), 'a');
    try {
      daemon = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', outer, 'sh', cg, lxdDir, logFile, ns], { stdio: ['ignore', fd, fd], detached: true });
    } finally {
      closeSync(fd);
    }
    daemon.on('error', () => undefined);
    await must('lxd', ['waitready', '--timeout=60'], env, 70_000);
  } catch (err) {
    await node.destroy().catch(() => undefined);
    throw err;
  }
  return node;
}
