/**
 * src/metadata/answer.ts `send`: every body goes out as one string in `latin1` (one write with the
 * headers, docs/benchmarks.md §16), so the bytes that arrive must be exactly the body's bytes —
 * binary (every byte value), UTF-8 text, pre-encoded `WireBody` — with a matching Content-Length,
 * over plain HTTP and over TLS alike. Real servers on loopback, read as raw bytes.
 */
import http from 'node:http';
import https from 'node:https';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send, wireBody, type Answer } from '../../../src/metadata/answer.js';
import { makeTestCa, writeNodeCert } from '../../../scripts/lib/tls-test-pki.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'mammatus-answer-'));

const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const TEXT = 'grüße, 東京 ✓\n';
const answers: Record<string, Answer> = {
  '/binary': { status: 200, body: ALL_BYTES, type: 'application/octet-stream' },
  '/text': { status: 200, body: TEXT, type: 'text/plain; charset=utf-8' },
  '/ascii': { status: 200, body: 'i-0123456789abcdef0', type: 'text/plain; charset=utf-8', headers: { 'retry-after': '1' } },
  '/wire': { status: 200, body: wireBody(TEXT), type: 'text/plain; charset=utf-8' },
  '/wire-binary': { status: 200, body: wireBody(ALL_BYTES), type: 'application/octet-stream' },
  '/empty': { status: 200, body: '', type: 'text/plain; charset=utf-8' },
};
const expected: Record<string, Buffer> = {
  '/binary': ALL_BYTES,
  '/text': Buffer.from(TEXT),
  '/ascii': Buffer.from('i-0123456789abcdef0'),
  '/wire': Buffer.from(TEXT),
  '/wire-binary': ALL_BYTES,
  '/empty': Buffer.alloc(0),
};

const handler = (req: http.IncomingMessage, res: http.ServerResponse) => send(req, res, answers[req.url ?? ''] ?? answers['/empty']);

let plain: http.Server;
let secure: https.Server;
let ca = '';

beforeAll(async () => {
  const root = await makeTestCa();
  const files = await writeNodeCert(root, 'node-a', path.join(dir, 'tls'));
  ca = root.root.certPem;
  plain = http.createServer(handler);
  secure = https.createServer({ cert: readFileSync(files.cert, 'utf8'), key: readFileSync(files.key, 'utf8') }, handler);
  for (const s of [plain, secure]) {
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
  }
});

afterAll(async () => {
  for (const s of [plain, secure]) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  rmSync(dir, { recursive: true, force: true });
});

/** One request; the status, headers and body bytes. */
function get(tls: boolean, urlPath: string, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  const port = ((tls ? secure : plain).address() as AddressInfo).port;
  return new Promise((resolve, reject) => {
    const opts = { host: '127.0.0.1', port, path: urlPath, method, agent: false as const };
    const req = tls ? https.request({ ...opts, ca }) : http.request(opts);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('send', () => {
  for (const tls of [false, true]) {
    for (const p of Object.keys(answers)) {
      it(`${tls ? 'HTTPS' : 'HTTP'} ${p}: the body's exact bytes and their length`, async () => {
        const r = await get(tls, p);
        expect(r.status).toBe(200);
        expect(r.body.equals(expected[p])).toBe(true);
        expect(r.headers['content-length']).toBe(String(expected[p].length));
        expect(r.headers['content-type']).toBe(answers[p].type);
      });
    }

    it(`${tls ? 'HTTPS' : 'HTTP'}: an answer's extra headers are sent`, async () => {
      expect((await get(tls, '/ascii')).headers['retry-after']).toBe('1');
    });

    it(`${tls ? 'HTTPS' : 'HTTP'} HEAD: the length of the body, without it`, async () => {
      const r = await get(tls, '/text', 'HEAD');
      expect(r.headers['content-length']).toBe(String(Buffer.byteLength(TEXT)));
      expect(r.body.length).toBe(0);
    });
  }
});
