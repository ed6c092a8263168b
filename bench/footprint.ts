/**
 * Footprint of the bundled agent of a node with no role, beside one serf agent: start-to-ready,
 * `mammatus version`, idle memory, idle CPU.
 *
 *   npx tsx bench/footprint.ts
 *
 * Start-to-ready: spawn of `node dist/mammatus.mjs agent` → its "agent ready" log line (read from a
 * pipe, so not rounded to a polling interval), 5 runs, median; `node dist/mammatus.mjs version`
 * spawn → exit, 5 runs, median; baseline `node -e 0` spawn → exit, 5 runs, interleaved in the same
 * run. Then one agent left idle: VmRSS after 10 s (serf's and a bare node process's as baselines)
 * and CPU (utime+stime from /proc/PID/stat) over the next 30 s (serf's as baseline). Goals: start
 * < 150 ms, version < 100 ms, RSS ≤ 48 MB, CPU < 0.5 % of a core. Prints a readable summary,
 * PASS/MISS per goal, one JSON line.
 *
 * BENCH_BUNDLE=FILE measures another build instead (an older checkout's dist/mammatus.mjs), so a
 * before/after pair can be taken back to back on the same machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { serfAvailable, startSerfAgent } from '../scripts/lib/serf-agent.js';
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
  rssPartsMB,
  tempDir,
  runMain,
} from './lib.js';
import { sleep } from '../scripts/lib/wait.js';

const RUNS = 5;
/** The bundle measured: this checkout's, or the one BENCH_BUNDLE names. */
const UNDER_TEST = process.env.BENCH_BUNDLE ? path.resolve(process.env.BENCH_BUNDLE) : BUNDLE;
const IDLE_SETTLE_S = 10;
const CPU_WINDOW_S = Number(process.env.BENCH_CPU_WINDOW_S ?? 30);
const READY_TIMEOUT_MS = 20_000;

/** A spawned agent whose stdout (JSON log lines) is piped back to us. */
interface PipedAgent {
  child: ChildProcess;
  readyMs: number;
  stop(): Promise<void>;
}

/** Writes an agent config with production defaults (log level info) except paths and the RPC address. */
function writeConfig(dir: string, rpcAddr: string): string {
  mkdirSync(dir, { recursive: true });
  const cfg = path.join(dir, 'agent.yaml');
  writeFileSync(
    cfg,
    [
      `state_dir: ${JSON.stringify(path.join(dir, 'state'))}`,
      `serf: { rpc_addr: ${JSON.stringify(rpcAddr)}, rpc_auth: "" }`,
      'log: { level: info }',
    ].join('\n') + '\n',
  );
  return cfg;
}

/** Spawns `node dist/mammatus.mjs agent --config CFG` and resolves when it logs "agent ready". */
function spawnAgent(cfg: string): Promise<PipedAgent> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [UNDER_TEST, 'agent', '--config', cfg], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, JOURNAL_STREAM: '' },
    });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const stop = async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    };
    let buf = '';
    let ready = false;
    const timer = setTimeout(() => {
      stop().catch(() => undefined);
      reject(new Error(`agent not ready within ${READY_TIMEOUT_MS} ms; output:\n${buf.slice(-2000)}`));
    }, READY_TIMEOUT_MS);
    child.stderr.on('data', (b: Buffer) => (buf += b.toString()));
    child.stdout.on('data', (b: Buffer) => {
      if (ready) return; // keep draining the pipe, nothing else
      buf += b.toString();
      if (buf.includes('"msg":"agent ready"')) {
        ready = true;
        clearTimeout(timer);
        resolve({ child, readyMs: performance.now() - started, stop });
      }
    });
    child.once('exit', (code) => {
      if (ready) return;
      clearTimeout(timer);
      reject(new Error(`agent exited (${code}) before ready; output:\n${buf.slice(-2000)}`));
    });
  });
}

/** Spawn → exit of `node ARGS` (`-e 0`, or the bundle and a command); a failed run is an error, not a fast one. */
function nodeRun(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code === 0) resolve(performance.now() - started);
      else reject(new Error(`node ${args.join(' ')} exited with ${code}`));
    });
  });
}

async function main(): Promise<number> {
  if (!serfAvailable()) {
    console.error('serf is not on PATH');
    return 2;
  }
  if (UNDER_TEST === BUNDLE) ensureBundle();
  const m = machine();
  const goals = new Goals();
  const cleanup = new Cleanup();
  const tck = clkTck();
  try {
    console.log('== footprint: bundled agent start-to-ready, idle RSS, idle CPU (serf agent as baseline) ==');
    printMachine(m);
    console.log(`bundle: ${path.relative(ROOT, UNDER_TEST) || UNDER_TEST}`);
    const dir = tempDir('footprint', cleanup);
    // No role tag: the agent every node runs before (or without) a role.
    const serf = await startSerfAgent({ name: 'fp', dir: path.join(dir, 'serf'), tags: {} });
    cleanup.add(() => serf.stop());
    const serfPid = serf.process.pid!;
    console.log(`serf agent pid ${serfPid} rpc ${serf.rpcAddr}`);

    // Start-to-ready, interleaved with the `node -e 0` baseline. Each run is a first start (fresh
    // state dir); the page cache is warm after the first, as on any restart.
    const ready: number[] = [];
    const version: number[] = [];
    const base: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      base.push(await nodeRun(['-e', '0']));
      version.push(await nodeRun([UNDER_TEST, 'version']));
      const a = await spawnAgent(writeConfig(path.join(dir, `run${r}`), serf.rpcAddr));
      ready.push(a.readyMs);
      await a.stop();
      console.log(
        `  run ${r + 1}: node -e 0 ${base[r].toFixed(0)} ms, mammatus version ${version[r].toFixed(0)} ms, agent spawn→ready ${a.readyMs.toFixed(0)} ms`,
      );
    }
    const readyMed = median(ready);
    const versionMed = median(version);
    const baseMed = median(base);
    console.log(
      `start-to-ready median ${readyMed.toFixed(0)} ms, mammatus version median ${versionMed.toFixed(0)} ms ` +
        `(node -e 0 median ${baseMed.toFixed(0)} ms, so ≈ ${(readyMed - baseMed).toFixed(0)} and ${(versionMed - baseMed).toFixed(0)} ms are ours)`,
    );
    goals.check('agent start-to-ready median', readyMed < 150, round(readyMed, 0), '< 150 ms');
    goals.check('mammatus version median', versionMed < 100, round(versionMed, 0), '< 100 ms');

    // Idle: one agent left running.
    const agent = await spawnAgent(writeConfig(path.join(dir, 'idle'), serf.rpcAddr));
    cleanup.add(() => agent.stop());
    const agentPid = agent.child.pid!;
    // Reference: what an idle Node 20 process with nothing loaded holds (the runtime's own floor).
    const bareNode = spawn(process.execPath, ['-e', 'setInterval(() => {}, 60000)'], { stdio: 'ignore' });
    const bareExited = new Promise<void>((r) => bareNode.once('exit', () => r()));
    cleanup.add(async () => {
      if (bareNode.exitCode === null && bareNode.signalCode === null) bareNode.kill('SIGTERM');
      await bareExited;
    });
    console.log(`\nidle agent pid ${agentPid} ready in ${agent.readyMs.toFixed(0)} ms; waiting ${IDLE_SETTLE_S} s`);
    await sleep(IDLE_SETTLE_S * 1000);
    const agentRss = rssMB(agentPid);
    const serfRss = rssMB(serfPid);
    const bareRss = rssMB(bareNode.pid!);
    console.log(
      `RSS after ${IDLE_SETTLE_S} s idle: agent ${agentRss.toFixed(1)} MB, serf ${serfRss.toFixed(1)} MB (reference: idle bare node process ${bareRss.toFixed(1)} MB)`,
    );
    const agentParts = rssPartsMB(agentPid);
    const bareParts = rssPartsMB(bareNode.pid!);
    console.log(
      `  of which private (RssAnon): agent ${agentParts.anon.toFixed(1)} MB, bare node ${bareParts.anon.toFixed(1)} MB; ` +
        `mapped files, mostly node's own binary (RssFile): agent ${agentParts.file.toFixed(1)} MB, bare node ${bareParts.file.toFixed(1)} MB`,
    );
    goals.check('agent idle RSS (no role)', agentRss <= 48, round(agentRss, 1), '<= 48 MB');

    const a0 = cpuTicks(agentPid);
    const s0 = cpuTicks(serfPid);
    const w0 = performance.now();
    await sleep(CPU_WINDOW_S * 1000);
    const wallS = (performance.now() - w0) / 1000;
    const aTicks = cpuTicks(agentPid) - a0;
    const sTicks = cpuTicks(serfPid) - s0;
    const agentCpu = (aTicks / tck / wallS) * 100;
    const serfCpu = (sTicks / tck / wallS) * 100;
    const agentRssEnd = rssMB(agentPid);
    const resolution = (1 / tck / wallS) * 100;
    console.log(
      `CPU over ${wallS.toFixed(1)} s idle (CLK_TCK ${tck}, so 1 tick = ${resolution.toFixed(3)} %): ` +
        `agent ${aTicks} ticks = ${agentCpu.toFixed(3)} % of a core, serf ${sTicks} ticks = ${serfCpu.toFixed(3)} %`,
    );
    console.log(`RSS at the end: agent ${agentRssEnd.toFixed(1)} MB`);
    goals.check('agent idle CPU', agentCpu < 0.5, round(agentCpu, 3), '< 0.5 % of a core');

    emitJson({
      bench: 'footprint',
      machine: m,
      bundle: UNDER_TEST,
      start_to_ready_ms: ready.map((x) => round(x, 1)),
      start_to_ready_median_ms: round(readyMed, 1),
      version_ms: version.map((x) => round(x, 1)),
      version_median_ms: round(versionMed, 1),
      node_e0_ms: base.map((x) => round(x, 1)),
      node_e0_median_ms: round(baseMed, 1),
      idle_rss_mb: {
        agent: round(agentRss, 1),
        serf: round(serfRss, 1),
        bare_node: round(bareRss, 1),
        agent_anon: round(agentParts.anon, 1),
        agent_file: round(agentParts.file, 1),
        bare_node_anon: round(bareParts.anon, 1),
        bare_node_file: round(bareParts.file, 1),
        agent_end: round(agentRssEnd, 1),
        after_s: IDLE_SETTLE_S,
      },
      idle_cpu_percent: {
        agent: round(agentCpu, 3),
        serf: round(serfCpu, 3),
        agent_ticks: aTicks,
        serf_ticks: sTicks,
        window_s: round(wallS, 1),
        clk_tck: tck,
        resolution_percent: round(resolution, 4),
      },
      goals: goals.results,
    });
    return 0;
  } finally {
    await cleanup.run();
  }
}

runMain('footprint', main);
