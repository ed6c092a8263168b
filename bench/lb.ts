/**
 * Issue 21, the gateway's load balancer: what HAProxy in front of a backend costs, and how long a
 * target change takes to reach traffic. Runs the bed of scripts/lib/lb-gateway-bed.ts (root): a real
 * nats-server with the registry, the gateway agent in this process from the sources (real serf)
 * running the real HAProxy in the gateway namespace, busybox httpd backends on the LAN.
 *
 * (a) Throughput: requests/s and p99 from the WAN client (`up`) through the balancer, for a balancer
 *     of one target and one of three, against the same one backend straight from a LAN client
 *     (`cl`, one bridge hop), in the same run: interleaved rounds, medians, ratios. The load is wrk
 *     (`-t1 -cCONNS`, bounded in time) when installed, else scripts/lib/http-load.ts (bounded in count).
 * (b) Target change → traffic: an instance gets the balancer's tag in the registry (and loses it);
 *     a probe on the WAN side sends GETs without keep-alive at a fixed rate throughout. Timed: the
 *     registry write → the agent's feed reporting it → the agent's runtime API call done (its log
 *     line) → the first request the new target answered (removal: the last one the old target
 *     answered). Baseline, interleaved: the same add/remove made straight on HAProxy's runtime API
 *     (the agent's own client, `HaproxyRuntime`) for another backend.
 *
 * Knobs: BENCH_LB_ROUNDS (3), BENCH_LB_SECONDS (5, per wrk run), BENCH_LB_CONNS (16),
 * BENCH_LB_REQUESTS (20000, per run without wrk), BENCH_LB_CHANGES (5 add/remove cycles each way),
 * BENCH_LB_PROBE_RATE (400 req/s), BENCH_LB_TOOL (`wrk` or `node`, default wrk when on PATH).
 */
import { HaproxyRuntime } from '../roles/gateway/lb/haproxy-runtime.js';
import { backendName } from '../roles/gateway/lb/names.js';
import { HAPROXY_DEFAULTS, serverOptions } from '../roles/gateway/lb/render-haproxy.js';
import { findOnPath } from '../scripts/lib/daemon.js';
import { runLoadInNetns, type LoadResult } from '../scripts/lib/http-load.js';
import { lbGatewaySkip, startLbGateway, type LbGateway } from '../scripts/lib/lb-gateway-bed.js';
import type { NsKey } from '../scripts/lib/netns-bed.js';
import { sleep, until } from '../scripts/lib/wait.js';
import { Cleanup, emitJson, Goals, machine, median, printMachine, round, runMain } from './lib.js';
import { changeStats, type ChangeTimes } from './lb-change.js';
import { parseWrk } from './wrk.js';

const env = (name: string, dflt: number) => Number(process.env[name] ?? dflt);
const ROUNDS = env('BENCH_LB_ROUNDS', 3);
const SECONDS = env('BENCH_LB_SECONDS', 5);
const CONNS = env('BENCH_LB_CONNS', 16);
const REQUESTS = env('BENCH_LB_REQUESTS', 20_000);
const CHANGES = env('BENCH_LB_CHANGES', 5);
const PROBE_RATE = env('BENCH_LB_PROBE_RATE', 400);
const TOOL = process.env.BENCH_LB_TOOL ?? (findOnPath('wrk') ? 'wrk' : 'node');

/** The solo balancer's one target, the pool's three, the target the agent adds, the baseline's. */
const BACKENDS = { t1: '10.88.0.31', t2: '10.88.0.32', t3: '10.88.0.33', n1: '10.88.0.41', n2: '10.88.0.42' } as const;
const CL_ADDR = '10.88.0.50';

interface Rate {
  rps: number;
  p99: number;
  errors: number;
  /** Connections the backends' namespace dropped because a listen queue was full (TcpExt ListenOverflows). */
  overflows?: number;
}

/** TcpExt ListenOverflows of the backends' namespace (`ctl`). */
async function listenOverflows(gw: LbGateway): Promise<number> {
  const lines = (await gw.bed.exec('ctl', ['cat', '/proc/net/netstat'])).stdout.split('\n').filter((l) => l.startsWith('TcpExt:'));
  const [names, values] = lines.map((l) => l.split(/\s+/));
  return Number(values?.[names?.indexOf('ListenOverflows') ?? -1] ?? NaN);
}

/** One bounded load from `ns`: wrk for SECONDS, or the node client for REQUESTS. */
async function measure(gw: LbGateway, ns: NsKey, url: string, host: string, seconds = SECONDS): Promise<Rate> {
  if (TOOL === 'wrk') {
    const argv = ['wrk', '-t1', `-c${CONNS}`, `-d${seconds}s`, '--latency', '-H', `Host: ${host}`, url];
    const r = await gw.bed.exec(ns, argv, { timeoutMs: (seconds + 20) * 1000 });
    if (r.code !== 0) throw new Error(`wrk exited ${r.code}: ${r.stderr}`);
    const w = parseWrk(r.stdout);
    const sockets = /(\d+)/g.exec(w.socketErrors) ? [...w.socketErrors.matchAll(/(\d+)/g)].reduce((a, m) => a + Number(m[1]), 0) : 0;
    return { rps: w.rps, p99: w.p99, errors: w.non2xx + sockets };
  }
  const total = Math.round((REQUESTS * seconds) / SECONDS);
  // A spread of ~0 s: every worker sends as fast as answers come (closed loop), bounded by the count.
  const r = await runLoadInNetns(gw.bed.ns[ns], { url, host, total, seconds: 0.001, workers: CONNS, keepAliveShare: 1 });
  const sorted = [...r.latencyMs].sort((a, b) => a - b);
  return { rps: r.ok / ((r.ended - r.started) / 1000), p99: sorted[Math.ceil(sorted.length * 0.99) - 1] ?? NaN, errors: r.sent - r.ok };
}

async function throughput(gw: LbGateway, goals: Goals): Promise<Record<string, unknown>> {
  const wan = `http://${gw.bed.addrs.gwWan}/`;
  const targets: { key: string; ns: NsKey; url: string; host: string }[] = [
    { key: 'direct', ns: 'cl', url: `http://${BACKENDS.t1}:8080/`, host: 'solo.test' },
    { key: 'balancer (1 target)', ns: 'up', url: wan, host: 'solo.test' },
    { key: 'balancer (3 targets)', ns: 'up', url: wan, host: 'pool.test' },
  ];
  console.log(
    `\n(a) throughput: ${TOOL === 'wrk' ? `wrk -t1 -c${CONNS} -d${SECONDS}s` : `node client, ${CONNS} keep-alive workers, ${REQUESTS} requests`}, ${ROUNDS} rounds`,
  );
  for (const t of targets) await measure(gw, t.ns, t.url, t.host, 1); // warm-up, not counted
  const runs = new Map<string, Rate[]>(targets.map((t) => [t.key, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const t of round % 2 ? [...targets].reverse() : targets) {
      const before = await listenOverflows(gw);
      const r = { ...(await measure(gw, t.ns, t.url, t.host)), overflows: (await listenOverflows(gw)) - before };
      runs.get(t.key)!.push(r);
      console.log(
        `  round ${round + 1} ${t.key.padEnd(21)} ${r.rps.toFixed(0).padStart(6)} req/s  p99 ${r.p99.toFixed(2)} ms  errors ${r.errors}  backend listen overflows ${r.overflows}`,
      );
    }
  }
  const med = Object.fromEntries(
    [...runs].map(([k, rs]) => [
      k,
      {
        rps: median(rs.map((r) => r.rps)),
        p99: median(rs.map((r) => r.p99)),
        errors: rs.reduce((a, r) => a + r.errors, 0),
        overflows: median(rs.map((r) => r.overflows ?? NaN)),
      },
    ]),
  );
  const d = med.direct;
  for (const k of ['balancer (1 target)', 'balancer (3 targets)']) {
    const m = med[k];
    console.log(
      `  median ${k}: ${m.rps.toFixed(0)} req/s (${(m.rps / d.rps).toFixed(2)} × direct), p99 ${m.p99.toFixed(2)} ms (${(m.p99 / d.p99).toFixed(2)} × direct)`,
    );
  }
  const counters = await backendCounters(gw);
  console.log(`  HAProxy backend counters after (a): ${JSON.stringify(counters)}`);
  const one = med['balancer (1 target)'];
  goals.check('balancer req/s ÷ direct (1 target)', one.rps / d.rps >= 0.5, one.rps / d.rps, '≥ 0.5');
  goals.check('balancer p99 ÷ direct (1 target)', one.p99 / d.p99 <= 2, one.p99 / d.p99, '≤ 2');
  goals.check(
    'errors under load',
    Object.values(med).every((m) => m.errors === 0),
    Object.values(med).reduce((a, m) => a + m.errors, 0),
    '0',
  );
  return { tool: TOOL, conns: CONNS, seconds: SECONDS, rounds: ROUNDS, medians: med, counters };
}

/** Per backend of ours, HAProxy's connection errors, retries and redispatches (`show stat`). */
async function backendCounters(gw: LbGateway): Promise<Record<string, Record<string, string>>> {
  const [head, ...rows] = (await new HaproxyRuntime(gw.adminSocket).command('show stat')).split('\n').filter(Boolean);
  const cols = head.replace(/^# /, '').split(',');
  const out: Record<string, Record<string, string>> = {};
  for (const row of rows.map((r) => r.split(','))) {
    const get = (c: string) => row[cols.indexOf(c)];
    if (get('svname') !== 'BACKEND' || !get('pxname').startsWith('lb_')) continue;
    out[get('pxname')] = Object.fromEntries(
      ['stot', 'econ', 'eresp', 'wretr', 'wredis', 'qtime', 'ctime', 'rtime'].map((c) => [c, get(c)]),
    );
  }
  return out;
}

/** Waits until `server` of `backend` is up (or, `gone`, deleted or in maintenance); bounded. */
async function settled(runtime: HaproxyRuntime, backend: string, server: RegExp, gone: boolean): Promise<void> {
  await until(
    `${server.source} ${gone ? 'out' : 'up'}`,
    async () => {
      const s = (await runtime.serversState(backend)).find((x) => server.test(x.server));
      return gone ? !s || (s.adminState & 1) === 1 : Boolean(s?.up);
    },
    { timeoutMs: 10_000, everyMs: 20 },
  );
}

async function targetChanges(gw: LbGateway, feedTimes: number[], goals: Goals): Promise<Record<string, unknown>> {
  const backend = backendName({ name: 'solo' });
  const runtime = new HaproxyRuntime(gw.adminSocket);
  const seconds = CHANGES * 4 * 1.6 + 4;
  console.log(
    `\n(b) target change → traffic: ${CHANGES} cycles (agent add, remove; runtime API add, remove), probe ${PROBE_RATE} req/s for ${seconds.toFixed(0)} s`,
  );
  const agentLog = (server: RegExp, op: string, after: number) =>
    gw.logs.find((l) => Number(l.time) >= after && l.op === op && server.test(String(l.server)) && /haproxy server/.test(String(l.msg)));
  const agent: ChangeTimes[] = [];
  const direct: ChangeTimes[] = [];
  let began = 0;
  const probe = runLoadInNetns(
    gw.bed.ns.up,
    {
      url: `http://${gw.bed.addrs.gwWan}/`,
      host: 'solo.test',
      total: Math.round(PROBE_RATE * seconds),
      seconds,
      workers: 4,
      keepAliveShare: 0,
      timeoutMs: 2000,
    },
    () => (began = Date.now()),
  );
  await until('the probe started', () => began > 0, 15_000);
  await sleep(1000);
  for (let i = 0; i < CHANGES && Date.now() < began + (seconds - 6) * 1000; i++) {
    for (const op of ['add', 'remove'] as const) {
      const write = Date.now();
      await gw.running('n1', op === 'add' ? { solo: 'y' } : {});
      await settled(runtime, backend, /n1/, op === 'remove');
      const logged = await until('the agent logged its runtime change', () => agentLog(/n1/, op, write), 10_000);
      agent.push({ op, target: 'n1', write, feed: feedTimes.find((t) => t >= write), applied: Number(logged.time) });
      await sleep(300);
    }
    for (const op of ['add', 'remove'] as const) {
      const write = Date.now();
      if (op === 'add') await runtime.addServer(backend, 'bench-n2', `${BACKENDS.n2}:8080`, serverOptions(HAPROXY_DEFAULTS));
      else await runtime.removeServer(backend, 'bench-n2');
      direct.push({ op, target: 'n2', write, applied: Date.now() });
      await settled(runtime, backend, /bench-n2/, op === 'remove');
      await sleep(300);
    }
  }
  const result: LoadResult = await probe;
  const stats = changeStats(result, agent, direct);
  for (const line of stats.lines) console.log(`  ${line}`);
  const addMs = stats.agent.add.total;
  goals.check('registry write → first request served by the added target (median)', addMs < 1000, addMs, '< 1000 ms');
  goals.check(
    'registry write → last request served by the removed target (median)',
    stats.agent.remove.total < 1000,
    stats.agent.remove.total,
    '< 1000 ms',
  );
  goals.check('probe requests failed', result.failures.length === 0, result.failures.length, '0');
  return { probe: { sent: result.sent, ok: result.ok, failures: result.failures.slice(0, 5) }, ...stats };
}

async function main(): Promise<number> {
  const skip = lbGatewaySkip() ?? (TOOL === 'wrk' && !findOnPath('wrk') ? 'wrk is missing' : undefined);
  if (skip) {
    console.error(`lb benchmark cannot run: ${skip}`);
    return 2;
  }
  const m = machine();
  printMachine(m);
  const cleanup = new Cleanup();
  const goals = new Goals();
  const feedTimes: number[] = [];
  try {
    const gw = await startLbGateway({
      prefix: 'lbb',
      backends: BACKENDS,
      tags: { t1: { solo: 'y', pool: 'y' }, t2: { pool: 'y' }, t3: { pool: 'y' }, n1: {} },
      logLevel: 'info',
      onFeedChange: () => feedTimes.push(Date.now()),
    });
    cleanup.add(() => gw.destroy());
    for (const [name, host, tag] of [
      ['solo', 'solo.test', 'solo'],
      ['pool', 'pool.test', 'pool'],
    ]) {
      const r = await gw.cli(...`lb create ${name} --listen 80 --mode http --host ${host} --target tag:${tag}=y:8080`.split(' '));
      if (r.code !== 0) throw new Error(`lb create ${name}: ${r.out}`);
    }
    await gw.bed.exec('cl', ['ip', 'link', 'set', gw.bed.ifaces.clLan, 'up']);
    await gw.bed.exec('cl', ['ip', 'addr', 'add', `${CL_ADDR}/24`, 'dev', gw.bed.ifaces.clLan]);
    await until(
      'both balancers served',
      async () => {
        const a = await gw.bed.curl('up', `http://${gw.bed.addrs.gwWan}/`, { timeoutS: 2, args: ['-H', 'Host: pool.test'] });
        const b = await gw.bed.curl('up', `http://${gw.bed.addrs.gwWan}/`, { timeoutS: 2, args: ['-H', 'Host: solo.test'] });
        return a.status === 200 && b.status === 200;
      },
      20_000,
    );
    const a = await throughput(gw, goals);
    const b = await targetChanges(gw, feedTimes, goals);
    emitJson({
      bench: 'lb',
      machine: m,
      loadavgEnd: round(Number((await import('node:os')).loadavg()[0]), 2),
      throughput: a,
      changes: b,
      goals: goals.results,
    });
    return 0;
  } finally {
    await cleanup.run();
  }
}

runMain('lb', main);
