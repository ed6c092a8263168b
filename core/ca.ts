/**
 * The names of the cluster's certificate authority every layer shares (issue 20): its buckets, the
 * subject nodes ask for their certificates on, the request/answer shapes, and the check of a root
 * carried by an admission.
 */
import { X509Certificate, createHash } from 'node:crypto';

/** Public parts (root, intermediate, root fingerprint): readable by every admitted node, written by controllers. */
export const CA_BUCKET = 'mammatus-ca';
/** The intermediate's key (and, when kept on the cluster, the root's): controllers only. */
export const CA_KEYS_BUCKET = 'mammatus-ca-keys';
/** Where node `<node>` asks the controllers to sign its CSR (`<prefix>.<node>`; request/reply). */
export const CA_SIGN_SUBJECT = 'mammatus.ca.sign';

/**
 * A sign request (JSON): the node's CSR (PEM). Its names must be the node's own (`<node>.mammatus`,
 * `<node>`, the node's Serf addresses as IP names); the node is the one the subject names.
 */
export interface CaSignRequest {
  readonly csr: string;
}

/** A sign request larger than this is refused unread (a P-256 CSR is under 1 KiB). */
export const MAX_CA_SIGN_REQUEST_BYTES = 8192;

/** The answer: the chain (leaf then intermediate, PEM) and its expiry, or why not. */
export type CaSignAnswer =
  { readonly ok: true; readonly chain: string; readonly not_after: string } | { readonly ok: false; readonly error: string };

/** True for a SHA-256 fingerprint as the CA pins them: 64 lowercase hex digits. */
export function isCaFingerprint(text: unknown): text is string {
  return typeof text === 'string' && /^[0-9a-f]{64}$/.test(text);
}

/**
 * Checks a root carried by an admission (`ca_root` of the credentials, of a host's join grant)
 * against the fingerprint pinned with it, and returns it alone (one PEM block, newline-ended: what
 * `ca.crt` holds). @throws naming the problem: not exactly one certificate (a bundle would make
 * every certificate in it trusted while only the first is pinned), unreadable, not a CA, or
 * another SHA-256 than the pin.
 */
export function checkPinnedRoot(pem: unknown, fingerprint: string | undefined): string {
  if (typeof pem !== 'string') throw new Error('the CA root is not PEM text');
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length !== 1) throw new Error(`the CA root holds ${blocks.length} certificates, not one`);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(blocks[0]);
  } catch {
    throw new Error('the CA root is not a readable certificate');
  }
  if (!cert.ca) throw new Error('the CA root is not a CA certificate');
  const actual = createHash('sha256').update(cert.raw).digest('hex');
  if (!isCaFingerprint(fingerprint)) throw new Error('the CA root comes without its fingerprint');
  if (actual !== fingerprint)
    throw new Error(`the CA root ${actual.slice(0, 16)}… does not match the pinned fingerprint ${fingerprint.slice(0, 16)}…`);
  return `${blocks[0]}\n`;
}

/** The problem {@link checkPinnedRoot} finds with `pem`, or undefined when there is none. */
export function pinnedRootProblem(pem: unknown, fingerprint: string | undefined): string | undefined {
  try {
    checkPinnedRoot(pem, fingerprint);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
