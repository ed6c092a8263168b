import { expect, test } from 'vitest';
import { MessagingError } from '../../../../src/messaging/errors.js';
import { indexedGroups, indexedValues, parseForm, subParams } from '../../../../src/messaging/protocol/form.js';

test('+ and %20 are spaces, %2B is a plus, values may contain =', () => {
  const p = parseForm('A=a+b%20c%2Bd&B=x%3Dy=z&C&D=');
  expect(Object.fromEntries(p)).toEqual({ A: 'a b c+d', B: 'x=y=z', C: '', D: '' });
});

test('UTF-8 is decoded; broken escapes are MalformedQueryString', () => {
  expect(parseForm('M=%C3%A9%F0%9F%98%80').get('M')).toBe('é😀');
  for (const bad of ['M=%', 'M=%zz', 'M=%C3']) {
    expect(() => parseForm(bad)).toThrow(MessagingError);
    try {
      parseForm(bad);
    } catch (err) {
      expect((err as MessagingError).code).toBe('MalformedQueryString');
    }
  }
});

test('indexed lists are ordered by number, not by position', () => {
  const p = parseForm('AttributeName.2=b&AttributeName.10=c&AttributeName.1=a&AttributeNameX.1=no&AttributeName.1.x=no');
  expect(indexedValues(p, 'AttributeName')).toEqual(['a', 'b', 'c']);
});

test('indexed groups and sub-parameters', () => {
  const p = parseForm('E.2.Id=b&E.1.Id=a&E.1.M.1.Name=n&E.1.M.1.Value.DataType=String');
  const groups = indexedGroups(p, 'E');
  expect(groups.map((g) => Object.fromEntries(g))).toEqual([{ Id: 'a', 'M.1.Name': 'n', 'M.1.Value.DataType': 'String' }, { Id: 'b' }]);
  const first = groups[0] ?? new Map();
  expect(Object.fromEntries(subParams(indexedGroups(first, 'M')[0] ?? new Map(), 'Value'))).toEqual({ DataType: 'String' });
});
