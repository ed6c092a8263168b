/** Signed proxy identity and IMDSv2 tokens: every rejection rule. */
import { describe, expect, it } from 'vitest';
import {
  bodySha256,
  EMPTY_BODY_SHA256,
  IDENTITY_HEADERS,
  parseSecret,
  passedProxy,
  signIdentity,
  verifyIdentity,
  type SignedRequest,
} from '../../../src/metadata/identity.js';
import { ReplayCache } from '../../../src/metadata/replay-cache.js';
import { hostIsHere } from '../../../src/metadata/caller.js';
import type { IncomingMessage } from 'node:http';
import { parseTokenTtl, TokenAuthority } from '../../../src/metadata/tokens.js';

const SECRET = Buffer.alloc(32, 3);
const NOW = 1_800_000_000_000;
const id = { ip: '10.0.0.5', mac: '02:00:00:00:00:05' };

describe('signed identity', () => {
  const req = (over: Partial<SignedRequest> = {}): SignedRequest => ({
    method: 'GET',
    url: '/latest/meta-data/',
    host: '10.0.0.2:8775',
    bodySha256: EMPTY_BODY_SHA256,
    ...over,
  });
  const headers = signIdentity(SECRET, req(), id, NOW);
  const check = (h: Record<string, unknown>, over: Partial<SignedRequest> = {}, at = NOW, secret: Buffer | null = SECRET) =>
    verifyIdentity(h as Record<string, string>, secret ?? undefined, req(over), at);
  it('verifies a signature made for the same method, URL, host, body and time window', () => {
    expect(check(headers, {}, NOW + 10_000)).toMatchObject({ kind: 'signed', identity: id, time: NOW / 1000 });
    expect(check(headers, { host: '10.0.0.2:8775'.toUpperCase() })).toMatchObject({ kind: 'signed' });
  });
  it('draws a fresh nonce, hence a fresh signature, for every request', () => {
    const again = signIdentity(SECRET, req(), id, NOW);
    expect(again[IDENTITY_HEADERS.nonce]).not.toBe(headers[IDENTITY_HEADERS.nonce]);
    expect(again[IDENTITY_HEADERS.signature]).not.toBe(headers[IDENTITY_HEADERS.signature]);
  });
  it('is none without identity headers', () => expect(check({})).toEqual({ kind: 'none' }));
  it.each([
    ['another secret', () => check(headers, {}, NOW, Buffer.alloc(32, 4))],
    ['another path', () => check(headers, { url: '/latest/user-data' })],
    ['another method', () => check(headers, { method: 'PUT' })],
    ['another host (a replay at another controller)', () => check(headers, { host: '10.0.0.3:8775' })],
    ['another body', () => check(headers, { bodySha256: bodySha256(Buffer.from('x')) })],
    ['a changed IP', () => check({ ...headers, [IDENTITY_HEADERS.ip]: '10.0.0.6' })],
    ['a changed MAC', () => check({ ...headers, [IDENTITY_HEADERS.mac]: '' })],
    ['a changed nonce', () => check({ ...headers, [IDENTITY_HEADERS.nonce]: 'A'.repeat(16) })],
    ['a malformed nonce', () => check({ ...headers, [IDENTITY_HEADERS.nonce]: 'a b' })],
    ['a missing nonce', () => check({ ...headers, [IDENTITY_HEADERS.nonce]: undefined })],
    ['a stale time', () => check(headers, {}, NOW + 31_000)],
    ['a future time', () => check(headers, {}, NOW - 31_000)],
    ['a missing signature', () => check({ ...headers, [IDENTITY_HEADERS.signature]: undefined })],
    ['a repeated header', () => check({ ...headers, [IDENTITY_HEADERS.ip]: ['10.0.0.5', '10.0.0.6'] })],
    ['a garbage signature', () => check({ ...headers, [IDENTITY_HEADERS.signature]: 'zz' })],
    ['no secret configured', () => check(headers, {}, NOW, null)],
  ])('rejects %s', (_what, run) => expect(run().kind).toBe('rejected'));
  it('tells a proxied request', () => {
    expect(passedProxy({ 'x-forwarded-for': '1.2.3.4' })).toBe(true);
    expect(passedProxy({ via: '1.1 squid' })).toBe(true);
    expect(passedProxy({ host: 'x' })).toBe(false);
  });
  it('reads secrets as hex or base64 of at least 32 bytes', () => {
    expect(parseSecret('ab'.repeat(32), 's')).toHaveLength(32);
    expect(parseSecret(Buffer.alloc(48, 1).toString('base64'), 's')).toHaveLength(48);
    expect(() => parseSecret('short', 'metadata.proxy_secret')).toThrow(/metadata.proxy_secret: must be at least 32 random bytes/);
  });
});

describe('IMDSv2 tokens', () => {
  const auth = new TokenAuthority(SECRET);
  const token = auth.mint('i-0123456789abcdef0', 60, NOW);
  it('accepts its own unexpired token for the same instance, on any controller with the secret', () => {
    expect(auth.check(token, 'i-0123456789abcdef0', NOW + 59_000)).toBe(true);
    expect(new TokenAuthority(SECRET).check(token, 'i-0123456789abcdef0', NOW)).toBe(true);
  });
  it('refuses expired, foreign, tampered and other-key tokens', () => {
    expect(auth.check(token, 'i-0123456789abcdef0', NOW + 61_000)).toBe(false);
    expect(auth.check(token, 'i-0000000000000000a', NOW)).toBe(false);
    expect(auth.check(token.replace(/\.\d+\./, '.9999999999.'), 'i-0123456789abcdef0', NOW)).toBe(false);
    expect(new TokenAuthority(Buffer.alloc(32, 9)).check(token, 'i-0123456789abcdef0', NOW)).toBe(false);
    expect(auth.check('garbage', 'i-0123456789abcdef0', NOW)).toBe(false);
  });
  it('parses TTLs within 1..21600 only', () => {
    expect(parseTokenTtl('21600')).toBe(21600);
    expect(parseTokenTtl(' 1 ')).toBe(1);
    for (const bad of [undefined, '', '0', '21601', '-5', '1.5', 'abc', ['60', '60']]) expect(parseTokenTtl(bad)).toBeUndefined();
  });
});

describe('replay cache', () => {
  it('admits a signature once, then calls it replayed, for as long as it could be valid', () => {
    const cache = new ReplayCache(30);
    const t = NOW / 1000;
    expect(cache.admit('sig-a', t, NOW)).toBe('fresh');
    expect(cache.admit('sig-a', t, NOW + 29_000)).toBe('replayed');
    expect(cache.admit('sig-b', t, NOW)).toBe('fresh');
  });
  it('forgets signatures once they have expired, so it stays bounded by the request rate', () => {
    const cache = new ReplayCache(30);
    for (let i = 0; i < 100; i++) cache.admit(`old-${i}`, NOW / 1000, NOW);
    expect(cache.entries).toBe(100);
    cache.admit('new', NOW / 1000 + 100, NOW + 100_000);
    expect(cache.entries).toBe(1);
  });
  it('refuses new signatures when full rather than forgetting one that could be replayed', () => {
    const cache = new ReplayCache(30, 2);
    expect(cache.admit('a', NOW / 1000, NOW)).toBe('fresh');
    expect(cache.admit('b', NOW / 1000, NOW)).toBe('fresh');
    expect(cache.admit('c', NOW / 1000, NOW)).toBe('full');
    expect(cache.admit('a', NOW / 1000, NOW)).toBe('replayed');
  });
});

describe('the signed host is where the request arrived', () => {
  const at = (localAddress: string, localPort: number) => ({ socket: { localAddress, localPort } }) as unknown as IncomingMessage;
  it('accepts the address and port the request came in on (IPv4-mapped too), or a host name', () => {
    expect(hostIsHere('10.0.0.2:8775', at('10.0.0.2', 8775))).toBe(true);
    expect(hostIsHere('10.0.0.2:8775', at('::ffff:10.0.0.2', 8775))).toBe(true);
    expect(hostIsHere('[fd00::2]:8775', at('fd00::2', 8775))).toBe(true);
    expect(hostIsHere('10.0.0.2', at('10.0.0.2', 80))).toBe(true);
    expect(hostIsHere('ctl-1.mammatus:8775', at('10.0.0.2', 8775))).toBe(true);
  });
  it("refuses another controller's address or port: a capture replayed elsewhere", () => {
    expect(hostIsHere('10.0.0.3:8775', at('10.0.0.2', 8775))).toBe(false);
    expect(hostIsHere('10.0.0.2:8776', at('10.0.0.2', 8775))).toBe(false);
    expect(hostIsHere('', at('10.0.0.2', 8775))).toBe(false);
  });
});
