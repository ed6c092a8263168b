/**
 * Receipt handles: opaque to clients, tamper-proof for us. A handle is base64url of
 *
 *   version(1) | queue length(u16) | queue (UTF-8) | sequence(u64) | receive count(u32)
 *   | issued at, ms(u64) | visible again at, ms(u64) | HMAC-SHA256 over everything before it
 *
 * The MAC is keyed with a secret the caller passes (from config, or derived from a cluster secret)
 * and bound to this use by a context prefix, so the same key may sign other things safely. Several
 * keys may be given to `verifyReceiptHandle` for rotation: the first signs, all verify.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { sqsError, type SqsError } from './errors.js';

/** What a receipt handle says about one delivery of one message. */
export interface ReceiptFields {
  /** The engine's queue identity (a name, or name plus incarnation, as the engine likes). */
  readonly queue: string;
  /** The message's position in the queue's log (e.g. the JetStream stream sequence). */
  readonly sequence: number;
  /** Which delivery of the message this handle belongs to (1 for the first receive). */
  readonly receiveCount: number;
  /** When the message was received, epoch ms. */
  readonly issuedAt: number;
  /** When the message becomes visible again unless deleted or changed, epoch ms. */
  readonly visibleAt: number;
}

const VERSION = 1;
const MAC_BYTES = 32;
const CONTEXT = Buffer.from('mammatus sqs receipt handle\0', 'utf8');
const MIN_KEY_BYTES = 16;
const MAX_QUEUE_BYTES = 1024;

/** Creates the handle for `fields`, signed with `key` (at least 16 bytes). */
export function createReceiptHandle(key: Uint8Array, fields: ReceiptFields): string {
  checkKey(key);
  const queue = Buffer.from(fields.queue, 'utf8');
  if (queue.length > MAX_QUEUE_BYTES) throw new RangeError('receipt handle: queue identity too long');
  for (const [name, value] of Object.entries({
    sequence: fields.sequence,
    receiveCount: fields.receiveCount,
    issuedAt: fields.issuedAt,
    visibleAt: fields.visibleAt,
  })) {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`receipt handle: ${name} must be a non-negative integer`);
  }
  if (fields.receiveCount > 0xffffffff) throw new RangeError('receipt handle: receiveCount too large');
  const body = Buffer.alloc(1 + 2 + queue.length + 8 + 4 + 8 + 8);
  let at = body.writeUInt8(VERSION, 0);
  at = body.writeUInt16BE(queue.length, at);
  at += queue.copy(body, at);
  at = body.writeBigUInt64BE(BigInt(fields.sequence), at);
  at = body.writeUInt32BE(fields.receiveCount, at);
  at = body.writeBigUInt64BE(BigInt(fields.issuedAt), at);
  body.writeBigUInt64BE(BigInt(fields.visibleAt), at);
  return Buffer.concat([body, mac(key, body)]).toString('base64url');
}

/**
 * Checks a handle's MAC against `keys` and returns its fields. Throws `ReceiptHandleIsInvalid` when
 * the handle is malformed, was not made with one of the keys, or belongs to another queue than
 * `expectedQueue` (when given).
 *
 * A valid handle is not necessarily a current one: whether a later receive superseded it, whether
 * the message is still in flight, or was deleted, is state only the engine knows. AWS semantics:
 * DeleteMessage with an old handle succeeds (and may not delete), ChangeMessageVisibility needs the
 * latest handle (`MessageNotInflight` / `ReceiptHandleIsInvalid` otherwise).
 *
 * @throws SqsError `ReceiptHandleIsInvalid`.
 */
export function verifyReceiptHandle(handle: string, keys: Uint8Array | readonly Uint8Array[], expectedQueue?: string): ReceiptFields {
  const list = keys instanceof Uint8Array ? [keys] : keys;
  list.forEach(checkKey);
  const raw = decode(handle);
  if (!raw || raw.length < 1 + 2 + 28 + MAC_BYTES) throw invalid(handle);
  const body = raw.subarray(0, raw.length - MAC_BYTES);
  const tag = raw.subarray(raw.length - MAC_BYTES);
  // Every key is tried, so the time taken does not tell which one (if any) matched.
  let ok = false;
  for (const key of list) ok = timingSafeEqual(mac(key, body), tag) || ok;
  if (!ok || body.readUInt8(0) !== VERSION) throw invalid(handle);
  const queueLength = body.readUInt16BE(1);
  if (body.length !== 1 + 2 + queueLength + 28) throw invalid(handle);
  let at = 3;
  const queue = body.toString('utf8', at, at + queueLength);
  at += queueLength;
  const sequence = Number(body.readBigUInt64BE(at));
  const receiveCount = body.readUInt32BE(at + 8);
  const issuedAt = Number(body.readBigUInt64BE(at + 12));
  const visibleAt = Number(body.readBigUInt64BE(at + 20));
  if (expectedQueue !== undefined && queue !== expectedQueue) throw invalid(handle);
  return { queue, sequence, receiveCount, issuedAt, visibleAt };
}

function mac(key: Uint8Array, body: Uint8Array): Buffer {
  return createHmac('sha256', key).update(CONTEXT).update(body).digest();
}

function checkKey(key: Uint8Array): void {
  if (key.length < MIN_KEY_BYTES) throw new RangeError(`receipt handle key must have at least ${MIN_KEY_BYTES} bytes`);
}

// Only the canonical spelling decodes, so one handle has exactly one string form.
function decode(handle: string): Buffer | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(handle) || handle.length > 4096) return undefined;
  const raw = Buffer.from(handle, 'base64url');
  return raw.toString('base64url') === handle ? raw : undefined;
}

function invalid(handle: string): SqsError {
  // AWS quotes the handle; a cap keeps a hostile multi-megabyte "handle" out of the response.
  const shown = handle.length > 256 ? `${handle.slice(0, 256)}...` : handle;
  return sqsError('ReceiptHandleIsInvalid', `The input receipt handle "${shown}" is not a valid receipt handle.`);
}
