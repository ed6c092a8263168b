/**
 * What metrics cost an idle agent (issue 22): the bundled agent of a node with no role, beside its
 * serf agent, with `metrics.enabled: false` (the baseline) and with metrics on and scraped every
 * 15 s as a controller's Prometheus would. Runs alternate off, on, off, on… in one process on one
 * machine; each settles 10 s, then its CPU (utime+stime from /proc/PID/stat) is taken over the
 * window and its RSS (VmRSS) at the end. Goals: on − off under 3 MB of RSS and under 0.1 % of a
 * core. Prints a summary, PASS/MISS per goal and one JSON line.
 *
 *   npx tsx bench/monitoring.ts                       # 2 rounds of 60 s windows (about 5 minutes)
 *   BENCH_ROUNDS=3 BENCH_CPU_WINDOW_S=120 npx tsx bench/monitoring.ts
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '../scripts/lib/ports.js';
import { serfAvailable, startSerfAgent } from '../scripts/lib/serf-agent.js';
import { sleep } from '../scripts/lib/wait.js';
import {
  BUNDLE,
  clkTck,
  Cleanup,
  cpuTicks,
  emitJson,
  ensureBundle,
  Goals,
  machine,
  median,
  printMachine,
  ROOT,
  round,
  rssMB,
  runMain,
  tempDir,
} from './lib.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const WINDOW_S = Number(process.env.BENCH_CPU_WINDOW_S ?? 60);
const SETTLE_S = 10;
const SCRAPE_EVERY_MS = 15_000;

interface Sample {
  readonly mode: 'off' | 'on';
  readonly rssMB: number;
  /** Percent of one core over the window. */
  readonly cpuPercent: number;
  readonly scrapes: number;
  readonly bytes: number;
}

/** Starts the bundled agent with `metrics` as given and resolves once it is ready. */
async function startAgent(dir: string, rpcAddr: string, metrics: string): Promise<{ child: ChildProcess; stop(): Promise<void> }> {
  mkdirSync(dir, { recursive: true });
  const cfg = path.join(dir, 'agent.yaml');
  writeFileSync(
    cfg,
    [
      `state_dir: ${JSON.stringify(path.join(dir, 'state'))}`,
      `serf: { rpc_addr: ${JSON.stringify(rpcAddr)} }`,
      'log: { level: info }',
      metrics,
    ].join('\n') + '\n',
  );
  const child = spawn(process.execPath, [BUNDLE, 'agent', '--config', cfg], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`agent not ready in 20 s: ${out.slice(-1000)}`)), 20_000);
    child.stdout.on('data', (b: Buffer) => {
      if (out.includes('"msg":"agent ready"')) return;
      out += b.toString();
      if (out.includes('"msg":"agent ready"')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return {
    child,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** One run: settle, then the CPU window (scraping when on), then the RSS. */
async function measure(mode: 'off' | 'on', dir: string, rpcAddr: string, tck: number): Promise<Sample> {
  const port = await freePort();
  const metrics = mode === 'on' ? `metrics: { enabled: true, listen: "127.0.0.1:${port}" }` : 'metrics: { enabled: false }';
  const agent = await startAgent(dir, rpcAddr, metrics);
  try {
    const pid = agent.child.pid!;
    let scrapes = 0;
    let bytes = 0;
    const scrape = async () => {
      const r = await fetch(`http://127.0.0.1:${port}/metrics`);
      bytes = (await r.text()).length;
      scrapes++;
    };
    if (mode === 'on') await scrape();
    await sleep(SETTLE_S * 1000);
    const c0 = cpuTicks(pid);
    const t0 = performance.now();
    const timer = mode === 'on' ? setInterval(() => void scrape().catch(() => undefined), SCRAPE_EVERY_MS) : undefined;
    await sleep(WINDOW_S * 1000);
    clearInterval(timer);
    const seconds = (performance.now() - t0) / 1000;
    const cpuPercent = ((cpuTicks(pid) - c0) / tck / seconds) * 100;
    return { mode, rssMB: rssMB(pid), cpuPercent, scrapes, bytes };
  } finally {
    await agent.stop();
  }
}

async function main(): Promise<number> {
  if (!serfAvailable()) {
    console.error('serf is not on PATH');
    return 2;
  }
  ensureBundle();
  const cleanup = new Cleanup();
  const goals = new Goals();
  const tck = clkTck();
  try {
    console.log('== monitoring: an idle agent with metrics off (baseline) and on, scraped every 15 s ==');
    printMachine(machine());
    const dir = tempDir('monitoring', cleanup);
    const serf = await startSerfAgent({ name: 'mon', dir: path.join(dir, 'serf'), tags: {} });
    cleanup.add(() => serf.stop());
    const samples: Sample[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      for (const mode of ['off', 'on'] as const) {
        const s = await measure(mode, path.join(dir, `${mode}-${r}`), serf.rpcAddr, tck);
        samples.push(s);
        console.log(
          `  round ${r + 1} ${mode.padEnd(3)}: RSS ${s.rssMB.toFixed(1)} MB, CPU ${s.cpuPercent.toFixed(3)} % of a core over ${WINDOW_S} s` +
            (mode === 'on' ? ` (${s.scrapes} scrapes of ${s.bytes} bytes)` : ''),
        );
      }
    }
    const of = (mode: 'off' | 'on', key: 'rssMB' | 'cpuPercent') => median(samples.filter((s) => s.mode === mode).map((s) => s[key]));
    const rss = { off: of('off', 'rssMB'), on: of('on', 'rssMB') };
    const cpu = { off: of('off', 'cpuPercent'), on: of('on', 'cpuPercent') };
    console.log(
      `median RSS off ${rss.off.toFixed(1)} MB, on ${rss.on.toFixed(1)} MB (ratio ${(rss.on / rss.off).toFixed(3)}); ` +
        `median CPU off ${cpu.off.toFixed(3)} %, on ${cpu.on.toFixed(3)} %`,
    );
    goals.check('idle RSS, metrics on − off', rss.on - rss.off < 3, round(rss.on - rss.off, 2), '< 3 MB');
    goals.check('idle CPU, metrics on − off', cpu.on - cpu.off < 0.1, round(cpu.on - cpu.off, 3), '< 0.1 % of a core');
    emitJson({ bench: 'monitoring', rounds: ROUNDS, window_s: WINDOW_S, rss, cpu, samples, goals: goals.results });
    return 0;
  } finally {
    await cleanup.run();
  }
}

runMain('monitoring', main);
