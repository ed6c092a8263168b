/**
 * Fuzzing the SQS Query, SQS JSON and SNS Query parsers (issue #16): the corpus replayed, then
 * MAMMATUS_FUZZ_COUNT (default 10,000) mutated requests per protocol injected (light-my-request), over
 * the in-memory test engine; a tenth as raw bytes over loopback instead (inject reads the target
 * with WHATWG URL, normalising it). A quarter go to an app that verifies SigV4, signed afresh, so both the
 * SigV4 parser (signed, then mutated) and the action parsers behind it (mutated, then signed) are
 * reached. Oracle: never a 5xx; every answer is in the protocol's shape (Query: a well-formed XML
 * document, errors as `<ErrorResponse>`; JSON: a JSON document, errors with `__type`, `message`
 * and `x-amzn-query-error`); the heap comes back within HEAP_TOLERANCE_BYTES once the apps close.
 */
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { applyAttributes } from '../../src/messaging/engine/queue-attributes.js';
import { buildMessagingApp, type MessagingApp } from '../../src/messaging/http.js';
import { SnsAction } from '../../src/messaging/protocol/sns-query.js';
import { SqsAction } from '../../src/messaging/protocol/sqs-types.js';
import { CREDENTIALS, injectInto, testConfig } from '../src/messaging/helpers.js';
import { createMemoryEngine } from '../src/messaging/memory-engine.js';
import { loadDictionary, mutateBytes, mutateHeaders, mutateRequest, mutateString, type BodyKind, type Dictionary } from './lib/mutate.js';
import { HEAP_TOLERANCE_BYTES, runFuzz, settledHeap, xmlProblem } from './lib/oracle.js';
import { firstResponse, sendRaw, type RawResponse } from './lib/raw-http.js';
import { loadCorpus, requestBytes, withoutHeader, type FuzzRequest } from './lib/request.js';
import { fuzzSettings, type Rng } from './lib/rng.js';

const { seed, count } = fuzzSettings();

// Actions from the code (so a new one is fuzzed too); parameters, values and headers from the file.
const file = loadDictionary('messaging');
const DICT: Dictionary = {
  tokens: [...Object.values(SqsAction), ...Object.values(SnsAction), ...file.tokens],
  headerNames: file.headerNames,
};
const METHODS = ['GET', 'POST', 'POST', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'];
const SIGNING_HEADERS = ['authorization', 'x-amz-date', 'x-amz-content-sha256', 'x-amz-security-token'];

/** Apps over one in-memory engine: one accepting unsigned requests, one verifying SigV4. */
async function buildApps(errors: string[]): Promise<{ open: MessagingApp; verifying: MessagingApp }> {
  const engine = createMemoryEngine();
  // A long poll would hold a request for up to 20 s: the fuzzer fuzzes parsing, not waiting.
  // The test double stores queue attributes unchecked; the real engine's checks run first here,
  // so a 500 can only come from the wire layer, not from a value the real engine would refuse.
  const sqs = {
    ...engine.sqs,
    receiveMessage: (req, ctx) => engine.sqs.receiveMessage({ ...req, WaitTimeSeconds: 0 }, ctx),
    createQueue: async (req, ctx) => {
      applyAttributes(req.QueueName, req.Attributes);
      return engine.sqs.createQueue(req, ctx);
    },
    setQueueAttributes: async (req, ctx) => {
      applyAttributes(req.QueueName, req.Attributes, engine.queues.get(req.QueueName)?.attributes ?? {});
      return engine.sqs.setQueueAttributes(req, ctx);
    },
  } satisfies typeof engine.sqs;
  const log = pino({ level: 'error' }, { write: (line: string) => void errors.push(line) });
  const build = async (verify: boolean) => {
    const app = buildMessagingApp({ config: testConfig({ verify_signatures: verify }), sqs, sns: engine.sns, log });
    // Listening too: a share of requests goes over raw sockets, untouched by inject's URL parsing.
    await app.listen({ host: '127.0.0.1', port: 0 });
    return app;
  };
  return { open: await build(false), verifying: await build(true) };
}

/** `req` signed now with the test key for `service` (duplicate headers collapse: the signer takes a map). */
async function signNow(req: FuzzRequest, service: 'sqs' | 'sns'): Promise<FuzzRequest | undefined> {
  const q = req.target.indexOf('?');
  const query: Record<string, string> = {};
  try {
    for (const pair of q < 0 ? [] : req.target.slice(q + 1).split('&')) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      query[decodeURIComponent(eq < 0 ? pair : pair.slice(0, eq))] = decodeURIComponent(eq < 0 ? '' : pair.slice(eq + 1));
    }
  } catch {
    return undefined; // a query the signer cannot represent: sent unsigned instead
  }
  const headers: Record<string, string> = {};
  for (const [n, v] of withoutHeader(req, ...SIGNING_HEADERS).headers) headers[n.toLowerCase()] = v;
  headers.host = 'localhost';
  const signer = new SignatureV4({ credentials: CREDENTIALS, region: 'us-east-1', service, sha256: Hash.bind(null, 'sha256') });
  try {
    const signed = await signer.sign({
      method: req.method,
      protocol: 'http:',
      hostname: 'localhost',
      path: q < 0 ? req.target : req.target.slice(0, q),
      query,
      headers,
      body: req.body,
    });
    return { ...req, headers: Object.entries(signed.headers) };
  } catch {
    return undefined;
  }
}

/** What the oracle reads of an answer, from `inject` or from the wire. */
type Answer = Pick<RawResponse, 'statusCode' | 'body'> & {
  readonly headers: Readonly<Record<string, string | string[] | number | undefined>>;
};

function inject(app: MessagingApp, req: FuzzRequest): Promise<Answer> {
  const headers: Record<string, string | string[]> = {};
  for (const [n, v] of req.headers) {
    const name = n.toLowerCase();
    const prev = headers[name];
    headers[name] = prev === undefined ? v : [...(Array.isArray(prev) ? prev : [prev]), v];
  }
  const method = req.method as 'GET';
  return injectInto(app, { method, url: injectable(req.target), headers, payload: req.body });
}

/**
 * light-my-request reads the target with WHATWG `URL` (so `..` and `\\` are normalised before the
 * app sees them) and throws on a target `URL` refuses; those are sent as `/` instead. Raw target
 * bytes are the metadata fuzzers' job (raw sockets); here the query string and body matter.
 */
function injectable(target: string): string {
  try {
    new URL(target.startsWith('//') ? `http://localhost${target}` : target, 'http://localhost');
    return target === '' ? '/' : target;
  } catch {
    return '/';
  }
}

/**
 * Sends `req` as raw bytes (a third of them mutated on the wire) to the listening app. Undefined
 * when node's own parser answered (a 4xx without a body) or the connection closed unanswered.
 */
async function overTheWire(app: MessagingApp, req: FuzzRequest, rng: Rng, note: { request?: FuzzRequest }): Promise<Answer | undefined> {
  let bytes = requestBytes(req);
  if (rng.chance(0.3)) {
    for (let r = rng.between(1, 3); r > 0; r--) bytes = mutateBytes(rng, bytes, DICT);
    note.request = { ...req, wire: bytes };
  }
  const answer = await sendRaw((app.server.address() as AddressInfo).port, bytes);
  if (answer.timedOut) throw new Error(`the connection stayed open for 3 s: ${answer.text.slice(0, 300)}`);
  const bad = answer.statuses.find((s) => s >= 500);
  if (bad) throw new Error(`${bad} on the wire: ${answer.text.slice(0, 300)}`);
  const res = firstResponse(answer.text);
  // Node's own answers (400 to bytes its parser refuses, 417 to an unknown Expect, …) carry no
  // content type; every answer of the server's handler has one. Earlier fuzzer findings (methods
  // other than GET/POST, undecodable URLs) are answered in the protocol's shape, and the corpus's
  // `900-finding-*` entries replay them.
  if (!res || (res.headers['content-type'] === undefined && res.statusCode >= 400 && res.statusCode < 500)) return undefined;
  return res;
}

/** Throws unless `res` is an answer in the shape the protocol's clients parse. */
function checkAnswer(res: Answer, method: string): void {
  if (res.statusCode >= 500) throw new Error(`${res.statusCode}: ${res.body.slice(0, 300)}`);
  const type = String(res.headers['content-type'] ?? '');
  if (method === 'HEAD') return;
  if (type === 'application/x-amz-json-1.0') {
    const doc = JSON.parse(res.body) as Record<string, unknown>;
    if (res.statusCode === 200) return;
    if (typeof doc.__type !== 'string' || typeof doc.message !== 'string')
      throw new Error(`JSON error without __type/message: ${res.body.slice(0, 200)}`);
    if (!/^[\w.]+;(Sender|Receiver)$/.test(String(res.headers['x-amzn-query-error']))) {
      throw new Error(`JSON error with x-amzn-query-error ${String(res.headers['x-amzn-query-error'])}`);
    }
    return;
  }
  if (type === 'text/xml') {
    const problem = xmlProblem(res.body);
    if (problem) throw new Error(`malformed XML (${problem}): ${res.body.slice(0, 300)}`);
    const errorShape =
      /^<\?xml version="1\.0"\?><ErrorResponse xmlns="[^"]+"><Error><Type>(Sender|Receiver)<\/Type><Code>[\w.]+<\/Code><Message>/;
    if (res.statusCode !== 200 && !errorShape.test(res.body)) throw new Error(`XML error not an ErrorResponse: ${res.body.slice(0, 300)}`);
    return;
  }
  throw new Error(`${res.statusCode} answered as ${type || 'no content type'}, not in the protocol's shape: ${res.body.slice(0, 200)}`);
}

const TARGETS: readonly { target: string; body: BodyKind; service: 'sqs' | 'sns' }[] = [
  { target: 'sqs-query', body: 'form', service: 'sqs' },
  { target: 'sqs-json', body: 'json', service: 'sqs' },
  { target: 'sns-query', body: 'form', service: 'sns' },
];

describe('fuzz: messaging API parsers', () => {
  for (const { target, body, service } of TARGETS) {
    it(
      `${target}: ${count} mutated requests, no 5xx, every answer in the protocol's shape, heap back within ${HEAP_TOLERANCE_BYTES / 2 ** 20} MiB`,
      { timeout: 120_000 },
      async () => {
        const corpus = loadCorpus(target);
        const before = await settledHeap();
        const errors: string[] = [];
        let apps: Awaited<ReturnType<typeof buildApps>> | undefined = await buildApps(errors);
        const opts = { dict: DICT, body, methods: METHODS, freeMethod: false };
        const signedShare = async (rng: Rng, req: FuzzRequest): Promise<FuzzRequest> => {
          // Half signed then mutated (the SigV4 parser sees broken auth), half mutated then signed.
          if (rng.chance(0.5)) return (await signNow(req, service)) ?? req;
          const signed = (await signNow(withoutHeader(req, 'content-length'), service)) ?? req;
          let out = signed;
          for (let r = rng.between(1, 3); r > 0; r--) {
            if (rng.chance(0.5)) {
              const auth = out.headers.findIndex(([n]) => n.toLowerCase() === 'authorization');
              const headers = [...out.headers];
              const h = headers[auth];
              if (h) headers[auth] = [h[0], mutateString(rng, h[1], DICT)];
              out = { ...out, headers };
            } else
              out = rng.chance(0.5) ? { ...out, headers: mutateHeaders(rng, out.headers, DICT) } : mutateRequest(rng, out, corpus, opts);
          }
          return out;
        };
        const statuses = new Map<string, number>();
        const stats = await runFuzz({
          target,
          seed,
          count,
          corpus,
          mutate: (rng, req) => mutateRequest(rng, req, corpus, opts),
          one: async (req, rng, i, note) => {
            const app = apps!;
            const verify = rng.chance(0.25);
            // A corpus entry replayed (i < 0) is only signed afresh, never mutated.
            const sent = !verify ? req : i < 0 ? ((await signNow(req, service)) ?? req) : await signedShare(rng, req);
            note.request = sent;
            const res =
              i >= 0 && rng.chance(0.1)
                ? await overTheWire(verify ? app.verifying : app.open, sent, rng, note)
                : await inject(verify ? app.verifying : app.open, sent);
            if (!res) return; // node's parser refused it (400/431, no body) or closed: fine
            if (errors.length > 0) throw new Error(`${res.statusCode}, logged an internal error: ${errors.join('\n').slice(0, 1500)}`);
            checkAnswer(res, sent.method);
            const key = `${verify ? 'signed' : 'open'} ${res.statusCode}`;
            statuses.set(key, (statuses.get(key) ?? 0) + 1);
          },
        });
        await apps.open.close();
        await apps.verifying.close();
        apps = undefined;
        const growth = (await settledHeap()) - before;
        const histogram = [...statuses]
          .sort()
          .map(([k, n]) => `${k}×${n}`)
          .join(' ');
        console.info(
          `fuzz ${target}: seed ${seed}, ${stats.replayed} replayed + ${stats.mutated} mutated in ${stats.ms} ms; ${histogram}; heap ${Math.round(growth / 2 ** 20)} MiB`,
        );
        expect(stats.mutated).toBeGreaterThanOrEqual(count);
        expect(growth).toBeLessThan(HEAP_TOLERANCE_BYTES);
      },
    );
  }
});
