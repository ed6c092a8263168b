/**
 * A throw-away PKI for tests, made with the `openssl` CLI (so the CA backends are proven with
 * certificates our own code did not make): an ECDSA P-256 root, an intermediate it signed (pathLen
 * 0), each key PKCS#8 PEM, laid out the way the controller's `roles.controller.ca.paths` expect.
 * Test-only: the cluster's real PKI comes from `mammatus ca init`.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { findOnPath } from './daemon.js';

/** The files of one test PKI. */
export interface TestPki {
  readonly dir: string;
  readonly rootCert: string;
  readonly rootKey: string;
  readonly intermediateCert: string;
  readonly intermediateKey: string;
}

/** Why a test PKI cannot be made here (no openssl), or undefined. */
export const testPkiUnavailable = (): string | undefined => (findOnPath('openssl') ? undefined : 'openssl is missing');

const openssl = (args: readonly string[], cwd: string): string =>
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 }).toString();

/** A P-256 key as PKCS#8 PEM at `file` (0600). */
function ecKey(file: string, cwd: string): void {
  const sec1 = openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout'], cwd);
  writeFileSync(`${file}.sec1`, sec1, { mode: 0o600 });
  openssl(['pkcs8', '-topk8', '-nocrypt', '-in', `${file}.sec1`, '-out', file], cwd);
  chmodSync(file, 0o600);
}

/**
 * Makes root and intermediate in `dir` (created): `root.crt`, `root.key`, `intermediate.crt`,
 * `intermediate.key`. `name` goes into the subjects, so two PKIs of one test are told apart.
 */
export function makeTestPki(dir: string, name = 'Test'): TestPki {
  mkdirSync(dir, { recursive: true });
  const at = (f: string) => path.join(dir, f);
  ecKey(at('root.key'), dir);
  openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      at('root.key'),
      '-sha256',
      '-days',
      '3650',
      '-subj',
      `/O=mammatus/CN=${name} Root CA`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-out',
      at('root.crt'),
    ],
    dir,
  );
  ecKey(at('intermediate.key'), dir);
  openssl(
    ['req', '-new', '-key', at('intermediate.key'), '-subj', `/O=mammatus/CN=${name} Intermediate CA`, '-out', at('intermediate.csr')],
    dir,
  );
  writeFileSync(
    at('intermediate.ext'),
    'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\n',
  );
  openssl(
    [
      'x509',
      '-req',
      '-in',
      at('intermediate.csr'),
      '-CA',
      at('root.crt'),
      '-CAkey',
      at('root.key'),
      '-CAcreateserial',
      '-days',
      '365',
      '-sha256',
      '-extfile',
      at('intermediate.ext'),
      '-out',
      at('intermediate.crt'),
    ],
    dir,
  );
  return pkiFiles(dir);
}

/** The files of a test PKI in `dir` (the layout `makeTestPki` writes). */
export function pkiFiles(dir: string): TestPki {
  const at = (f: string) => path.join(dir, f);
  return {
    dir,
    rootCert: at('root.crt'),
    rootKey: at('root.key'),
    intermediateCert: at('intermediate.crt'),
    intermediateKey: at('intermediate.key'),
  };
}

/** `openssl verify` of `leafChain` (leaf first, then intermediates) against `rootCert`; returns openssl's output or throws. */
export function verifyChain(rootCert: string, leafChain: string, dir: string): string {
  const pems = leafChain.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
  if (pems.length === 0) throw new Error('no certificate in the chain');
  const leaf = path.join(dir, 'verify-leaf.pem');
  const untrusted = path.join(dir, 'verify-untrusted.pem');
  writeFileSync(leaf, pems[0]!);
  writeFileSync(untrusted, pems.slice(1).join('') || pems[0]!);
  return openssl(['verify', '-CAfile', rootCert, '-untrusted', untrusted, leaf], dir);
}

/** The subject alternative names and validity of a PEM certificate (first in `pem`), as openssl prints them. */
export function describeCert(pem: string, dir: string): { sans: string[]; notBefore: Date; notAfter: Date } {
  const file = path.join(dir, 'describe.pem');
  writeFileSync(file, pem);
  const text = openssl(['x509', '-in', file, '-noout', '-ext', 'subjectAltName', '-startdate', '-enddate'], dir);
  const sans = [...text.matchAll(/DNS:([^,\s]+)/g)].map((m) => m[1]);
  const date = (key: string) => new Date(new RegExp(`${key}=(.+)`).exec(text)?.[1] ?? NaN);
  return { sans, notBefore: date('notBefore'), notAfter: date('notAfter') };
}
