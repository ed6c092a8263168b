/**
 * Certificates for tests and benchmarks of TLS on internal links: a cluster CA (root and the shared
 * intermediate, src/ca/pki.ts) and node certificates written the way the agent keeps them
 * (`<dir>/{node.key,node.crt,ca.crt}`, agent/certs.ts).
 */
import { X509Certificate } from 'node:crypto';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import path from 'node:path';
import { makeIntermediate, makeNodeKeyAndCsr, makeRoot, signNodeCsr, type CertAndKey } from '../../src/ca/pki.js';
import type { ControllerTlsConfig } from '../../roles/controller/tls.js';

/** A test CA: the root and the intermediate that signs node certificates. */
export interface TestCa {
  readonly root: CertAndKey;
  readonly intermediate: CertAndKey;
}

/** A new CA (`name` goes into the root's common name, to tell two roots apart in errors). */
export async function makeTestCa(name = 'mammatus test root'): Promise<TestCa> {
  const root = await makeRoot({ commonName: name });
  return { root, intermediate: await makeIntermediate(root) };
}

/**
 * Issues a certificate for `node` (names `<node>.mammatus`, `<node>`, and `ips`) and writes the key,
 * the chain and the root into `dir`, replacing what was there (a renewal). Returns the paths.
 */
export async function writeNodeCert(
  ca: TestCa,
  node: string,
  dir: string,
  opts: { ips?: readonly string[]; lifetimeMs?: number } = {},
): Promise<ControllerTlsConfig & { serial: string }> {
  const ips = opts.ips ?? ['127.0.0.1'];
  const { keyPem, csrPem } = await makeNodeKeyAndCsr(node, ips);
  const signed = await signNodeCsr({ csrPem, node, allowedIps: ips, intermediate: ca.intermediate, lifetimeMs: opts.lifetimeMs });
  mkdirSync(dir, { recursive: true });
  const files = { key: path.join(dir, 'node.key'), cert: path.join(dir, 'node.crt'), ca: path.join(dir, 'ca.crt') };
  // Temp + rename, as the agent writes them: a reader never sees half a file.
  const write = (file: string, text: string, mode: number) => {
    writeFileSync(`${file}.tmp`, text, { mode });
    renameSync(`${file}.tmp`, file);
  };
  write(files.key, keyPem, 0o600);
  write(files.ca, ca.root.certPem, 0o644);
  write(files.cert, signed.chainPem, 0o644);
  return { ...files, serial: new X509Certificate(signed.certPem).serialNumber };
}

/**
 * The serial of the certificate a NATS server on `port` serves, read the way a client sees it: the
 * plain INFO line, then the TLS handshake, verified against `ca` (the name is not checked).
 */
export async function natsServedSerial(port: number, ca: string, host = '127.0.0.1'): Promise<string> {
  const socket = netConnect(port, host);
  try {
    await new Promise<void>((resolve, reject) => {
      let seen = '';
      socket.once('error', reject);
      const onData = (b: Buffer) => {
        seen += b.toString('latin1');
        if (!seen.includes('\r\n')) return;
        socket.off('data', onData);
        resolve();
      };
      socket.on('data', onData);
    });
    const tls = tlsConnect({ socket, ca, checkServerIdentity: () => undefined });
    try {
      await new Promise<void>((resolve, reject) => {
        tls.once('secureConnect', resolve);
        tls.once('error', reject);
      });
      return tls.getPeerCertificate().serialNumber;
    } finally {
      tls.destroy();
    }
  } finally {
    socket.destroy();
  }
}
