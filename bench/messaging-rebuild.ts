/**
 * The rebuild part of the messaging benchmark (bench/messaging.ts): what a controller pays to take
 * over a big queue. A fresh nats-server and API; one queue holding K.rebuildMessages messages of
 * K.size B, stored straight into JetStream in the API's own format (sending them through the API
 * would take minutes and measure nothing new). Then the API is restarted (no owner, nothing in
 * memory) and the first GetQueueAttributes makes it take the queue over: its time, and the API's
 * RSS and peak RSS before and after. Baseline in the same run: reading the same messages' headers
 * with a nats.js consumer in this process, the least any rebuild must do. No goal of the issue;
 * the figures show that a takeover's memory follows the packed state, not an object per message.
 */
import { GetQueueAttributesCommand, CreateQueueCommand } from '@aws-sdk/client-sqs';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import path from 'node:path';
import { connectNats } from '../core/nats.js';
import { encodeHeaders, encodePayload, H } from '../src/messaging/engine/codec.js';
import { subjects } from '../src/messaging/engine/layout.js';
import { round, type Cleanup } from './lib.js';
import { f0, f1, f2, K, memOf, sqsClient, startApi, startBed } from './messaging-lib.js';

// Publishes in flight while filling.
const FILL_WINDOW = 2000;

/** Runs the part in `dir`; returns the JSON part. Everything it starts is on `cleanup` too. */
export async function rebuildPhase(dir: string, cleanup: Cleanup): Promise<Record<string, unknown>> {
  const n = K.rebuildMessages;
  console.log(`\n-- rebuild: one queue of ${n} messages (${K.size} B) taken over by a restarted API, beside a raw headers-only read --`);
  const { nats, api, client, ...bed } = await startBed(dir, 'rebuild', cleanup);
  const nc = await connectNats(nats.url, { name: 'bench-rebuild', credentials: K.auth ? nats.credentials : undefined });
  cleanup.add(() => nc.close());
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const url = (await client.send(new CreateQueueCommand({ QueueName: 'big' }))).QueueUrl!;
  const record = await (await new Kvm(nc).open('mammatus_sqs')).get('q.big');
  const queueId = record!.json<{ id: string }>().id;
  const t0 = performance.now();
  await fill(js, subjects.message(queueId), n);
  const fillS = (performance.now() - t0) / 1000;
  console.log(`  ${n} messages stored in ${f1(fillS)} s (${f0(n / fillS)} msg/s), straight into JetStream`);

  const raw1 = await rawRead(js, jsm, subjects.message(queueId));
  // A restarted API: nothing owned, nothing in memory; the first request takes the queue over.
  client.destroy();
  await api.stop();
  const next = await startApi(path.join(dir, 'api-rebuild-2'), nats, cleanup);
  const fresh = sqsClient(next.url);
  cleanup.add(() => fresh.destroy());
  const before = memOf(next.pid);
  const t1 = performance.now();
  const attrs = await fresh.send(
    new GetQueueAttributesCommand({ QueueUrl: url.replace(/^http:\/\/[^/]+/, next.url), AttributeNames: ['All'] }),
  );
  const takeoverMs = performance.now() - t1;
  const after = memOf(next.pid);
  const counted = Number(attrs.Attributes?.ApproximateNumberOfMessages);
  const raw2 = await rawRead(js, jsm, subjects.message(queueId));
  const rawMs = Math.min(raw1, raw2);
  console.log(`  raw headers-only read (nats.js, this process): ${f0(raw1)} / ${f0(raw2)} ms`);
  console.log(
    `  takeover (first GetQueueAttributes after a restart): ${f0(takeoverMs)} ms, ${f2(takeoverMs / rawMs)} × the raw read; ApproximateNumberOfMessages ${counted}`,
  );
  console.log(
    `  API RSS ${f1(before.rss)} MB before, ${f1(after.rss)} MB after (peak ${f1(after.hwm)} MB): ${f1(((after.hwm - before.rss) * 2 ** 20) / n)} B of peak per message`,
  );
  console.log(
    `  REPORT  takeover of a ${n}-message queue: ${f0(takeoverMs)} ms (${f2(takeoverMs / rawMs)} × raw read), API peak RSS ${f1(after.hwm)} MB`,
  );
  fresh.destroy();
  await next.stop();
  await nc.close();
  await bed.stop();
  return {
    messages: n,
    fill_s: round(fillS, 1),
    counted,
    takeover_ms: round(takeoverMs, 0),
    raw_read_ms: [round(raw1, 0), round(raw2, 0)],
    ratio: round(takeoverMs / rawMs, 2),
    api_mb: { before: before.rss, after: after.rss, peak: after.hwm },
  };
}

// Stores `n` messages as the API stores a SendMessage (headers for the rebuild, msgpack payload).
async function fill(js: JetStreamClient, subject: string, n: number): Promise<void> {
  const data = encodePayload({ body: 'x'.repeat(K.size), attributes: {} });
  for (let i = 0; i < n; i += FILL_WINDOW) {
    const acks: Promise<unknown>[] = [];
    for (let j = i; j < Math.min(n, i + FILL_WINDOW); j++) {
      const now = Date.now();
      acks.push(js.publish(subject, data, { headers: encodeHeaders({ sentAt: now, visibleAt: now, senderId: 'bench' }) }));
    }
    await Promise.all(acks);
  }
}

// Milliseconds to read every message's headers on `subject` with an ephemeral consumer.
async function rawRead(js: JetStreamClient, jsm: JetStreamManager, subject: string): Promise<number> {
  const t0 = performance.now();
  const ci = await jsm.consumers.add('MESSAGING_SQS', {
    filter_subject: subject,
    ack_policy: AckPolicy.None,
    deliver_policy: DeliverPolicy.All,
    headers_only: true,
    mem_storage: true,
    inactive_threshold: 60e9,
  });
  let pending = ci.num_pending;
  const consumer = await js.consumers.get('MESSAGING_SQS', ci.name);
  while (pending > 0) {
    const batch = await consumer.fetch({ max_messages: Math.min(pending, 1000), expires: 5000 });
    for await (const m of batch) {
      m.headers?.get(H.sent);
      pending = m.info.pending;
    }
  }
  const ms = performance.now() - t0;
  await jsm.consumers.delete('MESSAGING_SQS', ci.name);
  return ms;
}
