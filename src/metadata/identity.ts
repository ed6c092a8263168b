/**
 * Caller identity between the gateway's metadata proxy and the metadata service. The proxy knows who
 * called (the TCP peer address, and its MAC from the DHCP leases); it passes both on in headers
 * signed with the cluster secret, bound to the request's method and path and to a timestamp, so a
 * header copied from one request cannot be reused for another path or after the window. The service
 * trusts these headers only with a valid signature (compared in constant time).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** The identity headers (lower case, as node's http parser delivers them). */
export const IDENTITY_HEADERS = {
  ip: 'x-mammatus-client-ip',
  mac: 'x-mammatus-client-mac',
  time: 'x-mammatus-time',
  signature: 'x-mammatus-signature',
} as const;

/** How far a signed timestamp may be from the service's clock, either way. */
export const SIGNATURE_WINDOW_S = 30;

/** What the proxy asserts about a caller. `mac` is empty when the leases do not know the address. */
export interface CallerIdentity {
  readonly ip: string;
  readonly mac: string;
}

function mac(secret: Buffer, method: string, url: string, id: CallerIdentity, time: string): Buffer {
  return createHmac('sha256', secret).update(['mammatus-metadata-v1', method.toUpperCase(), url, id.ip, id.mac, time].join('\n')).digest();
}

/** The headers the proxy adds for `id` on a request with this method and URL (path + query). */
export function signIdentity(secret: Buffer, method: string, url: string, id: CallerIdentity, nowMs: number): Record<string, string> {
  const time = String(Math.floor(nowMs / 1000));
  return {
    [IDENTITY_HEADERS.ip]: id.ip,
    [IDENTITY_HEADERS.mac]: id.mac,
    [IDENTITY_HEADERS.time]: time,
    [IDENTITY_HEADERS.signature]: mac(secret, method, url, id, time).toString('hex'),
  };
}

/** The outcome of checking a request's identity headers. */
export type IdentityCheck =
  | { readonly kind: 'none' }
  | { readonly kind: 'signed'; readonly identity: CallerIdentity }
  | { readonly kind: 'rejected'; readonly reason: string };

type Headers = Readonly<Record<string, string | string[] | undefined>>;

/** True when a request carries any identity header (then it must carry a valid signature). */
export function hasIdentityHeaders(headers: Headers): boolean {
  return Object.values(IDENTITY_HEADERS).some((h) => headers[h] !== undefined);
}

/** Checks the identity headers of a request; `secret` undefined = signed identity not configured. */
export function verifyIdentity(headers: Headers, secret: Buffer | undefined, method: string, url: string, nowMs: number): IdentityCheck {
  if (!hasIdentityHeaders(headers)) return { kind: 'none' };
  const one = (name: string): string | undefined => {
    const v = headers[name];
    return typeof v === 'string' ? v : undefined; // a repeated header is an array: refused
  };
  const ip = one(IDENTITY_HEADERS.ip);
  const macAddr = one(IDENTITY_HEADERS.mac);
  const time = one(IDENTITY_HEADERS.time);
  const signature = one(IDENTITY_HEADERS.signature);
  if (!secret) return { kind: 'rejected', reason: 'identity headers present but no proxy secret is configured' };
  if (ip === undefined || macAddr === undefined || time === undefined || signature === undefined) {
    return { kind: 'rejected', reason: 'incomplete or repeated identity headers' };
  }
  if (!/^\d{1,12}$/.test(time) || Math.abs(nowMs / 1000 - Number(time)) > SIGNATURE_WINDOW_S) {
    return { kind: 'rejected', reason: 'identity signature expired or from the future' };
  }
  const expected = mac(secret, method, url, { ip, mac: macAddr }, time);
  const given = /^[0-9a-f]{64}$/.test(signature) ? Buffer.from(signature, 'hex') : Buffer.alloc(0);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { kind: 'rejected', reason: 'bad identity signature' };
  return { kind: 'signed', identity: { ip, mac: macAddr } };
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
