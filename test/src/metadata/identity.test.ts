/** Signed proxy identity and IMDSv2 tokens: every rejection rule. */
import { describe, expect, it } from 'vitest';
import { IDENTITY_HEADERS, parseSecret, passedProxy, signIdentity, verifyIdentity } from '../../../src/metadata/identity.js';
import { parseTokenTtl, TokenAuthority } from '../../../src/metadata/tokens.js';

const SECRET = Buffer.alloc(32, 3);
const NOW = 1_800_000_000_000;
const id = { ip: '10.0.0.5', mac: '02:00:00:00:00:05' };

describe('signed identity', () => {
  const headers = signIdentity(SECRET, 'GET', '/latest/meta-data/', id, NOW);
  it('verifies a signature made for the same method, URL and time window', () => {
    expect(verifyIdentity(headers, SECRET, 'GET', '/latest/meta-data/', NOW + 10_000)).toEqual({ kind: 'signed', identity: id });
  });
  it('is none without identity headers', () => expect(verifyIdentity({}, SECRET, 'GET', '/', NOW)).toEqual({ kind: 'none' }));
  it.each([
    ['another secret', () => verifyIdentity(headers, Buffer.alloc(32, 4), 'GET', '/latest/meta-data/', NOW)],
    ['another path', () => verifyIdentity(headers, SECRET, 'GET', '/latest/user-data', NOW)],
    ['another method', () => verifyIdentity(headers, SECRET, 'PUT', '/latest/meta-data/', NOW)],
    ['a changed IP', () => verifyIdentity({ ...headers, [IDENTITY_HEADERS.ip]: '10.0.0.6' }, SECRET, 'GET', '/latest/meta-data/', NOW)],
    ['a changed MAC', () => verifyIdentity({ ...headers, [IDENTITY_HEADERS.mac]: '' }, SECRET, 'GET', '/latest/meta-data/', NOW)],
    ['a stale time', () => verifyIdentity(headers, SECRET, 'GET', '/latest/meta-data/', NOW + 31_000)],
    ['a future time', () => verifyIdentity(headers, SECRET, 'GET', '/latest/meta-data/', NOW - 31_000)],
    [
      'a missing signature',
      () => verifyIdentity({ ...headers, [IDENTITY_HEADERS.signature]: undefined }, SECRET, 'GET', '/latest/meta-data/', NOW),
    ],
    [
      'a repeated header',
      () => verifyIdentity({ ...headers, [IDENTITY_HEADERS.ip]: ['10.0.0.5', '10.0.0.6'] }, SECRET, 'GET', '/latest/meta-data/', NOW),
    ],
    [
      'a garbage signature',
      () => verifyIdentity({ ...headers, [IDENTITY_HEADERS.signature]: 'zz' }, SECRET, 'GET', '/latest/meta-data/', NOW),
    ],
    ['no secret configured', () => verifyIdentity(headers, undefined, 'GET', '/latest/meta-data/', NOW)],
  ])('rejects %s', (_what, check) => expect(check().kind).toBe('rejected'));
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
