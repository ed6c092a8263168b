/**
 * Reading the cluster's certificates and requests (issue 20), split from pki.ts: parsing, the
 * SHA-256 fingerprint a node pins, what a certificate says, the certificates of a PEM bundle, and
 * the names a CSR asks for, and the check of a node's chain before it is used. Pure; pki.ts
 * re-exports what callers use.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate as NodeX509, createHash, createPrivateKey } from 'node:crypto';
import { NODE_DOMAIN } from './constraints.js';

/** subjectAltName. */
const SAN_OID = '2.5.29.17';

/** A certificate problem a caller can show as it is (bad CSR, wrong names, missing CA). */
export class PkiError extends Error {
  override readonly name = 'PkiError';
}

/** What {@link inspectCert} reads from a certificate. */
export interface CertInfo {
  readonly subject: string;
  readonly issuer: string;
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly dnsNames: readonly string[];
  readonly ips: readonly string[];
  readonly isCa: boolean;
  /** SHA-256 of the DER, hex lowercase. */
  readonly fingerprint: string;
}

/** Parses the first certificate of `pem`; @throws PkiError naming `what` when it is none. */
export function parseCert(pem: string, what: string): x509.X509Certificate {
  try {
    return new x509.X509Certificate(pem);
  } catch {
    throw new PkiError(`the ${what} is not a PEM certificate`);
  }
}

/** SHA-256 over a certificate's DER, hex lowercase (the pinned form of the root). */
export function certFingerprint(pem: string): string {
  const cert = parseCert(pem, 'certificate');
  return createHash('sha256').update(Buffer.from(cert.rawData)).digest('hex');
}

/** The subject, issuer, validity, SANs and fingerprint of the first certificate in `pem`. */
export function inspectCert(pem: string): CertInfo {
  const cert = parseCert(pem, 'certificate');
  const dnsNames: string[] = [];
  const ips: string[] = [];
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  for (const name of san?.names.items ?? []) {
    if (name.type === 'dns') dnsNames.push(name.value);
    else if (name.type === 'ip') ips.push(name.value);
  }
  return {
    subject: cert.subject,
    issuer: cert.issuer,
    serial: cert.serialNumber,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    dnsNames,
    ips,
    isCa: cert.getExtension(x509.BasicConstraintsExtension)?.ca ?? false,
    fingerprint: createHash('sha256').update(Buffer.from(cert.rawData)).digest('hex'),
  };
}

/** Every certificate in a PEM bundle, in order (a chain file holds leaf then intermediate). */
export function splitPemCerts(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
}

/** What a node asked for: its CN (if any), DNS and IP SANs. */
export interface RequestedNames {
  readonly commonNames: readonly string[];
  readonly dns: readonly string[];
  readonly ips: readonly string[];
}

/** The names a CSR asks for; @throws PkiError when its subject holds more than CN or it asks for another kind of name. */
export function requestedNames(csr: x509.Pkcs10CertificateRequest): RequestedNames {
  const commonNames = csr.subjectName.getField('CN');
  const otherFields = csr.subjectName
    .toJSON()
    .flatMap((rdn) => Object.keys(rdn))
    .filter((k) => k !== 'CN');
  if (otherFields.length > 0) throw new PkiError(`the CSR subject may only hold CN, not ${otherFields.join(', ')}`);
  const dns: string[] = [];
  const ips: string[] = [];
  for (const ext of csr.getExtensions(SAN_OID)) {
    for (const name of new x509.SubjectAlternativeNameExtension(ext.rawData).names.items) {
      if (name.type === 'dns') dns.push(name.value.toLowerCase());
      else if (name.type === 'ip') ips.push(name.value);
      else throw new PkiError(`the CSR asks for a ${name.type} name; only DNS and IP names are signed`);
    }
  }
  return { commonNames, dns, ips };
}

/**
 * Checks a node's chain (leaf then intermediate, PEM) before it is used: the leaf is for
 * `<node>.mammatus`, matches `keyPem`, is issued by the intermediate, which is issued by `rootPem`,
 * and is valid now. Returns the leaf's validity; @throws PkiError saying what is wrong.
 */
export function verifyNodeChain(
  chainPem: string,
  rootPem: string,
  keyPem: string,
  node: string,
  now = new Date(),
): { notBefore: Date; notAfter: Date } {
  const [leafPem, interPem] = splitPemCerts(chainPem);
  if (!leafPem || !interPem) throw new PkiError('the chain must hold the certificate and the intermediate');
  let leaf: NodeX509;
  let inter: NodeX509;
  let root: NodeX509;
  try {
    [leaf, inter, root] = [new NodeX509(leafPem), new NodeX509(interPem), new NodeX509(rootPem)];
  } catch {
    throw new PkiError('the chain or the root is not PEM certificates');
  }
  if (!(leaf.checkIssued(inter) && leaf.verify(inter.publicKey))) throw new PkiError('the certificate is not signed by the intermediate');
  if (!(inter.ca && inter.checkIssued(root) && inter.verify(root.publicKey)))
    throw new PkiError('the intermediate is not signed by the root');
  if (!leaf.checkPrivateKey(createPrivateKey(keyPem))) throw new PkiError("the certificate is not for this node's key");
  const name = `${node}.${NODE_DOMAIN}`;
  if (leaf.checkHost(name) === undefined) throw new PkiError(`the certificate is not for ${name}`);
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (now.getTime() >= notAfter.getTime()) throw new PkiError(`the certificate expired at ${notAfter.toISOString()}`);
  return { notBefore, notAfter };
}
