/**
 * Sealed boxes for a host's join answer (issue 19). The LAN between a host, the gateway's metadata
 * proxy and the controllers carries plain HTTP and plain NATS, so the credentials a host gets for
 * its join secret are sealed to a key only the host holds: it makes an X25519 key pair, sends the
 * public half with its join, and keeps the private half in memory.
 *
 * Sealing makes a fresh ephemeral X25519 pair, derives a 256-bit key with HKDF-SHA256 from the
 * shared secret (salted with both public keys, so a box is bound to the recipient it was made for),
 * and encrypts the JSON with AES-256-GCM. The compact result is
 * `mbox1.<ephemeral public>.<nonce>.<ciphertext>.<tag>` (base64url parts). Anyone may seal to a
 * public key, so a box proves nothing about its sender: the host checks what it opens (the trust
 * tag must verify and name its own key). Pure apart from randomness.
 */
import {
  createCipheriv,
  createDecipheriv,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  type KeyObject,
} from 'node:crypto';

/** The version prefix of a sealed box. */
const VERSION = 'mbox1';
/** HKDF's context: a key derived for anything else is never this one. */
const INFO = Buffer.from('mammatus host join sealed box/1');
/** The largest box {@link openSealed} reads (a join grant is well under 2 KiB). */
export const MAX_SEALED_CHARS = 64 * 1024;

/** A host's box key pair: `publicKey` is what it sends (base64 of the raw 32 bytes). */
export interface BoxKeyPair {
  readonly publicKey: string;
  readonly privateKey: KeyObject;
}

/** A new X25519 key pair for one join. */
export function newBoxKeyPair(): BoxKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  return { publicKey: rawPublic(publicKey).toString('base64'), privateKey };
}

/** The raw 32 bytes of an X25519 public key. */
function rawPublic(key: KeyObject): Buffer {
  const x = key.export({ format: 'jwk' }).x;
  if (typeof x !== 'string') throw new Error('not an X25519 key');
  return Buffer.from(x, 'base64url');
}

/** An X25519 public key from its raw bytes; throws on anything else. */
function publicFromRaw(raw: Buffer): KeyObject {
  if (raw.length !== 32) throw new Error('a box key is 32 bytes');
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: raw.toString('base64url') }, format: 'jwk' });
}

/** True when `text` is base64 of 32 bytes (what a host sends as its box key). */
export function isBoxPublicKey(text: string): boolean {
  return /^[A-Za-z0-9+/]{43}=$/.test(text) && Buffer.from(text, 'base64').length === 32;
}

/** The AES key of one box: HKDF-SHA256 over the shared secret, salted with both public keys. */
function boxKey(privateKey: KeyObject, peer: KeyObject, ephemeral: Buffer, recipient: Buffer): Buffer {
  const shared = diffieHellman({ privateKey, publicKey: peer });
  // A low-order public key makes the shared secret all zeros: whoever sent it could read the box.
  if (shared.every((b) => b === 0)) throw new Error('the box key is not a usable X25519 key');
  return Buffer.from(hkdfSync('sha256', shared, Buffer.concat([ephemeral, recipient]), INFO, 32));
}

/** Seals `payload` (as JSON) to the X25519 public key `recipient` (base64 of 32 bytes). */
export function seal(recipient: string, payload: unknown): string {
  if (!isBoxPublicKey(recipient)) throw new Error('the box key must be base64 of 32 bytes');
  const to = Buffer.from(recipient, 'base64');
  const eph = generateKeyPairSync('x25519');
  const ephRaw = rawPublic(eph.publicKey);
  const key = boxKey(eph.privateKey, publicFromRaw(to), ephRaw, to);
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(VERSION));
  const body = Buffer.concat([cipher.update(JSON.stringify(payload), 'utf8'), cipher.final()]);
  return [VERSION, ephRaw, nonce, body, cipher.getAuthTag()].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.');
}

/**
 * Opens a box sealed to the key pair `own`; the parsed JSON. @throws when the box is malformed,
 * was sealed to another key, or was changed on the way (GCM's tag does not verify).
 */
export function openSealed(own: BoxKeyPair, sealed: string): unknown {
  if (sealed.length > MAX_SEALED_CHARS) throw new Error('sealed answer too large');
  const parts = sealed.split('.');
  if (parts.length !== 5 || parts[0] !== VERSION || !parts.slice(1).every((p) => /^[A-Za-z0-9_-]*$/.test(p)))
    throw new Error('not a sealed answer');
  const [ephRaw, nonce, body, tag] = parts.slice(1).map((p) => Buffer.from(p, 'base64url')) as [Buffer, Buffer, Buffer, Buffer];
  if (nonce.length !== 12 || tag.length !== 16) throw new Error('not a sealed answer');
  const key = boxKey(own.privateKey, publicFromRaw(ephRaw), ephRaw, Buffer.from(own.publicKey, 'base64'));
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAAD(Buffer.from(VERSION));
  decipher.setAuthTag(tag);
  let text: string;
  try {
    text = Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
  } catch {
    throw new Error('the sealed answer does not open with this key (changed on the way, or sealed to another key)');
  }
  return JSON.parse(text) as unknown;
}
