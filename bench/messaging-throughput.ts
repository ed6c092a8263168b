/**
 * The throughput part of the messaging benchmark (bench/messaging.ts): SQS send → receive → delete
 * through the API versus publish → fetch → ack with nats.js on the same nats-server, interleaved
 * runs, medians; the server CPU each message costs; the same again with the API and nats-server
 * pinned to CPU 0 and this process (the clients) to CPU 1.
 */
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  DeleteQueueCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { AckPolicy, StorageType, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { execFileSync } from 'node:child_process';
import { sleep } from '../scripts/lib/wait.js';
import { median, round, type Goals } from './lib.js';
import { BATCH, cpuCount, f0, f1, f2, f3, K, pin, type CpuSpan } from './messaging-lib.js';

/** What a throughput set runs against. */
export interface ThroughputBed {
  readonly client: SQSClient;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly apiPid: number;
  readonly natsPid: number;
  readonly body: string;
  readonly payload: Uint8Array;
  /** Starts a CPU span of the API, nats-server and this process. */
  readonly meter: () => () => CpuSpan;
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

/** Runs `worker` K.workers times concurrently until `seconds` pass; each finishes its iteration. */
async function timed(seconds: number, worker: (deadline: number) => Promise<void>): Promise<number> {
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  await Promise.all(Array.from({ length: K.workers }, () => worker(deadline)));
  return (performance.now() - t0) / 1000;
}

/** A measurement from its counts and its round trips (medians). */
function measurement(
  kind: Throughput['kind'],
  seconds: number,
  n: { sent: number; done: number; empty: number },
  ms: { sendMs: number[]; recvMs: number[]; delMs: number[] },
  cpu: CpuSpan,
): Throughput {
  const { sent, done } = n;
  const [sendMs, recvMs, delMs] = [ms.sendMs, ms.recvMs, ms.delMs].map(median);
  return { kind, seconds, sent, done, rate: done / seconds, emptyReceives: n.empty, sendMs, recvMs, delMs, cpu };
}

async function sqsThroughput(bed: ThroughputBed, tag: string, seconds: number): Promise<Throughput> {
  const { client, body } = bed;
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
  const stop = bed.meter();
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
  return measurement('sqs', elapsed, { sent, done, empty }, { sendMs, recvMs, delMs }, cpu);
}

async function rawThroughput(bed: ThroughputBed, tag: string, seconds: number): Promise<Throughput> {
  const { js, jsm, payload } = bed;
  const stream = `BENCH_RAW_${tag.replace(/\W/g, '_')}`;
  const subject = `bench.raw.${tag.replace(/\W/g, '_')}`;
  await jsm.streams.add({ name: stream, subjects: [subject], storage: StorageType.File, num_replicas: 1 });
  await jsm.consumers.add(stream, { durable_name: 'work', ack_policy: AckPolicy.Explicit, ack_wait: 30e9 });
  let sent = 0;
  let done = 0;
  let empty = 0;
  const sendMs: number[] = [];
  const recvMs: number[] = [];
  const stop = bed.meter();
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
  return measurement('raw', elapsed, { sent, done, empty }, { sendMs, recvMs, delMs: [] }, cpu);
}

function describe(x: Throughput): string {
  const per = (s: number) => (s / x.done) * 1e6;
  const steps =
    x.kind === 'sqs'
      ? `send ${f2(x.sendMs)} / receive ${f2(x.recvMs)} / delete ${f2(x.delMs)} ms`
      : `publish 10 ${f2(x.sendMs)} / fetch+ack ${f2(x.recvMs)} ms`;
  return `${(x.kind === 'sqs' ? 'SQS API' : 'raw JetStream').padEnd(13)} ${f0(x.rate).padStart(6)} msg/s (${x.done} in ${f2(x.seconds)} s, sent ${x.sent}, empty ${x.emptyReceives})  median round trips: ${steps}  CPU µs/msg: api ${f0(per(x.cpu.api))}, nats ${f0(per(x.cpu.nats))}, client ${f0(per(x.cpu.client))}`;
}

/** A warm-up of each, then K.runs measurements each, interleaved (raw, sqs, sqs, raw, …); medians and goals. */
async function throughputSet(bed: ThroughputBed, label: string, tag: string, goals: Goals): Promise<Record<string, unknown>> {
  if (K.warmupS > 0) {
    const w1 = await rawThroughput(bed, `${tag}warm`, K.warmupS);
    const w2 = await sqsThroughput(bed, `${tag}warm`, K.warmupS);
    console.log(`  warm-up       ${describe(w1)}\n  warm-up       ${describe(w2)}`);
  }
  const runs: { sqs: Throughput[]; raw: Throughput[] } = { sqs: [], raw: [] };
  for (let r = 0; r < K.runs; r++) {
    const order = r % 2 === 0 ? (['raw', 'sqs'] as const) : (['sqs', 'raw'] as const);
    for (const k of order) {
      const x = k === 'raw' ? await rawThroughput(bed, `${tag}r${r}`, K.seconds) : await sqsThroughput(bed, `${tag}r${r}`, K.seconds);
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
  const cpuLine = (xs: Throughput[]) => `api ${f0(perMsg(xs, 'api'))}, nats ${f0(perMsg(xs, 'nats'))}, client ${f0(perMsg(xs, 'client'))}`;
  const cpuPct = (xs: Throughput[], k: keyof CpuSpan) => med(xs, (x) => (100 * x.cpu[k]) / x.seconds);
  // Server CPU per message: what the API and nats-server spend on an SQS message, what nats-server spends on a raw one.
  const sqsServer = med(runs.sqs, (x) => ((x.cpu.api + x.cpu.nats) / x.done) * 1e6);
  const rawServer = perMsg(runs.raw, 'nats');
  const cpuRatio = sqsServer / rawServer;
  console.log(`\n  medians of ${K.runs}: SQS API ${f0(sqsRate)} msg/s, raw JetStream ${f0(rawRate)} msg/s, ratio ${f3(ratio)}`);
  console.log(`  CPU µs per message (median): SQS: ${cpuLine(runs.sqs)}; raw: ${cpuLine(runs.raw)}`);
  console.log(
    `  server CPU µs per message (median): SQS API + nats-server ${f1(sqsServer)}, raw JetStream nats-server ${f1(rawServer)}, ratio ${f2(cpuRatio)}`,
  );
  console.log(
    `  CPU % of a core (median): SQS: api ${f0(cpuPct(runs.sqs, 'api'))}, nats ${f0(cpuPct(runs.sqs, 'nats'))}, client ${f0(cpuPct(runs.sqs, 'client'))}; raw: nats ${f0(cpuPct(runs.raw, 'nats'))}, client ${f0(cpuPct(runs.raw, 'client'))}`,
  );
  goals.check(
    `SQS send+receive+delete msg/s / raw JetStream publish+fetch+ack msg/s, ${label} (${K.workers} workers, batches of ${BATCH}, ${K.size} B)`,
    ratio >= 0.4,
    ratio,
    '≥ 0.4',
  );
  goals.check(`server CPU per SQS message (API + nats-server) / raw JetStream's (nats-server), ${label}`, cpuRatio <= 4, cpuRatio, '≤ 4');
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
  return {
    sqs_msgs_per_s: round(sqsRate, 0),
    raw_msgs_per_s: round(rawRate, 0),
    ratio: round(ratio, 3),
    cpu_us_per_msg: Object.fromEntries(
      (['sqs', 'raw'] as const).map((k) => [
        k,
        { api: round(perMsg(runs[k], 'api'), 1), nats: round(perMsg(runs[k], 'nats'), 1), client: round(perMsg(runs[k], 'client'), 1) },
      ]),
    ),
    server_cpu_us_per_msg: { sqs: round(sqsServer, 1), raw: round(rawServer, 1), ratio: round(cpuRatio, 2) },
    runs: { sqs: runs.sqs.map(toJson), raw: runs.raw.map(toJson) },
  };
}

/** The CPU list a process may run on (`taskset -c -p PID`), to put it back after pinning. */
function affinity(pid: number): string {
  const out = execFileSync('taskset', ['-c', '-p', String(pid)], { encoding: 'utf8' });
  return out.slice(out.lastIndexOf(':') + 1).trim();
}

/** The unpinned set: every process may run on every core, as on a busy controller. */
export function throughputUnpinned(bed: ThroughputBed, goals: Goals): Promise<Record<string, unknown>> {
  console.log(
    `\n-- throughput, unpinned: ${K.workers} workers × (SendMessageBatch 10 → ReceiveMessage 10 → DeleteMessageBatch) vs (publish 10 → fetch 10 → ack), ${K.seconds} s each, ${K.runs} runs, interleaved --`,
  );
  return throughputSet(bed, 'unpinned', '', goals);
}

/**
 * The pinned set: the API and nats-server on CPU 0, this process (the clients) on CPU 1, so the
 * clients do not steal the servers' CPU. Affinities are put back afterwards, also on failure.
 * Skipped (undefined) on a machine with one CPU.
 */
export async function throughputPinned(bed: ThroughputBed, goals: Goals): Promise<Record<string, unknown> | undefined> {
  const n = cpuCount();
  if (n < 2) {
    console.log(`\n-- throughput, pinned: skipped, this machine has ${n} CPU (the client cannot have its own core) --`);
    return undefined;
  }
  console.log(
    `\n-- throughput, pinned (taskset): API and nats-server on CPU 0, the clients (this process, pid ${process.pid}) on CPU 1; ${K.seconds} s each, ${K.runs} runs, interleaved --`,
  );
  const before = new Map([bed.apiPid, bed.natsPid, process.pid].map((p) => [p, affinity(p)]));
  try {
    pin(bed.apiPid, '0');
    pin(bed.natsPid, '0');
    pin(process.pid, '1');
    const r = await throughputSet(bed, 'client on its own core (taskset)', 'p', goals);
    return { ...r, pinning: { api: '0', nats: '0', client: '1' } };
  } finally {
    for (const [p, cpus] of before) {
      try {
        pin(p, cpus);
      } catch (err) {
        // A process that already exited has nothing to put back.
        console.error(`could not put back the CPU affinity of pid ${p}: ${String(err)}`);
      }
    }
  }
}
