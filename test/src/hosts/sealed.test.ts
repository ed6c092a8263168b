import { describe, expect, it } from 'vitest';
import { isBoxPublicKey, newBoxKeyPair, openSealed, seal } from '../../../src/hosts/sealed.js';

/** Flips one bit of the base64url part `index` of a box. */
function flip(box: string, index: number): string {
  const parts = box.split('.');
  const bytes = Buffer.from(parts[index], 'base64url');
  bytes[0] ^= 1;
  parts[index] = bytes.toString('base64url');
  return parts.join('.');
}

describe('sealed boxes', () => {
  const payload = { node: 'metal-1', roles: ['compute'], gossip_key: 'a'.repeat(44) };

  it('opens with the recipient key, and each box is fresh', () => {
    const own = newBoxKeyPair();
    expect(isBoxPublicKey(own.publicKey)).toBe(true);
    const a = seal(own.publicKey, payload);
    const b = seal(own.publicKey, payload);
    expect(a).toMatch(/^mbox1\.[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
    expect(a).not.toBe(b);
    expect(a).not.toContain('metal-1');
    expect(openSealed(own, a)).toEqual(payload);
    expect(openSealed(own, b)).toEqual(payload);
  });

  it('refuses another key, any changed part, and malformed boxes', () => {
    const own = newBoxKeyPair();
    const box = seal(own.publicKey, payload);
    expect(() => openSealed(newBoxKeyPair(), box)).toThrow(/does not open/);
    for (const i of [1, 2, 3, 4]) expect(() => openSealed(own, flip(box, i))).toThrow();
    expect(() => openSealed(own, box.replace('mbox1', 'mbox2'))).toThrow(/not a sealed answer/);
    expect(() => openSealed(own, box.split('.').slice(0, 4).join('.'))).toThrow(/not a sealed answer/);
    expect(() => openSealed(own, `${box}x`.replace(/\.([^.]*)$/, '.$1!'))).toThrow(/not a sealed answer/);
    expect(() => openSealed(own, 'x'.repeat(70_000))).toThrow(/too large/);
  });

  it('refuses to seal to something that is not an X25519 key, and to a low-order point', () => {
    expect(() => seal('short', payload)).toThrow(/32 bytes/);
    expect(() => seal(Buffer.alloc(32).toString('base64'), payload)).toThrow();
    expect(isBoxPublicKey(Buffer.alloc(31).toString('base64'))).toBe(false);
  });
});
