import { expect, test } from 'vitest';
import { md5OfBody, md5OfMessageAttributes } from '../../../src/messaging/md5.js';

test('the two official attribute vectors (from the AWS SQS documentation)', () => {
  expect(
    md5OfMessageAttributes({
      test_attribute_name_1: { DataType: 'String', StringValue: 'test_attribute_value_1' },
      test_attribute_name_2: { DataType: 'String', StringValue: 'test_attribute_value_2' },
    }),
  ).toBe('d53f3b558fe951154770f25cb63dbba9');
  expect(md5OfMessageAttributes({ test_attribute_name: { DataType: 'Binary', BinaryValue: Buffer.from('test_attribute_value') } })).toBe(
    '23f6bd27ea87aab7dfeadcc9aebee495',
  );
});

test('attribute order does not matter; names are sorted', () => {
  const a = { DataType: 'String', StringValue: 'x' };
  const b = { DataType: 'Number.int', StringValue: '1' };
  expect(md5OfMessageAttributes({ b, a })).toBe(md5OfMessageAttributes({ a, b }));
});

test('the DataType label is part of the digest', () => {
  expect(md5OfMessageAttributes({ n: { DataType: 'Number', StringValue: '1' } })).not.toBe(
    md5OfMessageAttributes({ n: { DataType: 'Number.int', StringValue: '1' } }),
  );
});

test('no attributes: no digest (AWS omits the member)', () => {
  expect(md5OfMessageAttributes({})).toBeUndefined();
});

test('list values use transport bytes 3 and 4', () => {
  const strings = md5OfMessageAttributes({ l: { DataType: 'String', StringListValues: ['a', 'b'] } });
  const binaries = md5OfMessageAttributes({ l: { DataType: 'String', BinaryListValues: [Buffer.from('a'), Buffer.from('b')] } });
  expect(strings).toMatch(/^[0-9a-f]{32}$/);
  expect(strings).not.toBe(binaries);
});

test('body MD5 is over the UTF-8 bytes', () => {
  expect(md5OfBody('')).toBe('d41d8cd98f00b204e9800998ecf8427e');
  expect(md5OfBody('hello')).toBe('5d41402abc4b2a76b9719d911017c592');
  expect(md5OfBody('é')).toBe('66ddcd97cfdeabb2f6fb8a999b4bc76f');
});
