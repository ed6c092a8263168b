/**
 * The cluster's PKI (issue 20): one root, one intermediate shared by every controller, and the node
 * certificates the controllers sign for `<node>.mammatus`. Pure apart from crypto (WebCrypto through
 * `@peculiar/x509`, hashes from node:crypto): nothing here reads or writes files or talks to NATS.
 *
 * Every key is ECDSA P-256, kept as PKCS#8 PEM (what node:tls, nats-server, caddy and step-ca read).
 * A node's certificate is built from names the signer decides, never copied from the request: the
 * request may only ask for a subset of them, and anything else in it is refused.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate as NodeX509, createHash, createPrivateKey, createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import { isDnsLabel } from '../../core/net.js';
import { NODE_DOMAIN, clusterNameConstraints, ipPermitted, permittedNames } from './constraints.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { NODE_DOMAIN } from './constraints.js';
/** Default lifetimes. */
export const ROOT_LIFETIME_MS = 10 * 365 * 24 * 3600_000;
export const INTERMEDIATE_LIFETIME_MS = 365 * 24 * 3600_000;
export const NODE_CERT_LIFETIME_MS = 24 * 3600_000;
/** The largest CSR (PEM characters) {@link signNodeCsr} parses: a P-256 CSR is under 1 KiB. */
export const MAX_CSR_CHARS = 8 * 1024;

const EC: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGN: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
/** subjectAltName. */
const SAN_OID = '2.5.29.17';

/** A certificate problem a caller can show as it is (bad CSR, wrong names, missing CA). */
export class PkiError extends Error {
  override readonly name = 'PkiError';
}

/** A certificate with its private key, both PEM. */
export interface CertAndKey {
  readonly certPem: string;
  readonly keyPem: string;
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

/** A random positive 128-bit serial (hex): the top bit cleared keeps the DER INTEGER positive. */
function newSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] & 0x7f) | 0x01;
  return bytes.toString('hex');
}

async function newKeyPair(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
}

async function keyToPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

/** Reads a PKCS#8 PEM P-256 private key (as this module writes them). */
async function importKey(pem: string): Promise<webcrypto.CryptoKey> {
  try {
    const der = x509.PemConverter.decodeFirst(pem);
    return await webcrypto.subtle.importKey('pkcs8', der, EC, false, ['sign']);
  } catch {
    throw new PkiError('the private key is not a PKCS#8 PEM ECDSA P-256 key');
  }
}

function parseCert(pem: string, what: string): x509.X509Certificate {
  try {
    return new x509.X509Certificate(pem);
  } catch {
    throw new PkiError(`the ${what} is not a PEM certificate`);
  }
}

/** Backdating absorbs small clock differences between nodes without eating short test lifetimes. */
function backdate(now: Date, lifetimeMs: number): Date {
  return new Date(now.getTime() - Math.min(60_000, Math.floor(lifetimeMs / 10)));
}

/** Options shared by the makers; `now` and lifetimes are injectable for tests. */
export interface MakeOptions {
  readonly now?: Date;
  readonly lifetimeMs?: number;
}

/** A new self-signed root: ECDSA P-256, 10 years, CA without path length limit. */
export async function makeRoot(opts: MakeOptions & { readonly commonName?: string } = {}): Promise<CertAndKey> {
  const now = opts.now ?? new Date();
  const keys = await newKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: newSerial(),
    name: `CN=${opts.commonName ?? 'mammatus root CA'}`,
    notBefore: backdate(now, 3600_000),
    notAfter: new Date(now.getTime() + (opts.lifetimeMs ?? ROOT_LIFETIME_MS)),
    keys,
    signingAlgorithm: SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await keyToPem(keys.privateKey) };
}

/** Options of {@link makeIntermediate}. */
export interface IntermediateOptions extends MakeOptions {
  readonly commonName?: string;
  /** The IP ranges its name constraints permit (default: private and local ranges, constraints.ts). */
  readonly ipRanges?: readonly string[];
}

/**
 * A new intermediate signed by the root: ECDSA P-256, 1 year, path length 0 (signs leaves only),
 * with critical name constraints: DNS under `mammatus`, IPs in private ranges (constraints.ts).
 */
export async function makeIntermediate(root: CertAndKey, opts: IntermediateOptions = {}): Promise<CertAndKey> {
  const now = opts.now ?? new Date();
  const rootCert = parseCert(root.certPem, 'root certificate');
  const rootKey = await importKey(root.keyPem);
  const keys = await newKeyPair();
  const wanted = now.getTime() + (opts.lifetimeMs ?? INTERMEDIATE_LIFETIME_MS);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: newSerial(),
    subject: `CN=${opts.commonName ?? 'mammatus intermediate CA'}`,
    issuer: rootCert.subjectName,
    notBefore: backdate(now, 3600_000),
    // An intermediate outliving its root would only fail verification later; clamp it now.
    notAfter: new Date(Math.min(wanted, rootCert.notAfter.getTime())),
    publicKey: keys.publicKey,
    signingKey: rootKey,
    signingAlgorithm: SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(rootCert.publicKey),
      clusterNameConstraints(opts.ipRanges),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await keyToPem(keys.privateKey) };
}

/**
 * The DNS names a CSR may ask for: `<node>.mammatus` first (the subject and the only name the
 * certificate carries), then the bare `<node>`, accepted from agents that still ask for it but
 * never signed: the intermediate's name constraints permit names under `mammatus` only.
 */
export function nodeDnsNames(node: string): [string, string] {
  return [`${node}.${NODE_DOMAIN}`, node];
}

/** An IP address in the form certificates compare (IPv6 compressed, lowercase); undefined if not one. */
export function normalizeIp(text: string): string | undefined {
  const family = isIP(text);
  if (family === 4) return text;
  if (family === 6) return new URL(`http://[${text}]`).hostname.slice(1, -1);
  return undefined;
}

/** A new P-256 private key (PKCS#8 PEM): a node makes its own and keeps it. */
export async function makeNodeKey(): Promise<string> {
  return keyToPem((await newKeyPair()).privateKey);
}

/** A CSR for `node` (its DNS names and `ips`) signed with `keyPem` (PKCS#8 P-256, as {@link makeNodeKey} makes). */
export async function makeNodeCsr(node: string, keyPem: string, ips: readonly string[] = []): Promise<string> {
  if (!isDnsLabel(node)) throw new PkiError(`"${node}" is not a valid node name`);
  const privateKey = await importKey(keyPem);
  // WebCrypto cannot derive the public half: node:crypto does, from the same PEM.
  const spki = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
  const publicKey = await webcrypto.subtle.importKey('spki', spki, EC, true, ['verify']);
  const names: x509.JsonGeneralNames = [{ type: 'dns', value: nodeDnsNames(node)[0] }];
  for (const ip of ips) names.push({ type: 'ip', value: ip });
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${node}.${NODE_DOMAIN}`,
    keys: { privateKey, publicKey },
    signingAlgorithm: SIGN,
    extensions: [new x509.SubjectAlternativeNameExtension(names)],
  });
  return csr.toString('pem');
}

/** A new P-256 key and a CSR for `node` with its DNS names and `ips` (the agent's side; the key stays local). */
export async function makeNodeKeyAndCsr(node: string, ips: readonly string[] = []): Promise<{ keyPem: string; csrPem: string }> {
  if (!isDnsLabel(node)) throw new PkiError(`"${node}" is not a valid node name`);
  const keyPem = await makeNodeKey();
  return { keyPem, csrPem: await makeNodeCsr(node, keyPem, ips) };
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
  if (leaf.checkHost(nodeDnsNames(node)[0]) === undefined) throw new PkiError(`the certificate is not for ${nodeDnsNames(node)[0]}`);
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (now.getTime() >= notAfter.getTime()) throw new PkiError(`the certificate expired at ${notAfter.toISOString()}`);
  return { notBefore, notAfter };
}

/** What a node asked for: its CN (if any), DNS and IP SANs. */
interface RequestedNames {
  readonly commonNames: readonly string[];
  readonly dns: readonly string[];
  readonly ips: readonly string[];
}

function requestedNames(csr: x509.Pkcs10CertificateRequest): RequestedNames {
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

/** What {@link signNodeCsr} needs. */
export interface SignNodeRequest {
  /** The CSR (PEM) the node sent. */
  readonly csrPem: string;
  /** The node the request comes from (proven by its NATS identity, not by the CSR). */
  readonly node: string;
  /** The IP addresses the node may have in its certificate (its Serf addresses). */
  readonly allowedIps?: readonly string[];
  /** The shared intermediate that signs. */
  readonly intermediate: CertAndKey;
  readonly lifetimeMs?: number;
  readonly now?: Date;
}

/** The signed certificate: `certPem` the leaf, `chainPem` leaf then intermediate. */
export interface SignedNodeCert {
  readonly certPem: string;
  readonly chainPem: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/**
 * Signs a node's CSR with the intermediate, after checking its signature, its key (P-256) and that
 * every name it asks for belongs to `node`: `<node>.mammatus`, `<node>`, or one of `allowedIps`.
 * The certificate carries `<node>.mammatus` and the IPs the CSR asked for (each within the intermediate's name
 * constraints); EKU serverAuth + clientAuth.
 */
export async function signNodeCsr(req: SignNodeRequest): Promise<SignedNodeCert> {
  if (!isDnsLabel(req.node)) throw new PkiError(`"${req.node}" is not a valid node name`);
  if (req.csrPem.length > MAX_CSR_CHARS) throw new PkiError(`the CSR is larger than ${MAX_CSR_CHARS} characters`);
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(req.csrPem);
  } catch {
    throw new PkiError('the CSR is not a PEM PKCS#10 certificate request');
  }
  if (!(await csr.verify().catch(() => false))) throw new PkiError('the CSR signature does not verify');
  const alg = csr.publicKey.algorithm as webcrypto.EcKeyAlgorithm;
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') throw new PkiError('the CSR key must be ECDSA P-256');

  const dnsAllowed = nodeDnsNames(req.node);
  const ipsAllowed = new Set((req.allowedIps ?? []).map((ip) => normalizeIp(ip)).filter((ip) => ip !== undefined));
  const asked = requestedNames(csr);
  for (const cn of asked.commonNames) {
    if (cn.toLowerCase() !== dnsAllowed[0]) throw new PkiError(`the CSR subject CN=${cn} is not ${dnsAllowed[0]}`);
  }
  for (const name of asked.dns) {
    if (!dnsAllowed.includes(name)) throw new PkiError(`the CSR asks for ${name}, which is not a name of ${req.node}`);
  }
  const ips: string[] = [];
  for (const ip of asked.ips) {
    const norm = normalizeIp(ip);
    if (norm === undefined || !ipsAllowed.has(norm))
      throw new PkiError(`the CSR asks for IP ${ip}, which is not an address of ${req.node}`);
    if (!ips.includes(norm)) ips.push(norm);
  }

  const issuer = parseCert(req.intermediate.certPem, 'intermediate certificate');
  // A name outside the intermediate's constraints would make the whole chain fail to verify.
  const permitted = permittedNames(req.intermediate.certPem);
  for (const ip of ips) {
    if (!ipPermitted(permitted, ip))
      throw new PkiError(`IP ${ip} is outside the ranges the intermediate permits (private addresses; docs/security.md)`);
  }
  const signingKey = await importKey(req.intermediate.keyPem);
  const now = req.now ?? new Date();
  const lifetimeMs = req.lifetimeMs ?? NODE_CERT_LIFETIME_MS;
  if (!(lifetimeMs >= 1000)) throw new PkiError('the certificate lifetime must be at least one second');
  if (issuer.notAfter.getTime() <= now.getTime()) throw new PkiError('the intermediate certificate has expired');
  const notBefore = backdate(now, lifetimeMs);
  const notAfter = new Date(Math.min(now.getTime() + lifetimeMs, issuer.notAfter.getTime()));
  const sans: x509.JsonGeneralNames = [
    { type: 'dns' as const, value: dnsAllowed[0] },
    ...ips.map((value) => ({ type: 'ip' as const, value })),
  ];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: newSerial(),
    subject: `CN=${dnsAllowed[0]}`,
    issuer: issuer.subjectName,
    notBefore,
    notAfter,
    publicKey: csr.publicKey,
    signingKey,
    signingAlgorithm: SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(sans),
      await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(issuer.publicKey),
    ],
  });
  const certPem = cert.toString('pem');
  return { certPem, chainPem: `${certPem}\n${issuer.toString('pem')}\n`, notBefore: cert.notBefore, notAfter: cert.notAfter };
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
