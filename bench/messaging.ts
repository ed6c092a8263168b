/**
 * The SQS API (issue 3) on a real nats-server, three parts:
 *
 *   npx tsx bench/messaging.ts
 *
 * 1. Throughput: BENCH_MSG_WORKERS concurrent workers, each looping SendMessageBatch of 10 →
 *    ReceiveMessage (MaxNumberOfMessages 10) → DeleteMessageBatch through `@aws-sdk/client-sqs`
 *    (JSON 1.0, SigV4) against the API, versus the same loop with `@nats-io/jetstream` directly on
 *    the same nats-server: publish 10 (awaiting the acks) → fetch 10 from a durable pull consumer
 *    → ack each, on a file-storage stream, same concurrency, same body size. Messages/s = messages
 *    deleted (acked) / elapsed. A fresh queue (stream) per measurement; a warm-up of each, then
 *    BENCH_MSG_RUNS measurements each, interleaved (raw, sqs, sqs, raw, …); medians decide.
 *    Goal: SQS ≥ 0.4 × raw JetStream.
 * 2. Long-poll wake latency: a ReceiveMessage with WaitTimeSeconds 20 is waiting (100 ms after
 *    it was sent); then a SendMessage; time from send start to the receive call returning, on
 *    this process's clock. Goal: p50 < 5 ms, p99 < 20 ms. Reference: the same with nats.js (a
 *    pending `consumer.next()`, then `js.publish`).
 * 3. Memory: a fresh nats-server and API; BENCH_MSG_QUEUES queues, BENCH_MSG_STORED messages spread
 *    evenly across them (SendMessageBatch of 10, 16 at a time); then the API's RSS (VmRSS, VmHWM
 *    from /proc), nats-server's RSS, the JetStream store size (du) and the streams' counts, and
 *    the idle CPU of both over 10 s with every queue owned. Reported, no goal.
 *
 * The API runs as its own process from the bundle, as it ships: `node dist/mammatus.mjs messaging
 * serve --nats URL --listen 127.0.0.1:PORT --config $TMP/agent.yaml` (credentials in the config,
 * `log: { level: warn }`); nats-server from scripts/lib/nats-server.ts (max_payload 2 MiB). CPU
 * of the API, nats-server and this process (the clients) is read per measurement from /proc.
 *
 * Knobs (environment):
 *   BENCH_MSG_SECONDS   seconds per throughput measurement (10)   BENCH_MSG_RUNS     measurements each (3)
 *   BENCH_MSG_WARMUP    warm-up seconds (2)                        BENCH_MSG_WORKERS  concurrent workers (8)
 *   BENCH_MSG_SIZE      message body bytes (256)                   BENCH_MSG_LAT_SAMPLES  wake samples (200)
 *   BENCH_MSG_QUEUES    queues of the memory part (1000)           BENCH_MSG_STORED   messages stored (100000)
 *   BENCH_MSG_PHASES    comma list of throughput,latency,memory (all)
 *   BENCH_MSG_BUNDLE    another bundle to run (e.g. one built from a patched copy)
 *   BENCH_MSG_NODE_ARGS extra node flags for the API, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
 */
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  DeleteMessageCommand,
  DeleteQueueCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { AckPolicy, jetstream, jetstreamManager, StorageType, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../scripts/lib/nats-server.js';
import { freePort } from '../scripts/lib/ports.js';
import { connectNats } from '../core/nats.js';
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
  summarize,
  tempDir,
  type Summary,
} from './lib.js';
import { sleep } from '../scripts/lib/wait.js';

const num = (name: string, dflt: number) => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
  return v;
};
const SECONDS = num('BENCH_MSG_SECONDS', 10);
const RUNS = num('BENCH_MSG_RUNS', 3);
const WARMUP_S = Number(process.env.BENCH_MSG_WARMUP ?? 2);
const WORKERS = num('BENCH_MSG_WORKERS', 8);
const SIZE = num('BENCH_MSG_SIZE', 256);
const LAT_SAMPLES = num('BENCH_MSG_LAT_SAMPLES', 200);
const QUEUES = num('BENCH_MSG_QUEUES', 1000);
const STORED = num('BENCH_MSG_STORED', 100_000);
const PHASES = new Set((process.env.BENCH_MSG_PHASES ?? 'throughput,latency,memory').split(',').map((s) => s.trim()));
/** NATS authorization as on a controller (nkey users); `BENCH_NATS_AUTH=off` measures without, for its cost. */
const AUTH = process.env.BENCH_NATS_AUTH !== 'off';
const API_BUNDLE = process.env.BENCH_MSG_BUNDLE ? path.resolve(process.env.BENCH_MSG_BUNDLE) : BUNDLE;
const NODE_ARGS = (process.env.BENCH_MSG_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
const BATCH = 10;
const RATIO_GOAL = 0.4;
const P50_GOAL_MS = 5;
const P99_GOAL_MS = 20;
/** Upper bound of the memory part's fill (queues + messages); past it the part reports what it has. */
const MEM_FILL_LIMIT_MS = 300_000;
const MEM_CONCURRENCY = 16;
const CREDS = { accessKeyId: 'AKIDBENCHKEY', secretAccessKey: 'bench-secret-access-key' } as const;

const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : 'n/a');
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');

/** Stops a child by its PID: SIGTERM, SIGKILL after 5 s; resolves on exit. */
function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** A running API process. */
interface Api {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly url: string;
  readonly command: string;
  output(): string;
  stop(): Promise<void>;
}

/** Starts `node <bundle> messaging serve` against `nats` and waits for its "on http://…" line. */
async function startApi(dir: string, nats: NatsServer, cleanup: Cleanup): Promise<Api> {
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
    ...NODE_ARGS,
    API_BUNDLE,
    ...(AUTH ? ['--credentials', nats.credentialsFile] : []),
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
  cleanup.add(() => stopChild(child));
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
    ...args.map((a) => (a === API_BUNDLE ? path.relative(ROOT, a) : a.startsWith(dir) ? `$TMP${a.slice(dir.length)}` : a)),
  ].join(' ');
  return { child, pid: child.pid!, url, command: shown, output: () => out, stop: () => stopChild(child) };
}

/** VmRSS and VmHWM of a process, MB. */
function memOf(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)\\s+kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

/** Bytes under `dir` (du -sb). */
function duBytes(dir: string): number {
  const r = spawnSync('du', ['-sb', dir], { encoding: 'utf8' });
  return Number(r.stdout.split(/\s/)[0]);
}

function sqsClient(endpoint: string): SQSClient {
  return new SQSClient({ endpoint, region: 'us-east-1', credentials: CREDS, maxAttempts: 1 });
}

/** CPU of the API, nats-server and this process over a span: seconds of CPU each. */
interface CpuSpan {
  api: number;
  nats: number;
  client: number;
}
function cpuMeter(apiPid: number, natsPid: number): () => CpuSpan {
  const hz = clkTck();
  const a0 = cpuTicks(apiPid);
  const n0 = cpuTicks(natsPid);
  const c0 = process.cpuUsage();
  return () => {
    const c = process.cpuUsage(c0);
    return { api: (cpuTicks(apiPid) - a0) / hz, nats: (cpuTicks(natsPid) - n0) / hz, client: (c.user + c.system) / 1e6 };
  };
}

/** One throughput measurement. */
interface Throughput {
  kind: 'sqs' | 'raw';
  seconds: number;
  sent: number;
  done: number;
  rate: number;
  emptyReceives: number;
  /** Round trips (ms) of each step, all workers: medians. */
  sendMs: number;
  recvMs: number;
  delMs: number;
  cpu: CpuSpan;
}

/** Runs `worker` WORKERS times concurrently until `seconds` pass; each finishes its iteration. */
async function timed(seconds: number, worker: (deadline: number) => Promise<void>): Promise<number> {
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  await Promise.all(Array.from({ length: WORKERS }, () => worker(deadline)));
  return (performance.now() - t0) / 1000;
}

async function sqsThroughput(
  client: SQSClient,
  tag: string,
  body: string,
  seconds: number,
  meter: () => () => CpuSpan,
): Promise<Throughput> {
  const { QueueUrl } = await client.send(new CreateQueueCommand({ QueueName: `tp-${tag}` }));
  const url = QueueUrl!;
  // The first request makes this API the queue's owner (lease + rebuild): outside the measurement.
  await client.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 1 }));
  let sent = 0;
  let done = 0;
  let empty = 0;
  const sendMs: number[] = [];
  const recvMs: number[] = [];
  const delMs: number[] = [];
  const entries = Array.from({ length: BATCH }, (_, i) => ({ Id: `m${i}`, MessageBody: body }));
  const stop = meter();
  const elapsed = await timed(seconds, async (deadline) => {
    while (performance.now() < deadline) {
      let t = performance.now();
      const s = await client.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: entries }));
      sendMs.push(performance.now() - t);
      if (s.Failed?.length) throw new Error(`SendMessageBatch failed: ${JSON.stringify(s.Failed[0])}`);
      sent += s.Successful?.length ?? 0;
      t = performance.now();
      const r = await client.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: BATCH, WaitTimeSeconds: 1 }));
      recvMs.push(performance.now() - t);
      const msgs = r.Messages ?? [];
      if (msgs.length === 0) {
        empty += 1;
        continue;
      }
      for (const m of msgs) if (m.Body !== body) throw new Error('received a different body');
      t = performance.now();
      const d = await client.send(
        new DeleteMessageBatchCommand({ QueueUrl: url, Entries: msgs.map((m, i) => ({ Id: `d${i}`, ReceiptHandle: m.ReceiptHandle! })) }),
      );
      delMs.push(performance.now() - t);
      if (d.Failed?.length) throw new Error(`DeleteMessageBatch failed: ${JSON.stringify(d.Failed[0])}`);
      done += d.Successful?.length ?? 0;
    }
  });
  const cpu = stop();
  await client.send(new DeleteQueueCommand({ QueueUrl: url }));
  return {
    kind: 'sqs',
    seconds: elapsed,
    sent,
    done,
    rate: done / elapsed,
    emptyReceives: empty,
    sendMs: median(sendMs),
    recvMs: median(recvMs),
    delMs: median(delMs),
    cpu,
  };
}

async function rawThroughput(
  js: JetStreamClient,
  jsm: JetStreamManager,
  tag: string,
  payload: Uint8Array,
  seconds: number,
  meter: () => () => CpuSpan,
): Promise<Throughput> {
  const stream = `BENCH_RAW_${tag.replace(/\W/g, '_')}`;
  const subject = `bench.raw.${tag.replace(/\W/g, '_')}`;
  await jsm.streams.add({ name: stream, subjects: [subject], storage: StorageType.File, num_replicas: 1 });
  await jsm.consumers.add(stream, { durable_name: 'work', ack_policy: AckPolicy.Explicit, ack_wait: 30e9 });
  let sent = 0;
  let done = 0;
  let empty = 0;
  const sendMs: number[] = [];
  const recvMs: number[] = [];
  const stop = meter();
  const elapsed = await timed(seconds, async (deadline) => {
    const consumer = await js.consumers.get(stream, 'work');
    while (performance.now() < deadline) {
      let t = performance.now();
      await Promise.all(Array.from({ length: BATCH }, () => js.publish(subject, payload)));
      sendMs.push(performance.now() - t);
      sent += BATCH;
      t = performance.now();
      const batch = await consumer.fetch({ max_messages: BATCH, expires: 2000 });
      let got = 0;
      for await (const m of batch) {
        if (m.data.length !== payload.length) throw new Error('fetched a different payload');
        m.ack();
        got += 1;
      }
      recvMs.push(performance.now() - t);
      if (got === 0) empty += 1;
      done += got;
    }
  });
  const cpu = stop();
  await jsm.streams.delete(stream);
  return {
    kind: 'raw',
    seconds: elapsed,
    sent,
    done,
    rate: done / elapsed,
    emptyReceives: empty,
    sendMs: median(sendMs),
    recvMs: median(recvMs),
    delMs: NaN,
    cpu,
  };
}

function describe(x: Throughput): string {
  const per = (s: number) => (s / x.done) * 1e6;
  const steps =
    x.kind === 'sqs'
      ? `send ${f2(x.sendMs)} / receive ${f2(x.recvMs)} / delete ${f2(x.delMs)} ms`
      : `publish 10 ${f2(x.sendMs)} / fetch+ack ${f2(x.recvMs)} ms`;
  return `${(x.kind === 'sqs' ? 'SQS API' : 'raw JetStream').padEnd(13)} ${f0(x.rate).padStart(6)} msg/s (${x.done} in ${f2(x.seconds)} s, sent ${x.sent}, empty ${x.emptyReceives})  median round trips: ${steps}  CPU µs/msg: api ${f0(per(x.cpu.api))}, nats ${f0(per(x.cpu.nats))}, client ${f0(per(x.cpu.client))}`;
}

/** Long-poll wake latency through the API: send start → receive returned, ms. */
async function sqsWake(client: SQSClient, samples: number): Promise<{ wake: number[]; send: number[]; missed: number }> {
  const { QueueUrl } = await client.send(new CreateQueueCommand({ QueueName: 'wake' }));
  const url = QueueUrl!;
  await client.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 1 }));
  const wake: number[] = [];
  const send: number[] = [];
  let missed = 0;
  for (let i = 0; i < samples; i++) {
    const polling = client
      .send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 1, WaitTimeSeconds: 20 }))
      .then((r) => ({ r, at: performance.now() }));
    await sleep(100);
    const t0 = performance.now();
    const sending = client.send(new SendMessageCommand({ QueueUrl: url, MessageBody: `wake ${i}` })).then(() => performance.now());
    const { r, at } = await polling;
    const sentAt = await sending;
    const m = r.Messages?.[0];
    if (m?.Body !== `wake ${i}`) {
      missed += 1;
      continue;
    }
    wake.push(at - t0);
    send.push(sentAt - t0);
    await client.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: m.ReceiptHandle! }));
  }
  await client.send(new DeleteQueueCommand({ QueueUrl: url }));
  return { wake, send, missed };
}

/** The same with nats.js: a pending `next()` on a pull consumer, then a publish. */
async function rawWake(js: JetStreamClient, jsm: JetStreamManager, samples: number): Promise<number[]> {
  await jsm.streams.add({ name: 'BENCH_WAKE', subjects: ['bench.wake'], storage: StorageType.File, num_replicas: 1 });
  await jsm.consumers.add('BENCH_WAKE', { durable_name: 'w', ack_policy: AckPolicy.Explicit });
  const consumer = await js.consumers.get('BENCH_WAKE', 'w');
  const out: number[] = [];
  for (let i = 0; i < samples; i++) {
    const waiting = consumer.next({ expires: 20_000 }).then((m) => ({ m, at: performance.now() }));
    await sleep(50);
    const t0 = performance.now();
    await js.publish('bench.wake', new TextEncoder().encode(`wake ${i}`));
    const { m, at } = await waiting;
    if (!m) continue;
    m.ack();
    out.push(at - t0);
  }
  await jsm.streams.delete('BENCH_WAKE');
  return out;
}

/** Runs `jobs` with at most `limit` at a time; stops starting new ones after `deadline`. */
async function pool(jobs: number, limit: number, deadline: number, run: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  let finished = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < jobs && performance.now() < deadline) {
        const i = next++;
        await run(i);
        finished += 1;
      }
    }),
  );
  return finished;
}

async function main(): Promise<number> {
  if (!natsServerAvailable()) {
    console.error('nats-server is not on PATH');
    return 2;
  }
  if (!process.env.BENCH_MSG_BUNDLE) ensureBundle();
  const mach = machine();
  const goals = new Goals();
  const cleanup = new Cleanup();
  const result: Record<string, unknown> = {};
  try {
    console.log(
      `== messaging: SQS API (client-sqs, JSON) vs nats.js on the same nats-server; ${WORKERS} workers, batches of ${BATCH}, ${SIZE} B bodies ==`,
    );
    printMachine(mach);
    const dir = tempDir('messaging', cleanup);
    const body = 'x'.repeat(SIZE);
    const payload = new TextEncoder().encode(body);
    const natsVersion = spawnSync('nats-server', ['--version'], { encoding: 'utf8' }).stdout.trim();

    if (PHASES.has('throughput') || PHASES.has('latency')) {
      const nats = await startNatsServer({ name: 'msg-bench', dir: path.join(dir, 'nats'), auth: AUTH });
      cleanup.add(() => nats.stop());
      const api = await startApi(path.join(dir, 'api'), nats, cleanup);
      console.log(`${natsVersion}: ${nats.url} (pid ${nats.process.pid}, file store, max_payload 2 MiB)`);
      console.log(`API: ${api.command}\n  pid ${api.pid}, ${api.url}`);
      const nc: NatsConnection = await connectNats(nats.url, { name: 'bench-raw', credentials: AUTH ? nats.credentials : undefined });
      cleanup.add(() => nc.close());
      const js = jetstream(nc);
      const jsm = await jetstreamManager(nc);
      const client = sqsClient(api.url);
      cleanup.add(() => client.destroy());
      const meter = () => cpuMeter(api.pid, nats.process.pid!);

      if (PHASES.has('throughput')) {
        console.log(
          `\n-- throughput: ${WORKERS} workers × (SendMessageBatch 10 → ReceiveMessage 10 → DeleteMessageBatch) vs (publish 10 → fetch 10 → ack), ${SECONDS} s each, ${RUNS} runs, interleaved --`,
        );
        if (WARMUP_S > 0) {
          const w1 = await rawThroughput(js, jsm, 'warm', payload, WARMUP_S, meter);
          const w2 = await sqsThroughput(client, 'warm', body, WARMUP_S, meter);
          console.log(`  warm-up       ${describe(w1)}\n  warm-up       ${describe(w2)}`);
        }
        const runs: { sqs: Throughput[]; raw: Throughput[] } = { sqs: [], raw: [] };
        for (let r = 0; r < RUNS; r++) {
          const order = r % 2 === 0 ? (['raw', 'sqs'] as const) : (['sqs', 'raw'] as const);
          for (const k of order) {
            const x =
              k === 'raw'
                ? await rawThroughput(js, jsm, `r${r}`, payload, SECONDS, meter)
                : await sqsThroughput(client, `r${r}`, body, SECONDS, meter);
            runs[k].push(x);
            console.log(`  run ${r + 1}         ${describe(x)}`);
            await sleep(500);
          }
        }
        const med = (xs: Throughput[], f: (x: Throughput) => number) => median(xs.map(f));
        const sqsRate = med(runs.sqs, (x) => x.rate);
        const rawRate = med(runs.raw, (x) => x.rate);
        const ratio = sqsRate / rawRate;
        const perMsg = (xs: Throughput[], k: keyof CpuSpan) => med(xs, (x) => (x.cpu[k] / x.done) * 1e6);
        const cpuLine = (xs: Throughput[]) =>
          `api ${f0(perMsg(xs, 'api'))}, nats ${f0(perMsg(xs, 'nats'))}, client ${f0(perMsg(xs, 'client'))}`;
        const cpuPct = (xs: Throughput[], k: keyof CpuSpan) => med(xs, (x) => (100 * x.cpu[k]) / x.seconds);
        console.log(`\n  medians of ${RUNS}: SQS API ${f0(sqsRate)} msg/s, raw JetStream ${f0(rawRate)} msg/s, ratio ${f3(ratio)}`);
        console.log(`  CPU µs per message (median): SQS: ${cpuLine(runs.sqs)}; raw: ${cpuLine(runs.raw)}`);
        console.log(
          `  CPU % of a core (median): SQS: api ${f0(cpuPct(runs.sqs, 'api'))}, nats ${f0(cpuPct(runs.sqs, 'nats'))}, client ${f0(cpuPct(runs.sqs, 'client'))}; raw: nats ${f0(cpuPct(runs.raw, 'nats'))}, client ${f0(cpuPct(runs.raw, 'client'))}`,
        );
        goals.check(
          `SQS send+receive+delete msg/s / raw JetStream publish+fetch+ack msg/s (${WORKERS} workers, batches of ${BATCH}, ${SIZE} B)`,
          ratio >= RATIO_GOAL,
          ratio,
          `≥ ${RATIO_GOAL}`,
        );
        const toJson = (x: Throughput) => ({
          rate: round(x.rate, 0),
          done: x.done,
          sent: x.sent,
          seconds: round(x.seconds, 2),
          empty_receives: x.emptyReceives,
          send_ms: round(x.sendMs, 2),
          receive_ms: round(x.recvMs, 2),
          delete_ms: round(x.delMs, 2),
          cpu_s: { api: round(x.cpu.api, 2), nats: round(x.cpu.nats, 2), client: round(x.cpu.client, 2) },
        });
        result.throughput = {
          sqs_msgs_per_s: round(sqsRate, 0),
          raw_msgs_per_s: round(rawRate, 0),
          ratio: round(ratio, 3),
          cpu_us_per_msg: Object.fromEntries(
            (['sqs', 'raw'] as const).map((k) => [
              k,
              {
                api: round(perMsg(runs[k], 'api'), 1),
                nats: round(perMsg(runs[k], 'nats'), 1),
                client: round(perMsg(runs[k], 'client'), 1),
              },
            ]),
          ),
          runs: { sqs: runs.sqs.map(toJson), raw: runs.raw.map(toJson) },
        };
      }

      if (PHASES.has('latency')) {
        console.log(`\n-- long-poll wake latency: ReceiveMessage WaitTimeSeconds 20 waiting, then SendMessage; ${LAT_SAMPLES} samples --`);
        const s = await sqsWake(client, LAT_SAMPLES);
        const raw = await rawWake(js, jsm, LAT_SAMPLES);
        const ws: Summary = summarize(s.wake);
        const ss: Summary = summarize(s.send);
        const rs: Summary = summarize(raw);
        console.log(
          `  SQS send start → receive returned: n=${ws.n} p50 ${f3(ws.median)} p95 ${f3(ws.p95)} p99 ${f3(ws.p99)} min ${f3(ws.min)} max ${f3(ws.max)} ms${s.missed ? `  (${s.missed} samples where the receive did not return the message)` : ''}`,
        );
        console.log(`  SQS SendMessage round trip:        n=${ss.n} p50 ${f3(ss.median)} p95 ${f3(ss.p95)} p99 ${f3(ss.p99)} ms`);
        console.log(
          `  raw: publish start → next() returned: n=${rs.n} p50 ${f3(rs.median)} p95 ${f3(rs.p95)} p99 ${f3(rs.p99)} max ${f3(rs.max)} ms`,
        );
        goals.check(
          'long-poll wake latency p50 ms (send start → receive returned)',
          ws.median < P50_GOAL_MS,
          ws.median,
          `< ${P50_GOAL_MS}`,
        );
        goals.check(
          'long-poll wake latency p99 ms',
          ws.p99 < P99_GOAL_MS && s.missed === 0,
          s.missed ? `${f3(ws.p99)} (${s.missed} missed)` : ws.p99,
          `< ${P99_GOAL_MS}`,
        );
        const sj = (x: Summary) => ({
          n: x.n,
          p50: round(x.median, 3),
          p95: round(x.p95, 3),
          p99: round(x.p99, 3),
          min: round(x.min, 3),
          max: round(x.max, 3),
        });
        result.latency = { sqs_wake_ms: sj(ws), sqs_send_ms: sj(ss), raw_wake_ms: sj(rs), missed: s.missed };
      }
      await api.stop();
      await nc.close();
      await nats.stop();
    }

    if (PHASES.has('memory')) {
      console.log(`\n-- memory: ${QUEUES} queues, ${STORED} messages (${SIZE} B) stored, fresh nats-server and API --`);
      const nats = await startNatsServer({ name: 'msg-mem', dir: path.join(dir, 'nats-mem'), auth: AUTH });
      cleanup.add(() => nats.stop());
      const api = await startApi(path.join(dir, 'api-mem'), nats, cleanup);
      console.log(`  API pid ${api.pid}, nats-server pid ${nats.process.pid}`);
      const client = sqsClient(api.url);
      cleanup.add(() => client.destroy());
      await sleep(1000);
      const atStart = { api: memOf(api.pid), nats: memOf(nats.process.pid!) };
      console.log(`  at start:            API RSS ${f1(atStart.api.rss)} MB, nats-server RSS ${f1(atStart.nats.rss)} MB`);
      const deadline = performance.now() + MEM_FILL_LIMIT_MS;
      const urls: string[] = [];
      let t0 = performance.now();
      const created = await pool(QUEUES, MEM_CONCURRENCY, deadline, async (i) => {
        const r = await client.send(new CreateQueueCommand({ QueueName: `mem-${String(i).padStart(5, '0')}` }));
        urls[i] = r.QueueUrl!;
      });
      const createS = (performance.now() - t0) / 1000;
      const afterQueues = { api: memOf(api.pid), nats: memOf(nats.process.pid!) };
      console.log(
        `  ${created} queues created in ${f1(createS)} s (${f0(created / createS)}/s): API RSS ${f1(afterQueues.api.rss)} MB, nats-server RSS ${f1(afterQueues.nats.rss)} MB`,
      );
      const batches = Math.ceil(STORED / BATCH);
      const entries = Array.from({ length: BATCH }, (_, i) => ({ Id: `m${i}`, MessageBody: 'x'.repeat(SIZE) }));
      let stored = 0;
      t0 = performance.now();
      const queueCount = urls.filter(Boolean).length;
      await pool(batches, MEM_CONCURRENCY, deadline, async (j) => {
        const r = await client.send(new SendMessageBatchCommand({ QueueUrl: urls[j % queueCount], Entries: entries }));
        if (r.Failed?.length) throw new Error(`SendMessageBatch failed: ${JSON.stringify(r.Failed[0])}`);
        stored += r.Successful?.length ?? 0;
      });
      const fillS = (performance.now() - t0) / 1000;
      console.log(
        `  ${stored} messages stored in ${f1(fillS)} s (${f0(stored / fillS)} msg/s)${stored < STORED ? `  !! stopped at the ${MEM_FILL_LIMIT_MS / 1000} s bound` : ''}`,
      );
      await sleep(5000);
      const filled = { api: memOf(api.pid), nats: memOf(nats.process.pid!) };
      const nc = await connectNats(nats.url, { name: 'bench-mem', credentials: AUTH ? nats.credentials : undefined });
      cleanup.add(() => nc.close());
      const jsm = await jetstreamManager(nc);
      const streams: Record<string, { messages: number; bytes: number }> = {};
      for (const s of ['MESSAGING_SQS', 'MESSAGING_SQS_STATE']) {
        const si = await jsm.streams.info(s);
        streams[s] = { messages: si.state.messages, bytes: si.state.bytes };
      }
      const store = duBytes(path.join(dir, 'nats-mem', 'jetstream'));
      console.log(
        `  5 s after the fill:  API RSS ${f1(filled.api.rss)} MB (peak ${f1(filled.api.hwm)} MB), nats-server RSS ${f1(filled.nats.rss)} MB (peak ${f1(filled.nats.hwm)} MB)`,
      );
      console.log(
        `  JetStream: MESSAGING_SQS ${streams.MESSAGING_SQS.messages} messages, ${f1(streams.MESSAGING_SQS.bytes / 1048576)} MiB; store on disk ${f1(store / 1048576)} MiB (du)`,
      );
      // Idle: every queue is owned by this API (lease renewals, retention sweeps).
      const hz = clkTck();
      const a0 = cpuTicks(api.pid);
      const n0 = cpuTicks(nats.process.pid!);
      await sleep(10_000);
      const idle = { api: (100 * (cpuTicks(api.pid) - a0)) / hz / 10, nats: (100 * (cpuTicks(nats.process.pid!) - n0)) / hz / 10 };
      const later = { api: memOf(api.pid), nats: memOf(nats.process.pid!) };
      console.log(
        `  idle 10 s, ${queueCount} queues owned: API CPU ${f1(idle.api)} % of a core, nats-server ${f1(idle.nats)} %; then API RSS ${f1(later.api.rss)} MB, nats-server RSS ${f1(later.nats.rss)} MB`,
      );
      console.log(
        `  REPORT  API RSS with ${queueCount} queues and ${stored} messages stored: ${f1(filled.api.rss)} MB (${f1(filled.api.rss - atStart.api.rss)} MB above its ${f1(atStart.api.rss)} MB at start)`,
      );
      result.memory = {
        queues: queueCount,
        messages: stored,
        body_bytes: SIZE,
        create_queues_s: round(createS, 1),
        fill_s: round(fillS, 1),
        fill_msgs_per_s: round(stored / fillS, 0),
        api_rss_mb: {
          start: round(atStart.api.rss, 1),
          queues: round(afterQueues.api.rss, 1),
          filled: round(filled.api.rss, 1),
          filled_peak: round(filled.api.hwm, 1),
          after_idle: round(later.api.rss, 1),
        },
        nats_rss_mb: {
          start: round(atStart.nats.rss, 1),
          queues: round(afterQueues.nats.rss, 1),
          filled: round(filled.nats.rss, 1),
          filled_peak: round(filled.nats.hwm, 1),
          after_idle: round(later.nats.rss, 1),
        },
        store_bytes: store,
        streams,
        idle_cpu_pct: { api: round(idle.api, 2), nats: round(idle.nats, 2) },
      };
      await nc.close();
      await api.stop();
      await nats.stop();
    }

    emitJson({
      bench: 'messaging',
      machine: mach,
      settings: {
        seconds: SECONDS,
        nats_auth: AUTH,
        runs: RUNS,
        warmup_s: WARMUP_S,
        workers: WORKERS,
        batch: BATCH,
        body_bytes: SIZE,
        latency_samples: LAT_SAMPLES,
        queues: QUEUES,
        stored: STORED,
        nats_server: natsVersion,
        api: path.relative(ROOT, API_BUNDLE),
        node_args: NODE_ARGS,
      },
      ...result,
      goals: goals.results,
    });
    return 0;
  } finally {
    await cleanup.run();
  }
}

runMain('messaging', main);
