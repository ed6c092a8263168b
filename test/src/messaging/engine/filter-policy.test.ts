import { expect, test } from 'vitest';
import { matchesFilterPolicy, parseFilterPolicy } from '../../../../src/messaging/engine/filter-policy.js';

const attrs = {
  kind: { DataType: 'String', StringValue: 'Order-Placed' },
  price: { DataType: 'Number', StringValue: '42.5' },
  tags: { DataType: 'String.Array', StringValue: '["red","big"]' },
  ip: { DataType: 'String', StringValue: '10.1.2.3' },
  blob: { DataType: 'Binary', BinaryValue: new Uint8Array([1]) },
};
const m = (policy: unknown, a: Record<string, { DataType: string; StringValue?: string }> = attrs) =>
  matchesFilterPolicy(parseFilterPolicy(JSON.stringify(policy), false), undefined, a, '');

test('attribute operators', () => {
  expect(m({ kind: ['Order-Placed'] })).toBe(true);
  expect(m({ kind: ['order-placed'] })).toBe(false);
  expect(m({ kind: [{ 'equals-ignore-case': 'order-placed' }] })).toBe(true);
  expect(m({ kind: [{ prefix: 'Order-' }], price: [{ numeric: ['>', 40, '<=', 42.5] }] })).toBe(true);
  expect(m({ kind: [{ suffix: 'Placed' }] })).toBe(true);
  expect(m({ price: [42.5] })).toBe(true);
  expect(m({ price: [{ numeric: ['<', 10] }] })).toBe(false);
  expect(m({ kind: [{ 'anything-but': ['Order-Placed'] }] })).toBe(false);
  expect(m({ kind: [{ 'anything-but': { prefix: 'Ship' } }] })).toBe(true);
  expect(m({ tags: ['big'] })).toBe(true);
  expect(m({ tags: ['small'] })).toBe(false);
  expect(m({ missing: [{ exists: false }] })).toBe(true);
  expect(m({ kind: [{ exists: true }] })).toBe(true);
  expect(m({ missing: ['x'] })).toBe(false);
  expect(m({ ip: [{ cidr: '10.1.0.0/16' }] })).toBe(true);
  expect(m({ ip: [{ cidr: '10.2.0.0/16' }] })).toBe(false);
  expect(m({ blob: ['AQ=='] })).toBe(false);
  // Binary attributes are not compared: as if absent.
  expect(m({ blob: [{ exists: true }] })).toBe(false);
  expect(m({ blob: [{ exists: false }] })).toBe(true);
  expect(m({ blob: [{ 'anything-but': ['x'] }] })).toBe(false);
  expect(m({ $or: [{ kind: ['nope'] }, { price: [{ numeric: ['>=', 42] }] }] })).toBe(true);
});

test('body scope, nested', () => {
  const p = parseFilterPolicy(JSON.stringify({ order: { amount: [{ numeric: ['>', 100] }], lines: { sku: ['A'] } } }), true);
  const body = (v: unknown) => JSON.stringify(v);
  expect(matchesFilterPolicy(p, 'MessageBody', {}, body({ order: { amount: 150, lines: [{ sku: 'B' }, { sku: 'A' }] } }))).toBe(true);
  expect(matchesFilterPolicy(p, 'MessageBody', {}, body({ order: { amount: 50, lines: [{ sku: 'A' }] } }))).toBe(false);
  expect(matchesFilterPolicy(p, 'MessageBody', {}, 'not json')).toBe(false);
});

test('invalid policies are refused with InvalidParameter', () => {
  for (const bad of [
    '{',
    '[]',
    '{"a":"x"}',
    '{"a":[]}',
    '{"a":[{"bogus":1}]}',
    '{"a":{"b":["c"]}}',
    '{"a":[{"numeric":[">"]}]}',
    '{"a":[{"cidr":"1.2.3/8"}]}',
  ]) {
    expect(() => parseFilterPolicy(bad, false), bad).toThrow(expect.objectContaining({ code: 'InvalidParameter' }));
  }
  expect(() =>
    parseFilterPolicy(JSON.stringify({ a: ['1', '2', '3', '4', '5', '6'], b: Array.from({ length: 30 }, (_, i) => String(i)) }), false),
  ).toThrow(/complex/);
});
