/**
 * The names of the cluster's certificate authority every layer shares (issue 20): its buckets, the
 * subject nodes ask for their certificates on, and the request/answer shapes. Nothing else.
 */

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
