/**
 * Issue 22: what one scrape of a controller costs, with 10 queues and with 1,000.
 *
 *   npx tsx bench/monitoring-scrape.ts
 *
 * A real nats-server -js (its HTTP monitor on) and the SQS/SNS API run as the agent runs it: a
 * child process (`mammatus service run messaging`, core/child-service.ts) whose metrics reach this
 * process over the IPC channel. This process plays the agent: its registry holds the controller's
 * nats-server collector (roles/controller/nats-metrics.ts) and the child's text source, and a
 * scrape is one `exposition()` — the collectors, the /varz and /jsz reads, the IPC round trip
 * and the child's own exposition (its queue depths among them).
 *
 * Each queue holds one message (so every queue is owned by the child and exported). Measured per
 * scrape, averaged over BENCH_SCRAPE_N scrapes (after 5 warm-up ones): wall time, this process's
 * CPU (process.cpuUsage), the child's CPU (/proc ticks: 10 ms resolution, so averaged over the
 * run) and the exposition's size. First with BENCH_SCRAPE_BASE queues (the baseline), then with
 * BENCH_SCRAPE_QUEUES in the same service; the table gives the ratio.
 *
 * The child runs from the sources through tsx, or with BENCH_SCRAPE_FROM=bundle from
 * dist/mammatus.mjs as shipped (built first when missing or stale).
 *
 * Knobs: BENCH_SCRAPE_N (50), BENCH_SCRAPE_BASE (10), BENCH_SCRAPE_QUEUES (1000).
 */
import { CreateQueueCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { pino } from 'pino';
import { buildSpawn } from '../core/exec.js';
import { ChildService, exportChildMetrics, serviceArgv } from '../core/child-service.js';
import { exposition } from '../core/metrics.js';
import { fetchProbe } from '../roles/controller/health.js';
import { NatsMetrics } from '../roles/controller/nats-metrics.js';
import { natsServerAvailable, startNatsServer } from '../scripts/lib/nats-server.js';
import { freePort, waitForPort } from '../scripts/lib/ports.js';
import { BUNDLE, Cleanup, clkTck, cpuTicks, ensureBundle, machine, printMachine, ROOT, round, runMain, tempDir } from './lib.js';

/** A positive integer knob from the environment. */
function knob(name: string, dflt: number): number {
  const v = Number(process.env[name] ?? dflt);
  if (Number.isInteger(v) && v > 0) return v;
  throw new Error(`${name} must be a positive integer`);
}
const N = knob('BENCH_SCRAPE_N', 50);
const BASE = knob('BENCH_SCRAPE_BASE', 10);
const QUEUES = knob('BENCH_SCRAPE_QUEUES', 1000);
const CREDENTIALS = { accessKeyId: 'AKIDBENCHSCRAPE', secretAccessKey: 'bench-scrape-secret-access-key' };

/** One row of the table. */
interface Row {
  readonly queues: number;
  readonly wallMs: number;
  readonly cpuMs: number;
  readonly childCpuMs: number;
  readonly bytes: number;
  readonly series: number;
}

/** `n` scrapes after 5 warm-up ones, averaged. */
async function measure(queues: number, childPid: number, tck: number): Promise<Row> {
  for (let i = 0; i < 5; i += 1) await exposition();
  let wall = 0;
  let bytes = 0;
  let text = '';
  const cpu0 = process.cpuUsage();
  const ticks0 = cpuTicks(childPid);
  for (let i = 0; i < N; i += 1) {
    const t0 = performance.now();
    text = await exposition();
    wall += performance.now() - t0;
    bytes += Buffer.byteLength(text);
  }
  const cpu = process.cpuUsage(cpu0);
  const childTicks = cpuTicks(childPid) - ticks0;
  const exported = (text.match(/^mammatus_sqs_queue_messages\{/gm) ?? []).length / 3;
  if (exported < Math.min(queues, 1000)) throw new Error(`only ${exported} of ${queues} queues exported`);
  return {
    queues,
    wallMs: wall / N,
    cpuMs: (cpu.user + cpu.system) / 1000 / N,
    childCpuMs: ((childTicks / tck) * 1000) / N,
    bytes: bytes / N,
    series: text.split('\n').filter((l) => l && !l.startsWith('#')).length,
  };
}

/** Checks the exposition with `promtool check metrics` when it is installed, and says what it found. */
function lint(text: string): void {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (r.error) return void console.log('promtool not installed: exposition not checked');
  const said = `${r.stdout}${r.stderr}`.trim();
  console.log(`promtool check metrics: ${r.status === 0 ? 'ok' : `exit ${r.status}`}${said ? `\n${said}` : ''}`);
}

/** Queues `from`..`to-1`, each with one message; 16 at a time. */
async function fill(sqs: SQSClient, from: number, to: number): Promise<void> {
  let next = from;
  const worker = async () => {
    for (let i = next++; i < to; i = next++) {
      const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: `scrape-${String(i).padStart(5, '0')}` }));
      await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: `message ${i}` }));
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

async function main(): Promise<number> {
  if (!natsServerAvailable()) {
    console.log('nats-server is not installed: skipped');
    return 0;
  }
  const m = machine();
  printMachine(m);
  const cleanup = new Cleanup();
  try {
    const dir = tempDir('scrape', cleanup);
    const monitorPort = await freePort();
    const nats = await startNatsServer({ name: 'scrape', dir: path.join(dir, 'nats'), monitorPort });
    cleanup.add(() => nats.stop());
    const fromBundle = process.env.BENCH_SCRAPE_FROM === 'bundle';
    if (fromBundle) ensureBundle();
    const mammatus = fromBundle
      ? ([process.execPath, [BUNDLE]] as const)
      : ([process.execPath, ['--import', 'tsx', path.join(ROOT, 'agent/cli/bin.ts')]] as const);
    const apiPort = await freePort();
    const log = pino({ level: 'warn' });
    const child = new ChildService({
      spawn: await buildSpawn(),
      log,
      name: 'messaging',
      argv: serviceArgv(mammatus, 'messaging'),
      readyTimeoutMs: 60_000,
    });
    cleanup.add(() => child.stop());
    await child.start(() => ({
      type: 'init',
      service: 'messaging',
      level: 'warn',
      natsUrl: nats.url,
      seed: nats.credentials.seed,
      section: {
        credentials: [{ access_key_id: CREDENTIALS.accessKeyId, secret_access_key: CREDENTIALS.secretAccessKey }],
        listen: `127.0.0.1:${apiPort}`,
      },
    }));
    await waitForPort(apiPort, '127.0.0.1', 60_000);
    const unexport = exportChildMetrics('messaging', child);
    cleanup.add(unexport);
    const natsMetrics = new NatsMetrics(fetchProbe);
    natsMetrics.follow(`http://127.0.0.1:${monitorPort}`);
    cleanup.add(() => natsMetrics.stop());
    const sqs = new SQSClient({ endpoint: `http://127.0.0.1:${apiPort}`, region: 'us-east-1', credentials: CREDENTIALS, maxAttempts: 1 });
    const tck = clkTck();
    console.log(`child from ${fromBundle ? 'the bundle' : 'the sources (tsx)'}; ${N} scrapes per row`);
    await fill(sqs, 0, BASE);
    const base = await measure(BASE, child.pid!, tck);
    const t0 = Date.now();
    await fill(sqs, BASE, QUEUES);
    console.log(`${QUEUES - BASE} more queues created and filled in ${round((Date.now() - t0) / 1000, 1)} s`);
    const big = await measure(QUEUES, child.pid!, tck);
    lint(await exposition());
    console.log('\n| queues | wall ms/scrape | agent CPU ms/scrape | child CPU ms/scrape | bytes | series |');
    console.log('| ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const r of [base, big])
      console.log(
        `| ${r.queues} | ${round(r.wallMs, 2)} | ${round(r.cpuMs, 2)} | ${round(r.childCpuMs, 1)} | ${Math.round(r.bytes)} | ${r.series} |`,
      );
    console.log(
      `| ratio | ${round(big.wallMs / base.wallMs, 1)} | ${round(big.cpuMs / base.cpuMs, 1)} | ${base.childCpuMs > 0 ? round(big.childCpuMs / base.childCpuMs, 1) : 'n/a'} | ${round(big.bytes / base.bytes, 1)} | ${round(big.series / base.series, 1)} |`,
    );
    return 0;
  } finally {
    await cleanup.run();
  }
}

runMain('monitoring-scrape', main);
