import { describe, expect, test } from 'vitest';
import { SqsError } from '../../../src/messaging/errors.js';
import { createReceiptHandle, verifyReceiptHandle, type ReceiptFields } from '../../../src/messaging/receipt.js';

const KEY = Buffer.alloc(32, 1);
const OLD_KEY = Buffer.alloc(32, 2);
const FIELDS: ReceiptFields = {
  queue: 'orders.fifo',
  sequence: 2 ** 40 + 5,
  receiveCount: 3,
  issuedAt: 1_795_000_000_000,
  visibleAt: 1_795_000_030_000,
};

function rejects(handle: string, keys: Buffer | Buffer[] = KEY, queue?: string): SqsError {
  try {
    verifyReceiptHandle(handle, keys, queue);
  } catch (err) {
    if (err instanceof SqsError) return err;
    throw err;
  }
  throw new Error('expected ReceiptHandleIsInvalid');
}

describe('receipt handles', () => {
  test('round trip, URL-safe', () => {
    const handle = createReceiptHandle(KEY, FIELDS);
    expect(handle).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(verifyReceiptHandle(handle, KEY)).toEqual(FIELDS);
    expect(verifyReceiptHandle(handle, KEY, 'orders.fifo')).toEqual(FIELDS);
  });

  test('every byte is covered by the MAC', () => {
    const raw = Buffer.from(createReceiptHandle(KEY, FIELDS), 'base64url');
    for (let i = 0; i < raw.length; i++) {
      const copy = Buffer.from(raw);
      copy[i] = (copy[i] ?? 0) ^ 0x01;
      const err = rejects(copy.toString('base64url'));
      expect(err.code).toBe('ReceiptHandleIsInvalid');
    }
  });

  test('another key, another queue, truncation, garbage', () => {
    const handle = createReceiptHandle(KEY, FIELDS);
    expect(rejects(handle, OLD_KEY).code).toBe('ReceiptHandleIsInvalid');
    expect(rejects(handle, KEY, 'orders').code).toBe('ReceiptHandleIsInvalid');
    expect(rejects(handle.slice(0, -4)).code).toBe('ReceiptHandleIsInvalid');
    expect(rejects('').code).toBe('ReceiptHandleIsInvalid');
    expect(rejects('not a handle!').message).toBe('The input receipt handle "not a handle!" is not a valid receipt handle.');
  });

  test('only the canonical base64url spelling is accepted', () => {
    const handle = createReceiptHandle(KEY, FIELDS);
    // The last character carries unused low bits; flipping them decodes to the same bytes.
    const last = handle.at(-1) ?? 'A';
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const twin = handle.slice(0, -1) + alphabet[alphabet.indexOf(last) ^ 1];
    if (Buffer.from(twin, 'base64url').equals(Buffer.from(handle, 'base64url'))) {
      expect(rejects(twin).code).toBe('ReceiptHandleIsInvalid');
    }
  });

  test('key rotation: all keys verify', () => {
    const handle = createReceiptHandle(OLD_KEY, FIELDS);
    expect(verifyReceiptHandle(handle, [KEY, OLD_KEY])).toEqual(FIELDS);
  });

  test('the error is the catalogued one (404 in the current model)', () => {
    const err = rejects('x');
    expect(err.def).toMatchObject({ code: 'ReceiptHandleIsInvalid', status: 404, fault: 'Sender' });
  });

  test('bad inputs to create are programming errors', () => {
    expect(() => createReceiptHandle(Buffer.alloc(8), FIELDS)).toThrow(RangeError);
    expect(() => createReceiptHandle(KEY, { ...FIELDS, sequence: -1 })).toThrow(RangeError);
    expect(() => createReceiptHandle(KEY, { ...FIELDS, receiveCount: 1.5 })).toThrow(RangeError);
  });
});
