/**
 * Fuzzing the gateway's metadata proxy (issue #16) in front of a real upstream that records every
 * request it gets, with a canary server beside it that no request may ever reach. Raw bytes over
 * loopback sockets, corpus seeds including the absolute-form, `//host` and backslash attacks.
 * Oracle: the upstream only sees origin-form paths (one leading `/`, no backslash), its own Host,
 * and identity headers that are the proxy's own (they verify as signed for the real caller,
 * 127.0.0.1 and its MAC, whatever x-mammatus-* headers the caller sent, each once); the canary
 * never gets a connection; the proxy answers only what it documents (the upstream's 200, its own
 * 400 and 413, node's 100/400/417/431) or closes; nothing else is logged as failed; the heap comes
 * back within HEAP_TOLERANCE_BYTES.
 */
import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bodySha256, verifyIdentity } from '../../src/metadata/identity.js';
import { buildMetadataProxy } from '../../src/metadata/proxy.js';
import { MAC, METADATA_DICT, METADATA_METHODS } from './lib/metadata-dict.js';
import { mutateBytes, mutateRequest, type Dictionary } from './lib/mutate.js';
import { HEAP_TOLERANCE_BYTES, runFuzz, settledHeap } from './lib/oracle.js';
import { sendRaw } from './lib/raw-http.js';
import { loadCorpus, requestBytes } from './lib/request.js';
import { fuzzSettings } from './lib/rng.js';

const { seed, count } = fuzzSettings();
// The fuzzer is one caller sending thousands of requests a second: not what the throttle is for.
const UNTHROTTLED = { perSecond: 1e9, burst: 1e9 };
const SECRET = Buffer.alloc(32, 5);

/** What the upstream saw of one request. */
interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly rawHeaders: string[];
  readonly body: Buffer;
}

/** A server that answers 200 `ok` to everything and records what it got. */
async function recordingServer(seen: Seen[], connections: { n: number }): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body });
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  server.on('connection', () => connections.n++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

/** Why `seen` breaks the proxy's promises, or undefined. */
function upstreamProblem(seen: Seen, upstreamHost: string): string | undefined {
  if (!seen.url.startsWith('/') || seen.url.startsWith('//') || seen.url.includes('\\'))
    return `the upstream got target ${JSON.stringify(seen.url)}`;
  if (seen.headers.host !== upstreamHost) return `the upstream got Host ${JSON.stringify(seen.headers.host)}`;
  const names = seen.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
  const mammatus = names.filter((n) => n.startsWith('x-mammatus-'));
  if (new Set(mammatus).size !== mammatus.length) return `identity headers repeated: ${mammatus.join(', ')}`;
  const signed = { method: seen.method, url: seen.url, host: upstreamHost, bodySha256: bodySha256(seen.body) };
  const checked = verifyIdentity(seen.headers, SECRET, signed, Date.now());
  if (checked.kind !== 'signed') return `identity not the proxy's own: ${checked.kind === 'rejected' ? checked.reason : 'none'}`;
  if (checked.identity.ip !== '127.0.0.1' || checked.identity.mac !== MAC) return `identity ${JSON.stringify(checked.identity)}`;
  return undefined;
}

// The proxy's own answers, the upstream's 200, and node's (see metadata.fuzz.test.ts).
const DOCUMENTED = new Set([100, 200, 400, 413, 417, 431]);

describe('fuzz: metadata proxy', () => {
  const errors: string[] = [];
  const log = pino({ level: 'error' }, { write: (line: string) => void errors.push(line) });
  const seen: Seen[] = [];
  const canarySeen: Seen[] = [];
  const upstreamConnections = { n: 0 };
  const canaryConnections = { n: 0 };
  let upstream: http.Server;
  let canary: http.Server;
  let proxy: http.Server;
  let upstreamHost: string;
  let canaryHost: string;
  let proxyPort: number;

  beforeAll(async () => {
    upstream = await recordingServer(seen, upstreamConnections);
    canary = await recordingServer(canarySeen, canaryConnections);
    upstreamHost = `127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    canaryHost = `127.0.0.1:${(canary.address() as AddressInfo).port}`;
    proxy = buildMetadataProxy({ upstreams: [`http://${upstreamHost}`], secret: SECRET, macOf: async () => MAC, log, rate: UNTHROTTLED });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    proxyPort = (proxy.address() as AddressInfo).port;
  });

  afterAll(async () => {
    for (const s of [proxy, upstream, canary]) if (s) await new Promise((r) => s.close(r));
  });

  it(
    `${count} mutated requests: the upstream sees only origin-form paths, its own Host and the proxy's identity; nothing reaches another host; heap back within ${HEAP_TOLERANCE_BYTES / 2 ** 20} MiB`,
    { timeout: 180_000 },
    async () => {
      const corpus = loadCorpus('proxy');
      // The canary's address in every form a target or header could name it.
      const dict: Dictionary = {
        tokens: [
          ...METADATA_DICT.tokens,
          canaryHost,
          `http://${canaryHost}/`,
          `//${canaryHost}/`,
          `/\\${canaryHost}/`,
          `@${canaryHost}`,
          `${canaryHost}/latest`,
        ],
        headerNames: [...METADATA_DICT.headerNames, 'proxy-connection', 'keep-alive', 'te', 'trailer', 'x-http-method-override'],
      };
      const before = await settledHeap();
      const statuses = new Map<number, number>();
      let forwarded = 0;
      let stalled = 0;
      const stats = await runFuzz({
        target: 'proxy',
        seed,
        count,
        corpus,
        mutate: (rng, req) => mutateRequest(rng, req, corpus, { dict, body: 'none', methods: METADATA_METHODS, freeMethod: true }),
        one: async (req, rng, i, note) => {
          let bytes = requestBytes(req);
          if (i >= 0 && rng.chance(0.15)) {
            for (let r = rng.between(1, 3); r > 0; r--) bytes = mutateBytes(rng, bytes, dict);
            note.request = { ...req, wire: bytes };
          }
          seen.length = 0;
          const answer = await sendRaw(proxyPort, bytes);
          if (answer.stalled) stalled++;
          if (answer.timedOut) throw new Error(`the connection stayed open for 3 s: ${answer.text.slice(0, 300)}`);
          for (const s of answer.statuses) {
            statuses.set(s, (statuses.get(s) ?? 0) + 1);
            if (!DOCUMENTED.has(s)) throw new Error(`status ${s}: ${answer.text.slice(0, 300)}`);
          }
          forwarded += seen.length;
          for (const got of seen) {
            const problem = upstreamProblem(got, upstreamHost);
            if (problem) throw new Error(problem);
          }
          if (canaryConnections.n > 0) throw new Error(`the proxy connected to another host: ${JSON.stringify(canarySeen[0]?.url)}`);
          const failures = errors.splice(0);
          if (failures.length > 0) throw new Error(`logged a failure: ${failures.join('\n').slice(0, 1500)}`);
        },
      });
      const growth = (await settledHeap()) - before;
      const histogram = [...statuses]
        .sort((a, b) => a[0] - b[0])
        .map(([s, n]) => `${s}×${n}`)
        .join(' ');
      console.info(
        `fuzz proxy: seed ${seed}, ${stats.replayed} replayed + ${stats.mutated} mutated in ${stats.ms} ms; ${histogram}; ${forwarded} forwarded over ${upstreamConnections.n} upstream connections; stalled ${stalled}; heap ${Math.round(growth / 2 ** 20)} MiB`,
      );
      expect(stats.mutated).toBeGreaterThanOrEqual(count);
      expect(canaryConnections.n).toBe(0);
      expect(forwarded).toBeGreaterThan(count / 10);
      expect(growth).toBeLessThan(HEAP_TOLERANCE_BYTES);
    },
  );
});
