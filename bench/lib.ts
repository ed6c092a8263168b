/**
 * Shared helpers of the benchmarks: statistics, goal reporting, machine facts, the bundle check,
 * /proc readings and a cleanup list that stops every process a benchmark started (by PID), also on
 * error or Ctrl-C.
 */
import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUNDLE } from '../scripts/lib/mammatus-agent.js';
import { errorMessage } from '../core/errors.js';
import type { SerfClient } from '../agent/serf/client.js';

/** The package root (/work/main). */
export const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The bundled CLI the agent processes run (one definition, shared with the test harness). */
export { BUNDLE };

/** Summary statistics of a sample, in the sample's unit. */
export interface Summary {
  n: number;
  min: number;
  median: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile (p in 0..100) of a sample; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1];
}

/** Median (mean of the two middle values for even sizes); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** n, min, median, p95, p99, max, mean. */
export function summarize(values: readonly number[]): Summary {
  return {
    n: values.length,
    min: values.length ? Math.min(...values) : NaN,
    median: median(values),
    p95: percentile(values, 95),
    p99: percentile(values, 99),
    max: values.length ? Math.max(...values) : NaN,
    mean: values.length ? values.reduce((a, b) => a + b, 0) / values.length : NaN,
  };
}

/** Rounds for display and JSON (keeps NaN as null in JSON via `round`). */
export function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Formats a summary of milliseconds for the readable report. */
export function fmtSummary(s: Summary, unit = 'ms', digits = 3): string {
  const r = (x: number) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');
  return `n=${s.n} median=${r(s.median)} p95=${r(s.p95)} p99=${r(s.p99)} min=${r(s.min)} max=${r(s.max)} ${unit}`;
}

/** One goal's verdict. */
export interface GoalResult {
  goal: string;
  value: number | string;
  target: string;
  result: 'PASS' | 'MISS';
}

/** Collects goal verdicts and prints each as it is decided. */
export class Goals {
  readonly results: GoalResult[] = [];

  check(goal: string, pass: boolean, value: number | string, target: string): boolean {
    const r: GoalResult = { goal, value: typeof value === 'number' ? round(value) : value, target, result: pass ? 'PASS' : 'MISS' };
    this.results.push(r);
    console.log(`  ${r.result}  ${goal}: ${r.value} (goal ${target})`);
    return pass;
  }
}

/** Facts about the machine a result was measured on. */
export interface Machine {
  date: string;
  nproc: number;
  cpu: string;
  memTotalMB: number;
  kernel: string;
  node: string;
  serf: string;
  /** 1-minute load average when the benchmark started (others may share the machine). */
  loadavg1: number;
}

/** Reads nproc, CPU model, memory, kernel, node and serf versions. */
export function machine(): Machine {
  const nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
  const serfOut = spawnSync('serf', ['version'], { encoding: 'utf8' });
  return {
    date: new Date().toISOString(),
    nproc,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    memTotalMB: Math.round(os.totalmem() / 1024 / 1024),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    serf: (serfOut.stdout ?? '').split('\n')[0]?.trim() || 'not found',
    loadavg1: round(os.loadavg()[0] ?? NaN, 2),
  };
}

/** Prints the machine line of a report. */
export function printMachine(m: Machine): void {
  console.log(
    `machine: ${m.nproc} CPU (${m.cpu}), ${m.memTotalMB} MB, ${m.kernel}, node ${m.node}, serf ${m.serf} (Debian 0.9.4), load ${m.loadavg1}, ${m.date}`,
  );
}

/** Prints the one machine-readable line of a benchmark (a JSON object with `bench`). */
export function emitJson(obj: Record<string, unknown>): void {
  console.log(JSON.stringify(obj, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)));
}

/** Newest mtime (ms) of the TypeScript sources that go into the bundle. */
function newestSource(): number {
  let newest = statSync(path.join(ROOT, 'package.json')).mtimeMs;
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|mjs|json)$/.test(e.name)) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  for (const d of ['core', 'agent', 'roles', 'handlers', 'src', 'scripts']) walk(path.join(ROOT, d));
  return newest;
}

/** Builds dist/mammatus.mjs with `npm run build` when it is missing or older than its sources. */
export function ensureBundle(): void {
  const stale = !existsSync(BUNDLE) || statSync(BUNDLE).mtimeMs < newestSource();
  if (!stale) return;
  console.log(`bundle ${existsSync(BUNDLE) ? 'is stale' : 'is missing'}; running npm run build`);
  const r = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0 || !existsSync(BUNDLE)) throw new Error('npm run build failed');
}

/** A fresh temporary directory (removed by the cleanup list unless BENCH_KEEP=1). */
export function tempDir(prefix: string, cleanup: Cleanup): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `mammatus-bench-${prefix}-`));
  cleanup.add(() => {
    if (process.env.BENCH_KEEP === '1') console.log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/**
 * Things to undo at the end, run last-in first-out. `run()` is idempotent; SIGINT/SIGTERM run it
 * too, so an interrupted benchmark leaves no serf or mammatus process behind.
 */
export class Cleanup {
  private readonly steps: (() => unknown)[] = [];
  private running: Promise<void> | undefined;

  constructor() {
    const onSignal = (sig: NodeJS.Signals) => {
      console.error(`\n${sig}: stopping everything this benchmark started`);
      this.run()
        .finally(() => process.exit(130))
        .catch(() => process.exit(130));
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  }

  add(step: () => unknown): void {
    this.steps.push(step);
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      for (const step of this.steps.splice(0).reverse()) {
        try {
          await step();
        } catch (err) {
          console.error(`cleanup step failed: ${errorMessage(err)}`);
        }
      }
    })();
    return this.running;
  }
}

/** Stops a child by its PID: SIGTERM, SIGKILL after 5 s; resolves on exit. */
export function stopChild(child: ChildProcess): Promise<void> {
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

/** Resident set size of a process in MB (VmRSS from /proc/PID/status). */
export function rssMB(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

/**
 * A process's resident memory split as /proc/PID/status splits it: `anon` is its own (heap, stacks,
 * malloc), `file` is mapped files (for node, mostly the pages of its binary that have run, which
 * every node process on the host shares with the page cache).
 */
export function rssPartsMB(pid: number): { anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status)?.[1] ?? NaN);
  return { anon: kb('RssAnon') / 1024, file: kb('RssFile') / 1024 };
}

/** utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat). */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so utime (14) is fields[11] and stime (15) fields[12].
  return Number(fields[11]) + Number(fields[12]);
}

/** Clock ticks per second (`getconf CLK_TCK`). */
export function clkTck(): number {
  return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
}

/** Runs a benchmark's `main` as the process: its code is the exit code; a crash exits 1. */
export function runMain(name: string, main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`${name} benchmark failed:`, err);
      process.exit(1);
    },
  );
}

/** When a query reached every node and when the last answer came, per run (ms after the send). */
export interface QuerySpread {
  /** Runs in which all nodes acked and answered within the timeout. */
  readonly complete: number;
  readonly lastAckMs: number[];
  readonly lastAnswerMs: number[];
}

/**
 * Sends query `name` `runs` times over one RPC connection with acks requested and times, per run,
 * the last of `nodes` acks (the query reached every node) and the last answer. A run in which a
 * node never acks or answers within `timeoutMs` is left out of the times and counted as incomplete.
 */
export async function querySpread(client: SerfClient, name: string, nodes: number, runs: number, timeoutMs = 5000): Promise<QuerySpread> {
  const lastAckMs: number[] = [];
  const lastAnswerMs: number[] = [];
  for (let r = 0; r < runs; r++) {
    const started = performance.now();
    const records = await client.query({ name, requestAck: true, timeoutMs });
    const acks = new Set<string>();
    const answers = new Set<string>();
    let ackAt: number | undefined;
    let answerAt: number | undefined;
    for await (const rec of records) {
      (rec.type === 'ack' ? acks : answers).add(rec.from);
      if (rec.type === 'ack' && acks.size === nodes) ackAt = performance.now() - started;
      if (rec.type === 'response' && answers.size === nodes) answerAt = performance.now() - started;
      if (ackAt !== undefined && answerAt !== undefined) break;
    }
    records.stop();
    if (ackAt !== undefined && answerAt !== undefined) {
      lastAckMs.push(ackAt);
      lastAnswerMs.push(answerAt);
    }
  }
  return { complete: lastAckMs.length, lastAckMs, lastAnswerMs };
}
