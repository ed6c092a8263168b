/**
 * The idle part of the messaging benchmark (bench/messaging.ts): a fresh nats-server and API; first
 * K.idleBaseQueues queues (the baseline), then K.idleQueues; at each step every queue gets one
 * message (so an owner takes it over), then a wait (idle-release logic may kick in), then the CPU %
 * of a core the API and nats-server use over K.idleMeasureS seconds with nothing happening.
 * Goals with K.idleQueues queues: API < 0.5 %, nats-server < 1 %.
 */
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { sleep } from '../scripts/lib/wait.js';
import { round, type Cleanup, type Goals } from './lib.js';
import { createQueues, f0, f1, f2, idleCpuPct, K, memOf, pool, SETUP_CONCURRENCY, startBed, withRetry } from './messaging-lib.js';

const API_GOAL_PCT = 0.5;
const NATS_GOAL_PCT = 1;

/** Runs the part in `dir`; returns the JSON part. Everything it starts is on `cleanup` too. */
export async function idlePhase(dir: string, cleanup: Cleanup, goals: Goals): Promise<Record<string, unknown>> {
  const levels = [...new Set([K.idleBaseQueues, K.idleQueues])].sort((a, b) => a - b);
  console.log(
    `\n-- idle: ${levels.join(' then ')} queues, one message each, ${K.idleWaitS} s wait, then CPU over ${K.idleMeasureS} s; fresh nats-server and API; setup bounded by ${K.fillS} s --`,
  );
  const { natsPid, api, client, ...bed } = await startBed(dir, 'idle', cleanup);
  console.log(`  API pid ${api.pid}, nats-server pid ${natsPid}`);
  await sleep(1000);
  const deadline = performance.now() + K.fillS * 1000;
  const urls: string[] = [];
  const steps: Record<string, unknown>[] = [];
  let sent = 0;
  const retries = { n: 0 };
  for (const level of levels) {
    const t0 = performance.now();
    const have = urls.length;
    const made = await createQueues(client, 'idle', have, level, deadline, urls, retries);
    const createS = (performance.now() - t0) / 1000;
    const fresh = urls.slice(have).filter(Boolean);
    const t1 = performance.now();
    const got = await pool(fresh.length, SETUP_CONCURRENCY, deadline, async (i) => {
      await withRetry(() => client.send(new SendMessageCommand({ QueueUrl: fresh[i], MessageBody: 'idle' })), retries);
    });
    sent += got;
    const sendS = (performance.now() - t1) / 1000;
    const queues = urls.filter(Boolean).length;
    console.log(
      `  ${queues} queues: ${made} created in ${f1(createS)} s (${f0(made / createS)}/s), ${got} SendMessage in ${f1(sendS)} s; ${sent} messages in all${retries.n ? ` (${retries.n} calls repeated after a connection reset)` : ''}${queues < level ? `  !! stopped at the ${K.fillS} s bound` : ''}`,
    );
    await sleep(K.idleWaitS * 1000);
    const cpu = await idleCpuPct(api.pid, natsPid, K.idleMeasureS);
    const apiMem = memOf(api.pid);
    const natsMem = memOf(natsPid);
    console.log(
      `    after ${K.idleWaitS} s wait, over ${K.idleMeasureS} s: API CPU ${f2(cpu.api)} %, nats-server ${f2(cpu.nats)} % of a core; API RSS ${f1(apiMem.rss)} MB, nats-server RSS ${f1(natsMem.rss)} MB`,
    );
    steps.push({
      queues,
      messages: sent,
      repeated_calls: retries.n,
      create_s: round(createS, 1),
      send_s: round(sendS, 1),
      cpu_pct: { api: round(cpu.api, 3), nats: round(cpu.nats, 3) },
      rss_mb: { api: round(apiMem.rss, 1), nats: round(natsMem.rss, 1) },
    });
    if (level === K.idleQueues) {
      const short = queues < level ? ` (only ${queues} queues)` : '';
      goals.check(`idle API CPU % of a core with ${level} queues${short}`, !short && cpu.api < API_GOAL_PCT, cpu.api, `< ${API_GOAL_PCT}`);
      goals.check(
        `idle nats-server CPU % of a core with ${level} queues${short}`,
        !short && cpu.nats < NATS_GOAL_PCT,
        cpu.nats,
        `< ${NATS_GOAL_PCT}`,
      );
    }
    if (queues < level) break;
  }
  await bed.stop();
  return { wait_s: K.idleWaitS, measure_s: K.idleMeasureS, steps };
}
