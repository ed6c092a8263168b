/**
 * What the parts of the messaging benchmark (bench/messaging.ts) share: the knobs, the API process,
 * the SQS client, /proc readings (CPU, RSS), CPU pinning with `taskset` and a bounded job pool.
 */
import { CreateQueueCommand, SQSClient } from '@aws-sdk/client-sqs';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startNatsServer, type NatsServer } from '../scripts/lib/nats-server.js';
import { freePort } from '../scripts/lib/ports.js';
import { BUNDLE, clkTck, cpuTicks, ROOT, stopChild, type Cleanup } from './lib.js';
import { ENGINE_DEFAULTS, messagingNodeFlags } from '../src/messaging/settings.js';

const num = (name: string, dflt: number) => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
  return v;
};
const list = (name: string, dflt: string) =>
  (process.env[name] ?? dflt).split(',').map((s) => {
    const v = Number(s.trim());
    if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a comma list of positive numbers`);
    return v;
  });

/** The knobs (environment), read once; see the header of bench/messaging.ts. */
export const K = {
  seconds: num('BENCH_MSG_SECONDS', 10),
  runs: num('BENCH_MSG_RUNS', 3),
  warmupS: Number(process.env.BENCH_MSG_WARMUP ?? 2),
  workers: num('BENCH_MSG_WORKERS', 8),
  size: num('BENCH_MSG_SIZE', 256),
  latSamples: num('BENCH_MSG_LAT_SAMPLES', 200),
  queues: num('BENCH_MSG_QUEUES', 1000),
  /** Stored-message levels of the memory part, filled in ascending order. */
  stored: list('BENCH_MSG_STORED', '100000,1000000').sort((a, b) => a - b),
  fillS: num('BENCH_MSG_FILL_S', 600),
  fillConcurrency: num('BENCH_MSG_FILL_CONCURRENCY', 32),
  memIdleS: num('BENCH_MSG_MEM_IDLE_S', 30),
  memRssLimitMB: num('BENCH_MSG_MEM_RSS_LIMIT_MB', 4000),
  idleQueues: num('BENCH_MSG_IDLE_QUEUES', 10_000),
  idleBaseQueues: num('BENCH_MSG_IDLE_BASE_QUEUES', 10),
  idleWaitS: num('BENCH_MSG_IDLE_WAIT_S', 40),
  idleMeasureS: num('BENCH_MSG_IDLE_MEASURE_S', 20),
  rebuildMessages: num('BENCH_MSG_REBUILD', 500_000),
  phases: new Set(
    (process.env.BENCH_MSG_PHASES ?? 'throughput,pinned,latency,memory,idle,rebuild')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  ),
  /** NATS authorization as on a controller (nkey users); `BENCH_NATS_AUTH=off` measures without, for its cost. */
  auth: process.env.BENCH_NATS_AUTH !== 'off',
  bundle: process.env.BENCH_MSG_BUNDLE ? path.resolve(process.env.BENCH_MSG_BUNDLE) : BUNDLE,
  nodeArgs: (process.env.BENCH_MSG_NODE_ARGS ?? '').split(/\s+/).filter(Boolean),
} as const;

/** Messages per SendMessageBatch / ReceiveMessage / fetch. */
export const BATCH = 10;
/** Bounded concurrency of queue creation and single sends (idle and memory parts). */
export const SETUP_CONCURRENCY = 32;
const CREDS = { accessKeyId: 'AKIDBENCHKEY', secretAccessKey: 'bench-secret-access-key' } as const;

export const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : 'n/a');
export const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
export const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
export const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');

/** A running API process. */
export interface Api {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly url: string;
  readonly command: string;
  output(): string;
  stop(): Promise<void>;
}

/** Starts `node <bundle> messaging serve` against `nats` and waits for its "on http://…" line. */
export async function startApi(dir: string, nats: NatsServer, cleanup: Cleanup): Promise<Api> {
  mkdirSync(dir, { recursive: true });
  const cfg = path.join(dir, 'agent.yaml');
  writeFileSync(
    cfg,
    [
      `state_dir: ${JSON.stringify(path.join(dir, 'state'))}`,
      'log: { level: warn }',
      'messaging:',
      `  credentials: [{ access_key_id: ${CREDS.accessKeyId}, secret_access_key: ${CREDS.secretAccessKey} }]`,
      '',
    ].join('\n'),
    // The service refuses a config file with a secret that others can read.
    { mode: 0o600 },
  );
  const listen = `127.0.0.1:${await freePort()}`;
  const args = [
    // As the agent runs it (src/messaging/hosted.ts); BENCH_MSG_NODE_ARGS comes later and wins.
    ...messagingNodeFlags(ENGINE_DEFAULTS.heap_mb),
    ...K.nodeArgs,
    K.bundle,
    ...(K.auth ? ['--credentials', nats.credentialsFile] : []),
    'messaging',
    'serve',
    '--nats',
    nats.url,
    '--listen',
    listen,
    '--config',
    cfg,
  ];
  const env: NodeJS.ProcessEnv = { ...process.env, JOURNAL_STREAM: '' };
  delete env.MAMMATUS_LOG_LEVEL;
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env });
  let stopping = false;
  const stop = () => {
    stopping = true;
    return stopChild(child);
  };
  cleanup.add(stop);
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the messaging API did not start within 30 s; output:\n${out}`)), 30_000);
    const onData = (b: Buffer) => {
      out += b.toString();
      if (out.length > 64_000) out = out.slice(-32_000);
      const m = /messaging API \(SQS\/SNS\) on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`the messaging API exited (${code ?? sig}); output:\n${out}`));
    });
  });
  const shown = [
    'node',
    ...args.map((a) => (a === K.bundle ? path.relative(ROOT, a) : a.startsWith(dir) ? `$TMP${a.slice(dir.length)}` : a)),
  ].join(' ');
  // A crash mid-run shows as a client error; its own last words say why.
  child.once('exit', (code, sig) => {
    if (!stopping) console.error(`!! the messaging API (pid ${child.pid}) exited (${code ?? sig}); its last output:\n${out.slice(-4000)}`);
  });
  return { child, pid: child.pid!, url, command: shown, output: () => out, stop };
}

/**
 * An SQS client of the API (no retries: a failure shows). Its agent gets a timeout: node's agent
 * closes an idle socket before the server's announced keep-alive (`timeout=5`, less 1 s) only when
 * it has a timeout of its own. Without one (the SDK's default) it reuses a socket the server has
 * just closed, on a loaded machine before it has read the close, and the call fails with
 * `socket hang up`. 60 s, longer than a long poll (in a call node only signals it; the SDK ignores that).
 */
export function sqsClient(endpoint: string): SQSClient {
  return new SQSClient({
    endpoint,
    region: 'us-east-1',
    credentials: CREDS,
    maxAttempts: 1,
    requestHandler: { httpAgent: { timeout: 60_000 } },
  });
}

/** VmRSS and VmHWM of a process, MB. */
export function memOf(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)\\s+kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

/** Bytes under `dir` (du -sb). */
export function duBytes(dir: string): number {
  const r = spawnSync('du', ['-sb', dir], { encoding: 'utf8' });
  return Number(r.stdout.split(/\s/)[0]);
}

/** CPU of the API, nats-server and this process over a span: seconds of CPU each. */
export interface CpuSpan {
  api: number;
  nats: number;
  client: number;
}

/** Starts a span now; the function it returns reads the CPU each used since. */
export function cpuMeter(apiPid: number, natsPid: number): () => CpuSpan {
  const hz = clkTck();
  const a0 = cpuTicks(apiPid);
  const n0 = cpuTicks(natsPid);
  const c0 = process.cpuUsage();
  return () => {
    const c = process.cpuUsage(c0);
    return { api: (cpuTicks(apiPid) - a0) / hz, nats: (cpuTicks(natsPid) - n0) / hz, client: (c.user + c.system) / 1e6 };
  };
}

/** CPU % of one core the API and nats-server use over `seconds` of waiting (from /proc ticks). */
export async function idleCpuPct(apiPid: number, natsPid: number, seconds: number): Promise<{ api: number; nats: number }> {
  const stop = cpuMeter(apiPid, natsPid);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const s = (performance.now() - t0) / 1000;
  const c = stop();
  return { api: (100 * c.api) / s, nats: (100 * c.nats) / s };
}

/** CPUs this machine has (nproc: what the scheduler may use). */
export function cpuCount(): number {
  return Number(execFileSync('nproc', { encoding: 'utf8' }).trim()) || os.cpus().length;
}

/**
 * Sets the CPU affinity of every thread of `pid` (`taskset -a -p -c LIST PID`); threads the process
 * starts later inherit it from the thread that starts them.
 */
export function pin(pid: number, cpus: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
}

/** Runs `jobs` with at most `limit` at a time; stops starting new ones after `deadline` or when `stop()` says so. */
export async function pool(
  jobs: number,
  limit: number,
  deadline: number,
  run: (i: number) => Promise<void>,
  stop: () => boolean = () => false,
): Promise<number> {
  let next = 0;
  let finished = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < jobs && performance.now() < deadline && !stop()) {
        const i = next++;
        await run(i);
        finished += 1;
      }
    }),
  );
  return finished;
}

/** A fresh nats-server, an API on it and an SQS client of the API. */
export interface Bed {
  readonly nats: NatsServer;
  readonly natsPid: number;
  readonly api: Api;
  readonly client: SQSClient;
  /** Stops the API, then nats-server (the cleanup list does it too, on failure). */
  stop(): Promise<void>;
}

/** Starts a bed in `dir`/nats-`name` and `dir`/api-`name`; everything is on `cleanup` too. */
export async function startBed(dir: string, name: string, cleanup: Cleanup): Promise<Bed> {
  const nats = await startNatsServer({ name: `msg-${name}`, dir: path.join(dir, `nats-${name}`), auth: K.auth });
  cleanup.add(() => nats.stop());
  const natsPid = nats.process.pid!;
  const api = await startApi(path.join(dir, `api-${name}`), nats, cleanup);
  const client = sqsClient(api.url);
  cleanup.add(() => client.destroy());
  return {
    nats,
    natsPid,
    api,
    client,
    async stop() {
      client.destroy();
      await api.stop();
      await nats.stop();
    },
  };
}

/**
 * Creates queues `prefix`-NNNNN for indexes from..to-1 (SETUP_CONCURRENCY at a time, until
 * `deadline`) into `urls[index]`, repeating a call after a connection reset; returns how many were created.
 */
export function createQueues(
  client: SQSClient,
  prefix: string,
  from: number,
  to: number,
  deadline: number,
  urls: string[],
  retries: { n: number },
): Promise<number> {
  return pool(to - from, SETUP_CONCURRENCY, deadline, async (i) => {
    const name = `${prefix}-${String(from + i).padStart(5, '0')}`;
    const r = await withRetry(() => client.send(new CreateQueueCommand({ QueueName: name })), retries);
    urls[from + i] = r.QueueUrl!;
  });
}

/**
 * Runs an SQS call, again (up to 3 attempts) when the connection was reset: the API's keep-alive
 * may close a pooled connection just as the client reuses it (seen after an idle wait on a loaded
 * machine). `retries.n` counts the repeats, which the report shows.
 */
export async function withRetry<T>(call: () => Promise<T>, retries: { n: number }): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (attempt >= 3 || (code !== 'ECONNRESET' && code !== 'EPIPE')) throw err;
      retries.n += 1;
    }
  }
}
