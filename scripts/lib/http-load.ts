/**
 * A bounded HTTP load for the load balancer's test and benchmark (issue 21), run as its own node
 * process inside a network namespace (`ip netns exec NS node --import tsx http-load.ts SPEC`), since
 * a node process cannot enter one itself. It needs nothing but node, so it runs where wrk is not
 * installed (CI).
 *
 * `total` GETs are spread evenly over `seconds` across `workers` sequential workers (one request at
 * a time each; a late worker sends its next one at once). A share of the workers keep their
 * connection alive (one socket each), the others open one per request (`Connection: close`). Every
 * answer's body (the backend's name) is kept with the time it was answered, every failure with its
 * time and cause, so the caller can tell which target served when. The run stops after
 * `seconds + timeoutMs/1000 + 5` seconds whatever happens.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { errorMessage } from '../../core/errors.js';

/** What to send. */
export interface LoadSpec {
  /** e.g. `http://203.0.113.2/`. */
  readonly url: string;
  /** The Host header (default: the URL's). */
  readonly host?: string;
  readonly total: number;
  readonly seconds: number;
  readonly workers: number;
  /** Share of the workers that keep their connection alive, 0..1 (default 0.5). */
  readonly keepAliveShare?: number;
  /** Per request (default 5000 ms). */
  readonly timeoutMs?: number;
}

/** One request that did not get a 2xx answer. */
export interface LoadFailure {
  /** Epoch ms when it failed. */
  readonly t: number;
  readonly keepAlive: boolean;
  /** The HTTP status, or the error's message. */
  readonly why: string;
}

/** What the load saw. */
export interface LoadResult {
  /** Epoch ms of the first send and of the last answer. */
  readonly started: number;
  readonly ended: number;
  readonly sent: number;
  readonly ok: number;
  readonly failures: LoadFailure[];
  /** Per answer body (trimmed): the epoch ms of each answer, in order. */
  readonly hits: Record<string, number[]>;
  /** Every request's latency in ms, in the order answered (failures left out). */
  readonly latencyMs: number[];
}

const now = () => performance.timeOrigin + performance.now();

/** One GET (`agent` false: `Connection: close`); the status and body, or a rejection on an error or the timeout. */
export function httpGet(url: URL, host: string, agent: http.Agent | false, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers = { host, ...(agent ? {} : { connection: 'close' }) };
    const req = http.request(url, { headers, agent, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Runs the load in this process (see the header). */
export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const url = new URL(spec.url);
  const host = spec.host ?? url.host;
  const timeoutMs = spec.timeoutMs ?? 5000;
  const intervalMs = (spec.seconds * 1000) / spec.total;
  const keepAliveWorkers = Math.round(spec.workers * (spec.keepAliveShare ?? 0.5));
  const hardStop = now() + spec.seconds * 1000 + timeoutMs + 5000;
  const failures: LoadFailure[] = [];
  const hits: Record<string, number[]> = {};
  const latencyMs: number[] = [];
  let sent = 0;
  let ok = 0;
  const started = now();
  const worker = async (w: number) => {
    const keepAlive = w < keepAliveWorkers;
    const agent = keepAlive ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : false;
    for (let k = w; k < spec.total && now() < hardStop; k += spec.workers) {
      const due = started + k * intervalMs;
      const wait = due - now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      sent++;
      const t0 = now();
      try {
        const r = await httpGet(url, host, agent, timeoutMs);
        const t = now();
        if (r.status < 200 || r.status > 299) failures.push({ t, keepAlive, why: `HTTP ${r.status}: ${r.body.trim().slice(0, 80)}` });
        else {
          ok++;
          (hits[r.body.trim()] ??= []).push(t);
          latencyMs.push(t - t0);
        }
      } catch (err) {
        failures.push({ t: now(), keepAlive, why: errorMessage(err) });
      }
    }
    if (agent) agent.destroy();
  };
  await Promise.all(Array.from({ length: spec.workers }, (_, w) => worker(w)));
  for (const times of Object.values(hits)) times.sort((a, b) => a - b);
  return { started, ended: now(), sent, ok, failures, hits, latencyMs };
}

/**
 * Runs the load in network namespace `ns` (a child node process with tsx) and returns its result;
 * `onStarted` is called once the child has started sending.
 */
export function runLoadInNetns(ns: string, spec: LoadSpec, onStarted?: () => void): Promise<LoadResult> {
  const self = fileURLToPath(import.meta.url);
  const tsx = import.meta.resolve('tsx');
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', tsx, self, JSON.stringify(spec)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    if (!out && onStarted) onStarted();
    out += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  // The child's own hard stop bounds it; this one only guards against a child that hangs.
  const limit = setTimeout(() => child.kill('SIGKILL'), (spec.seconds + 60) * 1000);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(limit);
      const last = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !last.startsWith('{')) return reject(new Error(`load client exited ${code}: ${err.slice(-500)}`));
      resolve(JSON.parse(last) as LoadResult);
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
  // One line first: the caller's signal that the process is up and sending.
  process.stdout.write('started\n');
  runLoad(spec).then(
    (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
    (err: unknown) => {
      process.stderr.write(`${errorMessage(err)}\n`);
      process.exit(1);
    },
  );
}
