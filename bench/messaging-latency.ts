/**
 * The long-poll wake part of the messaging benchmark (bench/messaging.ts): a ReceiveMessage with
 * WaitTimeSeconds 20 is waiting, then a SendMessage; time from send start to the receive returning.
 * Reference: a pending `consumer.next()` with nats.js, then `js.publish`.
 */
import {
  CreateQueueCommand,
  DeleteMessageCommand,
  DeleteQueueCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { AckPolicy, StorageType, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { sleep } from '../scripts/lib/wait.js';
import { round, summarize, type Goals, type Summary } from './lib.js';
import { f3, K } from './messaging-lib.js';

const P50_GOAL_MS = 5;
const P99_GOAL_MS = 20;

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

/** Measures both, prints them, checks the goals; returns the JSON part. */
export async function latencyPhase(
  client: SQSClient,
  js: JetStreamClient,
  jsm: JetStreamManager,
  goals: Goals,
): Promise<Record<string, unknown>> {
  console.log(`\n-- long-poll wake latency: ReceiveMessage WaitTimeSeconds 20 waiting, then SendMessage; ${K.latSamples} samples --`);
  const s = await sqsWake(client, K.latSamples);
  const raw = await rawWake(js, jsm, K.latSamples);
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
  goals.check('long-poll wake latency p50 ms (send start → receive returned)', ws.median < P50_GOAL_MS, ws.median, `< ${P50_GOAL_MS}`);
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
  return { sqs_wake_ms: sj(ws), sqs_send_ms: sj(ss), raw_wake_ms: sj(rs), missed: s.missed };
}
