/**
 * IMDSv2 session tokens. A token is stateless — `<instance id>.<expiry>.<random>.<hmac>` — so any
 * controller holding the same key accepts a token another controller minted, and no token table
 * grows. It is bound to the instance it was minted for: another instance presenting it is refused.
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

/** Longest and shortest token life AWS allows, in seconds. */
export const TOKEN_TTL_MIN_S = 1;
export const TOKEN_TTL_MAX_S = 21_600;

/** Mints and checks tokens with one key. */
export class TokenAuthority {
  private readonly key: Buffer;

  /** `secret` is the cluster secret (a token key is derived from it); absent = a random key per process. */
  constructor(secret?: Buffer) {
    this.key = secret ? Buffer.from(hkdfSync('sha256', secret, 'mammatus', 'imds-token-v1', 32)) : randomBytes(32);
  }

  /** A token for `instanceId` valid for `ttlS` seconds from `nowMs`. */
  mint(instanceId: string, ttlS: number, nowMs: number): string {
    const body = `${instanceId}.${Math.floor(nowMs / 1000) + ttlS}.${randomBytes(16).toString('base64url')}`;
    return `${body}.${this.sign(body)}`;
  }

  /** True when `token` is well formed, unexpired, signed with our key and minted for `instanceId`. */
  check(token: string, instanceId: string, nowMs: number): boolean {
    const parts = token.split('.');
    if (parts.length !== 4) return false;
    const [id, expiry, , sig] = parts as [string, string, string, string];
    const expected = Buffer.from(this.sign(parts.slice(0, 3).join('.')));
    const given = Buffer.from(sig);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return false;
    return id === instanceId && /^\d+$/.test(expiry) && Number(expiry) > nowMs / 1000;
  }

  private sign(body: string): string {
    return createHmac('sha256', this.key).update(body).digest('base64url');
  }
}

/** Parses the `X-aws-ec2-metadata-token-ttl-seconds` header; `undefined` when missing or out of range. */
export function parseTokenTtl(header: string | string[] | undefined): number | undefined {
  if (typeof header !== 'string' || !/^\d{1,6}$/.test(header.trim())) return undefined;
  const ttl = Number(header.trim());
  return ttl >= TOKEN_TTL_MIN_S && ttl <= TOKEN_TTL_MAX_S ? ttl : undefined;
}
