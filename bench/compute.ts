/**
 * Compute launch: from `mammatus instance launch` to "cloud-init done" inside the container, for one
 * instance and for a batch launched at once on one node, and how much of that time is the agent's
 * own (everything but LXD's requests and the container's boot). Baseline in the same run: the same
 * containers created and started directly against LXD's REST API (what `lxc launch` does), with the
 * same image, profiles, MAC pinning and cloud-init detection.
 *
 *   npx tsx bench/compute.ts        # as root: network namespaces and an LXD daemon of its own; ~7 min
 *
 * Set-up (the topology of test/integration/compute.test.ts, netns prefix `bcm`): the gateway bed
 * (`buildGatewayBed`) with the gateway agent in this process (dnsmasq DHCP/DNS and the metadata
 * proxy in `gw`), the controller host `ctl` (nats-server and `metadata serve`, reached through a
 * unix-socket bridge), a compute node namespace with its own LXD (`startLxdNode`, private LXD_DIR,
 * dir pool), the cached image of scripts/build-image.sh imported with `image import`'s code. The
 * compute agent is NOT in this process: it is the bundle, `node dist/mammatus.mjs agent`, as its own
 * process next to its own serf agent (`cn1`, tag role=compute), with `roles.compute` pointing at the
 * registry and at an LXD socket that is a proxy run by this benchmark (below), so its CPU can be
 * read from /proc on its own. Launches go through the CLI code in this process
 * (`runCli(['instance','launch',…,'--node','cn1'])`, as the test does; BENCH_CM_CLI=bundle spawns
 * `node dist/mammatus.mjs instance launch …` per instance instead, which adds Node's start-up),
 * with `--rpc-addr` at cn1's serf agent: the launch's check of the named node (a
 * `mammatus.capacity` Serf query the agent answers) is part of the measured path, as when the
 * command runs on a cluster node.
 *
 * Timing, per instance, all on one clock (performance.timeOrigin + performance.now(), epoch ms):
 *   t0 launch command started → t1 CLI returned (record written, state running)
 *   → create requested (the agent's POST /1.0/instances) → created (its operation's wait returned)
 *   → start requested (PUT …/state) → started (that operation's wait returned)
 *   → address in the registry (a KV watch in this process) → user-data `runcmd` ran → cloud-init done.
 * "cloud-init done" is a signal the instance sends itself: its user-data `runcmd` asks systemd for a
 * transient path unit (`systemd-run --path-property=PathExists=/run/cloud-init/result.json`), whose
 * service curls `http://10.88.0.10:8099/done/<name>` once cloud-init writes result.json, the last
 * thing it does (inotify in the container's systemd: no polling, no `lxc exec`). A tiny HTTP listener
 * in `ctl` (10.88.0.10, inside the bed) stamps each request on arrival. After each run,
 * `lxc exec NAME -- cloud-init status` (untimed) checks that every instance says `done`.
 *
 * LXD time is measured outside the agent: the agent's `lxd.socket` is a unix-socket proxy in this
 * process that pipes bytes to the real LXD socket unchanged and parses just enough HTTP/1.1
 * (Content-Length and chunked bodies; no pipelining, which node's http client never does) to stamp
 * each request's first byte and its response's last byte, including the long
 * `GET /1.0/operations/<id>/wait` calls. Per instance: LXD = the union of every LXD request of the
 * agent in flight between t1 (the CLI returned) and "started" (in a batch that includes other
 * instances' requests the agent waits behind); boot = started → cloud-init done; ours = the rest of
 * t0 → cloud-init done: the whole CLI (it never waits on LXD), the registry and the agent noticing
 * and planning, the gaps between requests. Share = ours / total. The direct baseline goes through
 * a second proxy of the same kind, so both pay the same extra hop, and its "ours" (client-side time
 * between LXD's requests) checks the method: ≈ 0.
 *
 * Runs: a warm-up launch through mammatus (untimed; LXD's first create from a new image is the
 * slowest); an idle window (agent CPU with nothing to do); BENCH_CM_SINGLE_RUNS single launches
 * each way, alternating which goes first; then BENCH_CM_BATCH instances at once each way,
 * BENCH_CM_BATCH_RUNS times, alternating which goes first. Between runs everything is deleted
 * (mammatus instances with `instance delete`, direct ones through LXD), the agent is let go quiet,
 * `sync` runs, and the benchmark waits (at most 10 s) for a second with the machine < 30 % busy.
 * The direct baseline's instances are registered (no node) before their run so the metadata
 * service serves them the same user-data; the compute agent lists them as unmanaged and leaves
 * them alone.
 *
 * CPU: utime+stime of the compute agent process (the bundle; it does nothing else) from /proc over
 * each run's window (first launch → last cloud-init done). Beside it, for reference: its serf agent,
 * the LXD daemon (with its reaped children: tar, forkstart …), this process (proxy, in-process CLI,
 * gateway agent, registry watch) and the whole machine (/proc/stat).
 *
 * Goals (issue 7): the agent's share < 5 %: for one instance (median of the single runs) and for
 * the batch (its critical path: the instance that finished last). Reported: total, LXD, boot, ours
 * per instance (p50/max in the batch), the batch's wall time, mammatus / direct ratios.
 *
 * Knobs: BENCH_CM_SINGLE_RUNS (3), BENCH_CM_BATCH (10), BENCH_CM_BATCH_RUNS (2), BENCH_CM_CLI
 * (inprocess | bundle), BENCH_CM_IDLE_S (10), BENCH_CM_DEADLINE_S (900: the whole benchmark is
 * stopped and cleaned up after this). Every process, namespace and container it creates is removed
 * at the end, also on error and on Ctrl-C. Prints a readable report with PASS/MISS, then one JSON
 * line {"bench":"compute",…}.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import pino from 'pino';
import { runCli } from '../agent/cli/program.js';
import { imageImportCommand } from '../agent/cli/image.js';
import { parseComputeConfig } from '../roles/compute/config.js';
import { LxdClient } from '../src/lxd/client.js';
import { renderInstanceCreate } from '../roles/compute/preseed.js';
import { startMammatusAgent, type MammatusAgent } from '../scripts/lib/mammatus-agent.js';
import { natsServerAvailable } from '../scripts/lib/nats-server.js';
import { serfAvailable, startSerfAgent, type SerfAgent } from '../scripts/lib/serf-agent.js';
import { InstanceRegistry } from '../src/registry/registry.js';
import { RegistryView } from '../src/registry/view.js';
import { connectNats } from '../core/nats.js';
import { startBedGateway, startControllerHost } from '../scripts/lib/metadata-bed.js';
import { buildGatewayBed, canUseNetns, missingTools } from '../scripts/lib/netns-bed.js';
import { startLxdNode, type LxdNode } from '../scripts/lib/lxd-netns.js';
import {
  BUNDLE,
  Cleanup,
  clkTck,
  cpuTicks,
  emitJson,
  ensureBundle,
  Goals,
  machine,
  median,
  printMachine,
  ROOT,
  round,
  runMain,
  tempDir,
} from './lib.js';
import { sleep, waitFor } from '../scripts/lib/wait.js';

const int = (name: string, fallback: number) => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(v) || v < 0) throw new Error(`${name} must be a whole number`);
  return v;
};
const SINGLE_RUNS = int('BENCH_CM_SINGLE_RUNS', 3);
const BATCH = int('BENCH_CM_BATCH', 10);
const BATCH_RUNS = int('BENCH_CM_BATCH_RUNS', 2);
const IDLE_S = int('BENCH_CM_IDLE_S', 10);
const DEADLINE_S = int('BENCH_CM_DEADLINE_S', 900);
const CLI_MODE = process.env.BENCH_CM_CLI === 'bundle' ? 'bundle' : 'inprocess';
const GOAL_SHARE_PCT = 5;
const RUN_TIMEOUT_MS = 300_000; // one run: first launch → every instance done
const ADDR_GRACE_MS = 12_000; // after done, how long to wait for addresses still to be written back (the role polls LXD every 10 s)
const CLEAN_TIMEOUT_MS = 180_000;
const IMAGE_SCRIPT = path.join(ROOT, 'scripts/build-image.sh');
const IMAGE_ALIAS = 'mammatus-bench';
const NODE_NAME = 'cn1';
const SIGNAL_HOST = '10.88.0.10'; // ctl, inside the bed
const SIGNAL_PORT = 8099;
const DONE_FILE = '/run/cloud-init/result.json'; // cloud-init writes it (a symlink) last, at the end of its final stage

/** Epoch milliseconds with sub-millisecond resolution, the one clock of every timestamp here. */
const epoch = () => performance.timeOrigin + performance.now();

// ---------------------------------------------------------------------------------------------
// The LXD socket proxy: bytes piped unchanged, each HTTP exchange stamped.

/** One HTTP exchange with LXD as the proxy saw it. */
interface LxdCall {
  readonly conn: number;
  readonly method: string;
  /** Without the query string. */
  readonly path: string;
  readonly query: string;
  /** First byte of the request, last byte of the response (epoch ms). */
  readonly start: number;
  readonly end: number;
  readonly status: number;
  /** `name` of a create body, `action` of a state change. */
  readonly name?: string;
  readonly action?: string;
  /** The operation an async answer started, or the one a `/wait` waited for. */
  readonly op?: string;
  /** A wait's answer: the operation's status (`Success`, `Running`, `Failure` …). */
  readonly opStatus?: string;
}

interface ParsedResponse {
  consumed: number;
  status: number;
  body: Buffer;
}

/** A complete HTTP/1.1 response at the start of `buf`, or undefined when more bytes are needed. */
function parseResponse(buf: Buffer, method: string): ParsedResponse | undefined {
  const he = buf.indexOf('\r\n\r\n');
  if (he < 0) return undefined;
  const lines = buf.subarray(0, he).toString('latin1').split('\r\n');
  const status = Number(lines[0].split(' ')[1]);
  const headers = new Map<string, string>();
  for (const l of lines.slice(1)) {
    const c = l.indexOf(':');
    if (c > 0) headers.set(l.slice(0, c).trim().toLowerCase(), l.slice(c + 1).trim());
  }
  let i = he + 4;
  if (method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200))
    return { consumed: i, status, body: Buffer.alloc(0) };
  if (/chunked/i.test(headers.get('transfer-encoding') ?? '')) {
    const parts: Buffer[] = [];
    for (;;) {
      const le = buf.indexOf('\r\n', i);
      if (le < 0) return undefined;
      const size = parseInt(buf.subarray(i, le).toString('latin1').split(';')[0], 16);
      i = le + 2;
      if (size === 0) {
        for (;;) {
          const te = buf.indexOf('\r\n', i);
          if (te < 0) return undefined;
          const empty = te === i;
          i = te + 2;
          if (empty) return { consumed: i, status, body: Buffer.concat(parts) };
        }
      }
      if (buf.length < i + size + 2) return undefined;
      parts.push(buf.subarray(i, i + size));
      i += size + 2;
    }
  }
  const cl = headers.get('content-length');
  if (cl !== undefined) {
    const n = Number(cl);
    return buf.length < i + n ? undefined : { consumed: i + n, status, body: buf.subarray(i, i + n) };
  }
  return undefined; // until the connection closes
}

function jsonOf(text: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Builds the record of one exchange from the request's bytes and the parsed response. */
function toCall(conn: number, start: number, end: number, req: Buffer, res: ParsedResponse | undefined): LxdCall {
  const he = req.indexOf('\r\n\r\n');
  const [method = '?', target = '?'] = req
    .subarray(0, he < 0 ? Math.min(req.length, 2048) : he)
    .toString('latin1')
    .split('\r\n')[0]
    .split(' ');
  const q = target.indexOf('?');
  const p = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? '' : target.slice(q + 1);
  const reqJson = he < 0 ? undefined : jsonOf(req.subarray(he + 4).toString('utf8'));
  const resJson = res ? jsonOf(res.body.toString('utf8')) : undefined;
  const meta = resJson?.metadata as Record<string, unknown> | undefined;
  const waitOp = /^\/1\.0\/operations\/([^/]+)\/wait$/.exec(p)?.[1];
  let op: string | undefined;
  let opStatus: string | undefined;
  if (waitOp) {
    op = decodeURIComponent(waitOp);
    if (typeof meta?.status === 'string') opStatus = meta.status;
  } else if (resJson?.type === 'async' && typeof meta?.id === 'string') op = meta.id;
  return {
    conn,
    method,
    path: p,
    query,
    start,
    end,
    status: res?.status ?? 0,
    ...(typeof reqJson?.name === 'string' && { name: reqJson.name }),
    ...(typeof reqJson?.action === 'string' && { action: reqJson.action }),
    ...(op !== undefined && { op }),
    ...(opStatus !== undefined && { opStatus }),
  };
}

/** A unix-socket proxy in front of LXD that records every exchange. */
class LxdProxy {
  readonly calls: LxdCall[] = [];
  private inflight = 0;
  private last = epoch();
  private conns = 0;
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    readonly socketPath: string,
    private readonly server: net.Server,
  ) {}

  static async start(socketPath: string, target: string): Promise<LxdProxy> {
    const server = net.createServer();
    const proxy = new LxdProxy(socketPath, server);
    server.on('connection', (c) => proxy.handle(c, target));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    return proxy;
  }

  private handle(client: net.Socket, target: string): void {
    const conn = ++this.conns;
    const upstream = net.connect(target);
    this.sockets.add(client).add(upstream);
    let cur: { start: number; req: Buffer[]; size: number } | undefined;
    let res: Buffer = Buffer.alloc(0);
    const finish = (t: number, parsed: ParsedResponse | undefined) => {
      if (!cur) return;
      this.calls.push(toCall(conn, cur.start, t, Buffer.concat(cur.req), parsed));
      cur = undefined;
      this.inflight--;
      this.last = t;
    };
    client.on('data', (d: Buffer) => {
      const t = epoch();
      upstream.write(d);
      if (!cur) {
        cur = { start: t, req: [], size: 0 };
        this.inflight++;
        this.last = t;
      }
      // Bodies the agent sends are small JSON; keep at most 64 KiB of a request for parsing.
      if (cur.size < 65_536) {
        cur.req.push(d);
        cur.size += d.length;
      }
    });
    upstream.on('data', (d: Buffer) => {
      const t = epoch();
      client.write(d);
      if (!cur) return; // nothing asked: cannot happen with HTTP/1.1 without pipelining
      res = res.length ? Buffer.concat([res, d]) : d;
      const method = cur.req.length ? cur.req[0].toString('latin1', 0, 8).split(' ')[0] : 'GET';
      const parsed = parseResponse(res, method);
      if (!parsed) return;
      res = res.subarray(parsed.consumed);
      finish(t, parsed);
    });
    const close = () => {
      if (cur)
        finish(
          epoch(),
          res.length ? { consumed: res.length, status: Number(res.toString('latin1', 9, 12)) || 0, body: Buffer.alloc(0) } : undefined,
        );
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('close', close);
    upstream.on('close', close);
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  }

  /** Resolves once no exchange has been in flight for `quietMs` (false after `timeoutMs`). */
  quiet(quietMs: number, timeoutMs: number): Promise<boolean> {
    return waitFor(() => this.inflight === 0 && epoch() - this.last >= quietMs, timeoutMs, 50);
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

// ---------------------------------------------------------------------------------------------
// The instances' own signals: a tiny HTTP listener in `ctl`.

/** Run as `ip netns exec CTL node -e LISTENER HOST PORT`: prints `URL EPOCH_MS REMOTE` per request. */
const LISTENER = `
const http = require('node:http');
const [host, port] = process.argv.slice(1);
http.createServer((req, res) => {
  const t = performance.timeOrigin + performance.now();
  process.stdout.write(req.url + ' ' + t.toFixed(3) + ' ' + req.socket.remoteAddress + '\\n');
  res.end('ok\\n');
}).listen(Number(port), host, () => process.stdout.write('listening\\n'));
`;

interface Signals {
  readonly runcmd?: number;
  readonly done?: number;
  readonly from?: string;
}

class SignalListener {
  readonly hits = new Map<string, Signals>();
  /** Largest delay between the listener's stamp and this process reading the line (ms): a clock sanity check. */
  maxLagMs = 0;
  private constructor(readonly child: ChildProcess) {}

  static async start(ns: string, cleanup: Cleanup): Promise<SignalListener> {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', LISTENER, SIGNAL_HOST, String(SIGNAL_PORT)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.on('error', () => undefined);
    cleanup.add(() => stopChild(child));
    const l = new SignalListener(child);
    let ready = false;
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line === 'listening') return void (ready = true);
      const [url = '', at = '', from = ''] = line.split(' ');
      const m = /^\/(runcmd|done)\/([a-z0-9-]+)$/.exec(url);
      if (!m) return;
      const t = Number(at);
      l.maxLagMs = Math.max(l.maxLagMs, epoch() - t);
      const prev = l.hits.get(m[2]) ?? {};
      if (prev[m[1] as 'runcmd' | 'done'] === undefined) l.hits.set(m[2], { ...prev, [m[1]]: t, from });
    });
    if (!(await waitFor(() => ready || child.exitCode !== null, 10_000))) throw new Error(`signal listener did not start: ${err}`);
    if (!ready) throw new Error(`signal listener exited: ${err}`);
    return l;
  }
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 3_000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** The user-data of instance NAME: both signals, nothing else. */
function userData(name: string): string {
  const url = (kind: string) => `http://${SIGNAL_HOST}:${SIGNAL_PORT}/${kind}/${name}`;
  return [
    '#cloud-config',
    'runcmd:',
    `  - [curl, -s, -m, "5", -o, /dev/null, "${url('runcmd')}"]`,
    `  - [systemd-run, --no-block, --quiet, --unit=bench-cloud-init-done, "--path-property=PathExists=${DONE_FILE}", /usr/bin/curl, -s, -m, "5", -o, /dev/null, "${url('done')}"]`,
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// CPU readings.

/** utime+stime+cutime+cstime (fields 14–17 of /proc/PID/stat), in ticks; a daemon's reaped helpers count. */
function cpuTicksWithChildren(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
}

function machineTicks(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - (f[3] ?? 0) - (f[4] ?? 0), total };
}

interface CpuSnap {
  at: number;
  agent: number;
  serf: number;
  lxd: number;
  bench: NodeJS.CpuUsage;
  machine: { busy: number; total: number };
}

interface CpuUse {
  /** CPU milliseconds in the window. */
  agentMs: number;
  serfMs: number;
  lxdMs: number;
  benchMs: number;
  /** Percent of one core over the window. */
  agentPct: number;
  /** Share of all CPUs in use over the window. */
  machineBusyPct: number;
  windowMs: number;
}

// ---------------------------------------------------------------------------------------------
// Analysis.

/** Length of the union of `intervals` clipped to [from, to]. */
function unionWithin(intervals: readonly (readonly [number, number])[], from: number, to: number): number {
  const clipped = intervals
    .map(([a, b]) => [Math.max(a, from), Math.min(b, to)] as const)
    .filter(([a, b]) => b > a)
    .sort((x, y) => x[0] - y[0]);
  let sum = 0;
  let cs = -Infinity;
  let ce = -Infinity;
  for (const [a, b] of clipped) {
    if (a > ce) {
      if (ce > cs) sum += ce - cs;
      cs = a;
      ce = b;
    } else ce = Math.max(ce, b);
  }
  if (ce > cs) sum += ce - cs;
  return sum;
}

/** One instance's timeline (epoch ms) and the split of its time. */
interface InstanceTiming {
  name: string;
  t0: number;
  /** The launch command returned (mammatus), or = t0 (direct). */
  t1: number;
  createReq?: number;
  created?: number;
  startReq?: number;
  started?: number;
  addr?: number;
  runcmd?: number;
  done: number;
  totalMs: number;
  /** Inside any LXD request of the agent between t0 and started. */
  lxdMs: number;
  /** Of that, inside this instance's own requests (its create, start and their waits). */
  lxdOwnMs: number;
  bootMs: number;
  oursMs: number;
  /** Ours split: the CLI (t0 → t1), the record → the agent's create request, the rest (between LXD requests). */
  oursCliMs: number;
  oursPickupMs: number;
  oursBetweenMs: number;
  sharePct: number;
}

/** The create and start of `name` in the proxy's records: requested, and its operation's last wait. */
function lxdMilestones(calls: readonly LxdCall[], name: string, after: number) {
  const mine = calls.filter((c) => c.start >= after);
  const create = mine.find((c) => c.method === 'POST' && c.path === '/1.0/instances' && c.name === name);
  const start = mine.find((c) => c.method === 'PUT' && c.path === `/1.0/instances/${name}/state` && c.action === 'start');
  const opEnd = (op: string | undefined) => {
    if (!op) return undefined;
    const waits = mine.filter((c) => c.op === op && c.path.endsWith('/wait'));
    return waits.length ? Math.max(...waits.map((c) => c.end)) : undefined;
  };
  const ops = new Set([create?.op, start?.op].filter((x): x is string => x !== undefined));
  const own = mine.filter((c) => c === create || c === start || (c.op !== undefined && ops.has(c.op) && c.path.endsWith('/wait')));
  return {
    createReq: create?.start,
    created: opEnd(create?.op) ?? create?.end,
    startReq: start?.start,
    started: opEnd(start?.op) ?? start?.end,
    own,
  };
}

function analyse(
  calls: readonly LxdCall[],
  base: { name: string; t0: number; t1: number },
  signals: Signals,
  addr: number | undefined,
): InstanceTiming {
  const { own, ...m } = lxdMilestones(calls, base.name, base.t0);
  const done = signals.done!;
  if (m.started === undefined || m.createReq === undefined) throw new Error(`${base.name}: no create or start of it seen at the LXD proxy`);
  const intervals = calls.map((c) => [c.start, c.end] as const);
  const lxdIn = (from: number, to: number) => unionWithin(intervals, from, to);
  // The CLI never waits on LXD (its Serf check of the node is answered from the agent's memory):
  // t0 → t1 is ours even while other instances' LXD requests are in flight.
  const lxdMs = lxdIn(base.t1, m.started);
  const lxdOwnMs = unionWithin(
    own.map((c) => [c.start, c.end] as const),
    base.t1,
    m.started,
  );
  const totalMs = done - base.t0;
  const bootMs = done - m.started;
  const oursMs = totalMs - lxdMs - bootMs;
  const oursCliMs = base.t1 - base.t0;
  const oursPickupMs = m.createReq - base.t1 - lxdIn(base.t1, m.createReq);
  return {
    ...base,
    ...m,
    addr,
    runcmd: signals.runcmd,
    done,
    totalMs,
    lxdMs,
    lxdOwnMs,
    bootMs,
    oursMs,
    oursCliMs,
    oursPickupMs,
    oursBetweenMs: oursMs - oursCliMs - oursPickupMs,
    sharePct: (100 * oursMs) / totalMs,
  };
}

interface RunResult {
  kind: 'mammatus' | 'direct';
  size: number;
  label: string;
  instances: InstanceTiming[];
  /** First launch → last cloud-init done. */
  wallMs: number;
  /** The instance done last (the batch's critical path). */
  last: InstanceTiming;
  cpu: CpuUse;
  calls: LxdCall[];
  /** 1-minute load average when the run started, and the machine's busy share in the second before (it is shared). */
  load1: number;
  busyBefore: number;
}

const f0 = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(0));
const f1 = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(1));
const f2 = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(2));
const rel = (t: number | undefined, t0: number) => (t === undefined ? 'n/a' : (t - t0).toFixed(0));

function printTimeline(r: RunResult): void {
  console.log(
    `  ${r.label} (load ${f2(r.load1)}, machine ${f0(r.busyBefore)} % busy in the second before): ms from each instance's t0 (launch started)`,
  );
  console.log(
    '    name     cli-ret  create-req  created  start-req  started   addr  runcmd    done |  total    lxd (own)   boot   ours = cli+pickup+between  share',
  );
  for (const i of r.instances) {
    console.log(
      `    ${i.name.padEnd(8)} ${rel(i.t1, i.t0).padStart(7)} ${rel(i.createReq, i.t0).padStart(11)} ${rel(i.created, i.t0).padStart(8)} ${rel(i.startReq, i.t0).padStart(10)} ${rel(i.started, i.t0).padStart(8)} ${rel(i.addr, i.t0).padStart(6)} ${rel(i.runcmd, i.t0).padStart(7)} ${rel(i.done, i.t0).padStart(7)} | ${f0(i.totalMs).padStart(6)} ${f0(i.lxdMs).padStart(6)} (${f0(i.lxdOwnMs).padStart(5)}) ${f0(i.bootMs).padStart(6)} ${f0(i.oursMs).padStart(6)} = ${f0(i.oursCliMs).padStart(3)}+${f0(i.oursPickupMs).padStart(4)}+${f0(i.oursBetweenMs).padStart(4)}        ${f2(i.sharePct).padStart(5)} %`,
    );
  }
  const c = r.cpu;
  console.log(
    `    wall ${f0(r.wallMs)} ms; CPU in the window: agent ${f0(c.agentMs)} ms (${f1(c.agentPct)} % of a core), its serf ${f0(c.serfMs)} ms, LXD daemon ${f0(c.lxdMs)} ms, this process ${f0(c.benchMs)} ms; machine ${f0(c.machineBusyPct)} % busy`,
  );
}

function printCalls(r: RunResult, t0: number): void {
  console.log(`  ${r.label}: LXD requests through the proxy (ms from t0: start +duration)`);
  for (const c of r.calls.filter((x) => x.end >= t0 && x.start <= r.last.done)) {
    const what = `${c.method} ${c.path}${c.query ? `?${c.query}` : ''}${c.name ? ` name=${c.name}` : ''}${c.action ? ` action=${c.action}` : ''}${c.opStatus ? ` → ${c.opStatus}` : ''}`;
    console.log(`    ${f0(c.start - t0).padStart(7)} +${f0(c.end - c.start).padStart(5)}  [${c.conn}] ${c.status} ${what}`);
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const skip =
    canUseNetns() ??
    missingTools(['lxd', 'lxc', 'unshare', 'busybox', 'curl', 'dig', 'dnsmasq', 'iptables-restore']) ??
    (serfAvailable() ? undefined : 'serf is missing') ??
    (natsServerAvailable() ? undefined : 'nats-server is missing');
  if (skip) {
    console.error(`compute benchmark cannot run: ${skip}`);
    return 2;
  }
  ensureBundle();
  const m = machine();
  const hz = clkTck();
  const goals = new Goals();
  const cleanup = new Cleanup();
  const deadline = setTimeout(() => {
    console.error(`\ncompute benchmark: deadline of ${DEADLINE_S} s reached; stopping everything it started`);
    cleanup
      .run()
      .finally(() => process.exit(1))
      .catch(() => process.exit(1));
  }, DEADLINE_S * 1000);
  deadline.unref();
  try {
    console.log(
      `== compute: launch → cloud-init done, mammatus (CLI → registry → compute agent → LXD) vs LXD's API directly; 1 instance × ${SINGLE_RUNS}, ${BATCH} at once × ${BATCH_RUNS} ==`,
    );
    printMachine(m);
    const git = (args: string[]) => {
      try {
        return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
      } catch {
        return '?';
      }
    };
    const dirty = git(['status', '--porcelain', '--', 'roles/compute', 'agent', 'src', 'handlers']).split('\n').filter(Boolean).length;
    console.log(
      `code: ${git(['rev-parse', '--short', 'HEAD'])}${dirty ? ` + ${dirty} uncommitted file(s) under roles/compute, agent, src, handlers` : ''}; bundle ${path.relative(ROOT, BUNDLE)} built ${statSync(BUNDLE).mtime.toISOString()}`,
    );
    const lxdVersion = execFileSync('lxd', ['--version'], { encoding: 'utf8' }).trim();
    const image = execFileSync(IMAGE_SCRIPT, [], { encoding: 'utf8', timeout: 900_000, stdio: ['ignore', 'pipe', 'inherit'] }).trim();
    console.log(`LXD ${lxdVersion}, dir storage; image ${image} (${(statSync(image).size / 1e6).toFixed(0)} MB)`);

    const dir = tempDir('compute', cleanup);
    chmodSync(dir, 0o755); // dnsmasq drops to nobody
    const p = (name: string) => path.join(dir, name);
    const log = pino({ level: 'info' }, pino.destination({ dest: p('bench-side.log'), sync: false, mkdir: true }));

    // The bed, the controller host, the gateway.
    const setup0 = epoch();
    const bed = await buildGatewayBed({ prefix: 'bcm' });
    cleanup.add(() => bed.destroy());
    const host = await startControllerHost(bed, p('ctl'));
    cleanup.add(() => host.close());
    const nc = await (async () => {
      const end = Date.now() + 20_000;
      for (;;) {
        try {
          return await connectNats(host.natsUrl, { name: 'bench', timeoutMs: 2000 });
        } catch (err) {
          if (Date.now() > end) throw err;
          await sleep(300);
        }
      }
    })();
    cleanup.add(() => nc.close().catch(() => undefined));
    const registry = await InstanceRegistry.open(nc);
    const gw = await startBedGateway(bed, p('gw'), host, log.child({ node: 'gw1' }));
    cleanup.add(() => gw.stop());
    if (gw.agent.view.roleStatus().gateway?.state !== 'ok')
      throw new Error(`gateway role not ok: ${JSON.stringify(gw.agent.view.roleStatus().gateway)}`);

    // The compute node with its LXD; the image imported through `image import`'s code.
    const node: LxdNode = await startLxdNode(bed, p('cn'));
    cleanup.add(() => node.destroy());
    // For clean-up and checks, not through a proxy. Every container this benchmark made goes, also
    // after an error: after the compute agent has stopped (it would recreate them), before the node.
    const direct = new LxdClient({ socketPath: node.socket });
    cleanup.add(async () => {
      const left = (await direct.listInstances(false).catch(() => [])).map((i) => i.name);
      await Promise.all(left.map((n) => direct.stopInstance(n, { force: true, timeout: 1 }).catch(() => undefined)));
      await Promise.all(left.map((n) => direct.deleteInstance(n).catch(() => undefined)));
      direct.close();
    });
    const t = epoch();
    const imported = await imageImportCommand(
      image,
      { alias: IMAGE_ALIAS, lxdSocket: node.socket },
      { out: () => undefined, err: (l) => console.error(l) },
    );
    if (imported !== 0) throw new Error('image import failed');
    console.log(`image imported in ${f0(epoch() - t)} ms`);
    const lxdPid = (() => {
      const pids = execFileSync('ip', ['netns', 'pids', node.ns], { encoding: 'utf8' }).split(/\s+/).filter(Boolean).map(Number);
      const daemon = pids.find((pid) => {
        try {
          return (
            readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'lxd' && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('--logfile')
          );
        } catch {
          return false;
        }
      });
      if (daemon === undefined) throw new Error('cannot find the LXD daemon in the node namespace');
      return daemon;
    })();

    // The proxies (one for the agent, one for the direct baseline), the instances' signal listener.
    const agentProxy = await LxdProxy.start(p('lxd-agent.sock'), node.socket);
    cleanup.add(() => agentProxy.close());
    const directProxy = await LxdProxy.start(p('lxd-direct.sock'), node.socket);
    cleanup.add(() => directProxy.close());
    const listener = await SignalListener.start(bed.ns.ctl, cleanup);

    // The bench's own view of the registry: when each instance's address is written back.
    const addrAt = new Map<string, number>();
    const view = RegistryView.start(nc, pino({ level: 'silent' }), 1, () => {
      const t1 = epoch();
      for (const r of view.records()) if (!addrAt.has(r.name) && r.ips.some((ip) => !ip.includes(':'))) addrAt.set(r.name, t1);
    });
    cleanup.add(() => view.stop());

    // The compute agent: its own serf (cn1, role=compute) and the bundle as its own process.
    const serf: SerfAgent = await startSerfAgent({ name: NODE_NAME, dir: p('cn1/serf'), tags: { role: 'compute' } });
    cleanup.add(() => serf.stop());
    mkdirSync(p('cn1'), { recursive: true });
    const agentConfig = p('cn1/agent.yaml');
    writeFileSync(
      agentConfig,
      [
        `state_dir: ${JSON.stringify(p('cn1/state'))}`,
        `serf: { rpc_addr: ${JSON.stringify(serf.rpcAddr)} }`,
        'watch_config: false',
        'log: { level: info }',
        'roles:',
        '  compute:',
        `    parent: ${node.lan}`,
        `    lxd: { socket: ${JSON.stringify(agentProxy.socketPath)} }`,
        `    registry: { nats: [${JSON.stringify(host.natsUrl)}] }`,
        `    paths: { preseed: ${JSON.stringify(p('cn1/compute/preseed.yaml'))} }`,
      ].join('\n') + '\n',
    );
    const env = { ...process.env };
    for (const k of Object.keys(env)) if (k.startsWith('MAMMATUS_')) delete env[k];
    const agent: MammatusAgent = await startMammatusAgent({ dir: p('cn1'), rpcAddr: serf.rpcAddr, configPath: agentConfig, env });
    cleanup.add(() => agent.stop());
    const profileOk = await waitFor(
      async () => (await node.lxc(['profile', 'device', 'get', 'mammatus', 'eth0', 'parent'])).stdout.trim() === node.lan,
      30_000,
      200,
    );
    if (!profileOk) throw new Error(`the compute agent did not set LXD up; see ${agent.logFile}`);
    console.log(
      `set-up ${f0(epoch() - setup0)} ms: bed ${bed.id}, compute agent pid ${agent.pid} (ready in ${f0(agent.startToReadyMs)} ms), serf pid ${serf.process.pid}, LXD pid ${lxdPid}; CLI ${CLI_MODE === 'inprocess' ? 'in this process (runCli)' : 'as node dist/mammatus.mjs per launch'}`,
    );

    const computeCfg = parseComputeConfig({ parent: node.lan, lxd: { socket: directProxy.socketPath } });

    const cpuSnap = (): CpuSnap => ({
      at: epoch(),
      agent: cpuTicks(agent.pid),
      serf: cpuTicks(serf.process.pid!),
      lxd: cpuTicksWithChildren(lxdPid),
      bench: process.cpuUsage(),
      machine: machineTicks(),
    });
    const cpuUse = (a: CpuSnap, b: CpuSnap): CpuUse => {
      const windowMs = b.at - a.at;
      const ms = (ticks: number) => (ticks * 1000) / hz;
      return {
        agentMs: ms(b.agent - a.agent),
        serfMs: ms(b.serf - a.serf),
        lxdMs: ms(b.lxd - a.lxd),
        benchMs: (b.bench.user + b.bench.system - a.bench.user - a.bench.system) / 1000,
        agentPct: (100 * ms(b.agent - a.agent)) / windowMs,
        machineBusyPct: (100 * (b.machine.busy - a.machine.busy)) / (b.machine.total - a.machine.total),
        windowMs,
      };
    };

    const cliIo = (out: string[]) => ({ out: (l: string) => void out.push(l), err: (l: string) => void out.push(l) });
    const cli = async (...argv: string[]): Promise<{ code: number; out: string }> => {
      const out: string[] = [];
      if (CLI_MODE === 'inprocess') {
        const code = await runCli(['--rpc-addr', serf.rpcAddr, ...argv], cliIo(out), {});
        return { code, out: out.join('\n') };
      }
      return new Promise((resolve) => {
        execFile(process.execPath, [BUNDLE, '--rpc-addr', serf.rpcAddr, ...argv], { timeout: 60_000, env: {} }, (err, stdout, stderr) => {
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: `${stdout}${stderr}` });
        });
      });
    };

    const lxdNames = async () => new Set((await direct.listInstances(false)).map((i) => i.name));

    /** Checks, untimed, that cloud-init says done in every instance of a run. */
    const verify = async (names: readonly string[]) => {
      const bad: string[] = [];
      for (const name of names) {
        const r = await node.lxc(['exec', name, '--', 'cloud-init', 'status'], 30_000);
        if (!/status: done/.test(r.stdout)) bad.push(`${name}: ${r.stdout.trim() || r.stderr.trim()}`);
      }
      if (bad.length) throw new Error(`cloud-init not done after the signal: ${bad.join('; ')}`);
    };

    const waitDone = async (names: readonly string[], label: string) => {
      const ok = await waitFor(() => names.every((n) => listener.hits.get(n)?.done !== undefined), RUN_TIMEOUT_MS, 50);
      if (ok) return;
      const missing = names.filter((n) => listener.hits.get(n)?.done === undefined);
      const detail: string[] = [];
      for (const n of missing.slice(0, 3))
        detail.push(`${n}: ${(await node.lxc(['exec', n, '--', 'cloud-init', 'status', '--long'], 20_000)).stdout.trim() || 'no answer'}`);
      throw new Error(
        `${label}: no "cloud-init done" signal from ${missing.join(', ')} within ${RUN_TIMEOUT_MS / 1000} s\n${detail.join('\n')}`,
      );
    };

    /**
     * Before a run: the agent quiet (no LXD request for 1.5 s), dirty pages written (`sync`: the
     * last run's deletes and unpacks), then up to 10 s for a second with the machine < 30 % busy
     * (our own aftermath calms in seconds; others' work on a shared machine may not): resolves
     * with that last second's busy share.
     */
    const settle = async (): Promise<number> => {
      await agentProxy.quiet(1500, 30_000);
      try {
        execFileSync('sync', [], { timeout: 60_000 });
      } catch {
        /* bounded; go on */
      }
      const from = epoch();
      let busy = 100;
      while (epoch() - from < 10_000) {
        const a = machineTicks();
        await sleep(1000);
        const b = machineTicks();
        busy = (100 * (b.busy - a.busy)) / Math.max(1, b.total - a.total);
        if (busy < 30) break;
      }
      return busy;
    };

    /** Launches `names` through mammatus, all at once; resolves when every one said done. */
    const runMammatus = async (names: readonly string[], label: string): Promise<RunResult> => {
      for (const n of names) writeFileSync(p(`ud-${n}`), userData(n));
      const busyBefore = await settle();
      const load1 = os.loadavg()[0];
      const c0 = cpuSnap();
      const callsFrom = agentProxy.calls.length;
      const launched = await Promise.all(
        names.map(async (name) => {
          const t0 = epoch();
          const r = await cli(
            'instance',
            'launch',
            name,
            '--image',
            IMAGE_ALIAS,
            '--node',
            NODE_NAME,
            '--user-data',
            p(`ud-${name}`),
            '--nats',
            host.natsUrl,
          );
          const t1 = epoch();
          if (r.code !== 0) throw new Error(`instance launch ${name}: exit ${r.code}: ${r.out}`);
          if (/warning/i.test(r.out))
            console.log(
              `  instance launch ${name} warned: ${r.out
                .split('\n')
                .filter((l) => /warning/i.test(l))
                .join(' | ')}`,
            );
          return { name, t0, t1 };
        }),
      );
      await waitDone(names, label);
      const c1 = cpuSnap();
      await waitFor(() => names.every((n) => addrAt.has(n)), ADDR_GRACE_MS, 100);
      const calls = agentProxy.calls.slice(callsFrom);
      const instances = launched.map((b) => analyse(calls, b, listener.hits.get(b.name)!, addrAt.get(b.name)));
      await verify(names);
      return result('mammatus', label, instances, cpuUse(c0, c1), calls, load1, busyBefore);
    };

    /** Creates and starts `names` directly through LXD's API (one client each, like `lxc launch`s run at once). */
    const runDirect = async (names: readonly string[], label: string): Promise<RunResult> => {
      // The metadata service must know them (by MAC) to serve their user-data: registered, no node.
      const records = await Promise.all(
        names.map(async (name) => {
          const mac = `02:be:${Array.from({ length: 4 }, () =>
            Math.floor(Math.random() * 256)
              .toString(16)
              .padStart(2, '0'),
          ).join(':')}`;
          return registry.register({ name, macs: [mac], ssh_keys: [], user_data: Buffer.from(userData(name)) });
        }),
      );
      const busyBefore = await settle();
      const load1 = os.loadavg()[0];
      const c0 = cpuSnap();
      const callsFrom = directProxy.calls.length;
      const launched = await Promise.all(
        records.map(async (r) => {
          const lxd = new LxdClient({ socketPath: directProxy.socketPath });
          try {
            const t0 = epoch();
            await lxd.createInstance(
              renderInstanceCreate(computeCfg, { name: r.name, image: IMAGE_ALIAS, mac: r.macs[0], labels: { 'instance-id': r.id } }),
            );
            await lxd.startInstance(r.name);
            return { name: r.name, t0, t1: t0 };
          } finally {
            lxd.close();
          }
        }),
      );
      await waitDone(names, label);
      const c1 = cpuSnap();
      const calls = directProxy.calls.slice(callsFrom);
      const instances = launched.map((b) => analyse(calls, b, listener.hits.get(b.name)!, undefined));
      await verify(names);
      return result('direct', label, instances, cpuUse(c0, c1), calls, load1, busyBefore);
    };

    const result = (
      kind: RunResult['kind'],
      label: string,
      instances: InstanceTiming[],
      cpu: CpuUse,
      calls: LxdCall[],
      load1: number,
      busyBefore: number,
    ): RunResult => {
      const last = instances.reduce((a, b) => (b.done > a.done ? b : a));
      const first = Math.min(...instances.map((i) => i.t0));
      return { kind, size: instances.length, label, instances, wallMs: last.done - first, last, cpu, calls, load1, busyBefore };
    };

    const cleanMammatus = async (names: readonly string[]) => {
      const rs = await Promise.all(names.map((n) => cli('instance', 'delete', n, '--nats', host.natsUrl)));
      const failed = rs.filter((r) => r.code !== 0);
      if (failed.length) throw new Error(`instance delete: ${failed.map((r) => r.out).join('; ')}`);
      const gone = await waitFor(
        async () => {
          const left = await lxdNames();
          if (names.some((n) => left.has(n))) return false;
          return (await Promise.all(names.map((n) => registry.find(n)))).every((r) => r === undefined);
        },
        CLEAN_TIMEOUT_MS,
        500,
      );
      if (!gone) throw new Error(`mammatus did not delete ${names.join(', ')} within ${CLEAN_TIMEOUT_MS / 1000} s`);
    };

    const cleanDirect = async (names: readonly string[]) => {
      await Promise.all(
        names.map(async (n) => {
          await direct.stopInstance(n, { force: true, timeout: 1 }).catch(() => undefined);
          await direct.deleteInstance(n);
          await registry.remove(n).catch(() => undefined);
        }),
      );
    };

    // Warm-up: the whole path once, untimed (LXD's first create from the image is slow).
    {
      console.log('\nwarm-up: one launch through mammatus (untimed)');
      const w = await runMammatus(['warm'], 'warm-up');
      console.log(`  warm-up: cloud-init done ${f0(w.last.totalMs)} ms after launch (created ${rel(w.last.created, w.last.t0)} ms)`);
      await cleanMammatus(['warm']);
    }

    // Idle: what the agent costs with nothing to do (its 10 s poll, serf, NATS).
    let idle: CpuUse | undefined;
    if (IDLE_S > 0) {
      await settle();
      const a = cpuSnap();
      await sleep(IDLE_S * 1000);
      idle = cpuUse(a, cpuSnap());
      console.log(
        `idle ${IDLE_S} s: agent ${f0(idle.agentMs)} ms CPU (${f2(idle.agentPct)} % of a core), LXD daemon ${f0(idle.lxdMs)} ms, machine ${f0(idle.machineBusyPct)} % busy`,
      );
    }

    const runs: RunResult[] = [];
    console.log(`\nsingle launches (${SINGLE_RUNS} each way, alternating)`);
    for (let i = 1; i <= SINGLE_RUNS; i++) {
      const order = i % 2 === 1 ? (['direct', 'mammatus'] as const) : (['mammatus', 'direct'] as const);
      for (const kind of order) {
        const name = kind === 'mammatus' ? `sm${i}` : `sd${i}`;
        const r = kind === 'mammatus' ? await runMammatus([name], `mammatus single ${i}`) : await runDirect([name], `direct single ${i}`);
        runs.push(r);
        printTimeline(r);
        if (i === 1) printCalls(r, r.last.t0);
        if (kind === 'mammatus') await cleanMammatus([name]);
        else await cleanDirect([name]);
      }
    }

    if (BATCH > 0) {
      console.log(`\n${BATCH} at once (${BATCH_RUNS} run(s) each way)`);
      for (let i = 1; i <= BATCH_RUNS; i++) {
        const order = i % 2 === 1 ? (['mammatus', 'direct'] as const) : (['direct', 'mammatus'] as const);
        for (const kind of order) {
          const names = Array.from(
            { length: BATCH },
            (_, k) => `b${kind === 'mammatus' ? 'm' : 'd'}${i}-${String(k + 1).padStart(2, '0')}`,
          );
          const r = kind === 'mammatus' ? await runMammatus(names, `mammatus batch ${i}`) : await runDirect(names, `direct batch ${i}`);
          runs.push(r);
          printTimeline(r);
          if (i === 1 && kind === 'mammatus') printCalls(r, Math.min(...r.instances.map((x) => x.t0)));
          if (kind === 'mammatus') await cleanMammatus(names);
          else await cleanDirect(names);
        }
      }
    }

    // Summary.
    const pick = (kind: RunResult['kind'], size: number) => runs.filter((r) => r.kind === kind && r.size === size);
    const med = (xs: readonly number[]) => median(xs);
    const mx = (xs: readonly number[]) => Math.max(...xs);
    const singles = { mammatus: pick('mammatus', 1).map((r) => r.instances[0]), direct: pick('direct', 1).map((r) => r.instances[0]) };
    const summary: Record<string, unknown> = {};
    console.log('\nsummary (ms; share = ours / total)');
    console.log(
      '  case                         total p50    max | LXD p50 (own)  boot p50 | ours p50 (cli+pickup+between)  max | share p50    max |   wall | agent CPU ms',
    );
    const row = (label: string, xs: InstanceTiming[], wall: number | undefined, cpuMs: number | undefined) => {
      const p50 = (
        k: 'totalMs' | 'lxdMs' | 'lxdOwnMs' | 'bootMs' | 'oursMs' | 'oursCliMs' | 'oursPickupMs' | 'oursBetweenMs' | 'sharePct',
      ) => med(xs.map((x) => x[k]));
      console.log(
        `  ${label.padEnd(28)} ${f0(p50('totalMs')).padStart(9)} ${f0(mx(xs.map((x) => x.totalMs))).padStart(6)} | ${f0(p50('lxdMs')).padStart(7)} (${f0(p50('lxdOwnMs')).padStart(5)}) ${f0(p50('bootMs')).padStart(9)} | ${f0(p50('oursMs')).padStart(8)} (${f0(p50('oursCliMs'))}+${f0(p50('oursPickupMs'))}+${f0(p50('oursBetweenMs'))})`.padEnd(
          124,
        ) +
          ` ${f0(mx(xs.map((x) => x.oursMs))).padStart(4)} | ${f2(p50('sharePct')).padStart(7)} % ${f2(mx(xs.map((x) => x.sharePct))).padStart(5)} % | ${f0(wall).padStart(6)} | ${f0(cpuMs)}`,
      );
    };
    const stats = (xs: InstanceTiming[]) => ({
      n: xs.length,
      total_ms: { p50: round(med(xs.map((x) => x.totalMs)), 1), max: round(mx(xs.map((x) => x.totalMs)), 1) },
      lxd_ms: { p50: round(med(xs.map((x) => x.lxdMs)), 1), max: round(mx(xs.map((x) => x.lxdMs)), 1) },
      lxd_own_ms: { p50: round(med(xs.map((x) => x.lxdOwnMs)), 1), max: round(mx(xs.map((x) => x.lxdOwnMs)), 1) },
      boot_ms: { p50: round(med(xs.map((x) => x.bootMs)), 1), max: round(mx(xs.map((x) => x.bootMs)), 1) },
      ours_ms: { p50: round(med(xs.map((x) => x.oursMs)), 1), max: round(mx(xs.map((x) => x.oursMs)), 1) },
      ours_split_p50_ms: {
        cli: round(med(xs.map((x) => x.oursCliMs)), 1),
        pickup: round(med(xs.map((x) => x.oursPickupMs)), 1),
        between: round(med(xs.map((x) => x.oursBetweenMs)), 1),
      },
      share_pct: { p50: round(med(xs.map((x) => x.sharePct)), 2), max: round(mx(xs.map((x) => x.sharePct)), 2) },
      cli_ms: { p50: round(med(xs.map((x) => x.t1 - x.t0)), 1), max: round(mx(xs.map((x) => x.t1 - x.t0)), 1) },
      cli_to_create_req_ms:
        xs[0]?.createReq !== undefined
          ? {
              p50: round(med(xs.map((x) => (x.createReq ?? NaN) - x.t1)), 1),
              max: round(mx(xs.map((x) => (x.createReq ?? NaN) - x.t1)), 1),
            }
          : null,
      start_to_addr_ms: xs.every((x) => x.addr !== undefined)
        ? { p50: round(med(xs.map((x) => x.addr! - x.started!)), 1), max: round(mx(xs.map((x) => x.addr! - x.started!)), 1) }
        : null,
      runcmd_to_done_ms: {
        p50: round(med(xs.map((x) => x.done - (x.runcmd ?? NaN))), 1),
        max: round(mx(xs.map((x) => x.done - (x.runcmd ?? NaN))), 1),
      },
    });
    const timingJson = (x: InstanceTiming) => ({
      name: x.name,
      ...Object.fromEntries(
        (['t1', 'createReq', 'created', 'startReq', 'started', 'addr', 'runcmd', 'done'] as const).map((k) => [
          k,
          x[k] === undefined ? null : round(x[k] - x.t0, 1),
        ]),
      ),
      total_ms: round(x.totalMs, 1),
      lxd_ms: round(x.lxdMs, 1),
      lxd_own_ms: round(x.lxdOwnMs, 1),
      boot_ms: round(x.bootMs, 1),
      ours_ms: round(x.oursMs, 1),
      ours_cli_ms: round(x.oursCliMs, 1),
      ours_pickup_ms: round(x.oursPickupMs, 1),
      ours_between_ms: round(x.oursBetweenMs, 1),
      share_pct: round(x.sharePct, 2),
    });
    const cpuJson = (c: CpuUse) => ({
      window_ms: round(c.windowMs, 0),
      agent_ms: round(c.agentMs, 0),
      agent_pct_core: round(c.agentPct, 2),
      serf_ms: round(c.serfMs, 0),
      lxd_ms: round(c.lxdMs, 0),
      bench_process_ms: round(c.benchMs, 0),
      machine_busy_pct: round(c.machineBusyPct, 1),
    });
    if (singles.mammatus.length) {
      row('1 instance, mammatus', singles.mammatus, undefined, med(pick('mammatus', 1).map((r) => r.cpu.agentMs)));
      row('1 instance, direct', singles.direct, undefined, undefined);
      summary.single = {
        mammatus: {
          ...stats(singles.mammatus),
          agent_cpu_ms: pick('mammatus', 1).map((r) => round(r.cpu.agentMs, 0)),
          runs: pick('mammatus', 1).map((r) => ({
            ...timingJson(r.instances[0]),
            load1: round(r.load1, 2),
            busy_before_pct: round(r.busyBefore, 0),
            cpu: cpuJson(r.cpu),
          })),
        },
        direct: {
          ...stats(singles.direct),
          runs: pick('direct', 1).map((r) => ({
            ...timingJson(r.instances[0]),
            load1: round(r.load1, 2),
            busy_before_pct: round(r.busyBefore, 0),
            cpu: cpuJson(r.cpu),
          })),
        },
        ratio_total_p50: round(med(singles.mammatus.map((x) => x.totalMs)) / med(singles.direct.map((x) => x.totalMs)), 3),
      };
    }
    const batches = { mammatus: pick('mammatus', BATCH), direct: pick('direct', BATCH) };
    if (BATCH > 0 && batches.mammatus.length) {
      for (const [kind, rs] of Object.entries(batches)) {
        rs.forEach((r, k) =>
          row(
            `${BATCH} at once, ${kind}${rs.length > 1 ? ` #${k + 1}` : ''}`,
            r.instances,
            r.wallMs,
            kind === 'mammatus' ? r.cpu.agentMs : undefined,
          ),
        );
      }
      const bm = batches.mammatus;
      const bd = batches.direct;
      summary.batch = {
        size: BATCH,
        mammatus: bm.map((r) => ({
          ...stats(r.instances),
          load1: round(r.load1, 2),
          busy_before_pct: round(r.busyBefore, 0),
          wall_ms: round(r.wallMs, 1),
          critical_path: timingJson(r.last),
          cpu: cpuJson(r.cpu),
          instances: r.instances.map(timingJson),
        })),
        direct: bd.map((r) => ({
          ...stats(r.instances),
          load1: round(r.load1, 2),
          busy_before_pct: round(r.busyBefore, 0),
          wall_ms: round(r.wallMs, 1),
          critical_path: timingJson(r.last),
          cpu: cpuJson(r.cpu),
          instances: r.instances.map(timingJson),
        })),
        ratio_wall: round(med(bm.map((r) => r.wallMs)) / med(bd.map((r) => r.wallMs)), 3),
        ratio_total_p50: round(
          med(bm.map((r) => med(r.instances.map((x) => x.totalMs)))) / med(bd.map((r) => med(r.instances.map((x) => x.totalMs)))),
          3,
        ),
      };
      for (const r of bm) {
        const over = r.instances.filter((x) => x.sharePct >= GOAL_SHARE_PCT);
        if (over.length)
          console.log(
            `  ${r.label}: instances whose own share is ≥ ${GOAL_SHARE_PCT} %: ${over.map((x) => `${x.name} ${f2(x.sharePct)} % (CLI ${f0(x.oursCliMs)} ms)`).join(', ')}`,
          );
        console.log(
          `  ${r.label}: wall ${f0(r.wallMs)} ms; critical path (${r.last.name}): total ${f0(r.last.totalMs)} = LXD ${f0(r.last.lxdMs)} (its own requests ${f0(r.last.lxdOwnMs)}) + boot ${f0(r.last.bootMs)} + ours ${f0(r.last.oursMs)} (${f2(r.last.sharePct)} %); agent CPU ${f0(r.cpu.agentMs)} ms = ${f0(r.cpu.agentMs / BATCH)} ms per instance`,
        );
      }
      console.log(
        `  ratios mammatus / direct: batch wall ${f2((summary.batch as { ratio_wall: number }).ratio_wall)}, per-instance total p50 ${f2((summary.batch as { ratio_total_p50: number }).ratio_total_p50)}`,
      );
    }
    if (summary.single)
      console.log(
        `  ratio mammatus / direct, 1 instance, total p50: ${f2((summary.single as { ratio_total_p50: number }).ratio_total_p50)}`,
      );
    console.log(`  signal clock check: largest listener-stamp → read-here lag ${f1(listener.maxLagMs)} ms`);

    console.log('');
    if (singles.mammatus.length) {
      const share = med(singles.mammatus.map((x) => x.sharePct));
      goals.check(
        `1 instance: the agent's share of launch → cloud-init done (median of ${singles.mammatus.length})`,
        share < GOAL_SHARE_PCT,
        `${f2(share)} %`,
        `< ${GOAL_SHARE_PCT} %`,
      );
    }
    for (const r of batches.mammatus) {
      goals.check(
        `${BATCH} at once: the agent's share on the batch's critical path (${r.last.name}, done last)`,
        r.last.sharePct < GOAL_SHARE_PCT,
        `${f2(r.last.sharePct)} %`,
        `< ${GOAL_SHARE_PCT} %`,
      );
    }

    emitJson({
      bench: 'compute',
      machine: m,
      settings: {
        single_runs: SINGLE_RUNS,
        batch: BATCH,
        batch_runs: BATCH_RUNS,
        cli: CLI_MODE,
        lxd: lxdVersion,
        storage: 'dir',
        image: path.basename(image),
        clk_tck: hz,
      },
      idle: idle ? { seconds: IDLE_S, ...cpuJson(idle) } : null,
      ...summary,
      signal_max_lag_ms: round(listener.maxLagMs, 1),
      goals: goals.results,
    });
    return 0;
  } finally {
    clearTimeout(deadline);
    await cleanup.run();
  }
}

runMain('compute', main);
