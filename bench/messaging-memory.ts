/**
 * The memory part of the messaging benchmark (bench/messaging.ts): a fresh nats-server and API,
 * K.queues queues, then messages stored in steps (K.stored, e.g. 100,000 then 1,000,000) spread
 * evenly across them; at each step the RSS of both right after storing and again after an idle wait
 * (an owner may release idle queues), the JetStream streams and store size, and the CPU of both
 * during the wait. Goal: API RSS ≤ 100 MB with 1,000,000 stored.
 */
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { jetstreamManager } from '@nats-io/jetstream';
import path from 'node:path';
import { connectNats } from '../core/nats.js';
import { sleep } from '../scripts/lib/wait.js';
import { round, type Cleanup, type Goals } from './lib.js';
import { BATCH, createQueues, duBytes, f0, f1, f2, idleCpuPct, K, memOf, pool, startBed, withRetry } from './messaging-lib.js';

const RSS_GOAL_MB = 100;
const RSS_GOAL_AT = 1_000_000;

type Mem = { rss: number; hwm: number };
const memJson = (m: Mem) => ({ rss: round(m.rss, 1), hwm: round(m.hwm, 1) });

/** Runs the part in `dir`; returns the JSON part. Everything it starts is on `cleanup` too. */
export async function memoryPhase(dir: string, cleanup: Cleanup, goals: Goals): Promise<Record<string, unknown>> {
  const levels = K.stored;
  console.log(
    `\n-- memory: ${K.queues} queues, ${levels.join(' then ')} messages (${K.size} B) stored, fresh nats-server and API; ${K.memIdleS} s idle wait at each step; fill bounded by ${K.fillS} s and API RSS ${K.memRssLimitMB} MB --`,
  );
  const { nats, natsPid, api, client, ...bed } = await startBed(dir, 'mem', cleanup);
  console.log(`  API pid ${api.pid}, nats-server pid ${natsPid}`);
  const nc = await connectNats(nats.url, { name: 'bench-mem', credentials: K.auth ? nats.credentials : undefined });
  cleanup.add(() => nc.close());
  const jsm = await jetstreamManager(nc);
  await sleep(1000);
  const mem = () => ({ api: memOf(api.pid), nats: memOf(natsPid) });
  const atStart = mem();
  console.log(`  at start:            API RSS ${f1(atStart.api.rss)} MB, nats-server RSS ${f1(atStart.nats.rss)} MB`);

  const deadline = performance.now() + K.fillS * 1000;
  const urls: string[] = [];
  const retries = { n: 0 };
  let t0 = performance.now();
  const created = await createQueues(client, 'mem', 0, K.queues, deadline, urls, retries);
  const createS = (performance.now() - t0) / 1000;
  const afterQueues = mem();
  console.log(
    `  ${created} queues created in ${f1(createS)} s (${f0(created / createS)}/s): API RSS ${f1(afterQueues.api.rss)} MB, nats-server RSS ${f1(afterQueues.nats.rss)} MB`,
  );
  const queueUrls = urls.filter(Boolean);
  const entries = Array.from({ length: BATCH }, (_, i) => ({ Id: `m${i}`, MessageBody: 'x'.repeat(K.size) }));
  let stored = 0;
  let batchNo = 0;
  let overLimit = false;
  const steps: Record<string, unknown>[] = [];
  let goalAt: { level: number; stored: number; rss: number } | undefined;
  for (const level of levels) {
    t0 = performance.now();
    const from = stored;
    const batches = Math.max(0, Math.ceil((level - stored) / BATCH));
    await pool(
      batches,
      K.fillConcurrency,
      deadline,
      async () => {
        const j = batchNo++;
        const r = await withRetry(
          () => client.send(new SendMessageBatchCommand({ QueueUrl: queueUrls[j % queueUrls.length], Entries: entries })),
          retries,
        );
        if (r.Failed?.length) throw new Error(`SendMessageBatch failed: ${JSON.stringify(r.Failed[0])}`);
        stored += r.Successful?.length ?? 0;
        // A guard for the machine: an API that keeps every stored message would take it down.
        if (j % 100 === 0 && memOf(api.pid).rss > K.memRssLimitMB) overLimit = true;
      },
      () => overLimit,
    ).catch((err: unknown) => {
      // The API's own words on a failed call (it logs internal failures at error level).
      console.error(`!! a call failed; the API's last output:\n${api.output().slice(-4000)}`);
      throw err;
    });
    const fillS = (performance.now() - t0) / 1000;
    const why = overLimit ? `the API RSS bound (${K.memRssLimitMB} MB)` : `the ${K.fillS} s bound`;
    console.log(
      `  step ${level}: ${stored - from} messages stored in ${f1(fillS)} s (${f0((stored - from) / fillS)} msg/s), ${stored} in all${retries.n ? ` (${retries.n} calls repeated after a connection reset)` : ''}${stored < level ? `  !! stopped at ${why}` : ''}`,
    );
    const filled = mem();
    const streams: Record<string, { messages: number; bytes: number }> = {};
    for await (const si of jsm.streams.list()) streams[si.config.name] = { messages: si.state.messages, bytes: si.state.bytes };
    const store = duBytes(path.join(dir, 'nats-mem', 'jetstream'));
    console.log(
      `    right after:  API RSS ${f1(filled.api.rss)} MB (peak ${f1(filled.api.hwm)} MB), nats-server RSS ${f1(filled.nats.rss)} MB (peak ${f1(filled.nats.hwm)} MB)`,
    );
    console.log(
      `    JetStream: ${Object.entries(streams)
        .map(([n, s]) => `${n} ${s.messages} messages ${f1(s.bytes / 1048576)} MiB`)
        .join(', ')}; store on disk ${f1(store / 1048576)} MiB (du)`,
    );
    const idle = await idleCpuPct(api.pid, natsPid, K.memIdleS);
    const later = mem();
    console.log(
      `    after ${K.memIdleS} s idle: API RSS ${f1(later.api.rss)} MB (peak ${f1(later.api.hwm)} MB), nats-server RSS ${f1(later.nats.rss)} MB; CPU during the wait: API ${f2(idle.api)} %, nats-server ${f2(idle.nats)} % of a core`,
    );
    console.log(
      `    REPORT  API RSS with ${queueUrls.length} queues and ${stored} messages stored: ${f1(filled.api.rss)} MB right after, ${f1(later.api.rss)} MB after the idle wait (${f1(atStart.api.rss)} MB at start)`,
    );
    steps.push({
      level,
      stored,
      fill_s: round(fillS, 1),
      fill_msgs_per_s: round((stored - from) / fillS, 0),
      repeated_calls: retries.n,
      stopped: stored < level ? (overLimit ? 'rss_limit' : 'time_limit') : null,
      api_mb: { filled: memJson(filled.api), after_idle: memJson(later.api) },
      nats_mb: { filled: memJson(filled.nats), after_idle: memJson(later.nats) },
      streams,
      store_bytes: store,
      idle_cpu_pct: { api: round(idle.api, 2), nats: round(idle.nats, 2) },
    });
    if (level >= RSS_GOAL_AT && goalAt === undefined) goalAt = { level, stored, rss: filled.api.rss };
    if (stored < level) break;
  }
  const goal = `API RSS MB right after storing ${RSS_GOAL_AT} messages across ${queueUrls.length} queues`;
  if (goalAt) {
    const all = goalAt.stored >= goalAt.level;
    const value = all ? goalAt.rss : `${f1(goalAt.rss)} (only ${goalAt.stored} stored)`;
    goals.check(goal, all && goalAt.rss <= RSS_GOAL_MB, value, `≤ ${RSS_GOAL_MB}`);
  } else if (levels.some((l) => l >= RSS_GOAL_AT)) goals.check(goal, false, `not reached (${stored} stored)`, `≤ ${RSS_GOAL_MB}`);
  else console.log(`  (goal not checked: no step stores ${RSS_GOAL_AT} messages; BENCH_MSG_STORED=${levels.join(',')})`);
  await nc.close();
  await bed.stop();
  return {
    queues: queueUrls.length,
    body_bytes: K.size,
    create_queues_s: round(createS, 1),
    api_mb: { start: memJson(atStart.api), queues: memJson(afterQueues.api) },
    nats_mb: { start: memJson(atStart.nats), queues: memJson(afterQueues.nats) },
    steps,
  };
}
