/**
 * The metadata service against nginx serving the same answers as static files, same run:
 * requests/s and p99 latency of `/latest/meta-data/instance-id` and `/nocloud/user-data` at 64
 * concurrent connections (`wrk -t2 -c64 --latency`).
 *
 *   npx tsx bench/metadata.ts
 *
 * A nats-server holds the registry; one instance is registered with IP 127.0.0.1 (every loopback
 * request comes from it) and 2 KiB of #cloud-config user-data. The service runs as its own process
 * from the bundle (`node dist/mammatus.mjs metadata serve`, log level warn, the default
 * `metadata.vendor_data`, i.e. the Consul and Telegraf parts, as it ships); nginx
 * runs one worker (the service is one Node process) with `access_log off`, serving the bytes the
 * service answered, fetched from it first, at the same paths with the same Content-Type. Each
 * target and path is warmed up once, then measured BENCH_MD_RUNS times, interleaved (nginx,
 * mammatus, mammatus, nginx, …) so drift hits both; the medians decide. Goals per path: mammatus
 * req/s ≥ 0.5 × nginx req/s, mammatus p99 < 5 ms. Extras, one run each, for reference: nginx with
 * `worker_processes auto`; the service with `vendorData: async () => ''` (bench/metadata-server.ts
 * service: what vendor-data rendering costs); a bare fastify app answering the same bytes (the
 * fastify floor, bench/metadata-server.ts bare); the same with plain node:http (Node's floor).
 * Every Node server runs as a bundle (esbuild, the options of scripts/build.mjs), never under tsx:
 * tsx's loader costs a fastify hello-world about 20 % of its requests/s here.
 *
 * Knobs (environment):
 *   BENCH_MD_SECONDS   seconds per measurement (10)      BENCH_MD_RUNS    measurements per target (3)
 *   BENCH_MD_WARMUP    warm-up seconds (2)               BENCH_MD_EXTRAS  0 = skip the extras
 *   BENCH_MD_FROM      bundle (default): dist/mammatus.mjs metadata serve | source: the service
 *                      from the current sources via bench/metadata-server.ts (bundled into $TMP)
 *   BENCH_MD_BUNDLE    another bundle to run (e.g. one built from a patched copy)
 *   BENCH_MD_NODE_ARGS extra node flags for the service, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { build } from 'esbuild';
import { InstanceRegistry } from '../src/registry/registry.js';
import { connectNats } from '../core/nats.js';
import { natsServerAvailable, startNatsServer } from '../scripts/lib/nats-server.js';
import { freePort, waitForPort } from '../scripts/lib/ports.js';
import {
  BUNDLE,
  Cleanup,
  clkTck,
  cpuTicks,
  emitJson,
  ensureBundle,
  Goals,
  machine,
  median,
  printMachine,
  ROOT,
  round,
  runMain,
  stopChild,
  tempDir,
} from './lib.js';
import { parseWrk, type WrkResult } from './wrk.js';
import { sleep, waitFor } from '../scripts/lib/wait.js';

const SECONDS = Number(process.env.BENCH_MD_SECONDS ?? 10);
/** NATS authorization as on a controller (nkey users); `BENCH_NATS_AUTH=off` measures without, for its cost. */
const AUTH = process.env.BENCH_NATS_AUTH !== 'off';
const RUNS = Number(process.env.BENCH_MD_RUNS ?? 3);
const WARMUP_S = Number(process.env.BENCH_MD_WARMUP ?? 2);
const EXTRAS = process.env.BENCH_MD_EXTRAS !== '0';
const FROM = process.env.BENCH_MD_FROM === 'source' ? 'source' : 'bundle';
const SERVICE_BUNDLE = process.env.BENCH_MD_BUNDLE ? path.resolve(process.env.BENCH_MD_BUNDLE) : BUNDLE;
const NODE_ARGS = (process.env.BENCH_MD_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
const THREADS = 2;
const CONNECTIONS = 64;
const NGINX = '/usr/sbin/nginx';
const RATIO_GOAL = 0.5;
const P99_GOAL_MS = 5;

const PATHS = ['/latest/meta-data/instance-id', '/nocloud/user-data'] as const;
type UrlPath = (typeof PATHS)[number];

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchBenchBenchBenchBenchBenchBenchBenchBe ops@bench';

/** A #cloud-config of exactly `size` bytes, shaped like a real one (users, packages, files, commands). */
function cloudConfig(size: number): Buffer {
  const head = [
    '#cloud-config',
    'hostname: bench-1',
    'timezone: UTC',
    'users:',
    '  - name: ops',
    '    groups: [sudo, adm]',
    '    shell: /bin/bash',
    "    sudo: 'ALL=(ALL) NOPASSWD:ALL'",
    '    ssh_authorized_keys:',
    `      - ${KEY}`,
    'package_update: true',
    'packages: [nginx, prometheus-node-exporter, jq, curl, chrony]',
    'write_files:',
    '  - path: /etc/nginx/sites-available/default',
    "    permissions: '0644'",
    '    content: |',
    '      server {',
    '        listen 80 default_server;',
    '        root /var/www/html;',
    '        location / { try_files $uri $uri/ =404; }',
    '        location /healthz { return 200 "ok\\n"; }',
    '      }',
    '  - path: /etc/app/config.env',
    "    permissions: '0600'",
    '    content: |',
    '      APP_ENV=production',
    '      APP_LISTEN=0.0.0.0:8080',
    '      APP_DB_URL=postgres://app@db-1.mammatus:5432/app?sslmode=require',
  ];
  const tail = [
    'runcmd:',
    '  - [systemctl, enable, --now, nginx]',
    '  - [systemctl, enable, --now, prometheus-node-exporter]',
    "  - [sh, -c, 'curl -fsS http://127.0.0.1/healthz']",
    'final_message: "bench-1 up after $UPTIME s"',
    '',
  ];
  let text = [...head, ...tail].join('\n');
  // Pad with more app settings (and one comment line to hit the size exactly).
  const extra: string[] = [];
  for (let i = 0; text.length < size - 80; i++) {
    extra.push(`      APP_FEATURE_${String(i).padStart(2, '0')}=enabled`);
    text = [...head, ...extra, ...tail].join('\n');
  }
  const missing = size - Buffer.byteLength(text) - 1;
  if (missing > 2) text = [...head, ...extra, ...tail.slice(0, -1), `#${'-'.repeat(missing - 2)}`, ''].join('\n');
  return Buffer.from(text.padEnd(size, '\n'));
}

/**
 * Bundles bench/metadata-server.ts into `outfile` the way scripts/build.mjs bundles the CLI (ESM,
 * node20, minified, the same banner), so it runs on plain node, like the service.
 */
async function bundleHelper(outfile: string): Promise<void> {
  await build({
    entryPoints: [path.join(ROOT, 'bench', 'metadata-server.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    minify: true,
    logLevel: 'error',
    external: ['msgpackr-extract', 'cpu-features', '*.node'],
    banner: {
      js: [
        'import { createRequire as __cr } from "node:module"; import { fileURLToPath as __fu } from "node:url"; import { dirname as __dn } from "node:path";',
        'const require = __cr(import.meta.url); const __filename = __fu(import.meta.url); const __dirname = __dn(__filename);',
      ].join('\n'),
    },
  });
}

/** A started server process (or process tree, for nginx) the benchmark stops by PID. */
interface Target {
  readonly label: string;
  readonly base: string;
  readonly pid: number;
  /** Every PID whose CPU counts as this server's (nginx: master and workers). */
  pids(): number[];
  stop(): Promise<void>;
}

/** Spawns a server and waits for `ready` in its output (stdout or stderr); resolves with the match. */
async function spawnServer(
  label: string,
  file: string,
  args: string[],
  ready: RegExp,
  cleanup: Cleanup,
  env?: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcess; match: RegExpExecArray; output: () => string }> {
  const child = spawn(file, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  cleanup.add(() => stopChild(child));
  let out = '';
  const output = () => out;
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label} did not start within 20 s; output:\n${out}`)), 20_000);
    const onData = (b: Buffer) => {
      out += b.toString();
      if (out.length > 64_000) out = out.slice(-32_000);
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`${label} exited at start (${code ?? sig}); output:\n${out}`));
    });
  });
  return { child, match, output };
}

/** PIDs whose parent is `ppid` (nginx's workers). */
function childrenOf(ppid: number): number[] {
  const kids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid) kids.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return kids;
}

const TYPES: Record<UrlPath, string> = { '/latest/meta-data/instance-id': 'text/plain', '/nocloud/user-data': 'application/octet-stream' };

/** nginx with `workers` worker processes serving `www` on a free loopback port. */
async function startNginx(dir: string, www: string, workers: string, cleanup: Cleanup): Promise<Target> {
  mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  const locations = PATHS.map((p) => `    location = ${p} { default_type ${TYPES[p]}; }`).join('\n');
  writeFileSync(
    conf,
    `daemon off;
worker_processes ${workers};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  types { }
  # text/plain gets "; charset=utf-8" appended, as the service sends it
  charset utf-8;
  charset_types text/plain;
  # node keeps a keep-alive connection for any number of requests; so does this nginx
  keepalive_requests 1000000;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  server {
    listen 127.0.0.1:${port};
    root ${www};
${locations}
  }
}
`,
  );
  const child = spawn(NGINX, ['-e', path.join(dir, 'error.log'), '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const master = child.pid!;
  let workerPids: number[] = [];
  const stop = async () => {
    await stopChild(child);
    // The master stops its workers on SIGTERM; make sure, by their PIDs.
    for (const w of workerPids) {
      try {
        process.kill(w, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  cleanup.add(stop);
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) =>
      reject(
        new Error(
          `nginx exited at start (${code}): ${err}${existsSync(path.join(dir, 'error.log')) ? readFileSync(path.join(dir, 'error.log'), 'utf8') : ''}`,
        ),
      ),
    ),
  );
  exited.catch(() => undefined);
  await Promise.race([waitForPort(port), exited]);
  const want = workers === 'auto' ? Number(spawnSync('nproc', { encoding: 'utf8' }).stdout.trim()) : Number(workers);
  await waitFor(() => (workerPids = childrenOf(master)).length >= want, 5000);
  return {
    label: `nginx (${workerPids.length} worker${workerPids.length === 1 ? '' : 's'})`,
    base: `http://127.0.0.1:${port}`,
    pid: master,
    pids: () => [master, ...workerPids],
    stop,
  };
}

/** One raw HTTP/1.1 GET (own socket): status line, header bytes, body. */
function rawGet(base: string, urlPath: string): Promise<{ status: number; head: string; body: Buffer }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: u.hostname, port: Number(u.port) });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`GET ${base}${urlPath}: no full answer in 5 s`));
    }, 5000);
    s.on('connect', () => s.write(`GET ${urlPath} HTTP/1.1\r\nHost: ${u.host}\r\nUser-Agent: bench\r\n\r\n`));
    s.on('data', (b: Buffer) => {
      buf = Buffer.concat([buf, b]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end + 4).toString('latin1');
      const len = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? NaN);
      if (Number.isFinite(len) && buf.length < end + 4 + len) return;
      if (!Number.isFinite(len)) {
        clearTimeout(timer);
        s.destroy();
        reject(new Error(`GET ${base}${urlPath}: no content-length`));
        return;
      }
      clearTimeout(timer);
      s.destroy();
      resolve({ status: Number(head.split(' ')[1]), head, body: buf.subarray(end + 4, end + 4 + len) });
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

const header = (head: string, name: string) => new RegExp(`\\r\\n${name}:\\s*([^\\r]*)`, 'i').exec(head)?.[1];

/** Busy and total jiffies of the whole machine (first line of /proc/stat). */
function machineTicks(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3] - f[4], total };
}

/** utime and stime (clock ticks) of processes, summed (fields 14 and 15 of /proc/PID/stat). */
function ticksOf(pids: number[]): { user: number; sys: number } {
  const t = { user: 0, sys: 0 };
  for (const p of pids) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      t.user += Number(fields[11]);
      t.sys += Number(fields[12]);
    } catch {
      // exited
    }
  }
  return t;
}

/** One measurement: wrk result plus CPU (percent of one core) of the server, of wrk and of everything else. */
interface Measurement extends WrkResult {
  target: string;
  path: UrlPath;
  serverCpu: number;
  /** The server's CPU time per request, µs, in user space and in the kernel. */
  serverUserUs: number;
  serverSysUs: number;
  wrkCpu: number;
  otherCpu: number;
}

let currentWrk: ChildProcess | undefined;

/** Runs wrk against `target` for `seconds` and measures CPU over the window. */
async function runWrk(target: Target, urlPath: UrlPath, seconds: number): Promise<Measurement> {
  const hz = clkTck();
  const pids = target.pids();
  const s0 = ticksOf(pids);
  const m0 = machineTicks();
  const t0 = performance.now();
  const child = spawn('wrk', [`-t${THREADS}`, `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', `${target.base}${urlPath}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  currentWrk = child;
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  // wrk's own CPU: sampled until it exits (the last sample misses at most 100 ms of it).
  let wrkTicks = 0;
  const sampler = setInterval(() => {
    try {
      wrkTicks = cpuTicks(child.pid!);
    } catch {
      // exited
    }
  }, 100);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c) => resolve(c));
  });
  clearInterval(sampler);
  currentWrk = undefined;
  const wall = (performance.now() - t0) / 1000;
  const s1 = ticksOf(pids);
  const m1 = machineTicks();
  if (code !== 0) throw new Error(`wrk exited ${code}:\n${out}`);
  const r = parseWrk(out);
  const pct = (ticks: number) => (100 * ticks) / hz / wall;
  const serverCpu = pct(s1.user + s1.sys - s0.user - s0.sys);
  const perRequestUs = (ticks: number) => (ticks / hz / r.requests) * 1e6;
  const wrkCpu = pct(wrkTicks);
  // /proc/stat counts jiffies of all CPUs at USER_HZ too.
  const machineBusy = pct(m1.busy - m0.busy);
  return {
    ...r,
    target: target.label,
    path: urlPath,
    serverCpu,
    serverUserUs: perRequestUs(s1.user - s0.user),
    serverSysUs: perRequestUs(s1.sys - s0.sys),
    wrkCpu,
    otherCpu: Math.max(0, machineBusy - serverCpu - wrkCpu),
  };
}

const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : 'n/a');
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');

function describe(m: Measurement): string {
  const bad = sound(m) ? '' : `  !! non-2xx ${m.non2xx}, socket errors ${m.socketErrors}`;
  return `${m.target.padEnd(18)} ${f0(m.rps).padStart(7)} req/s  p50 ${f3(m.p50)}  p90 ${f3(m.p90)}  p99 ${f3(m.p99)}  max ${f2(m.max)} ms   CPU: server ${f0(m.serverCpu)} % (${f1(m.serverUserUs)} + ${f1(m.serverSysUs)} µs/req user + sys), wrk ${f0(m.wrkCpu)} %, others ${f0(m.otherCpu)} %${bad}`;
}

function sound(m: Measurement): boolean {
  // wrk prints the "Socket errors" line only when there were some.
  return m.non2xx === 0 && (m.socketErrors === 'none' || /^connect 0, read 0, write 0, timeout 0$/.test(m.socketErrors));
}

async function main(): Promise<number> {
  if (!natsServerAvailable()) {
    console.error('nats-server is not on PATH');
    return 2;
  }
  if (!existsSync(NGINX)) {
    console.error(`${NGINX} is missing (apt-get install nginx-light)`);
    return 2;
  }
  if (spawnSync('wrk', ['-v']).error) {
    console.error('wrk is missing (apt-get install wrk)');
    return 2;
  }
  if (FROM === 'bundle' && !process.env.BENCH_MD_BUNDLE) ensureBundle();
  const m = machine();
  const goals = new Goals();
  const cleanup = new Cleanup();
  // A wrk still running when the benchmark stops (error, Ctrl-C) is stopped by its PID too.
  cleanup.add(() => currentWrk?.kill('SIGTERM'));
  try {
    console.log(
      `== metadata: mammatus metadata service vs nginx static files, wrk -t${THREADS} -c${CONNECTIONS} -d${SECONDS}s, ${RUNS} runs each, interleaved ==`,
    );
    printMachine(m);
    const dir = tempDir('metadata', cleanup);
    chmodSync(dir, 0o755); // nginx's workers run as nobody and read www/ below it

    // Registry: nats-server, one instance at 127.0.0.1 with 2 KiB of user-data.
    const nats = await startNatsServer({ name: 'md-bench', dir: path.join(dir, 'nats'), auth: AUTH });
    // Every server this bench starts connects as the test cluster's admin (auth on, as on a controller).
    if (AUTH) process.env.MAMMATUS_CREDENTIALS = nats.credentialsFile;
    cleanup.add(() => nats.stop());
    const userData = cloudConfig(2048);
    const nc: NatsConnection = await connectNats(nats.url, { name: 'bench', credentials: AUTH ? nats.credentials : undefined });
    const record = await (
      await InstanceRegistry.open(nc)
    ).register({ name: 'bench-1', macs: ['02:00:00:be:00:01'], ips: ['127.0.0.1'], ssh_keys: [KEY], user_data: userData });
    await nc.close();
    console.log(
      `nats-server ${nats.url} (pid ${nats.process.pid}); registered ${record.id} (bench-1, 127.0.0.1, ${userData.length} bytes of user-data)`,
    );

    // The service, in its own process.
    const listen = `127.0.0.1:${await freePort()}`;
    const helper = path.join(dir, 'metadata-server.mjs');
    await bundleHelper(helper);
    let svcCmd: string[];
    let started: Awaited<ReturnType<typeof spawnServer>>;
    if (FROM === 'bundle') {
      const cfg = path.join(dir, 'agent.yaml');
      writeFileSync(
        cfg,
        `state_dir: ${JSON.stringify(path.join(dir, 'state'))}\nlog: { level: warn }\nmetadata: { nats: ${JSON.stringify(nats.url)}, listen: ${JSON.stringify(listen)} }\n`,
      );
      svcCmd = [...NODE_ARGS, SERVICE_BUNDLE, 'metadata', 'serve', '--nats', nats.url, '--listen', listen, '--config', cfg];
      const env: NodeJS.ProcessEnv = { ...process.env, JOURNAL_STREAM: '' };
      delete env.MAMMATUS_LOG_LEVEL;
      started = await spawnServer('metadata service', process.execPath, svcCmd, /metadata service on (http:\/\/\S+)/, cleanup, env);
    } else {
      svcCmd = [...NODE_ARGS, helper, 'service', nats.url, listen];
      started = await spawnServer('metadata service', process.execPath, svcCmd, /listening (http:\/\/\S+)/, cleanup);
    }
    const svcChild = started.child;
    const mammatus: Target = {
      label: 'mammatus',
      base: started.match[1],
      pid: svcChild.pid!,
      pids: () => [svcChild.pid!],
      stop: () => stopChild(svcChild),
    };
    const shownCmd = [
      'node',
      ...svcCmd.map((a) => (a === SERVICE_BUNDLE ? path.relative(ROOT, a) : a.startsWith(dir) ? `$TMP${a.slice(dir.length)}` : a)),
    ].join(' ');
    console.log(`service (${FROM}): ${shownCmd}\n  pid ${mammatus.pid}, ${mammatus.base}`);
    const loaded = await waitFor(
      async () => (await rawGet(mammatus.base, PATHS[0]).catch(() => ({ status: 0 }))).status === 200,
      15_000,
      100,
    );
    if (!loaded)
      throw new Error(`the service did not answer ${PATHS[0]} with 200 within 15 s (registry not loaded?); output:\n${started.output()}`);

    // nginx's root: the service's answers, byte for byte.
    const www = path.join(dir, 'www');
    const answers = new Map<UrlPath, { body: Buffer; type: string; head: string }>();
    for (const p of PATHS) {
      const r = await rawGet(mammatus.base, p);
      if (r.status !== 200) throw new Error(`service answered ${p} with ${r.status}`);
      answers.set(p, { body: r.body, type: header(r.head, 'content-type') ?? '?', head: r.head });
      mkdirSync(path.dirname(path.join(www, p)), { recursive: true });
      writeFileSync(path.join(www, p), r.body);
    }
    if (!answers.get('/nocloud/user-data')!.body.equals(userData))
      throw new Error('the service answered /nocloud/user-data with other bytes than were registered');

    const nginx = await startNginx(path.join(dir, 'nginx-1'), www, '1', cleanup);
    console.log(
      `nginx ${spawnSync(NGINX, ['-v'], { encoding: 'utf8' }).stderr.trim().replace('nginx version: ', '')}: pid ${nginx.pid}, ${nginx.label}, ${nginx.base}, access_log off`,
    );

    // Same status, bytes and Content-Type from both; header sizes for the record.
    const responseBytes: Record<string, Record<string, { header: number; body: number }>> = {};
    for (const p of PATHS) {
      const a = answers.get(p)!;
      const n = await rawGet(nginx.base, p);
      const nType = header(n.head, 'content-type') ?? '?';
      if (n.status !== 200 || !n.body.equals(a.body) || nType !== a.type)
        throw new Error(
          `nginx answers ${p} differently: ${n.status}, ${n.body.length} bytes, ${nType} (service: ${a.body.length} bytes, ${a.type})`,
        );
      responseBytes[p] = {
        mammatus: { header: a.head.length, body: a.body.length },
        nginx: { header: n.head.length, body: n.body.length },
      };
      console.log(
        `  ${p}: ${a.body.length} bytes, ${a.type}, identical; response header ${a.head.length} B (mammatus) / ${n.head.length} B (nginx)`,
      );
    }

    // Warm-up (JIT, page cache, connections), once per target and path.
    for (const p of PATHS) for (const t of [nginx, mammatus]) await runWrk(t, p, WARMUP_S);
    console.log(`warmed up (${WARMUP_S} s per target and path)`);

    const results: Record<UrlPath, { nginx: Measurement[]; mammatus: Measurement[] }> = {
      '/latest/meta-data/instance-id': { nginx: [], mammatus: [] },
      '/nocloud/user-data': { nginx: [], mammatus: [] },
    };
    for (let r = 0; r < RUNS; r++) {
      // Alternate who goes first, so neither always runs right after the other.
      const order = r % 2 === 0 ? ([nginx, mammatus] as const) : ([mammatus, nginx] as const);
      for (const p of PATHS) {
        for (const t of order) {
          const x = await runWrk(t, p, SECONDS);
          results[p][t === nginx ? 'nginx' : 'mammatus'].push(x);
          console.log(`  run ${r + 1} ${p.padEnd(30)} ${describe(x)}`);
          await sleep(500);
        }
      }
    }

    // Extras: nginx with a worker per CPU, the service without vendor-data, bare fastify.
    const extras: Record<string, Measurement[]> = {};
    if (EXTRAS) {
      const more: Target[] = [];
      more.push(await startNginx(path.join(dir, 'nginx-auto'), www, 'auto', cleanup));
      if (FROM === 'bundle') {
        const noVendor = await spawnServer(
          'service without vendor-data',
          process.execPath,
          [helper, 'service', nats.url, `127.0.0.1:${await freePort()}`],
          /listening (http:\/\/\S+)/,
          cleanup,
        );
        more.push({
          label: 'mammatus, no v-d',
          base: noVendor.match[1],
          pid: noVendor.child.pid!,
          pids: () => [noVendor.child.pid!],
          stop: () => stopChild(noVendor.child),
        });
      }
      for (const [mode, label] of [
        ['bare', 'bare fastify'],
        ['http', 'bare node:http'],
      ] as const) {
        const listenAt = `127.0.0.1:${await freePort()}`;
        const bare = await spawnServer(
          label,
          process.execPath,
          [helper, mode, listenAt, www, ...PATHS.map((p) => `${p}=${answers.get(p)!.type}`)],
          /listening (http:\/\/\S+)/,
          cleanup,
        );
        more.push({ label, base: bare.match[1], pid: bare.child.pid!, pids: () => [bare.child.pid!], stop: () => stopChild(bare.child) });
      }
      for (const t of more) {
        if (!(await waitFor(async () => (await rawGet(t.base, PATHS[0]).catch(() => ({ status: 0 }))).status === 200, 15_000, 100)))
          throw new Error(`${t.label} did not answer ${PATHS[0]} within 15 s`);
        for (const p of PATHS) {
          const a = await rawGet(t.base, p);
          if (a.status !== 200 || !a.body.equals(answers.get(p)!.body) || header(a.head, 'content-type') !== answers.get(p)!.type)
            throw new Error(`${t.label} answers ${p} differently`);
          await runWrk(t, p, WARMUP_S);
          const x = await runWrk(t, p, SECONDS);
          (extras[t.label] ??= []).push(x);
          console.log(`  extra ${p.padEnd(30)} ${describe(x)}`);
          await sleep(500);
        }
        await t.stop();
      }
    }

    const allSound = Object.values(results).every((r) => [...r.nginx, ...r.mammatus].every(sound));
    console.log(`\nmedians of ${RUNS} runs (${SECONDS} s each, ${CONNECTIONS} connections, ${THREADS} wrk threads; nginx: 1 worker)`);
    const rows: string[][] = [
      [
        'path',
        'nginx req/s',
        'mammatus req/s',
        'ratio',
        'mammatus p99 ms',
        'nginx p99 ms',
        'mammatus p50 ms',
        'nginx p50 ms',
        'CPU % mammatus / nginx / wrk',
        'CPU µs/req mammatus / nginx',
      ],
    ];
    const summary: Record<string, unknown> = {};
    for (const p of PATHS) {
      const r = results[p];
      const med = (xs: Measurement[], k: 'rps' | 'p50' | 'p99' | 'serverCpu' | 'wrkCpu' | 'serverUserUs' | 'serverSysUs') =>
        median(xs.map((x) => x[k]));
      const us = (xs: Measurement[]) =>
        `${f1(med(xs, 'serverUserUs') + med(xs, 'serverSysUs'))} (${f1(med(xs, 'serverUserUs'))}+${f1(med(xs, 'serverSysUs'))})`;
      const ratio = med(r.mammatus, 'rps') / med(r.nginx, 'rps');
      rows.push([
        p,
        f0(med(r.nginx, 'rps')),
        f0(med(r.mammatus, 'rps')),
        f3(ratio),
        f3(med(r.mammatus, 'p99')),
        f3(med(r.nginx, 'p99')),
        f3(med(r.mammatus, 'p50')),
        f3(med(r.nginx, 'p50')),
        `${f0(med(r.mammatus, 'serverCpu'))} / ${f0(med(r.nginx, 'serverCpu'))} / ${f0(median([...r.mammatus, ...r.nginx].map((x) => x.wrkCpu)))}`,
        `${us(r.mammatus)} / ${us(r.nginx)}`,
      ]);
      summary[p] = {
        nginx_rps: round(med(r.nginx, 'rps'), 0),
        mammatus_rps: round(med(r.mammatus, 'rps'), 0),
        ratio: round(ratio, 3),
        mammatus_p99_ms: round(med(r.mammatus, 'p99'), 3),
        nginx_p99_ms: round(med(r.nginx, 'p99'), 3),
        mammatus_p50_ms: round(med(r.mammatus, 'p50'), 3),
        nginx_p50_ms: round(med(r.nginx, 'p50'), 3),
        mammatus_cpu_pct: round(med(r.mammatus, 'serverCpu'), 1),
        nginx_cpu_pct: round(med(r.nginx, 'serverCpu'), 1),
        mammatus_cpu_us_per_req: { user: round(med(r.mammatus, 'serverUserUs'), 2), sys: round(med(r.mammatus, 'serverSysUs'), 2) },
        nginx_cpu_us_per_req: { user: round(med(r.nginx, 'serverUserUs'), 2), sys: round(med(r.nginx, 'serverSysUs'), 2) },
        runs: Object.fromEntries(
          (['nginx', 'mammatus'] as const).map((k) => [
            k,
            r[k].map((x) => ({
              rps: round(x.rps, 0),
              p50_ms: round(x.p50, 3),
              p90_ms: round(x.p90, 3),
              p99_ms: round(x.p99, 3),
              max_ms: round(x.max, 2),
              requests: x.requests,
              non2xx: x.non2xx,
              socket_errors: x.socketErrors,
              server_cpu_pct: round(x.serverCpu, 1),
              server_user_us: round(x.serverUserUs, 2),
              server_sys_us: round(x.serverSysUs, 2),
              wrk_cpu_pct: round(x.wrkCpu, 1),
              other_cpu_pct: round(x.otherCpu, 1),
            })),
          ]),
        ),
        extras: Object.fromEntries(
          Object.entries(extras).map(([k, xs]) => {
            const x = xs.find((y) => y.path === p);
            return [
              k,
              x
                ? {
                    rps: round(x.rps, 0),
                    p50_ms: round(x.p50, 3),
                    p99_ms: round(x.p99, 3),
                    server_cpu_pct: round(x.serverCpu, 1),
                    server_user_us: round(x.serverUserUs, 2),
                    server_sys_us: round(x.serverSysUs, 2),
                    wrk_cpu_pct: round(x.wrkCpu, 1),
                  }
                : null,
            ];
          }),
        ),
      };
    }
    const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
    for (const row of rows) console.log(`  ${row.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')}`);
    if (EXTRAS) {
      console.log('extras (one run each, for reference):');
      for (const p of PATHS) {
        const n1 = summary[p] as { nginx_rps: number };
        for (const [k, xs] of Object.entries(extras)) {
          const x = xs.find((y) => y.path === p);
          if (x)
            console.log(
              `  ${p.padEnd(30)} ${k.padEnd(18)} ${f0(x.rps).padStart(7)} req/s (${f2(x.rps / n1.nginx_rps)}× nginx 1 worker)  p50 ${f3(x.p50)}  p99 ${f3(x.p99)} ms  CPU server ${f0(x.serverCpu)} % (${f1(x.serverUserUs)} + ${f1(x.serverSysUs)} µs/req), wrk ${f0(x.wrkCpu)} %`,
            );
        }
      }
    }
    if (!allSound) console.log('  !! some runs had non-2xx answers or socket errors (see the run lines)');
    console.log('');
    for (const p of PATHS) {
      const s = summary[p] as { ratio: number; mammatus_p99_ms: number };
      goals.check(`${p}: mammatus req/s / nginx req/s (1 worker)`, s.ratio >= RATIO_GOAL, s.ratio, `≥ ${RATIO_GOAL}`);
      goals.check(
        `${p}: mammatus p99 latency ms at ${CONNECTIONS} connections`,
        s.mammatus_p99_ms < P99_GOAL_MS,
        s.mammatus_p99_ms,
        `< ${P99_GOAL_MS}`,
      );
    }
    if (!allSound) goals.check('every request answered 2xx without socket errors', false, 'no', 'yes');

    emitJson({
      bench: 'metadata',
      machine: m,
      settings: {
        seconds: SECONDS,
        nats_auth: AUTH,
        runs: RUNS,
        warmup_s: WARMUP_S,
        wrk: `wrk -t${THREADS} -c${CONNECTIONS} -d${SECONDS}s --latency`,
        nginx_workers: 1,
        service: FROM,
        service_command: shownCmd,
        user_data_bytes: userData.length,
      },
      response_bytes: responseBytes,
      paths: summary,
      all_2xx: allSound,
      goals: goals.results,
    });
    return 0;
  } finally {
    await cleanup.run();
  }
}

runMain('metadata', main);
