/**
 * The intermediate's name constraints (issue 20): DNS under `mammatus` and private IPs only. Leaves
 * are made here directly with the intermediate's key, as a CA backend talked into it would: OpenSSL
 * (`openssl verify` with the chain) and node:tls must accept `web-1.mammatus` and reject
 * `example.com` or a public address.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { execFile } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { connect, createServer } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NAME_CONSTRAINTS_OID, PERMITTED_IP_RANGES, ipPermitted, permittedNames } from '../../../src/ca/constraints.js';
import { makeIntermediate, makeNodeKeyAndCsr, makeRoot, signNodeCsr, type CertAndKey } from '../../../src/ca/pki.js';

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** A leaf for `names` signed by `issuer` with no checks at all (what a misled backend could sign). */
async function leafFor(issuer: CertAndKey, names: x509.JsonGeneralNames): Promise<CertAndKey> {
  const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const issuerCert = new x509.X509Certificate(issuer.certPem);
  const signingKey = await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(issuer.keyPem), EC, false, ['sign']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '0a1b2c',
    subject: `CN=${names[0].value}`,
    issuer: issuerCert.subjectName,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3600_000),
    publicKey: keys.publicKey,
    signingKey,
    signingAlgorithm: SIGN,
    extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]), new x509.SubjectAlternativeNameExtension(names)],
  });
  const der = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { certPem: cert.toString('pem'), keyPem: x509.PemConverter.encode(der, 'PRIVATE KEY') };
}

/** `openssl verify -CAfile root -untrusted intermediate leaf`: its exit code and output. */
function opensslVerify(dir: string, rootPem: string, interPem: string, leafPem: string): Promise<{ ok: boolean; out: string }> {
  const [r, i, l] = ['root.pem', 'inter.pem', `leaf-${Math.random().toString(16).slice(2)}.pem`].map((f) => path.join(dir, f));
  writeFileSync(r, rootPem);
  writeFileSync(i, interPem);
  writeFileSync(l, leafPem);
  return new Promise((resolve) => {
    execFile('openssl', ['verify', '-CAfile', r, '-untrusted', i, l], { timeout: 10_000 }, (err, stdout, stderr) =>
      resolve({ ok: !err, out: `${stdout}${stderr}` }),
    );
  });
}

/** A TLS handshake with a server presenting `leaf` + intermediate, the client trusting only the root. */
async function handshake(leaf: CertAndKey, interPem: string, rootPem: string, servername: string, host = '127.0.0.1'): Promise<string> {
  const server = createServer({ cert: `${leaf.certPem}\n${interPem}`, key: leaf.keyPem }, (s) => s.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    return await new Promise<string>((resolve) => {
      const s = connect({ host, port, ca: rootPem, servername }, () => {
        s.destroy();
        resolve('ok');
      });
      s.on('error', (err: NodeJS.ErrnoException) => resolve(`${err.code}: ${err.message}`));
    });
  } finally {
    server.close();
  }
}

describe('name constraints of the intermediate', () => {
  let root: CertAndKey;
  let intermediate: CertAndKey;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mammatus-nc-'));

  beforeAll(async () => {
    root = await makeRoot();
    intermediate = await makeIntermediate(root);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('carries a critical NameConstraints permitting mammatus and private IP ranges', () => {
    const ext = new x509.X509Certificate(intermediate.certPem).getExtension(NAME_CONSTRAINTS_OID);
    expect(ext?.critical).toBe(true);
    const p = permittedNames(intermediate.certPem);
    expect(p).toEqual({ dns: ['mammatus'], ips: [...PERMITTED_IP_RANGES] });
    expect(permittedNames(root.certPem)).toBeUndefined();
    for (const ip of ['10.1.2.3', '192.168.0.9', '172.31.255.1', '100.64.0.1', '127.0.0.1', 'fd00::5', '::1'])
      expect(ipPermitted(p, ip), ip).toBe(true);
    for (const ip of ['8.8.8.8', '172.32.0.1', '2001:db8::1', 'not-an-ip']) expect(ipPermitted(p, ip), ip).toBe(false);
    expect(ipPermitted(undefined, '8.8.8.8')).toBe(true);
  });

  it('openssl verify accepts web-1.mammatus and a private IP, rejects example.com and a public IP', async () => {
    const verify = async (names: x509.JsonGeneralNames) =>
      opensslVerify(dir, root.certPem, intermediate.certPem, (await leafFor(intermediate, names)).certPem);
    expect(await verify([{ type: 'dns', value: 'web-1.mammatus' }])).toMatchObject({ ok: true });
    expect(
      await verify([
        { type: 'dns', value: 'ca.mammatus' },
        { type: 'ip', value: '10.0.0.5' },
      ]),
    ).toMatchObject({ ok: true });
    const bad = await verify([{ type: 'dns', value: 'example.com' }]);
    expect(bad.ok).toBe(false);
    expect(bad.out).toMatch(/permitted subtree violation/);
    expect(await verify([{ type: 'dns', value: 'mammatus.example.com' }])).toMatchObject({ ok: false });
    expect(
      await verify([
        { type: 'dns', value: 'web-1.mammatus' },
        { type: 'ip', value: '8.8.8.8' },
      ]),
    ).toMatchObject({ ok: false });
  });

  it('node:tls accepts web-1.mammatus and refuses example.com under the same root', async () => {
    const good = await leafFor(intermediate, [{ type: 'dns', value: 'web-1.mammatus' }]);
    expect(await handshake(good, intermediate.certPem, root.certPem, 'web-1.mammatus')).toBe('ok');
    const bad = await leafFor(intermediate, [{ type: 'dns', value: 'example.com' }]);
    expect(await handshake(bad, intermediate.certPem, root.certPem, 'example.com')).toMatch(/permitted subtree violation/);
  });

  it('signNodeCsr keeps node certificates inside the constraints', async () => {
    const { csrPem } = await makeNodeKeyAndCsr('node-a', ['8.8.8.8']);
    await expect(signNodeCsr({ csrPem, node: 'node-a', allowedIps: ['8.8.8.8'], intermediate })).rejects.toThrow(
      /IP 8.8.8.8 is outside the ranges the intermediate permits/,
    );
    const ok = await makeNodeKeyAndCsr('node-a', ['10.0.0.7']);
    const signed = await signNodeCsr({ csrPem: ok.csrPem, node: 'node-a', allowedIps: ['10.0.0.7'], intermediate });
    expect((await opensslVerify(dir, root.certPem, intermediate.certPem, signed.certPem)).ok).toBe(true);
  });
});
