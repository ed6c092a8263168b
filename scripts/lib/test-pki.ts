/**
 * Certificates for tests and benchmarks of TLS on internal links: a cluster CA (root and the shared
 * intermediate, src/ca/pki.ts) and node certificates written the way the agent keeps them
 * (`<dir>/{node.key,node.crt,ca.crt}`, agent/certs.ts).
 */
import { X509Certificate } from 'node:crypto';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
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
