/**
 * Runs the benchmarks one after another and prints a combined table of their goals.
 *
 *   npx tsx bench/run.ts              # all six (about 11 minutes; gateway-names needs root)
 *   npx tsx bench/run.ts status       # a subset, by name
 *   npx tsx bench/run.ts boot         # an optional one (OPTIONAL: not in the default list)
 *
 * Each benchmark runs as its own process (`node --import tsx bench/NAME.ts`), so one's agents are
 * all stopped before the next starts. Exit code: non-zero only when a benchmark itself failed (a
 * crash, a process that did not start), never because a goal was missed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { ensureBundle, ROOT, type GoalResult } from './lib.js';

const ALL = ['dispatch', 'status', 'footprint', 'gateway-names', 'metadata', 'messaging'] as const;
/**
 * Run only when named: `boot` reads the boot image of scripts/build-boot-image.sh, which builds it
 * (root, debootstrap, minutes) when it is not cached; `lb` needs root, HAProxy and wrk (issue 21).
 */
const OPTIONAL = ['boot', 'lb'] as const;
const KNOWN: readonly string[] = [...ALL, ...OPTIONAL];

interface Outcome {
  name: string;
  code: number | null;
  json?: { goals?: GoalResult[] } & Record<string, unknown>;
  seconds: number;
}

let current: ChildProcess | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    // The child cleans up its own agents on the signal; wait for it, then leave.
    if (current?.pid && current.exitCode === null) {
      current.kill(sig);
      current.once('exit', () => process.exit(130));
    } else process.exit(130);
  });
}

function runOne(name: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn(process.execPath, ['--import', 'tsx', path.join('bench', `${name}.ts`)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    current = child;
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      process.stdout.write(b);
      out += b.toString();
    });
    child.once('close', (code) => {
      current = undefined;
      const line = out.split('\n').find((l) => l.startsWith('{"bench":'));
      resolve({
        name,
        code,
        json: line ? (JSON.parse(line) as Outcome['json']) : undefined,
        seconds: (performance.now() - started) / 1000,
      });
    });
  });
}

const wanted = process.argv.slice(2).length ? process.argv.slice(2) : [...ALL];
for (const w of wanted) if (!KNOWN.includes(w)) throw new Error(`unknown benchmark ${w}; choose from ${KNOWN.join(', ')}`);
ensureBundle();
const outcomes: Outcome[] = [];
for (const name of wanted) {
  console.log(`\n######## bench/${name}.ts ########`);
  outcomes.push(await runOne(name));
}

console.log('\n######## summary ########');
const rows: string[][] = [['BENCH', 'GOAL', 'VALUE', 'TARGET', 'RESULT']];
for (const o of outcomes) {
  if (o.code !== 0 || !o.json) rows.push([o.name, '(benchmark failed)', `exit ${o.code}`, '-', 'FAIL']);
  for (const g of o.json?.goals ?? []) rows.push([o.name, g.goal, String(g.value), g.target, g.result]);
}
const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
for (const r of rows)
  console.log(
    r
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd(),
  );
console.log(
  JSON.stringify({
    bench: 'run',
    results: outcomes.map((o) => ({ name: o.name, exit: o.code, seconds: Math.round(o.seconds), goals: o.json?.goals ?? [] })),
  }),
);
process.exit(outcomes.some((o) => o.code !== 0) ? 1 : 0);
