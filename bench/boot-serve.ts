/**
 * Part 1 of bench/boot.ts: the gateway's boot server against `busybox httpd` serving the same boot
 * image to N machines at once. Our server runs exactly as the gateway runs it: the bundle's
 * `mammatus service run boot-http` child, given its settings as the first IPC message (what
 * roles/gateway/boot-server.ts sends), so its CPU time is its own process's. A "machine" is one curl
 * process fetching vmlinuz, initrd.img and filesystem.squashfs one after the other to /dev/null.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { BUNDLE, type Cleanup, ROOT, stopChild } from './lib.js';
import { freePort, waitForPort } from '../scripts/lib/ports.js';

/** The boot files, in the order a machine asks for them. */
export const BOOT_FILES = ['vmlinuz', 'initrd.img', 'filesystem.squashfs'] as const;

/** A started file server. */
export interface FileServer {
  readonly label: string;
  readonly base: string;
  /** URL path prefix of the boot files (`/live/amd64/` for ours, `/` for busybox). */
  readonly prefix: string;
  readonly pid: number;
  /** utime + stime of the server, and of its children it reaped (busybox's it does not: see {@link childSampler}). */
  ticks(): { own: number; reaped: number };
  stop(): Promise<void>;
}

/** utime + stime and cutime + cstime of `pid` (fields 14–17 of /proc/PID/stat). */
function ticksWithChildren(pid: number): { own: number; reaped: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { own: Number(f[11]) + Number(f[12]), reaped: Number(f[13]) + Number(f[14]) };
}

/**
 * CPU ticks of `pid`'s short-lived children, read every `everyMs` while they live: busybox httpd
 * forks a child per connection and ignores SIGCHLD, so the kernel reaps them without adding their
 * time to busybox's cutime. Each child's last reading counts (up to `everyMs` of its end is missed:
 * a slight undercount of the baseline's CPU).
 */
export function childSampler(pid: number, everyMs = 10): { stop(): Promise<number> } {
  const seen = new Map<number, number>();
  const read = () => {
    let kids: string[];
    try {
      kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    } catch {
      return;
    }
    for (const k of kids) {
      try {
        const stat = readFileSync(`/proc/${k}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        seen.set(Number(k), Number(f[11]) + Number(f[12]));
      } catch {
        // gone meanwhile: its last reading stays
      }
    }
  };
  const timer = setInterval(read, everyMs);
  return {
    stop() {
      clearInterval(timer);
      read();
      return Promise.resolve([...seen.values()].reduce((a, b) => a + b, 0));
    },
  };
}

/**
 * The gateway's boot server (`service run boot-http` from the bundle) serving `imageDir` under
 * `/live/amd64/` and `stubFile` as `/boot.ipxe`, at the agent's default log level (info: one line
 * per file served, as on a gateway).
 */
export async function startBootServer(imageDir: string, stubFile: string, cleanup: Cleanup, bundle = BUNDLE): Promise<FileServer> {
  const port = await freePort();
  const child = spawn(process.execPath, [bundle, 'service', 'run', 'boot-http'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  cleanup.add(() => stopChild(child));
  let err = '';
  child.stderr?.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
  const section = { host: '127.0.0.1', port, files: { '/boot.ipxe': stubFile }, dirs: { '/live/amd64/': imageDir } };
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`boot-http not ready within 20 s: ${err}`)), 20_000);
    child.once('message', (m: { type?: string; message?: string }) => {
      clearTimeout(timer);
      if (m.type === 'ready') resolve();
      else reject(new Error(`boot-http: ${m.message ?? JSON.stringify(m)}`));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`boot-http exited at start (${code}): ${err}`));
    });
  });
  child.send({ type: 'init', service: 'boot-http', level: 'info', section });
  await ready;
  return {
    label: 'mammatus boot-http',
    base: `http://127.0.0.1:${port}`,
    prefix: '/live/amd64/',
    pid: child.pid!,
    ticks: () => ticksWithChildren(child.pid!),
    stop: () => stopChild(child),
  };
}

/** `busybox httpd -f` serving `dir` at `/` on a free loopback port. */
export async function startBusybox(dir: string, cleanup: Cleanup): Promise<FileServer> {
  const port = await freePort();
  const child = spawn('busybox', ['httpd', '-f', '-p', `127.0.0.1:${port}`, '-h', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  cleanup.add(() => stopChild(child));
  let err = '';
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`busybox httpd exited (${code}): ${err}`))),
  );
  exited.catch(() => undefined);
  await Promise.race([waitForPort(port), exited]);
  return {
    label: 'busybox httpd',
    base: `http://127.0.0.1:${port}`,
    prefix: '/',
    pid: child.pid!,
    ticks: () => ticksWithChildren(child.pid!),
    stop: () => stopChild(child),
  };
}

/** One round: N machines at once. Times in ms, bytes in total. */
export interface Round {
  readonly n: number;
  readonly wallMs: number;
  readonly perMachineMs: number[];
  readonly bytes: number;
  readonly serverTicks: number;
}

/** One machine: a curl fetching the boot files in order (one connection, reused), exiting when all are read. */
function machine(server: FileServer, deadlineMs: number): Promise<{ ms: number; bytes: number }> {
  const urls = BOOT_FILES.map((f) => `${server.base}${server.prefix}${f}`);
  const args = ['-sS', '--fail', '--max-time', String(Math.ceil(deadlineMs / 1000)), '-w', '%{size_download}\\n'];
  for (const u of urls) args.push('-o', '/dev/null', u);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.once('close', (code) => {
      const ms = performance.now() - started;
      if (code !== 0) return reject(new Error(`curl from ${server.label} exited ${code}: ${err.trim()}`));
      resolve({ ms, bytes: out.split('\n').reduce((s, l) => s + (Number(l) || 0), 0) });
    });
  });
}

/** N machines booting at once from `server`; checks every byte arrived. */
export async function bootRound(server: FileServer, n: number, expectBytes: number, deadlineMs: number): Promise<Round> {
  const t0 = server.ticks();
  const kids = childSampler(server.pid);
  const started = performance.now();
  const results = await Promise.all(Array.from({ length: n }, () => machine(server, deadlineMs)));
  const wallMs = performance.now() - started;
  const t1 = server.ticks();
  // Children it reaped show in cutime; the sampler sees them either way: the larger, not the sum.
  const serverTicks = t1.own - t0.own + Math.max(t1.reaped - t0.reaped, await kids.stop());
  const bytes = results.reduce((s, r) => s + r.bytes, 0);
  if (bytes !== n * expectBytes) throw new Error(`${server.label}: ${bytes} bytes read by ${n} machines, expected ${n * expectBytes}`);
  return { n, wallMs, perMachineMs: results.map((r) => r.ms), bytes, serverTicks };
}
