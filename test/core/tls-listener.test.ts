/**
 * core/tls-listener.ts: the move of a plain listener to HTTPS when the node certificate arrives,
 * with real servers on loopback. A certificate that cannot be served (its key does not match) must
 * leave the listener as it was, answering, not closed.
 */
import http from 'node:http';
import https from 'node:https';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { listenWithNodeTls, type Listenable, type ServedCert } from '../../core/tls-listener.js';
import { makeTestCa, writeNodeCert } from '../../scripts/lib/tls-test-pki.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'mammatus-tls-listener-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined } as never;

/** A node:http(s) server that answers `ok`, as a Listenable. */
function build(cert?: ServedCert): Listenable {
  const handler = (_req: http.IncomingMessage, res: http.ServerResponse) => res.end('ok');
  const server = cert ? https.createServer({ cert: cert.cert, key: cert.key }, handler) : http.createServer(handler);
  return {
    server,
    async listen({ host, port }) {
      server.listen(port, host);
      await once(server, 'listening');
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** GET / over plain HTTP; the body, or the error's code. */
async function getPlain(url: string): Promise<string> {
  try {
    const res = await fetch(url);
    return await res.text();
  } catch (err) {
    return String((err as { cause?: { code?: string } }).cause?.code ?? err);
  }
}

describe('listenWithNodeTls', () => {
  it('keeps serving HTTP when the certificate that arrives cannot be served (key and certificate do not match)', async () => {
    const ca = await makeTestCa();
    const a = await writeNodeCert(ca, 'node-a', path.join(dir, 'a'));
    const b = await writeNodeCert(ca, 'node-b', path.join(dir, 'b'));
    const listener = await listenWithNodeTls({ build, listen: '127.0.0.1:0', log: silent, name: 'test', tls: undefined });
    try {
      expect(listener.url).toMatch(/^http:/);
      listener.setTls({ cert: readFileSync(a.cert, 'utf8'), key: readFileSync(b.key, 'utf8') });
      // Let the move run.
      await new Promise((r) => setTimeout(r, 200));
      expect(listener.url).toMatch(/^http:/);
      expect(await getPlain(listener.url)).toBe('ok');
    } finally {
      await listener.close();
    }
  });
});
