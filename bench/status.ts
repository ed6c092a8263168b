/**
 * Cluster status: `mammatus status` (returns once every agent answered) against
 * `serf query mammatus.status` (waits for Serf's query timeout) on a 20-node loopback cluster.
 *
 *   npx tsx bench/status.ts
 *
 * 20 serf agents (roles spread over compute/storage, every one joined to the
 * first) and 20 mammatus agents from the bundle, started in batches of 5. Then, alternating, N=5
 * timed runs of each command (wall time of the whole process). Goals: median mammatus status <
 * 0.25 × median serf query and < 350 ms, with all 20 nodes answering. To show where the time goes,
 * N raw queries over one RPC connection (acks requested) time when the query reached the last node
 * (its ack) and when the last answer came: Serf spreads a query by gossip (every 200 ms to 3 random
 * nodes on the LAN profile), which no client can hurry. Prints a readable summary, PASS/MISS per
 * goal, then one JSON line.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { SerfClient } from '../agent/serf/client.js';
import { startMammatusAgent, type MammatusAgent } from '../scripts/lib/mammatus-agent.js';
import { serfAvailable, startSerfAgent, type SerfAgent } from '../scripts/lib/serf-agent.js';
import {
  BUNDLE,
  Cleanup,
  emitJson,
  ensureBundle,
  Goals,
  machine,
  median,
  querySpread,
  printMachine,
  ROOT,
  round,
  rssMB,
  tempDir,
  runMain,
} from './lib.js';
import { sleep, waitFor } from '../scripts/lib/wait.js';

const NODES = Number(process.env.BENCH_NODES ?? 20);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const BATCH = 5;
// No gateways: that role changes this machine's firewall and runs DHCP; it is benchmarked inside a
// network namespace by bench/gateway-names.ts. No controllers: each runs a nats-server on the
// cluster-wide NATS ports, which 20 nodes on one address cannot share.
const ROLE_NAMES = ['compute', 'storage'] as const;
const COMMAND_TIMEOUT_MS = 30_000;

interface Timed {
  ms: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion and times it from spawn to exit (killed after 30 s). */
function timed(cmd: string, args: string[]): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), COMMAND_TIMEOUT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ ms: performance.now() - started, code, stdout, stderr });
    });
  });
}

/** Nodes listed with an answer in `mammatus status`'s table (STATE not `(no answer)` etc.). */
function answeredInTable(out: string): { listed: number; answered: number } {
  const rows = out.split('\n').filter((l) => /^n\d+\s/.test(l));
  return { listed: rows.length, answered: rows.filter((l) => !/\(\w[^)]*\)\s*$/.test(l)).length };
}

/** Responders in `serf query`'s output. */
function serfResponders(out: string): Set<string> {
  return new Set([...out.matchAll(/^Response from '([^']+)'/gm)].map((m) => m[1]));
}
const serfResponses = (out: string) => serfResponders(out).size;

async function main(): Promise<number> {
  if (!serfAvailable()) {
    console.error('serf is not on PATH');
    return 2;
  }
  ensureBundle();
  const m = machine();
  const goals = new Goals();
  const cleanup = new Cleanup();
  try {
    console.log(`== status: mammatus status vs serf query mammatus.status, ${NODES}-node loopback cluster ==`);
    printMachine(m);
    const dir = tempDir('status', cleanup);
    const name = (i: number) => `n${String(i + 1).padStart(2, '0')}`;

    // Serf agents, in batches (each is a separate process on 2 cores).
    const serfs: SerfAgent[] = [];
    // Stopped in parallel, by PID, after the mammatus agents (cleanup runs last-in first-out).
    cleanup.add(() => Promise.allSettled(serfs.map((s) => s.stop())));
    const t0 = performance.now();
    for (let b = 0; b < NODES; b += BATCH) {
      const batch = await Promise.allSettled(
        Array.from({ length: Math.min(BATCH, NODES - b) }, (_, k) => {
          const i = b + k;
          return startSerfAgent({
            name: name(i),
            dir: path.join(dir, name(i), 'serf'),
            tags: { role: ROLE_NAMES[i % ROLE_NAMES.length] },
            tagsFile: false,
          });
        }),
      );
      for (const r of batch) if (r.status === 'fulfilled') serfs.push(r.value);
      const failed = batch.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
    }
    // Every agent joins the first.
    for (const s of serfs.slice(1)) {
      const c = await SerfClient.connect({ addr: s.rpcAddr });
      try {
        await c.join([serfs[0].bindAddr]);
      } finally {
        c.close();
      }
    }
    const first = await SerfClient.connect({ addr: serfs[0].rpcAddr });
    cleanup.add(() => first.close());
    const alive = async () => (await first.members()).filter((x) => x.status === 'alive');
    if (!(await waitFor(async () => (await alive()).length === NODES, 30_000, 200)))
      throw new Error(`only ${(await alive()).length}/${NODES} members alive after 30 s`);
    console.log(`${NODES} serf agents up and joined in ${(performance.now() - t0).toFixed(0)} ms`);

    // mammatus agents (bundle), in batches of 5.
    const agents: MammatusAgent[] = [];
    cleanup.add(() => Promise.allSettled(agents.map((a) => a.stop())));
    const t1 = performance.now();
    for (let b = 0; b < NODES; b += BATCH) {
      const batch = await Promise.allSettled(
        serfs.slice(b, b + BATCH).map((s) => startMammatusAgent({ dir: path.join(dir, s.name, 'agent'), rpcAddr: s.rpcAddr })),
      );
      for (const r of batch) if (r.status === 'fulfilled') agents.push(r.value);
      const failed = batch.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
    }
    const readyAll = performance.now() - t1;
    const startup = agents.map((a) => a.startToReadyMs);
    console.log(
      `${NODES} mammatus agents logged "agent ready" after ${readyAll.toFixed(0)} ms (per agent spawn→ready: median ${median(startup).toFixed(0)} ms, max ${Math.max(...startup).toFixed(0)} ms)`,
    );
    // Every member must carry the tag as the first node sees it (gossip of each agent's tag update).
    const untagged = async () => (await first.members()).filter((x) => !(x.status === 'alive' && x.tags.mammatus)).map((x) => x.name);
    const tagWait = performance.now();
    let reported = false;
    const allTagged = await waitFor(
      async () => {
        const missing = await untagged();
        if (missing.length && !reported && performance.now() - tagWait > 5000) {
          reported = true;
          // Diagnose: does the agent itself think its tag is set? (warn/error lines of its log)
          const problems = agents
            .filter((_, i) => missing.includes(serfs[i].name))
            .flatMap((a) =>
              a
                .logLines()
                .filter((l) => Number(l.level) >= 40)
                .map((l) => String(l.msg)),
            );
          console.log(
            `  after 5 s, ${serfs[0].name} still sees no mammatus tag on ${missing.join(', ')} (their agents' warnings: ${problems.length ? [...new Set(problems)].join('; ') : 'none'})`,
          );
        }
        return missing.length === 0;
      },
      90_000,
      200,
    );
    if (!allTagged) throw new Error(`no mammatus tag after 90 s on: ${(await untagged()).join(', ')}`);
    console.log(
      `all ${NODES} members carry the mammatus tag ${(performance.now() - t1).toFixed(0)} ms after the first agent was spawned; letting the cluster settle 3 s`,
    );
    await sleep(3000);

    const addr = serfs[0].rpcAddr;
    const mamCmd = [process.execPath, BUNDLE, '--rpc-addr', addr, 'status'];
    const serfCmd = ['serf', 'query', `-rpc-addr=${addr}`, 'mammatus.status'];
    console.log(`commands:\n  ${['node', path.relative(ROOT, BUNDLE), ...mamCmd.slice(2)].join(' ')}\n  ${serfCmd.join(' ')}`);

    // One untimed warm-up of each (page cache, first query through the cluster).
    await timed(mamCmd[0], mamCmd.slice(1));
    await timed(serfCmd[0], serfCmd.slice(1));

    const mam: Timed[] = [];
    const srf: Timed[] = [];
    for (let r = 0; r < RUNS; r++) {
      const a = await timed(mamCmd[0], mamCmd.slice(1));
      mam.push(a);
      const t = answeredInTable(a.stdout);
      const b = await timed(serfCmd[0], serfCmd.slice(1));
      srf.push(b);
      console.log(
        `  run ${r + 1}: mammatus status ${a.ms.toFixed(0)} ms (exit ${a.code}, ${t.answered}/${t.listed} answered)   ` +
          `serf query ${b.ms.toFixed(0)} ms (exit ${b.code}, ${serfResponses(b.stdout)} responses)`,
      );
      const got = serfResponders(b.stdout);
      const missing = serfs.map((x) => x.name).filter((n) => !got.has(n));
      if (missing.length) console.log(`         serf query: no response from ${missing.join(', ')}`);
    }
    // Where the round goes: the query's spread (last ack) and the last answer, seen from one RPC connection.
    const spread = await querySpread(first, 'mammatus.status', NODES, RUNS);
    const lastAckMed = median(spread.lastAckMs);
    const lastAnswerMed = median(spread.lastAnswerMs);
    console.log(
      `raw query over RPC, median of ${spread.complete}/${RUNS} complete runs: reached all ${NODES} nodes (last ack) after ${lastAckMed.toFixed(0)} ms, last answer after ${lastAnswerMed.toFixed(0)} ms`,
    );

    // Reference: the same CLI doing no RPC at all (node start + bundle load + exit).
    const bare: number[] = [];
    for (let r = 0; r < RUNS; r++) bare.push((await timed(process.execPath, [BUNDLE, 'version'])).ms);
    const bareMed = median(bare);
    const mamMed = median(mam.map((x) => x.ms));
    const srfMed = median(srf.map((x) => x.ms));
    const ratio = mamMed / srfMed;
    const allAnswered = mam.every((x) => {
      const t = answeredInTable(x.stdout);
      return x.code === 0 && t.listed === NODES && t.answered === NODES;
    });
    const serfAll = srf.every((x) => serfResponses(x.stdout) === NODES);

    // Memory of the 20 agents after the runs (they answered 12 status queries each), for reference.
    const rss = agents.map((a) => rssMB(a.pid));
    console.log(
      `agent RSS in the ${NODES}-node cluster after the runs: median ${median(rss).toFixed(1)} MB, max ${Math.max(...rss).toFixed(1)} MB (log level debug, as the helper configures)`,
    );

    // A last, untimed check with --json: every node listed, each with an answer naming it.
    const json = await timed(mamCmd[0], [...mamCmd.slice(1), '--json']);
    const rows = JSON.parse(json.stdout) as { node: string; answer: { node: string } | null; roles: string[] }[];
    const jsonAnswered = rows.filter((r) => r.answer && r.answer.node === r.node).length;
    const roleCounts: Record<string, number> = {};
    for (const r of rows) for (const role of r.roles) roleCounts[role] = (roleCounts[role] ?? 0) + 1;

    console.log(
      `\nmedian of ${RUNS}: mammatus status ${mamMed.toFixed(0)} ms, serf query ${srfMed.toFixed(0)} ms; ratio ${ratio.toFixed(3)}`,
    );
    console.log(
      `reference: node dist/mammatus.mjs version (no RPC) median ${bareMed.toFixed(0)} ms, so the status round itself takes ≈ ${(mamMed - bareMed).toFixed(0)} ms`,
    );
    console.log(`status --json: ${rows.length} nodes listed, ${jsonAnswered} with their own answer; roles ${JSON.stringify(roleCounts)}`);
    if (!allAnswered) console.log(`  last mammatus status output:\n${mam[mam.length - 1].stdout}${mam[mam.length - 1].stderr}`);
    goals.check('mammatus status median / serf query median', ratio < 0.25, round(ratio, 3), '< 0.25');
    goals.check(`mammatus status median on ${NODES} nodes`, mamMed < 350, round(mamMed, 0), '< 350 ms');
    goals.check(
      `mammatus status listed all ${NODES} nodes with answers (every run)`,
      allAnswered && jsonAnswered === NODES,
      allAnswered && jsonAnswered === NODES ? 'yes' : 'no',
      'yes',
    );
    console.log(`  (serf query got ${NODES} responses in every run: ${serfAll ? 'yes' : 'no'})`);

    emitJson({
      bench: 'status',
      machine: m,
      nodes: NODES,
      runs: RUNS,
      commands: { mammatus: `node dist/mammatus.mjs --rpc-addr ${addr} status`, serf: serfCmd.join(' ') },
      mammatus_status_ms: mam.map((x) => round(x.ms, 1)),
      serf_query_ms: srf.map((x) => round(x.ms, 1)),
      mammatus_median_ms: round(mamMed, 1),
      raw_query_last_ack_ms: spread.lastAckMs.map((x) => round(x, 1)),
      raw_query_last_answer_ms: spread.lastAnswerMs.map((x) => round(x, 1)),
      serf_median_ms: round(srfMed, 1),
      ratio: round(ratio, 4),
      cli_version_only_median_ms: round(bareMed, 1),
      agent_rss_mb: { median: round(median(rss), 1), max: round(Math.max(...rss), 1) },
      all_nodes_answered_every_run: allAnswered,
      json_check_answered: jsonAnswered,
      serf_query_all_responses: serfAll,
      goals: goals.results,
    });
    return 0;
  } finally {
    await cleanup.run();
  }
}

runMain('status', main);
