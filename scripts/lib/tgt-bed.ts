/**
 * A network-namespace bed for the storage role's tgt backend: a storage node `st` (bridge br0,
 * 10.87.0.1/24) running a real tgtd, a compute node `cp` (10.87.0.2) and a foreign host `fx`
 * (10.87.0.3), each wired to the bridge by a veth made inside the namespaces, so nothing touches
 * the root namespace's network. tgtd gets a control port of its own (`-C`, socket
 * /var/run/tgtd/socket.<port>), so the bed never talks to, or disturbs, a host's tgtd on port 0.
 *
 * Processes are spawned with `ip netns exec` (argv arrays), tracked, and stopped by PID;
 * `destroy()` kills what is left, deletes the namespaces, the control socket and the temp dir. It is
 * idempotent and also runs (synchronously) when the test process exits.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { until } from './wait.js';

export type TgtNs = 'st' | 'cp' | 'fx';
const KEYS: readonly TgtNs[] = ['st', 'cp', 'fx'];

/** The bed's addresses; the portal is the storage node's. */
export const TGT_BED_ADDRS = { st: '10.87.0.1', cp: '10.87.0.2', fx: '10.87.0.3', portal: '10.87.0.1:3260' } as const;

/** What a command printed and its exit code (124: killed by the timeout). */
export interface BedRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface TgtBed {
  readonly id: string;
  readonly dir: string;
  /** tgtd's control port (pass it to tgtadm/tgt-admin as `-C`). */
  readonly controlPort: number;
  /** `ip netns exec NS argv…`, never throwing on a non-zero exit. */
  exec(ns: TgtNs, argv: readonly string[], timeoutMs?: number): Promise<BedRun>;
  /** Starts a tracked process in NS; output goes to its `logFile`. */
  spawn(ns: TgtNs, argv: readonly string[]): ChildProcess & { readonly logFile: string };
  /** Stops a tracked process by its PID (`signal`, then SIGKILL after 3 s) and waits for it. */
  stop(p: ChildProcess, signal?: NodeJS.Signals): Promise<void>;
  /** Starts tgtd in `st` (no portal argument: tgtd's default portals, left to the code under test) and waits until it answers. */
  startTgtd(): Promise<ChildProcess & { readonly logFile: string }>;
  destroy(): Promise<void>;
}

function run(file: string, args: readonly string[], timeoutMs = 15_000): Promise<BedRun> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (!err) return resolve({ code: 0, stdout, stderr });
      const e = err as { code?: number | string; killed?: boolean };
      resolve({ code: typeof e.code === 'number' ? e.code : e.killed ? 124 : 127, stdout, stderr: stderr || err.message });
    });
  });
}

async function ip(args: readonly string[]): Promise<void> {
  const r = await run('ip', args);
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

const alive = (p: ChildProcess) => p.exitCode === null && p.signalCode === null;

/** A control port no tgtd on this machine uses (its socket file does not exist). */
function freeControlPort(): number {
  for (let i = 0; i < 50; i++) {
    // tgtd keeps the port in a short: at most 32767.
    const port = randomInt(10_000, 32_000);
    if (!existsSync(`/var/run/tgtd/socket.${port}`)) return port;
  }
  throw new Error('no free tgtd control port');
}

/** Builds the bed; on a failed step it cleans up and throws. */
export async function buildTgtBed(): Promise<TgtBed> {
  const id = `tgt${randomBytes(3).toString('hex')}`;
  const ns = Object.fromEntries(KEYS.map((k) => [k, `${id}-${k}`])) as Record<TgtNs, string>;
  const dir = mkdtempSync(path.join(os.tmpdir(), `${id}-`));
  const controlPort = freeControlPort();
  const procs = new Set<ChildProcess>();
  const created: string[] = [];
  let counter = 0;
  let destroying: Promise<void> | undefined;

  const socketFiles = [`/var/run/tgtd/socket.${controlPort}`, `/var/run/tgtd/socket.${controlPort}.lock`];
  const exitCleanup = () => {
    for (const p of procs) if (alive(p)) p.kill('SIGKILL');
    for (const name of created) {
      try {
        execFileSync('ip', ['netns', 'del', name], { stdio: 'pipe', timeout: 5_000 });
      } catch {
        /* best effort */
      }
    }
    for (const f of socketFiles) rmSync(f, { force: true });
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', exitCleanup);

  const bed: TgtBed = {
    id,
    dir,
    controlPort,
    exec: (key, argv, timeoutMs) => run('ip', ['netns', 'exec', ns[key], ...argv], timeoutMs),
    spawn(key, argv) {
      if (destroying) throw new Error('bed is destroyed');
      const logFile = path.join(dir, `${key}-${path.basename(argv[0] ?? 'cmd')}-${++counter}.log`);
      const fd = openSync(logFile, 'a');
      try {
        const child = spawn('ip', ['netns', 'exec', ns[key], ...argv], { stdio: ['ignore', fd, fd] });
        child.on('error', () => undefined);
        procs.add(child);
        return Object.assign(child, { logFile });
      } finally {
        closeSync(fd);
      }
    },
    async stop(p, signal = 'SIGTERM') {
      if (!alive(p)) return;
      const exited = new Promise((resolve) => p.once('exit', resolve));
      p.kill(signal);
      const timer = setTimeout(() => p.kill('SIGKILL'), 3_000);
      await exited;
      clearTimeout(timer);
      procs.delete(p);
    },
    async startTgtd() {
      // A socket left by a tgtd this bed killed would make the new one refuse to start.
      for (const f of socketFiles) rmSync(f, { force: true });
      const tgtd = bed.spawn('st', ['tgtd', '-f', '-C', String(controlPort)]);
      await until(
        'tgtd answering on its control port',
        async () => {
          if (!alive(tgtd)) throw new Error(`tgtd exited: ${readFileSync(tgtd.logFile, 'utf8')}`);
          return (await run('tgtadm', ['-C', String(controlPort), '--mode', 'sys', '--op', 'show'])).code === 0;
        },
        { timeoutMs: 10_000 },
      );
      return tgtd;
    },
    destroy() {
      destroying ??= (async () => {
        // tgtd ignores SIGTERM while it has targets: SIGKILL is how it stops here.
        await Promise.all([...procs].map((p) => bed.stop(p, 'SIGKILL')));
        for (const name of created) {
          const pids = (await run('ip', ['netns', 'pids', name])).stdout.split(/\s+/).filter(Boolean);
          for (const pid of pids) process.kill(Number(pid), 'SIGKILL');
          await run('ip', ['netns', 'del', name]);
        }
        for (const f of socketFiles) rmSync(f, { force: true });
        rmSync(dir, { recursive: true, force: true });
        process.off('exit', exitCleanup);
      })();
      return destroying;
    },
  };

  try {
    for (const k of KEYS) {
      await ip(['netns', 'add', ns[k]]);
      created.push(ns[k]);
      await ip(['-n', ns[k], 'link', 'set', 'lo', 'up']);
    }
    await ip(['-n', ns.st, 'link', 'add', 'br0', 'type', 'bridge']);
    await ip(['-n', ns.st, 'addr', 'add', `${TGT_BED_ADDRS.st}/24`, 'dev', 'br0']);
    await ip(['-n', ns.st, 'link', 'set', 'br0', 'up']);
    for (const k of ['cp', 'fx'] as const) {
      await ip(['link', 'add', `${k}-lan`, 'netns', ns[k], 'type', 'veth', 'peer', 'name', `p-${k}`, 'netns', ns.st]);
      await ip(['-n', ns.st, 'link', 'set', `p-${k}`, 'master', 'br0']);
      await ip(['-n', ns.st, 'link', 'set', `p-${k}`, 'up']);
      await ip(['-n', ns[k], 'addr', 'add', `${TGT_BED_ADDRS[k]}/24`, 'dev', `${k}-lan`]);
      await ip(['-n', ns[k], 'link', 'set', `${k}-lan`, 'up']);
    }
  } catch (err) {
    await bed.destroy();
    throw err;
  }
  return bed;
}
