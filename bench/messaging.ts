/**
 * The SQS API (issue 3, issue 23) on a real nats-server, in one run:
 *
 *   npx tsx bench/messaging.ts
 *
 * 1. Throughput (messaging-throughput.ts): BENCH_MSG_WORKERS concurrent workers, each looping
 *    SendMessageBatch of 10 → ReceiveMessage (MaxNumberOfMessages 10) → DeleteMessageBatch through
 *    `@aws-sdk/client-sqs` (JSON 1.0, SigV4) against the API, versus the same loop with
 *    `@nats-io/jetstream` directly on the same nats-server: publish 10 (awaiting the acks) → fetch 10
 *    from a durable pull consumer → ack each, on a file-storage stream, same concurrency, same body
 *    size. Messages/s = messages deleted (acked) / elapsed. A fresh queue (stream) per measurement;
 *    a warm-up of each, then BENCH_MSG_RUNS measurements each, interleaved (raw, sqs, sqs, raw, …);
 *    medians decide. Server CPU per message from /proc: API + nats-server µs per SQS message beside
 *    nats-server µs per raw JetStream message. Goals: SQS ≥ 0.4 × raw msg/s; server CPU per SQS
 *    message ≤ 4 × raw's.
 * 2. The same, pinned (phase `pinned`): the API and nats-server on CPU 0, this process (all the
 *    clients) on CPU 1, with `taskset -a -p`; affinities are put back afterwards. Skipped on a
 *    machine with one CPU. Same goals, the msg/s ratio here is the one the issue asks for.
 * 3. Long-poll wake latency (messaging-latency.ts): a ReceiveMessage with WaitTimeSeconds 20 is
 *    waiting (100 ms after it was sent); then a SendMessage; time from send start to the receive
 *    call returning. Goal: p50 < 5 ms, p99 < 20 ms. Reference: the same with nats.js.
 * 4. Memory (messaging-memory.ts): a fresh nats-server and API; BENCH_MSG_QUEUES queues, then
 *    messages stored in steps (BENCH_MSG_STORED, ascending) spread evenly across them
 *    (SendMessageBatch of 10, BENCH_MSG_FILL_CONCURRENCY at a time); at each step the API's RSS
 *    (VmRSS, VmHWM) and nats-server's right after storing and again after BENCH_MSG_MEM_IDLE_S of
 *    idle (CPU of both measured during it), the streams and the store size. Goal: API RSS ≤ 100 MB
 *    right after storing 1,000,000. The fill stops at BENCH_MSG_FILL_S or when the API's RSS passes
 *    BENCH_MSG_MEM_RSS_LIMIT_MB (a guard for the machine) and reports how many were stored.
 * 5. Idle (messaging-idle.ts): a fresh nats-server and API; BENCH_MSG_IDLE_BASE_QUEUES queues, then
 *    BENCH_MSG_IDLE_QUEUES, each given one message (so an owner takes it over), then
 *    BENCH_MSG_IDLE_WAIT_S of waiting, then the CPU % of a core of the API and nats-server over
 *    BENCH_MSG_IDLE_MEASURE_S. Goals with BENCH_MSG_IDLE_QUEUES queues: API < 0.5 %, nats-server < 1 %.
 * 6. Rebuild (messaging-rebuild.ts): one queue of BENCH_MSG_REBUILD messages stored straight into
 *    JetStream, taken over by a restarted API (its first GetQueueAttributes): time and the API's
 *    peak RSS, beside a raw headers-only read of the same messages with nats.js. No goal.
 *
 * The API runs as its own process from the bundle, as it ships: `node dist/mammatus.mjs messaging
 * serve --nats URL --listen 127.0.0.1:PORT --config $TMP/agent.yaml` (credentials in the config,
 * `log: { level: warn }`); nats-server from scripts/lib/nats-server.ts (max_payload 2 MiB). CPU
 * of the API, nats-server and this process (the clients) is read per measurement from /proc.
 * Everything started is stopped by PID and the temporary directory removed, also on failure.
 *
 * Knobs (environment):
 *   BENCH_MSG_SECONDS   seconds per throughput measurement (10)   BENCH_MSG_RUNS     measurements each (3)
 *   BENCH_MSG_WARMUP    warm-up seconds (2)                        BENCH_MSG_WORKERS  concurrent workers (8)
 *   BENCH_MSG_SIZE      message body bytes (256)                   BENCH_MSG_LAT_SAMPLES  wake samples (200)
 *   BENCH_MSG_QUEUES    queues of the memory part (1000)
 *   BENCH_MSG_STORED    comma list of stored-message steps (100000,1000000); one number works too
 *   BENCH_MSG_FILL_S    bound of the memory part's fill, and of the idle part's setup, seconds (600)
 *   BENCH_MSG_FILL_CONCURRENCY  SendMessageBatch calls in flight while filling (32)
 *   BENCH_MSG_MEM_IDLE_S  idle wait after each stored step, seconds (30)
 *   BENCH_MSG_MEM_RSS_LIMIT_MB  stop filling when the API's RSS passes this (4000)
 *   BENCH_MSG_IDLE_QUEUES  queues of the idle part (10000)    BENCH_MSG_IDLE_BASE_QUEUES  its baseline (10)
 *   BENCH_MSG_IDLE_WAIT_S  wait before measuring idle CPU (40)  BENCH_MSG_IDLE_MEASURE_S  idle CPU span (20)
 *   BENCH_MSG_REBUILD   messages of the rebuild part's queue (500000)
 *   BENCH_MSG_PHASES    comma list of throughput,pinned,latency,memory,idle,rebuild (all)
 *   BENCH_MSG_BUNDLE    another bundle to run (e.g. one built from a patched copy)
 *   BENCH_MSG_NODE_ARGS extra node flags for the API, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
 *   BENCH_NATS_AUTH=off nats-server without authorization (to measure its cost)
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { connectNats } from '../core/nats.js';
import { natsServerAvailable } from '../scripts/lib/nats-server.js';
import { Cleanup, emitJson, ensureBundle, Goals, machine, printMachine, ROOT, runMain, tempDir } from './lib.js';
import { idlePhase } from './messaging-idle.js';
import { latencyPhase } from './messaging-latency.js';
import { BATCH, cpuMeter, K, startBed } from './messaging-lib.js';
import { memoryPhase } from './messaging-memory.js';
import { rebuildPhase } from './messaging-rebuild.js';
import { throughputPinned, throughputUnpinned, type ThroughputBed } from './messaging-throughput.js';

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
      `== messaging: SQS API (client-sqs, JSON) vs nats.js on the same nats-server; ${K.workers} workers, batches of ${BATCH}, ${K.size} B bodies ==`,
    );
    printMachine(mach);
    const dir = tempDir('messaging', cleanup);
    const natsVersion = spawnSync('nats-server', ['--version'], { encoding: 'utf8' }).stdout.trim();
    const has = (p: string) => K.phases.has(p);
    // Others may share the machine: the 1-minute load when each part starts goes with its numbers.
    const load: Record<string, number> = {};
    const part = async (name: string, run: () => Promise<Record<string, unknown> | undefined>) => {
      if (!has(name)) return;
      load[name] = Number(os.loadavg()[0].toFixed(2));
      console.log(`\n[${name}: load average ${load[name]} on ${mach.nproc} CPUs]`);
      result[name] = (await run()) ?? { skipped: 'one CPU' };
    };

    if (has('throughput') || has('pinned') || has('latency')) {
      const { nats, natsPid, api, client, ...pair } = await startBed(dir, 'bench', cleanup);
      console.log(`${natsVersion}: ${nats.url} (pid ${natsPid}, file store, max_payload 2 MiB)`);
      console.log(`API: ${api.command}\n  pid ${api.pid}, ${api.url}`);
      const nc = await connectNats(nats.url, { name: 'bench-raw', credentials: K.auth ? nats.credentials : undefined });
      cleanup.add(() => nc.close());
      const js = jetstream(nc);
      const jsm = await jetstreamManager(nc);
      const body = 'x'.repeat(K.size);
      const bed: ThroughputBed = {
        client,
        js,
        jsm,
        apiPid: api.pid,
        natsPid,
        body,
        payload: new TextEncoder().encode(body),
        meter: () => cpuMeter(api.pid, natsPid),
      };
      await part('throughput', () => throughputUnpinned(bed, goals));
      await part('pinned', () => throughputPinned(bed, goals));
      await part('latency', () => latencyPhase(client, js, jsm, goals));
      await nc.close();
      await pair.stop();
    }
    await part('memory', () => memoryPhase(dir, cleanup, goals));
    await part('idle', () => idlePhase(dir, cleanup, goals));
    await part('rebuild', () => rebuildPhase(dir, cleanup));

    console.log(
      `\nload average at the end: ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
    );
    emitJson({
      bench: 'messaging',
      machine: mach,
      settings: {
        seconds: K.seconds,
        runs: K.runs,
        warmup_s: K.warmupS,
        workers: K.workers,
        batch: BATCH,
        body_bytes: K.size,
        latency_samples: K.latSamples,
        queues: K.queues,
        stored: K.stored,
        fill_s: K.fillS,
        fill_concurrency: K.fillConcurrency,
        mem_idle_s: K.memIdleS,
        mem_rss_limit_mb: K.memRssLimitMB,
        idle_queues: K.idleQueues,
        idle_base_queues: K.idleBaseQueues,
        idle_wait_s: K.idleWaitS,
        idle_measure_s: K.idleMeasureS,
        rebuild_messages: K.rebuildMessages,
        phases: [...K.phases],
        nats_auth: K.auth,
        nats_server: natsVersion,
        api: path.relative(ROOT, K.bundle),
        node_args: K.nodeArgs,
      },
      ...result,
      load_avg1_at_start: load,
      goals: goals.results,
    });
    return 0;
  } finally {
    await cleanup.run();
  }
}

runMain('messaging', main);
