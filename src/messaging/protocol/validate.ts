/**
 * Checks that need no queue or topic state, done once for both wire forms before the engine is
 * called: integer ranges, batch shape, message characters, message attribute shape and the absolute
 * size ceilings. Messages follow AWS's wording where it is known.
 */
import { snsError, sqsError, type MessagingError } from '../errors.js';
import { messageSize, type MessageAttributes, type MessageToSend } from '../sqs-engine.js';
import type { SnsMessageAttributes } from '../sns-engine.js';
import { sqsFieldErrors } from './fields.js';

/** SQS's ceiling for one message and for one batch (attributes included), in bytes. */
export const SQS_MAX_BYTES = 1_048_576;
/** SNS's ceiling for one message and for one batch, in bytes. */
export const SNS_MAX_BYTES = 262_144;
const MAX_ATTRIBUTES = 10;

/** Fails with `InvalidParameterValue` unless `value` is absent or within `[min, max]`. */
export function checkRange(name: string, value: number | undefined, min: number, max: number, reason: string): void {
  if (value !== undefined && (value < min || value > max)) throw sqsFieldErrors.invalid(name, String(value), reason);
}

// XML 1.0 characters: what SQS accepts in bodies and string attribute values.
const INVALID_CHAR = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;
const ALLOWED_SET = '#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF';

function invalidChar(text: string): string | undefined {
  const m = INVALID_CHAR.exec(text);
  return m ? `#x${(m[0].codePointAt(0) ?? 0).toString(16).toUpperCase()}` : undefined;
}

/** The body must be non-empty and made of XML characters. */
export function checkMessageBody(body: string): void {
  if (body === '') throw sqsFieldErrors.missing('MessageBody');
  const bad = invalidChar(body);
  if (bad) {
    throw sqsError(
      'InvalidMessageContents',
      `Invalid binary character '${bad}' was found in the message body, the set of allowed characters is ${ALLOWED_SET}`,
    );
  }
}

const ATTRIBUTE_NAME = /^[A-Za-z0-9_.-]{1,256}$/;
const SQS_DATA_TYPE = /^(String|Number|Binary)(\.[^\s]{1,250})?$/;

/** Shape rules for message attributes (names, types, values, count). */
export function checkMessageAttributes(attributes: MessageAttributes): void {
  const names = Object.keys(attributes);
  if (names.length > MAX_ATTRIBUTES) {
    throw sqsFieldErrors.invalid(
      'MessageAttributes',
      String(names.length),
      `Number of message attributes [${names.length}] exceeds the allowed maximum [${MAX_ATTRIBUTES}].`,
    );
  }
  for (const name of names) {
    const value = attributes[name];
    if (!value) continue;
    const lower = name.toLowerCase();
    if (
      !ATTRIBUTE_NAME.test(name) ||
      name.startsWith('.') ||
      name.endsWith('.') ||
      name.includes('..') ||
      lower.startsWith('aws.') ||
      lower.startsWith('amazon.')
    ) {
      throw invalidAttribute(`Message (user) attribute name '${name}' is invalid.`);
    }
    const type = SQS_DATA_TYPE.exec(value.DataType);
    if (!type) {
      throw invalidAttribute(
        `The type of message (user) attribute '${name}' is invalid. You must use only the following supported type prefixes: Binary, Number, String.`,
      );
    }
    const base = type[1];
    if (base === 'Binary' ? !value.BinaryValue?.length : !value.StringValue) {
      throw invalidAttribute(`Message (user) attribute '${name}' must contain a non-empty value of type '${base}'.`);
    }
    if (value.StringValue !== undefined && invalidChar(value.StringValue)) {
      throw invalidAttribute(`Message (user) attribute '${name}' contains characters outside the allowed set.`);
    }
    if (base === 'Number' && !Number.isFinite(Number(value.StringValue))) {
      throw invalidAttribute(`Can't cast the value of message (user) attribute '${name}' to a number.`);
    }
  }
}

function invalidAttribute(reason: string): MessagingError {
  return sqsError('InvalidParameterValue', reason);
}

/** Only `AWSTraceHeader` (a String) may be sent as a system attribute. */
export function checkSystemAttributes(attributes: MessageAttributes): void {
  for (const [name, value] of Object.entries(attributes)) {
    if (name !== 'AWSTraceHeader') throw invalidAttribute(`Message system attribute name '${name}' is invalid.`);
    if (value.DataType !== 'String' || !value.StringValue) {
      throw invalidAttribute(`Message system attribute '${name}' must contain a non-empty value of type 'String'.`);
    }
  }
}

/** All checks of one message to send (SendMessage or a batch entry). */
export function checkMessage(message: MessageToSend): void {
  checkMessageBody(message.MessageBody);
  checkRange('DelaySeconds', message.DelaySeconds, 0, 900, 'DelaySeconds must be >= 0 and <= 900.');
  checkMessageAttributes(message.MessageAttributes);
  checkSystemAttributes(message.MessageSystemAttributes);
  if (messageSize(message) > SQS_MAX_BYTES) {
    throw sqsError(
      'InvalidParameterValue',
      `One or more parameters are invalid. Reason: Message must be shorter than ${SQS_MAX_BYTES} bytes.`,
    );
  }
}

const BATCH_ID = /^[A-Za-z0-9_-]{1,80}$/;

/** SQS batch shape: 1–10 entries, ids valid and distinct. `entry` names the entry for messages. */
export function checkSqsBatch(ids: readonly string[], entry: string): void {
  checkBatch(ids, {
    empty: () => sqsError('EmptyBatchRequest', `There should be at least one ${entry} in the request.`),
    tooMany: (n) => sqsError('TooManyEntriesInBatchRequest', `Maximum number of entries per request are 10. You have sent ${n}.`),
    badId: () => sqsError('InvalidBatchEntryId'),
    duplicate: (id) => sqsError('BatchEntryIdsNotDistinct', `Id ${id} repeated.`),
  });
}

/** SNS batch shape: the same rules, SNS's errors. */
export function checkSnsBatch(ids: readonly string[]): void {
  checkBatch(ids, {
    empty: () => snsError('EmptyBatchRequest'),
    tooMany: () => snsError('TooManyEntriesInBatchRequest'),
    badId: () => snsError('InvalidBatchEntryId'),
    duplicate: () => snsError('BatchEntryIdsNotDistinct'),
  });
}

interface BatchErrors {
  empty(): MessagingError;
  tooMany(n: number): MessagingError;
  badId(id: string): MessagingError;
  duplicate(id: string): MessagingError;
}

function checkBatch(ids: readonly string[], errors: BatchErrors): void {
  if (ids.length === 0) throw errors.empty();
  if (ids.length > 10) throw errors.tooMany(ids.length);
  const seen = new Set<string>();
  for (const id of ids) {
    if (!BATCH_ID.test(id)) throw errors.badId(id);
    if (seen.has(id)) throw errors.duplicate(id);
    seen.add(id);
  }
}

/** The total size of a SendMessageBatch must stay within one message's ceiling. */
export function checkSqsBatchSize(entries: readonly MessageToSend[]): void {
  const total = entries.reduce((sum, e) => sum + messageSize(e), 0);
  if (total > SQS_MAX_BYTES) {
    throw sqsError('BatchRequestTooLong', `Batch requests cannot be longer than ${SQS_MAX_BYTES} bytes. You have sent ${total} bytes.`);
  }
}

const SNS_DATA_TYPE = /^(String|String\.Array|Number|Binary)$/;

/** SNS message attribute shape: known types with a value of the matching kind. */
export function checkSnsMessageAttributes(attributes: SnsMessageAttributes): void {
  for (const [name, value] of Object.entries(attributes)) {
    if (!SNS_DATA_TYPE.test(value.DataType)) {
      throw snsError(
        'ParameterValueInvalid',
        `The message attribute '${name}' has an invalid message attribute type, the set of supported type prefixes is Binary, Number, and String.`,
      );
    }
    const missing = value.DataType === 'Binary' ? value.BinaryValue === undefined : value.StringValue === undefined;
    if (missing)
      throw snsError(
        'ParameterValueInvalid',
        `The message attribute '${name}' must contain non-empty message attribute value for message attribute type '${value.DataType}'.`,
      );
  }
}

/** SNS message size: body plus attributes, at most 256 KiB. */
export function snsMessageSize(message: string, attributes: SnsMessageAttributes): number {
  let size = Buffer.byteLength(message, 'utf8');
  for (const [name, value] of Object.entries(attributes)) {
    size += Buffer.byteLength(name) + Buffer.byteLength(value.DataType);
    size += value.StringValue !== undefined ? Buffer.byteLength(value.StringValue) : (value.BinaryValue?.length ?? 0);
  }
  return size;
}
