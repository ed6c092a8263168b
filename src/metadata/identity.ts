/**
 * Caller identity between the gateway's metadata proxy and the metadata service. The proxy knows who
 * called (the TCP peer address, and its MAC from the DHCP leases); it passes both on in headers
 * signed with the cluster secret, bound to the request's method, path, Host, body hash, a timestamp
 * and a random nonce, so a header copied from one request cannot be reused for another request or
 * after the window, and the service's replay cache (replay-cache.ts) refuses the same signature twice.
 * The service trusts these headers only with a valid signature (compared in constant time).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** The identity headers (lower case, as node's http parser delivers them). */
export const IDENTITY_HEADERS = {
  ip: 'x-mammatus-client-ip',
  mac: 'x-mammatus-client-mac',
  time: 'x-mammatus-time',
  nonce: 'x-mammatus-nonce',
  signature: 'x-mammatus-signature',
} as const;

/** How far a signed timestamp may be from the service's clock, either way. */
export const SIGNATURE_WINDOW_S = 30;

/** What the proxy asserts about a caller. `mac` is empty when the leases do not know the address. */
export interface CallerIdentity {
  readonly ip: string;
  readonly mac: string;
}

/** What a signature binds: the request as the metadata service receives it. */
export interface SignedRequest {
  readonly method: string;
  /** The request-target: path and query, exactly as sent. */
  readonly url: string;
  /** The Host header the service receives (the upstream's `host:port`). */
  readonly host: string;
  /** The body's SHA-256, hex (`EMPTY_BODY_SHA256` for none). */
  readonly bodySha256: string;
}

/** SHA-256 of an empty body, hex. */
export const EMPTY_BODY_SHA256 = createHash('sha256').digest('hex');

/** SHA-256 of `body`, hex. */
export function bodySha256(body: Uint8Array): string {
  return body.length === 0 ? EMPTY_BODY_SHA256 : createHash('sha256').update(body).digest('hex');
}

function mac(secret: Buffer, req: SignedRequest, id: CallerIdentity, time: string, nonce: string): Buffer {
  const fields = [
    'mammatus-metadata-v2',
    req.method.toUpperCase(),
    req.url,
    req.host.toLowerCase(),
    req.bodySha256,
    id.ip,
    id.mac,
    time,
    nonce,
  ];
  return createHmac('sha256', secret).update(fields.join('\n')).digest();
}

/** The headers the proxy adds for `id` on `req`; each call draws a fresh nonce. */
export function signIdentity(secret: Buffer, req: SignedRequest, id: CallerIdentity, nowMs: number): Record<string, string> {
  const time = String(Math.floor(nowMs / 1000));
  const nonce = randomBytes(12).toString('base64url');
  return {
    [IDENTITY_HEADERS.ip]: id.ip,
    [IDENTITY_HEADERS.mac]: id.mac,
    [IDENTITY_HEADERS.time]: time,
    [IDENTITY_HEADERS.nonce]: nonce,
    [IDENTITY_HEADERS.signature]: mac(secret, req, id, time, nonce).toString('hex'),
  };
}

/** The outcome of checking a request's identity headers. `signature` and `time` feed the replay cache. */
export type IdentityCheck =
  | { readonly kind: 'none' }
  | { readonly kind: 'signed'; readonly identity: CallerIdentity; readonly signature: string; readonly time: number }
  | { readonly kind: 'rejected'; readonly reason: string };

type Headers = Readonly<Record<string, string | string[] | undefined>>;

/** True when a request carries any identity header (then it must carry a valid signature). */
export function hasIdentityHeaders(headers: Headers): boolean {
  return Object.values(IDENTITY_HEADERS).some((h) => headers[h] !== undefined);
}

/** Checks the identity headers of a request; `secret` undefined = signed identity not configured. */
export function verifyIdentity(headers: Headers, secret: Buffer | undefined, req: SignedRequest, nowMs: number): IdentityCheck {
  if (!hasIdentityHeaders(headers)) return { kind: 'none' };
  const one = (name: string): string | undefined => {
    const v = headers[name];
    return typeof v === 'string' ? v : undefined; // a repeated header is an array: refused
  };
  const ip = one(IDENTITY_HEADERS.ip);
  const macAddr = one(IDENTITY_HEADERS.mac);
  const time = one(IDENTITY_HEADERS.time);
  const nonce = one(IDENTITY_HEADERS.nonce);
  const signature = one(IDENTITY_HEADERS.signature);
  if (!secret) return { kind: 'rejected', reason: 'identity headers present but no proxy secret is configured' };
  if (ip === undefined || macAddr === undefined || time === undefined || nonce === undefined || signature === undefined) {
    return { kind: 'rejected', reason: 'incomplete or repeated identity headers' };
  }
  if (!/^\d{1,12}$/.test(time) || Math.abs(nowMs / 1000 - Number(time)) > SIGNATURE_WINDOW_S) {
    return { kind: 'rejected', reason: 'identity signature expired or from the future' };
  }
  if (!/^[A-Za-z0-9_-]{16,64}$/.test(nonce)) return { kind: 'rejected', reason: 'bad identity nonce' };
  const expected = mac(secret, req, { ip, mac: macAddr }, time, nonce);
  const given = /^[0-9a-f]{64}$/.test(signature) ? Buffer.from(signature, 'hex') : Buffer.alloc(0);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { kind: 'rejected', reason: 'bad identity signature' };
  return { kind: 'signed', identity: { ip, mac: macAddr }, signature, time: Number(time) };
}

/** True when a request passed some HTTP proxy (then its source address is not the caller's). */
export function passedProxy(headers: Headers): boolean {
  return headers['x-forwarded-for'] !== undefined || headers.forwarded !== undefined || headers.via !== undefined;
}

/** Reads the proxy secret from config text (hex or base64, at least 32 bytes) as bytes. */
export function parseSecret(text: string, what: string): Buffer {
  const t = text.trim();
  const bytes = /^[0-9a-fA-F]+$/.test(t) && t.length % 2 === 0 ? Buffer.from(t, 'hex') : Buffer.from(t, 'base64');
  if (bytes.length < 32) throw new Error(`${what}: must be at least 32 random bytes, hex or base64 (e.g. openssl rand -hex 32)`);
  return bytes;
}
