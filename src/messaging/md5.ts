/**
 * The MD5 digests SQS returns and SDKs verify: `MD5OfMessageBody`/`MD5OfBody` (every v3 SDK checks
 * it), `MD5OfMessageAttributes` (Java, .NET, PHP check it) and `MD5OfMessageSystemAttributes`.
 *
 * The attribute digest follows the AWS Java SDK's `MessageMD5ChecksumInterceptor`: names sorted by
 * UTF-16 code units (JavaScript's default string order), and for each attribute the length-prefixed
 * UTF-8 name, the length-prefixed DataType as sent (custom labels included), one transport byte and
 * the length-prefixed value(s). Lengths are 4-byte big-endian.
 */
import { createHash, hash as oneShot, type Hash } from 'node:crypto';
import type { MessageAttributes } from './sqs-engine.js';

// Transport bytes: which value member is set, not what DataType says.
const STRING = 1;
const BINARY = 2;
const STRING_LIST = 3;
const BINARY_LIST = 4;

/** Lower-case hex MD5 of the body's UTF-8 bytes. */
export function md5OfBody(body: string): string {
  // One-shot: no Hash object per message (a string is hashed as UTF-8).
  return oneShot('md5', body, 'hex');
}

/**
 * Lower-case hex MD5 of a set of message (or system) attributes, or undefined when there are none:
 * AWS omits the member then, and clients fail on an MD5 of nothing.
 */
export function md5OfMessageAttributes(attributes: MessageAttributes): string | undefined {
  const names = Object.keys(attributes).sort();
  if (names.length === 0) return undefined;
  const hash = createHash('md5');
  for (const name of names) {
    const value = attributes[name];
    if (value === undefined) continue;
    field(hash, Buffer.from(name, 'utf8'));
    field(hash, Buffer.from(value.DataType, 'utf8'));
    if (value.StringValue !== undefined) {
      hash.update(Uint8Array.of(STRING));
      field(hash, Buffer.from(value.StringValue, 'utf8'));
    } else if (value.BinaryValue !== undefined) {
      hash.update(Uint8Array.of(BINARY));
      field(hash, value.BinaryValue);
    } else if (value.StringListValues !== undefined && value.StringListValues.length > 0) {
      hash.update(Uint8Array.of(STRING_LIST));
      for (const item of value.StringListValues) field(hash, Buffer.from(item, 'utf8'));
    } else if (value.BinaryListValues !== undefined && value.BinaryListValues.length > 0) {
      hash.update(Uint8Array.of(BINARY_LIST));
      for (const item of value.BinaryListValues) field(hash, item);
    }
  }
  return hash.digest('hex');
}

function field(hash: Hash, bytes: Uint8Array): void {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  hash.update(length);
  hash.update(bytes);
}
