/**
 * What TLS on internal links costs (issue 20), same process run, TLS against plain:
 * - SQS API: `SendMessage` (JSON protocol, 256-byte bodies) with wrk at BENCH_TLS_CONNECTIONS
 *   keep-alive connections, against one messaging service serving HTTPS on `listen` (the node
 *   certificate) and plain HTTP on `http_listen`: the same engines behind both;
 * - metadata service: `/latest/meta-data/instance-id` of a registered instance (127.0.0.1), wrk the
 *   same way, against two services on one nats-server, one with the node certificate, one plain;
 * - baseline for the metadata figures: a bare `node:http` server and a bare `node:https` one (same
 *   certificate, Node's defaults) answering the same bytes as the metadata service, measured
 *   interleaved with it: what Node's TLS costs by itself on an answer this small;
 * - NATS request latency: sequential request/reply through a nats-server with TLS (client and
 *   responder verify it with the root) and through a plain one, BENCH_TLS_REQUESTS each.
 * wrk runs on the same 2 cores as the servers, and its own TLS work is CPU the servers then lack:
 * it is measured too (`/usr/bin/time` around wrk, when present) and reported as client CPU.
 * Targets are measured interleaved (plain, TLS, TLS, plain, …) BENCH_TLS_RUNS times; the medians
 * decide. Goal: TLS costs under 25 % of throughput with keep-alive (TLS req/s ≥ 0.75 × plain).
 * The services run in this process (wrk is its own), the certificates come from src/ca/pki.ts.
 *
 *   npx tsx bench/tls.ts
 *
 * Knobs: BENCH_TLS_SECONDS (5) per measurement, BENCH_TLS_RUNS (2), BENCH_TLS_CONNECTIONS (16),
 * BENCH_TLS_REQUESTS (2000) NATS requests per target.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { connectNats } from '../core/nats.js';
import { natsServerAvailable, sharedTrust, startNatsServer, type NatsServer } from '../scripts/lib/nats-server.js';
import { makeTestCa, writeNodeCert } from '../scripts/lib/tls-test-pki.js';
import { InstanceRegistry } from '../src/registry/registry.js';
import { startMessagingService } from '../src/messaging/service.js';
import { parseMessagingSettings } from '../src/messaging/settings.js';
import { parseMetadataSettings } from '../src/metadata/config.js';
import { startMetadataService } from '../src/metadata/service.js';
import { Cleanup, Goals, emitJson, machine, median, printMachine, round, runMain, summarize, tempDir } from './lib.js';

const SECONDS = Number(process.env.BENCH_TLS_SECONDS ?? 5);
const RUNS = Number(process.env.BENCH_TLS_RUNS ?? 2);
const CONNECTIONS = Number(process.env.BENCH_TLS_CONNECTIONS ?? 16);
const REQUESTS = Number(process.env.BENCH_TLS_REQUESTS ?? 2000);

/** One wrk measurement. */
interface Wrk {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  /** CPU of this process (the servers: user + system) per request, µs: steadier than req/s on a shared machine. */
  cpuUs: number;
  /** CPU of wrk itself (user + system) per request, µs; NaN without /usr/bin/time. */
  clientUs: number;
}

const TIME = '/usr/bin/time';

const toMs = (v: string, unit: string) => Number(v) * ({ us: 0.001, ms: 1, s: 1000 }[unit] ?? NaN);

/** Runs wrk (1 thread, keep-alive) against `url`, with `script` when given; parses its report. */
function wrk(url: string, script?: string, seconds = SECONDS): Promise<Wrk> {
  const cpu0 = process.cpuUsage();
  return new Promise((resolve, reject) => {
    const args = ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', ...(script ? ['-s', script] : []), url];
    const timed = existsSync(TIME);
    const child = timed
      ? spawn(TIME, ['-f', 'wrk-cpu %U %S', 'wrk', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(out);
      const lat = (p: string) => {
        const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(out);
        return m ? toMs(m[1], m[2]) : NaN;
      };
      if (code !== 0 || !rps) return reject(new Error(`wrk exited ${code}:\n${out}`));
      const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
      const cpu = process.cpuUsage(cpu0);
      const requests = Number(/^\s*(\d+) requests in/m.exec(out)?.[1] ?? NaN);
      const client = /^wrk-cpu ([\d.]+) ([\d.]+)$/m.exec(out);
      const clientUs = client ? ((Number(client[1]) + Number(client[2])) * 1e6) / requests : NaN;
      resolve({ rps: Number(rps[1]), p50: lat('50'), p99: lat('99'), non2xx, cpuUs: (cpu.user + cpu.system) / requests, clientUs });
    });
  });
}

/** The medians of each target's measurements, and every measurement in run order. */
type Measured<K extends string> = Record<K, Wrk> & { readonly runs: Record<K, Wrk[]> };

/**
 * Measures each target RUNS times, interleaved (a b c c b a a b c …), after one second of warm-up
 * each (not counted: a cold JIT would cost whichever target came first); returns the medians.
 */
async function interleaved<K extends string>(targets: Record<K, (seconds?: number) => Promise<Wrk>>): Promise<Measured<K>> {
  const keys = Object.keys(targets) as K[];
  for (const k of keys) await targets[k](1);
  const all = Object.fromEntries(keys.map((k) => [k, [] as Wrk[]])) as Record<K, Wrk[]>;
  for (let i = 0; i < RUNS; i++) {
    for (const k of i % 2 === 0 ? keys : [...keys].reverse()) {
      const r = await targets[k]();
      all[k].push(r);
      console.log(
        `  ${k.padEnd(10)} ${r.rps.toFixed(0).padStart(7)} req/s  p50 ${r.p50.toFixed(3)}  p99 ${r.p99.toFixed(3)} ms  server CPU ${r.cpuUs.toFixed(1)} µs/req  wrk CPU ${r.clientUs.toFixed(1)} µs/req${r.non2xx ? `  NON-2XX ${r.non2xx}` : ''}`,
      );
    }
  }
  const med = (xs: Wrk[]): Wrk => ({
    rps: median(xs.map((x) => x.rps)),
    p50: median(xs.map((x) => x.p50)),
    p99: median(xs.map((x) => x.p99)),
    non2xx: xs.reduce((a, x) => a + x.non2xx, 0),
    cpuUs: median(xs.map((x) => x.cpuUs)),
    clientUs: median(xs.map((x) => x.clientUs)),
  });
  return { ...(Object.fromEntries(keys.map((k) => [k, med(all[k])])) as Record<K, Wrk>), runs: all };
}

/**
 * The median over the runs of each run's TLS ÷ plain req/s: the two are measured back to back in
 * every run, so a load that changes between runs (a shared machine) moves both alike.
 */
function pairedRatio(plain: readonly Wrk[], tls: readonly Wrk[]): number {
  return median(plain.map((p, i) => tls[i].rps / p.rps));
}

/** Sequential request/reply latencies (ms) through `server`, `ca` the root when it has TLS. */
async function natsLatency(server: NatsServer, ca: string | undefined): Promise<number[]> {
  const tls = ca ? { ca } : ('plain' as const);
  const creds = sharedTrust().admin;
  const responder = await connectNats(server.url, { name: 'bench-responder', credentials: creds, tls });
  const requester = await connectNats(server.url, { name: 'bench-requester', credentials: creds, tls });
  try {
    responder.subscribe('bench.tls.echo', { callback: (_e, m) => void m.respond(m.data) });
    await responder.flush();
    const payload = new Uint8Array(256);
    for (let i = 0; i < 200; i++) await requester.request('bench.tls.echo', payload, { timeout: 2000 });
    const out: number[] = [];
    for (let i = 0; i < REQUESTS; i++) {
      const t0 = performance.now();
      await requester.request('bench.tls.echo', payload, { timeout: 2000 });
      out.push(performance.now() - t0);
    }
    return out;
  } finally {
    await requester.close();
    await responder.close();
  }
}

async function main(): Promise<number> {
  if (!natsServerAvailable()) return (console.error('nats-server is missing'), 1);
  const cleanup = new Cleanup();
  const goals = new Goals();
  const m = machine();
  printMachine(m);
  try {
    const dir = tempDir('tls', cleanup);
    const ca = await makeTestCa('bench root');
    const files = await writeNodeCert(ca, 'ctl-1', path.join(dir, 'tls'));
    const cert = { cert: readFileSync(files.cert, 'utf8'), key: readFileSync(files.key, 'utf8') };
    const silent = pino({ level: 'warn' });
    const creds = sharedTrust().admin;
    // Plain NATS behind the HTTP services: what is compared there is the HTTP side alone.
    const nats = await startNatsServer({ name: 'bench-plain', dir: path.join(dir, 'nats-plain') });
    cleanup.add(() => nats.stop());
    const natsTls = await startNatsServer({ name: 'bench-tls', dir: path.join(dir, 'nats-tls'), tls: files });
    cleanup.add(() => natsTls.stop());

    // SQS: one service, HTTPS and plain listeners on the same engines.
    const sqs = await startMessagingService({
      settings: parseMessagingSettings({ nats: nats.url, listen: '127.0.0.1:0', http_listen: '127.0.0.1:0', verify_signatures: false }),
      log: silent,
      credentials: creds,
      tls: cert,
    });
    cleanup.add(() => sqs.stop());
    const created = (await (
      await fetch(sqs.httpUrl!, {
        method: 'POST',
        headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': 'AmazonSQS.CreateQueue' },
        body: JSON.stringify({ QueueName: 'bench-tls' }),
      })
    ).json()) as { QueueUrl: string };
    const script = path.join(dir, 'send.lua');
    const body = JSON.stringify({ QueueUrl: created.QueueUrl, MessageBody: 'x'.repeat(256) });
    writeFileSync(
      script,
      [
        'wrk.method = "POST"',
        `wrk.body = ${JSON.stringify(body)}`,
        'wrk.headers["Content-Type"] = "application/x-amz-json-1.0"',
        'wrk.headers["X-Amz-Target"] = "AmazonSQS.SendMessage"',
      ].join('\n'),
    );
    console.log(`\n== SQS SendMessage (256 B), wrk -t1 -c${CONNECTIONS} -d${SECONDS}s, keep-alive: ${sqs.httpUrl} vs ${sqs.url} ==`);
    const sqsR = await interleaved({ plain: (t) => wrk(`${sqs.httpUrl}/`, script, t), tls: (t) => wrk(`${sqs.url}/`, script, t) });

    // Metadata: one registered instance at 127.0.0.1; two services, TLS and plain.
    const nc = await connectNats(nats.url, { name: 'bench', credentials: creds });
    const record = await (await InstanceRegistry.open(nc)).register({ name: 'bench-1', macs: ['02:00:00:be:00:01'], ips: ['127.0.0.1'] });
    await nc.close();
    const mdSettings = parseMetadataSettings({ nats: nats.url, trust_source_address: true });
    const vendorData = async () => '';
    const mdPlain = await startMetadataService({
      settings: mdSettings,
      listen: '127.0.0.1:0',
      vendorData,
      log: silent,
      credentials: creds,
    });
    cleanup.add(() => mdPlain.stop());
    const mdTls = await startMetadataService({
      settings: mdSettings,
      listen: '127.0.0.1:0',
      vendorData,
      log: silent,
      credentials: creds,
      tls: cert,
    });
    cleanup.add(() => mdTls.stop());
    const mdPath = '/latest/meta-data/instance-id';
    // Both answer the instance before measuring (their registry views fill on their own).
    for (const url of [mdPlain.url, mdTls.url]) {
      for (let i = 0; ; i++) {
        const r = await wrkOnce(url + mdPath, ca.root.certPem);
        if (r === record.id) break;
        if (i > 100) throw new Error(`${url} does not answer the instance: ${r}`);
        await new Promise((res) => setTimeout(res, 100));
      }
    }
    // The baseline: bare node:http and node:https answering the same bytes (same headers, same body).
    const bare = await startBare(record.id, cert);
    cleanup.add(() => bare.stop());
    console.log(
      `\n== metadata ${mdPath}, wrk -t1 -c${CONNECTIONS} -d${SECONDS}s, keep-alive: ${mdPlain.url} vs ${mdTls.url}; bare node ${bare.http} vs ${bare.https} ==`,
    );
    const both = await interleaved({
      plain: (t) => wrk(mdPlain.url + mdPath, undefined, t),
      tls: (t) => wrk(mdTls.url + mdPath, undefined, t),
      bare_plain: (t) => wrk(bare.http + mdPath, undefined, t),
      bare_tls: (t) => wrk(bare.https + mdPath, undefined, t),
    });
    const mdR = { plain: both.plain, tls: both.tls };
    const bareR = { plain: both.bare_plain, tls: both.bare_tls };

    // NATS request latency.
    console.log(`\n== NATS request/reply latency, ${REQUESTS} sequential 256 B requests (after 200 warm-up) ==`);
    const natsPlain = summarize(await natsLatency(nats, undefined));
    const natsTlsLat = summarize(await natsLatency(natsTls, ca.root.certPem));
    for (const [k, s] of [
      ['plain', natsPlain],
      ['tls', natsTlsLat],
    ] as const)
      console.log(
        `  ${k.padEnd(5)} p50 ${(s.median * 1000).toFixed(0)} µs  p99 ${(s.p99 * 1000).toFixed(0)} µs  mean ${(s.mean * 1000).toFixed(0)} µs`,
      );

    console.log('\nratios (TLS / plain, medians)');
    const sqsRatio = sqsR.tls.rps / sqsR.plain.rps;
    const mdRatio = mdR.tls.rps / mdR.plain.rps;
    const bareRatio = bareR.tls.rps / bareR.plain.rps;
    const mdPaired = pairedRatio(both.runs.plain, both.runs.tls);
    const barePaired = pairedRatio(both.runs.bare_plain, both.runs.bare_tls);
    goals.check('SQS SendMessage req/s over TLS ÷ plain', sqsRatio >= 0.75, sqsRatio, '≥ 0.75 (TLS costs < 25 %)');
    goals.check('metadata req/s over TLS ÷ plain', mdRatio >= 0.75, mdRatio, '≥ 0.75 (TLS costs < 25 %)');
    console.log(`  bare node:https ÷ node:http req/s (same bytes, the baseline): ${bareRatio.toFixed(3)}`);
    console.log(
      `  median of each run's TLS ÷ plain req/s (measured back to back): metadata ${mdPaired.toFixed(3)}, bare node ${barePaired.toFixed(3)}`,
    );
    console.log(
      `  server CPU per request TLS ÷ plain: SQS ${(sqsR.tls.cpuUs / sqsR.plain.cpuUs).toFixed(2)}, metadata ${(mdR.tls.cpuUs / mdR.plain.cpuUs).toFixed(2)}, bare node ${(bareR.tls.cpuUs / bareR.plain.cpuUs).toFixed(2)}`,
    );
    const addedUs = (r: { plain: Wrk; tls: Wrk }, k: 'cpuUs' | 'clientUs') => (r.tls[k] - r.plain[k]).toFixed(1);
    console.log(
      `  CPU TLS adds per request, server / wrk: metadata ${addedUs(mdR, 'cpuUs')} / ${addedUs(mdR, 'clientUs')} µs, bare node ${addedUs(bareR, 'cpuUs')} / ${addedUs(bareR, 'clientUs')} µs`,
    );
    console.log(
      `  NATS request p50 TLS ÷ plain: ${(natsTlsLat.median / natsPlain.median).toFixed(2)}, p99: ${(natsTlsLat.p99 / natsPlain.p99).toFixed(2)}`,
    );
    emitJson({
      bench: 'tls',
      machine: m,
      seconds: SECONDS,
      runs: RUNS,
      connections: CONNECTIONS,
      sqs: { plain: sqsR.plain, tls: sqsR.tls, ratio: round(sqsRatio), cpu_ratio: round(sqsR.tls.cpuUs / sqsR.plain.cpuUs) },
      metadata: {
        plain: mdR.plain,
        tls: mdR.tls,
        ratio: round(mdRatio),
        paired_ratio: round(mdPaired),
        cpu_ratio: round(mdR.tls.cpuUs / mdR.plain.cpuUs),
      },
      bare_node: {
        plain: bareR.plain,
        tls: bareR.tls,
        ratio: round(bareRatio),
        paired_ratio: round(barePaired),
        cpu_ratio: round(bareR.tls.cpuUs / bareR.plain.cpuUs),
      },
      load_end: round(os.loadavg()[0] ?? NaN, 2),
      nats_request_ms: { plain: natsPlain, tls: natsTlsLat },
      goals: goals.results,
    });
    console.log(
      `load average at the end: ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
    return goals.results.every((g) => g.result === 'PASS') ? 0 : 2;
  } finally {
    await cleanup.run();
  }
}

/**
 * A bare node:http server and a bare node:https one (Node's default TLS settings) that answer every
 * request with `id` and the metadata service's headers: the floor Node itself sets.
 */
async function startBare(id: string, cert: { cert: string; key: string }): Promise<{ http: string; https: string; stop(): Promise<void> }> {
  const body = Buffer.from(id);
  const handler = (_req: http.IncomingMessage, res: http.ServerResponse) => {
    res.writeHead(200, ['content-type', 'text/plain; charset=utf-8', 'content-length', String(body.length)]);
    res.end(body);
  };
  const servers = [http.createServer(handler), https.createServer(cert, handler)];
  const urls: string[] = [];
  for (const [i, s] of servers.entries()) {
    await new Promise<void>((res) => s.listen(0, '127.0.0.1', res));
    urls.push(`${i ? 'https' : 'http'}://127.0.0.1:${(s.address() as { port: number }).port}`);
  }
  const stop = async () => {
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise((res) => s.close(res));
    }
  };
  return { http: urls[0], https: urls[1], stop };
}

/** One GET (HTTPS trusting `ca`, or plain), the body as text. */
async function wrkOnce(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const get = url.startsWith('https:') ? https.get(url, { ca }) : http.get(url);
    get.on('response', (res) => {
      let text = '';
      res.on('data', (b: Buffer) => (text += b.toString()));
      res.on('end', () => resolve(text));
    });
    get.on('error', reject);
  });
}

runMain('tls', main);
