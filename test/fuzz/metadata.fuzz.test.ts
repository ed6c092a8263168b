/**
 * Fuzzing the metadata service's request handling (issue #16): method, path (EC2, NoCloud,
 * OpenStack trees), query and headers (IMDSv2 token and TTL, identity headers) mutated, sent as raw
 * bytes over loopback sockets so node's HTTP parser and the service's own path handling both see
 * them; a fifth pass a real metadata proxy first (so signed identities reach the lookups), a fifth
 * go to a service requiring IMDSv2 tokens on every tree, a tenth find the registry unavailable.
 * Oracle: every answer is one the service documents (200, 400, 401, 403, 404, 405, 413; node's own
 * 100/400/417/431 for what its parser refuses or expects; 503 only while the registry is
 * unavailable) or the connection closes, and no connection outlives the client's half-close by
 * 3 s; nothing is logged as failed; the service still answers a good request afterwards, and the
 * heap comes back within HEAP_TOLERANCE_BYTES.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRecord, type InstanceRecord } from '../../core/instance-record.js';
import { buildMetadataProxy } from '../../src/metadata/proxy.js';
import { buildMetadataApp, type MetadataApp } from '../../src/metadata/server.js';
import { TokenAuthority } from '../../src/metadata/tokens.js';
import { MAC, METADATA_DICT, METADATA_METHODS } from './lib/metadata-dict.js';
import { mutateBytes, mutateRequest } from './lib/mutate.js';
import { HEAP_TOLERANCE_BYTES, runFuzz, settledHeap } from './lib/oracle.js';
import { sendRaw } from './lib/raw-http.js';
import { loadCorpus, requestBytes, type FuzzRequest } from './lib/request.js';
import { fuzzSettings } from './lib/rng.js';

const { seed, count } = fuzzSettings();
// The fuzzer is one caller sending thousands of requests a second: not what the throttle is for.
const UNTHROTTLED = { perSecond: 1e9, burst: 1e9 };
const SECRET = Buffer.alloc(32, 9);
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExampl operator';

/** A registry view in memory: web-1 at 127.0.0.1 (every loopback caller), db-1 elsewhere. */
function fakeLookup(): {
  available: boolean;
  byMac(m: string): InstanceRecord | undefined;
  byIp(ip: string): InstanceRecord | undefined;
  byId(id: string): InstanceRecord | undefined;
} {
  const at = new Date('2026-11-25T12:00:00Z');
  const records = [
    buildRecord(
      { name: 'web-1', macs: [MAC], ips: ['127.0.0.1'], ssh_keys: [KEY], user_data: Buffer.from('#cloud-config\n'), tags: { team: 'ops' } },
      at,
      'i-0123456789abcdef0',
    ),
    buildRecord({ name: 'db-1', macs: ['00:16:3e:00:00:02'], ips: ['10.9.0.2'] }, at, 'i-0123456789abcdef1'),
  ];
  return {
    available: true,
    byMac: (m) => records.find((r) => r.macs.includes(m)),
    byIp: (ip) => records.find((r) => r.ips.includes(ip)),
    byId: (id) => records.find((r) => r.id === id),
  };
}

// The service's own answers, plus node's: 100 (Expect: 100-continue), 400, 417 (another Expect), 431.
const DOCUMENTED = new Set([100, 200, 400, 401, 403, 404, 405, 413, 417, 431]);

describe('fuzz: metadata service', () => {
  const errors: string[] = [];
  const log = pino({ level: 'error' }, { write: (line: string) => void errors.push(line) });
  const lookup = fakeLookup();
  const tokens = new TokenAuthority(SECRET);
  // Two services: tokens optional (behind the proxy too) and tokens required (IMDSv2 on every tree).
  let app: MetadataApp;
  let strict: MetadataApp;
  let proxy: Server;
  let appPort: number;
  let strictPort: number;
  let proxyPort: number;

  beforeAll(async () => {
    const build = async (tokenMode: 'optional' | 'required') => {
      const built = buildMetadataApp({
        lookup,
        secret: SECRET,
        tokens,
        tokenMode,
        trustSourceAddress: true,
        domain: 'mammatus',
        availabilityZone: 'dc1a',
        vendorData: async () => '#cloud-config\n',
        log,
      });
      await built.listen({ host: '127.0.0.1', port: 0 });
      return built;
    };
    app = await build('optional');
    strict = await build('required');
    appPort = (app.server.address() as AddressInfo).port;
    strictPort = (strict.server.address() as AddressInfo).port;
    proxy = buildMetadataProxy({
      upstreams: [`http://127.0.0.1:${appPort}`],
      secret: SECRET,
      macOf: async () => MAC,
      log,
      rate: UNTHROTTLED,
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    proxyPort = (proxy.address() as AddressInfo).port;
  });

  afterAll(async () => {
    if (proxy) await new Promise((r) => proxy.close(r));
    await app?.close();
    await strict?.close();
  });

  it(
    `${count} mutated requests over raw sockets: only documented statuses, no failure logged, still serving, heap back within ${HEAP_TOLERANCE_BYTES / 2 ** 20} MiB`,
    { timeout: 180_000 },
    async () => {
      const corpus = loadCorpus('metadata');
      const token = tokens.mint('i-0123456789abcdef0', 21_600, Date.now());
      const withToken = (req: FuzzRequest): FuzzRequest => ({
        ...req,
        headers: req.headers.map(([n, v]) => [n, v.replaceAll('@TOKEN@', token)] as const),
      });
      const before = await settledHeap();
      const statuses = new Map<number, number>();
      let closed = 0;
      let stalled = 0;
      const stats = await runFuzz({
        target: 'metadata',
        seed,
        count,
        corpus,
        mutate: (rng, req) =>
          mutateRequest(rng, req, corpus, { dict: METADATA_DICT, body: 'none', methods: METADATA_METHODS, freeMethod: true }),
        one: async (req, rng, i, note) => {
          const sent = withToken(req);
          note.request = sent;
          let bytes = requestBytes(sent);
          // A share mutated on the wire itself: request line, CRLFs and framing bytes.
          if (i >= 0 && rng.chance(0.15)) {
            for (let r = rng.between(1, 3); r > 0; r--) bytes = mutateBytes(rng, bytes, METADATA_DICT);
            note.request = { ...sent, wire: bytes };
          }
          const via = rng.next();
          const viaProxy = via < 0.2;
          lookup.available = !rng.chance(0.1);
          const answer = await sendRaw(viaProxy ? proxyPort : via < 0.4 ? strictPort : appPort, bytes);
          const unavailable = !lookup.available;
          lookup.available = true;
          // Every request ends within the deadline: answered and closed once the client half-closes.
          if (answer.timedOut) throw new Error(`the connection stayed open for 3 s: ${answer.text.slice(0, 300)}`);
          if (answer.stalled) stalled++;
          if (answer.statuses.length === 0) closed++;
          for (const s of answer.statuses) {
            statuses.set(s, (statuses.get(s) ?? 0) + 1);
            if (!DOCUMENTED.has(s) && !(s === 503 && unavailable))
              throw new Error(`status ${s}${viaProxy ? ' (through the proxy)' : ''}: ${answer.text.slice(0, 300)}`);
          }
          const failures = errors.splice(0);
          if (failures.length > 0) throw new Error(`logged a failure: ${failures.join('\n').slice(0, 1500)}`);
        },
      });
      const good = await fetch(`http://127.0.0.1:${appPort}/latest/meta-data/instance-id`);
      expect([good.status, await good.text()]).toEqual([200, 'i-0123456789abcdef0']);
      const growth = (await settledHeap()) - before;
      const histogram = [...statuses]
        .sort((a, b) => a[0] - b[0])
        .map(([s, n]) => `${s}×${n}`)
        .join(' ');
      console.info(
        `fuzz metadata: seed ${seed}, ${stats.replayed} replayed + ${stats.mutated} mutated in ${stats.ms} ms; ${histogram}; closed ${closed}, stalled ${stalled}; heap ${Math.round(growth / 2 ** 20)} MiB`,
      );
      expect(stats.mutated).toBeGreaterThanOrEqual(count);
      expect(growth).toBeLessThan(HEAP_TOLERANCE_BYTES);
    },
  );
});
