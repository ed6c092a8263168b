/**
 * The attack the root in the admission closes (docs/ca.md "Trust bootstrap"): a node's very first
 * certificate request meets a server in the middle that holds a certificate from another root. The
 * node writes the root its credentials carry to `ca.crt` before connecting, verifies the server
 * against it, and the TLS handshake fails before the NATS CONNECT (with the nkey's signature of the
 * server's nonce) is ever sent: there is nothing to relay. The server in the middle is a real TCP
 * and TLS server on loopback speaking the start of the NATS protocol (INFO with `tls_required`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { NodeCertificates } from '../../agent/certs.js';
import { tlsPaths } from '../../agent/certs-plan.js';
import { buildFileOps } from '../../core/files.js';
import { createAuthority, mintCredentials } from '../../core/trust.js';
import { certFingerprint, makeIntermediate, makeNodeKeyAndCsr, makeRoot, signNodeCsr } from '../../src/ca/pki.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-certs-attack-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A server in the middle: INFO asking for TLS, then TLS with `cert`/`key`; records what happens. */
async function middleServer(cert: string, key: string) {
  const decrypted: Buffer[] = [];
  const secured: string[] = [];
  const tlsErrors: string[] = [];
  const sockets = new Set<net.Socket>();
  const secure = tls.createServer({ cert, key }, (s) => {
    secured.push('handshake done');
    s.on('data', (d: Buffer) => decrypted.push(d));
    s.on('error', () => undefined);
  });
  secure.on('tlsClientError', (err) => tlsErrors.push(err.message));
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    const info = { server_id: 'NMIDDLE', version: '2.10.0', proto: 1, max_payload: 1048576, tls_required: true, nonce: 'n0nce-to-relay' };
    socket.write(`INFO ${JSON.stringify(info)}\r\n`);
    // From here on the client speaks TLS: hand the socket to the TLS server, as nats-server does.
    secure.emit('connection', socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `nats://127.0.0.1:${port}`,
    decrypted,
    secured,
    tlsErrors,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('the first certificate request meets a server from another root', () => {
  it('refuses it in the TLS handshake: no CONNECT, no nkey signature of the nonce reaches it', async () => {
    // The cluster's root, carried by the node's admission.
    const root = await makeRoot();
    // The server in the middle: a proper chain, from another root (even for this very address).
    const otherRoot = await makeRoot({ commonName: 'not the cluster' });
    const otherIntermediate = await makeIntermediate(otherRoot);
    const { keyPem, csrPem } = await makeNodeKeyAndCsr('ctl-1', ['127.0.0.1']);
    const forged = await signNodeCsr({ csrPem, node: 'ctl-1', allowedIps: ['127.0.0.1'], intermediate: otherIntermediate });
    const middle = await middleServer(forged.chainPem, keyPem);
    const creds = {
      ...mintCredentials(createAuthority(), 'gw-1', ['gateway'], new Date()),
      ca_fingerprint: certFingerprint(root.certPem),
      ca_root: root.certPem,
    };
    const dir = path.join(tmp, 'gw-1');
    const k = new NodeCertificates({
      files: buildFileOps(),
      stateDir: () => dir,
      node: () => 'gw-1',
      credentials: () => creds,
      members: () => [],
      servers: () => [middle.url],
      log: pino({ level: 'silent' }),
    });
    try {
      k.start();
      const end = Date.now() + 15_000;
      while (!k.status()?.last_error && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      k.stop();
      const s = k.status();
      expect(s?.not_after).toBeNull();
      expect(s?.last_error).toMatch(/unable to get local issuer certificate/);
      // It reached the server and began TLS, but refused the server's certificate: the handshake
      // never finished, and nothing (no CONNECT, no signature of the nonce) was sent inside it.
      expect(middle.tlsErrors.length).toBeGreaterThan(0);
      expect(middle.secured).toEqual([]);
      expect(middle.decrypted).toEqual([]);
      // The root the credentials carry was on disk before the connection (every client verifies).
      expect(await buildFileOps().read(tlsPaths(dir).ca)).toBe(`${root.certPem.trim()}\n`);
      expect(await buildFileOps().read(tlsPaths(dir).cert)).toBeUndefined();
    } finally {
      k.stop();
      await middle.close();
    }
  });
});
