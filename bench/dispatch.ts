/**
 * Dispatch overhead: mammatus (in-process agent, `user:bench` handler) against Serf's own
 * `-event-handler user:benchsh=<script>`, on the SAME serf agent in the SAME run.
 *
 *   npx tsx bench/dispatch.ts
 *
 * Latency phase: 200 events to each name, 20 ms apart per name (the two names interleaved 10 ms
 * apart, so a script run never holds up a mammatus event), each payload carrying its send time.
 * Latency = handler start − send time. Throughput phase: 1,000 events/s for 5 s (10 events per
 * 10 ms tick) to `bench`, then the same to `benchsh`; count what each handler saw (the script
 * within a bounded wait). Goals: serf-script median / mammatus median ≥ 10; mammatus sees all
 * 5,000. Prints a readable summary, PASS/MISS per goal, then one JSON line.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { loadConfig } from '../agent/config/load.js';
import { createAgent, type Agent } from '../agent/daemon.js';
import { buildRun, buildSpawn } from '../core/exec.js';
import { buildFileOps } from '../core/files.js';
import { buildLogger } from '../core/logger.js';
import { SerfClient } from '../agent/serf/client.js';
import { VERSION } from '../agent/version.js';
import { roleCatalog } from '../agent/roles.js';
import { serfAvailable, startSerfAgent } from '../scripts/lib/serf-agent.js';
import { Cleanup, emitJson, fmtSummary, Goals, machine, printMachine, round, summarize, tempDir, runMain } from './lib.js';
import { sleep, waitFor } from '../scripts/lib/wait.js';

const LAT_EVENTS = Number(process.env.BENCH_LAT_EVENTS ?? 200);
const LAT_SPACING_MS = 20;
const TP_RATE = 1000; // events per second offered
const TP_SECONDS = 5;
const TP_TICK_MS = 10;
const SCRIPT_WAIT_MS = 60_000; // bound on waiting for the script handler to catch up
const RATIO_GOAL = 10;

/** Milliseconds since the epoch on the monotonic clock (what the mammatus handler records). */
const perfEpoch = () => performance.timeOrigin + performance.now();

/**
 * realtime − perfEpoch, in ms, measured at edges of Date.now()'s millisecond tick so it is exact to
 * a few µs (Date.now() alone is only 1 ms precise). `date +%s%N` in the script reads CLOCK_REALTIME.
 */
function realtimeOffsetMs(): number {
  const samples: number[] = [];
  for (let i = 0; i < 7; i++) {
    const start = Date.now();
    let d = start;
    let p = 0;
    while (d === start) {
      d = Date.now();
      p = perfEpoch();
    }
    samples.push(d - p);
  }
  samples.sort((a, b) => a - b);
  return samples[3];
}

/** Waits until perfEpoch() reaches `t` (ms). */
async function sleepUntil(t: number): Promise<void> {
  const wait = t - perfEpoch();
  if (wait > 1) await sleep(wait - 0.5);
}

interface ScriptLine {
  realtimeMs: number;
  payload: string;
}

function readScriptLog(file: string): ScriptLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.includes(' '))
    .map((l) => {
      const sp = l.indexOf(' ');
      // Nanoseconds since the epoch exceed 2^53: split off the last 6 digits before converting.
      const ns = l.slice(0, sp);
      return { realtimeMs: Number(ns.slice(0, -6)) + Number(ns.slice(-6)) / 1e6, payload: l.slice(sp + 1) };
    });
}

const countLines = (file: string) =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.includes(' tp:')).length
    : 0;

async function main(): Promise<number> {
  if (!serfAvailable()) {
    console.error('serf is not on PATH');
    return 2;
  }
  const m = machine();
  const goals = new Goals();
  const cleanup = new Cleanup();
  try {
    console.log('== dispatch: mammatus handler vs serf -event-handler script (same serf agent, same run) ==');
    printMachine(m);
    const dir = tempDir('dispatch', cleanup);
    const shLog = path.join(dir, 'benchsh.log');
    const script = path.join(dir, 'benchsh.sh');
    // The first thing the handler does is read the clock; then it stores the payload (the event id).
    writeFileSync(script, `#!/bin/sh\nt=$(date +%s%N)\nread -r p\necho "$t $p" >> ${shLog}\n`);
    chmodSync(script, 0o755);

    const serf = await startSerfAgent({ name: 'bench', dir: path.join(dir, 'serf'), eventHandlers: [`user:benchsh=${script}`] });
    cleanup.add(() => serf.stop());
    console.log(`serf agent pid ${serf.process.pid} rpc ${serf.rpcAddr}, handler user:benchsh=${script}`);

    // The mammatus agent, in this process, with one extra handler recording when it starts.
    const seen = new Map<string, number>();
    const cfgPath = path.join(dir, 'agent.yaml');
    writeFileSync(
      cfgPath,
      [
        `state_dir: ${JSON.stringify(path.join(dir, 'state'))}`,
        `serf: { rpc_addr: ${JSON.stringify(serf.rpcAddr)}, rpc_auth: "" }`,
        'log: { level: info }',
        'watch_config: false',
      ].join('\n') + '\n',
    );
    const loaded = await loadConfig({ path: cfgPath, env: {} });
    const log = buildLogger(loaded.config.log.level, {
      dest: pino.destination({ dest: path.join(dir, 'agent.log'), sync: true }),
      journal: false,
    });
    let onReady: () => void = () => undefined;
    const ready = new Promise<void>((r) => (onReady = r));
    const agent: Agent = createAgent({
      loaded,
      reloadConfig: () => loadConfig({ path: cfgPath, env: {} }),
      log,
      run: buildRun(),
      files: buildFileOps(),
      roles: roleCatalog({ spawn: buildSpawn }),
      version: VERSION,
      registerHandlers: (d) =>
        d.on('user:bench', (ev) => {
          const t = perfEpoch();
          seen.set(ev.payload.toString('utf8'), t);
        }),
      onReady: () => onReady(),
    });
    cleanup.add(() => agent.stop());
    await agent.start();
    if (!(await Promise.race([ready.then(() => true), sleep(20_000).then(() => false)])))
      throw new Error('mammatus agent not ready after 20 s');
    console.log(`mammatus agent ready in-process (stream filter ${agent.dispatcher.streamFilter()})`);

    const sender = await SerfClient.connect({ addr: serf.rpcAddr, requestTimeoutMs: 120_000 });
    cleanup.add(() => sender.close());
    const send = (name: string, payload: string) => sender.event(name, Buffer.from(payload), false);

    // Warm-up: one event to each handler (first-call costs: JIT, page cache of sh and date).
    await send('bench', 'warm:0:0');
    await send('benchsh', 'warm:0:0');
    await waitFor(() => seen.has('warm:0:0') && readScriptLog(shLog).length >= 1, 10_000);

    // Reference: a bare RPC stream subscriber for the same events, without the agent's dispatcher.
    // mammatus − raw = the agent's own overhead; raw = what serf + the RPC stream cost anyway.
    const rawClient = await SerfClient.connect({ addr: serf.rpcAddr });
    cleanup.add(() => rawClient.close());
    const rawStream = await rawClient.stream('user:bench');
    const rawSeen = new Map<string, number>();
    void (async () => {
      for await (const ev of rawStream) if (ev.type === 'user') rawSeen.set(ev.payload.toString('utf8'), perfEpoch());
    })().catch(() => undefined);

    // ---- latency phase ----
    const offsetBefore = realtimeOffsetMs();
    const sentAt = new Map<string, number>();
    const pending: Promise<void>[] = [];
    const t0 = perfEpoch() + 50;
    for (let k = 0; k < 2 * LAT_EVENTS; k++) {
      await sleepUntil(t0 + k * (LAT_SPACING_MS / 2));
      const i = k >> 1;
      const name = k % 2 === 0 ? 'bench' : 'benchsh';
      const ts = perfEpoch();
      const payload = `lat:${name}:${i}:${ts.toFixed(3)}`;
      sentAt.set(payload, ts);
      pending.push(send(name, payload));
    }
    const latSend = await Promise.allSettled(pending);
    const latSendErrors = latSend.filter((r) => r.status === 'rejected').length;
    await waitFor(
      () =>
        [...seen.keys()].filter((k) => k.startsWith('lat:')).length >= LAT_EVENTS &&
        readScriptLog(shLog).filter((l) => l.payload.startsWith('lat:')).length >= LAT_EVENTS,
      30_000,
    );
    const offsetAfter = realtimeOffsetMs();
    const offset = (offsetBefore + offsetAfter) / 2;
    const mamLat: number[] = [];
    for (const [p, t] of seen) if (p.startsWith('lat:')) mamLat.push(t - sentAt.get(p)!);
    const shLat: number[] = [];
    for (const l of readScriptLog(shLog)) if (l.payload.startsWith('lat:')) shLat.push(l.realtimeMs - offset - sentAt.get(l.payload)!);
    const rawLat: number[] = [];
    for (const [p, t] of rawSeen) if (p.startsWith('lat:')) rawLat.push(t - sentAt.get(p)!);
    rawStream.stop(); // the throughput phase runs with the agent's stream only
    const rawS = summarize(rawLat);
    const mamS = summarize(mamLat);
    const shS = summarize(shLat);
    const ratio = shS.median / mamS.median;
    console.log(`\nlatency phase: ${LAT_EVENTS} events per name, ${LAT_SPACING_MS} ms apart per name (send errors: ${latSendErrors})`);
    console.log(
      `  clock offset realtime-monotonic: before ${offsetBefore.toFixed(3)} ms, after ${offsetAfter.toFixed(3)} ms (drift ${(offsetAfter - offsetBefore).toFixed(3)} ms)`,
    );
    console.log(`  mammatus handler start − send: ${fmtSummary(mamS)}`);
    console.log(`  serf script start − send:      ${fmtSummary(shS)}`);
    console.log(`  (reference) bare RPC stream record − send: ${fmtSummary(rawS)}`);
    console.log(`  → mammatus dispatch overhead over the bare stream: median ${(mamS.median - rawS.median).toFixed(3)} ms`);
    console.log(`  ratio serf-script median / mammatus median: ${ratio.toFixed(1)}x`);
    goals.check('latency ratio (serf script median / mammatus median)', ratio >= RATIO_GOAL, round(ratio, 1), `>= ${RATIO_GOAL}`);
    goals.check('mammatus saw every latency event', mamS.n === LAT_EVENTS, mamS.n, `= ${LAT_EVENTS}`);

    // ---- throughput phase ----
    const offer = async (name: string) => {
      const ticks = (TP_SECONDS * 1000) / TP_TICK_MS; // 500 ticks
      const perTick = (TP_RATE * TP_TICK_MS) / 1000; // of 10 events
      const sends: Promise<void>[] = [];
      const start = perfEpoch() + 20;
      let offered = 0;
      const acks = { n: 0, lastMs: NaN };
      for (let j = 0; j < ticks; j++) {
        await sleepUntil(start + j * TP_TICK_MS);
        if (perfEpoch() - start > 2 * TP_SECONDS * 1000) break; // hard time bound
        for (let q = 0; q < perTick; q++) {
          const p = send(name, `tp:${name}:${offered}:${perfEpoch().toFixed(3)}`);
          p.then(
            () => {
              acks.n++;
              acks.lastMs = perfEpoch() - start;
            },
            () => undefined,
          );
          sends.push(p);
          offered++;
        }
      }
      const offerMs = perfEpoch() - start;
      return { offered, offerMs, sends, start, acks };
    };

    // mammatus
    const mamSeenTp = () => [...seen.keys()].filter((k) => k.startsWith('tp:')).length;
    const mo = await offer('bench');
    const moSettled = await Promise.race([Promise.allSettled(mo.sends), sleep(60_000).then(() => undefined)]);
    const moAccepted = moSettled ? moSettled.filter((r) => r.status === 'fulfilled').length : NaN;
    await waitFor(() => mamSeenTp() >= mo.offered, 60_000);
    await sleep(500); // anything late or duplicated
    const mamSeen = mamSeenTp();
    const mamTimes = [...seen.entries()].filter(([k]) => k.startsWith('tp:')).map(([, t]) => t);
    const mamLastMs = mamTimes.length ? Math.max(...mamTimes) - mo.start : NaN;
    const stats = agent.dispatcher.stats;
    console.log(
      `\nthroughput phase, mammatus (user:bench): offered ${mo.offered} in ${mo.offerMs.toFixed(0)} ms (${((mo.offered / mo.offerMs) * 1000).toFixed(0)}/s), ` +
        `accepted by serf ${moAccepted}, the last RPC answer ${mo.acks.lastMs.toFixed(0)} ms after the first send`,
    );
    console.log(
      `  handler saw ${mamSeen}/${mo.offered}; last one ${mamLastMs.toFixed(0)} ms after the first send; dispatcher dropped ${stats.dropped}, duplicates ${stats.duplicates}`,
    );
    goals.check('mammatus handler saw every throughput event', mamSeen === mo.offered, `${mamSeen}/${mo.offered}`, 'all');

    // serf script
    const so = await offer('benchsh');
    const scriptProgress: { t: number; n: number }[] = [];
    const waitStart = perfEpoch();
    // While the script backlog drains, probe the mammatus handler once a second: serf runs
    // handlers one event at a time, so the backlog delays the RPC stream too.
    const probeSent = new Map<string, number>();
    let probeNo = 0;
    await waitFor(
      () => {
        const n = countLines(shLog);
        scriptProgress.push({ t: perfEpoch() - so.start, n });
        if (n < so.offered && scriptProgress.length % 2 === 0) {
          const payload = `probe:${probeNo++}:${perfEpoch().toFixed(3)}`;
          probeSent.set(payload, perfEpoch());
          void send('bench', payload).catch(() => undefined);
        }
        return n >= so.offered;
      },
      SCRIPT_WAIT_MS,
      500,
    );
    const shSeen = countLines(shLog);
    const shWaitedMs = perfEpoch() - waitStart;
    const acceptedNow = so.acks.n;
    // Drain rate of the script handler: lines per second over the wait.
    const first = scriptProgress[0];
    const last = scriptProgress[scriptProgress.length - 1];
    const shRate = ((last.n - first.n) / Math.max(1, last.t - first.t)) * 1000;
    await waitFor(() => [...probeSent.keys()].every((k) => seen.has(k)), 10_000);
    const probeLat = [...probeSent].filter(([k]) => seen.has(k)).map(([k, t]) => seen.get(k)! - t);
    const probeS = summarize(probeLat);
    const serfLog = readFileSync(serf.logFile, 'utf8');
    const serfDrops = (serfLog.match(/Dropping event/g) ?? []).length;
    const serfSlow = (serfLog.match(/took longer than|Script .* slow/g) ?? []).length;
    console.log(
      `\nthroughput phase, serf script (user:benchsh): offered ${so.offered} in ${so.offerMs.toFixed(0)} ms (${((so.offered / so.offerMs) * 1000).toFixed(0)}/s)`,
    );
    console.log(
      `  script saw ${shSeen}/${so.offered} within ${(so.offerMs + shWaitedMs).toFixed(0)} ms of the first send (bounded wait ${SCRIPT_WAIT_MS / 1000} s after offering); ` +
        `${acceptedNow} event RPCs answered by then, the last ${so.acks.lastMs.toFixed(0)} ms after the first send; script drain rate ≈ ${shRate.toFixed(0)}/s; serf log: ${serfDrops} 'Dropping event', ${serfSlow} slow-script warnings`,
    );

    console.log(
      `  mammatus probes sent during that backlog (1/s): ${fmtSummary(probeS, 'ms', 0)}, ${probeLat.length}/${probeSent.size} seen`,
    );

    // Reference: what one \`$(date +%s%N)\` costs in /bin/sh here (fork + exec of date), i.e. the part
    // of the script latency spent reading the clock after /bin/sh has started.
    const dateCost = summarize(
      execFileSync('/bin/sh', ['-c', 'i=0; while [ $i -lt 50 ]; do a=$(date +%s%N); b=$(date +%s%N); echo $((b-a)); i=$((i+1)); done'], {
        encoding: 'utf8',
      })
        .trim()
        .split('\n')
        .map((x) => Number(x) / 1e6),
    );
    console.log(`\nreference: one $(date +%s%N) in /bin/sh: ${fmtSummary(dateCost)}`);

    emitJson({
      bench: 'dispatch',
      machine: m,
      latency: {
        events_per_name: LAT_EVENTS,
        spacing_ms: LAT_SPACING_MS,
        mammatus_ms: mapRound(mamS),
        serf_script_ms: mapRound(shS),
        bare_rpc_stream_ms: mapRound(rawS),
        ratio_median: round(ratio, 2),
        clock_drift_ms: round(offsetAfter - offsetBefore),
        send_errors: latSendErrors,
        sh_date_substitution_ms: mapRound(dateCost),
      },
      throughput: {
        offered_rate_per_s: TP_RATE,
        mammatus: {
          offered: mo.offered,
          offer_ms: round(mo.offerMs, 0),
          accepted: moAccepted,
          seen: mamSeen,
          last_seen_after_ms: round(mamLastMs, 0),
          dropped: stats.dropped,
        },
        serf_script: {
          offered: so.offered,
          offer_ms: round(so.offerMs, 0),
          seen_within_bound: shSeen,
          bound_ms: round(so.offerMs + shWaitedMs, 0),
          rpc_answered: acceptedNow,
          last_rpc_answer_after_ms: round(so.acks.lastMs, 0),
          drain_rate_per_s: round(shRate, 0),
          serf_dropping_event_lines: serfDrops,
          mammatus_probe_latency_during_backlog_ms: mapRound(probeS),
        },
      },
      goals: goals.results,
    });
    return 0;
  } finally {
    await cleanup.run();
  }
}

function mapRound(s: ReturnType<typeof summarize>): Record<string, number> {
  return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, round(v as number)]));
}

runMain('dispatch', main);
