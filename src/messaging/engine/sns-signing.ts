/**
 * SNS message signatures, as AWS makes them: the string to sign is `Key\nValue\n` pairs in a fixed
 * order, signed with RSA PKCS#1 v1.5 over SHA1 (SignatureVersion 1) or SHA256 (2); receivers fetch
 * the X.509 certificate from `SigningCertURL`, which we serve ourselves.
 *
 * The key and a self-signed certificate come from files (`messaging.sns.signing_key_file`/
 * `signing_cert_file`) or are generated once and kept in the `mammatus_messaging` bucket, so every
 * controller signs with the same key. Node has no certificate builder, hence the small DER writer.
 */
import { createHash, createPrivateKey, createSign, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';

/** A signing key with its certificate. */
export interface SigningIdentity {
  readonly keyPem: string;
  readonly certPem: string;
  /** Short hex id of the certificate, used in its URL path. */
  readonly id: string;
}

// --- minimal DER ---
function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
const tlv = (tag: number, content: Buffer) => Buffer.concat([Buffer.from([tag]), len(content.length), content]);
const seq = (...parts: Buffer[]) => tlv(0x30, Buffer.concat(parts));
const set = (...parts: Buffer[]) => tlv(0x31, Buffer.concat(parts));
const integer = (b: Buffer) => tlv(0x02, b[0] & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
const nullValue = Buffer.from([0x05, 0x00]);
function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number) as [number, number, ...number[]];
  const out = [40 * a + b];
  for (const n of rest) {
    const chunk = [n & 0x7f];
    for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}
function utcTime(d: Date): Buffer {
  const p = (n: number) => String(n).padStart(2, '0');
  const s = `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  return tlv(0x17, Buffer.from(s, 'ascii'));
}
const name = (cn: string) => seq(set(seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from(cn, 'utf8')))));
const SHA256_RSA = seq(oid('1.2.840.113549.1.1.11'), nullValue);

function pem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

function certId(certPem: string): string {
  return createHash('sha256').update(new X509Certificate(certPem).raw).digest('hex').slice(0, 32);
}

/** A new 2048-bit RSA key and a self-signed certificate for it, valid for ten years from `now`. */
export function generateSigningIdentity(commonName = 'mammatus-sns', now = new Date()): SigningIdentity {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const until = new Date(now.getTime() + 10 * 365 * 86_400_000);
  const serial = randomBytes(16);
  serial[0] = serial[0] & 0x7f;
  const tbs = seq(
    tlv(0xa0, integer(Buffer.from([2]))),
    integer(serial),
    SHA256_RSA,
    name(commonName),
    seq(utcTime(now), utcTime(until)),
    name(commonName),
    publicKey.export({ type: 'spki', format: 'der' }),
  );
  const signature = createSign('sha256').update(tbs).sign(privateKey);
  const certPem = pem('CERTIFICATE', seq(tbs, SHA256_RSA, tlv(0x03, Buffer.concat([Buffer.from([0]), signature]))));
  return { keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, certPem, id: certId(certPem) };
}

/** Checks that `keyPem` and `certPem` belong together and makes the identity. */
export function identityFrom(keyPem: string, certPem: string): SigningIdentity {
  const cert = new X509Certificate(certPem);
  const key = createPrivateKey(keyPem);
  if (!cert.checkPrivateKey(key)) throw new Error('messaging.sns: signing key and certificate do not match');
  return { keyPem, certPem, id: certId(certPem) };
}

/** The fields AWS signs, by message type, in signing order. */
const SIGNED_KEYS: Readonly<Record<string, readonly string[]>> = {
  Notification: ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type'],
  SubscriptionConfirmation: ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'],
  UnsubscribeConfirmation: ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'],
};

/** The string to sign of an SNS JSON document (absent fields, e.g. no Subject, are skipped). */
export function stringToSign(doc: Readonly<Record<string, unknown>>): string {
  const keys = SIGNED_KEYS[String(doc.Type)] ?? [];
  return keys
    .filter((k) => typeof doc[k] === 'string')
    .map((k) => `${k}\n${doc[k] as string}\n`)
    .join('');
}

/** Base64 signature of `doc` with SignatureVersion `version` (`1` = SHA1, `2` = SHA256). */
export function signDocument(doc: Readonly<Record<string, unknown>>, identity: SigningIdentity, version: string): string {
  return createSign(version === '2' ? 'RSA-SHA256' : 'RSA-SHA1')
    .update(stringToSign(doc), 'utf8')
    .sign(identity.keyPem, 'base64');
}
