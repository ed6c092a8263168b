import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate, createPrivateKey, createPublicKey, webcrypto } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  certFingerprint,
  inspectCert,
  makeIntermediate,
  makeNodeCsr,
  makeNodeKey,
  makeNodeKeyAndCsr,
  makeRoot,
  verifyNodeChain,
  signNodeCsr,
  splitPemCerts,
  type CertAndKey,
} from '../../../src/ca/pki.js';

/** A CSR with arbitrary names (what a misbehaving node could send). */
async function csrWith(cn: string | undefined, names: x509.JsonGeneralNames, curve = 'P-256'): Promise<string> {
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: curve }, true, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    ...(cn ? { name: `CN=${cn}` } : {}),
    keys: keys as never,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: names.length ? [new x509.SubjectAlternativeNameExtension(names)] : [],
  });
  return csr.toString('pem');
}

describe('the PKI', () => {
  let root: CertAndKey;
  let intermediate: CertAndKey;

  beforeAll(async () => {
    root = await makeRoot();
    intermediate = await makeIntermediate(root);
  });

  it('makes a 10-year P-256 root and a 1-year intermediate with path length 0', () => {
    const r = new X509Certificate(root.certPem);
    const i = new X509Certificate(intermediate.certPem);
    expect(r.ca).toBe(true);
    expect(r.checkIssued(r)).toBe(true);
    expect(r.verify(r.publicKey)).toBe(true);
    expect(i.ca).toBe(true);
    expect(i.checkIssued(r)).toBe(true);
    expect(i.verify(r.publicKey)).toBe(true);
    expect(r.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    const years = (c: X509Certificate) => (Date.parse(c.validTo) - Date.now()) / (365 * 24 * 3600_000);
    expect(years(r)).toBeGreaterThan(9.9);
    expect(years(i)).toBeGreaterThan(0.99);
    expect(years(i)).toBeLessThan(1.01);
    const bc = new x509.X509Certificate(intermediate.certPem).getExtension(x509.BasicConstraintsExtension);
    expect(bc?.pathLength).toBe(0);
    // Keys are PKCS#8 PEM that node:crypto reads and that match their certificates.
    expect(createPublicKey(createPrivateKey(root.keyPem)).export({ format: 'jwk' })).toEqual(r.publicKey.export({ format: 'jwk' }));
  });

  it('signs a node CSR: chain verifies with node:crypto, names and EKU as asked', async () => {
    const { keyPem, csrPem } = await makeNodeKeyAndCsr('ctl-1', ['10.0.0.5']);
    const signed = await signNodeCsr({
      csrPem,
      node: 'ctl-1',
      allowedIps: ['10.0.0.5', '10.0.0.6'],
      intermediate,
      lifetimeMs: 10 * 60_000,
    });
    const [leafPem, interPem] = splitPemCerts(signed.chainPem);
    expect(leafPem).toBe(signed.certPem.trim());
    const leaf = new X509Certificate(leafPem);
    const inter = new X509Certificate(interPem);
    const r = new X509Certificate(root.certPem);
    expect(leaf.checkIssued(inter)).toBe(true);
    expect(leaf.verify(inter.publicKey)).toBe(true);
    expect(inter.verify(r.publicKey)).toBe(true);
    expect(leaf.ca).toBe(false);
    expect(leaf.checkPrivateKey(createPrivateKey(keyPem))).toBe(true);
    expect(leaf.checkHost('ctl-1.mammatus')).toBe('ctl-1.mammatus');
    expect(leaf.checkIP('10.0.0.5')).toBe('10.0.0.5');
    expect(leaf.checkIP('10.0.0.6')).toBeUndefined();
    expect(leaf.keyUsage).toEqual(expect.arrayContaining(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']));

    const info = inspectCert(signed.certPem);
    expect(info.subject).toBe('CN=ctl-1.mammatus');
    expect(info.issuer).toBe('CN=mammatus intermediate CA');
    expect(info.dnsNames).toEqual(['ctl-1.mammatus']);
    expect(info.ips).toEqual(['10.0.0.5']);
    expect(info.isCa).toBe(false);
    const life = info.notAfter.getTime() - Date.now();
    expect(life).toBeGreaterThan(9 * 60_000);
    expect(life).toBeLessThanOrEqual(10 * 60_000);
    expect(signed.notAfter.getTime()).toBe(info.notAfter.getTime());
  });

  it('fingerprints as SHA-256 hex lowercase, the same as node:crypto', () => {
    const fp = certFingerprint(root.certPem);
    expect(fp).toMatch(/^[0-9a-f]{64}$/);
    expect(fp).toBe(new X509Certificate(root.certPem).fingerprint256.replaceAll(':', '').toLowerCase());
    expect(inspectCert(root.certPem).fingerprint).toBe(fp);
    expect(certFingerprint(intermediate.certPem)).not.toBe(fp);
  });

  it('refuses a CSR for a foreign name, in the SANs or in the subject', async () => {
    const sign = (csrPem: string) => signNodeCsr({ csrPem, node: 'node-a', allowedIps: ['10.0.0.1'], intermediate });
    const foreign = await makeNodeKeyAndCsr('node-b');
    await expect(sign(foreign.csrPem)).rejects.toThrow(/CN=node-b.mammatus is not node-a.mammatus/);
    await expect(sign(await csrWith('node-a.mammatus', [{ type: 'dns', value: 'node-b.mammatus' }]))).rejects.toThrow(
      /asks for node-b.mammatus, which is not a name of node-a/,
    );
    await expect(sign(await csrWith(undefined, [{ type: 'dns', value: '*.mammatus' }]))).rejects.toThrow(/not a name/);
    await expect(sign(await csrWith(undefined, [{ type: 'ip', value: '10.0.0.2' }]))).rejects.toThrow(
      /IP 10.0.0.2, which is not an address of node-a/,
    );
    await expect(sign(await csrWith(undefined, [{ type: 'email', value: 'a@b.c' }]))).rejects.toThrow(/email name/);
    await expect(sign(await csrWith('node-a.mammatus, O=evil', []))).rejects.toThrow(/may only hold CN/);
    // A CSR with no names at all gets the node's own names.
    const plain = await sign(await csrWith(undefined, []));
    expect(inspectCert(plain.certPem).dnsNames).toEqual(['node-a.mammatus']);
  });

  it('refuses a tampered CSR, garbage, a wrong curve, an oversize request', async () => {
    const sign = (csrPem: string) => signNodeCsr({ csrPem, node: 'node-a', intermediate });
    const { csrPem } = await makeNodeKeyAndCsr('node-a');
    const der = Buffer.from(x509.PemConverter.decodeFirst(csrPem));
    // Change a byte of the name inside the signed part ("node-a" → "node-b").
    const at = der.indexOf(Buffer.from('node-a.mammatus'));
    expect(at).toBeGreaterThan(0);
    der[at + 5] = 'b'.charCodeAt(0);
    await expect(sign(x509.PemConverter.encode(der, 'CERTIFICATE REQUEST'))).rejects.toThrow(/signature does not verify/);
    await expect(sign('hello')).rejects.toThrow(/not a PEM PKCS#10/);
    await expect(sign(await csrWith('node-a.mammatus', [], 'P-384'))).rejects.toThrow(/ECDSA P-256/);
    await expect(sign('x'.repeat(100_000))).rejects.toThrow(/larger than/);
    await expect(signNodeCsr({ csrPem, node: 'bad name', intermediate })).rejects.toThrow(/not a valid node name/);
  });

  it('never issues past the intermediate, and refuses with an expired one', async () => {
    const now = new Date();
    const shortInter = await makeIntermediate(root, { lifetimeMs: 5 * 60_000 });
    const { csrPem } = await makeNodeKeyAndCsr('node-a');
    const signed = await signNodeCsr({ csrPem, node: 'node-a', intermediate: shortInter, lifetimeMs: 3600_000 });
    expect(signed.notAfter.getTime()).toBeLessThanOrEqual(Date.parse(new X509Certificate(shortInter.certPem).validTo));
    await expect(
      signNodeCsr({ csrPem, node: 'node-a', intermediate: shortInter, now: new Date(now.getTime() + 3600_000) }),
    ).rejects.toThrow(/intermediate certificate has expired/);
    await expect(signNodeCsr({ csrPem, node: 'node-a', intermediate: { ...intermediate, keyPem: 'nope' } })).rejects.toThrow(/PKCS#8/);
  });

  it('a certificate from another root does not verify against ours', async () => {
    const otherRoot = await makeRoot();
    const otherInter = await makeIntermediate(otherRoot);
    const { csrPem } = await makeNodeKeyAndCsr('node-a');
    const signed = await signNodeCsr({ csrPem, node: 'node-a', intermediate: otherInter });
    const leaf = new X509Certificate(signed.certPem);
    expect(leaf.checkIssued(new X509Certificate(intermediate.certPem))).toBe(false);
    expect(new X509Certificate(otherInter.certPem).verify(new X509Certificate(root.certPem).publicKey)).toBe(false);
  });

  it('makes CSRs from a kept key, and checks a chain before it is used', async () => {
    const key = await makeNodeKey();
    const csrPem = await makeNodeCsr('node-a', key, ['10.0.0.1']);
    const signed = await signNodeCsr({ csrPem, node: 'node-a', allowedIps: ['10.0.0.1'], intermediate, lifetimeMs: 60_000 });
    const ok = verifyNodeChain(signed.chainPem, root.certPem, key, 'node-a');
    expect(ok.notAfter.getTime()).toBe(signed.notAfter.getTime());
    expect(() => verifyNodeChain(signed.certPem, root.certPem, key, 'node-a')).toThrow(/the certificate and the intermediate/);
    expect(() => verifyNodeChain(signed.chainPem, root.certPem, key, 'node-b')).toThrow(/not for node-b.mammatus/);
    const other = await makeRoot();
    expect(() => verifyNodeChain(signed.chainPem, other.certPem, key, 'node-a')).toThrow(/not signed by the root/);
    const stranger = await makeNodeKey();
    expect(() => verifyNodeChain(signed.chainPem, root.certPem, stranger, 'node-a')).toThrow(/not for this node's key/);
    expect(() => verifyNodeChain(signed.chainPem, root.certPem, key, 'node-a', new Date(Date.now() + 120_000))).toThrow(/expired/);
  });
});
