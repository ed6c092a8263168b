import { describe, it, expect } from 'vitest';
import {
  filterMatches,
  formatFilter,
  parseFilter,
  parseFilterList,
  streamFilterFor,
  type EventFilter,
} from '../../../agent/dispatch/filter.js';

describe('parseFilter', () => {
  it.each<[string, EventFilter]>([
    ['*', { type: '*' }],
    ['member-join', { type: 'member-join' }],
    ['member-leave', { type: 'member-leave' }],
    ['member-failed', { type: 'member-failed' }],
    ['member-update', { type: 'member-update' }],
    ['member-reap', { type: 'member-reap' }],
    ['user', { type: 'user' }],
    ['query', { type: 'query' }],
    ['user:deploy', { type: 'user', name: 'deploy' }],
    ['query:mammatus.status', { type: 'query', name: 'mammatus.status' }],
    ['user:a:b', { type: 'user', name: 'a:b' }],
    ['user:_serf_x', { type: 'user', name: '_serf_x' }],
  ])('accepts %j', (text, expected) => {
    expect(parseFilter(text)).toEqual(expected);
    expect(formatFilter(parseFilter(text))).toBe(text);
  });

  it.each([
    ['', /invalid event filter ""/],
    ['member', /expected \*/],
    ['member-joined', /expected \*/],
    ['Member-Join', /expected \*/],
    ['users', /expected \*/],
    ['user:', /non-empty/],
    ['query:', /non-empty/],
    ['user: deploy', /without spaces/],
    ['user:deploy ', /without spaces/],
    [' user:deploy', /expected \*/],
    ['member-join ', /expected \*/],
    ['user:a b', /without spaces/],
    ['user:a\tb', /without spaces/],
    ['user:a,b', /commas/],
    ['query:_serf_x', /_serf_ names are internal/],
    ['query:_serf_ping', /_serf_ names are internal/],
    ['**', /expected \*/],
    ['user:*x,', /commas/],
  ])('rejects %j', (text, message) => {
    expect(() => parseFilter(text)).toThrow(RangeError);
    expect(() => parseFilter(text)).toThrow(message);
  });
});

describe('parseFilterList', () => {
  it.each<[string, EventFilter[]]>([
    ['', [{ type: '*' }]],
    ['*', [{ type: '*' }]],
    ['member-join,user:deploy', [{ type: 'member-join' }, { type: 'user', name: 'deploy' }]],
  ])('parses %j', (text, expected) => {
    expect(parseFilterList(text)).toEqual(expected);
  });

  it.each(['member-join, user:deploy', 'user:a,,user:b', 'user:a,'])('rejects %j (Serf does not trim)', (text) => {
    expect(() => parseFilterList(text)).toThrow(RangeError);
  });
});

describe('filterMatches', () => {
  const f = parseFilter;
  it.each<[string, string, string | undefined, boolean]>([
    ['*', 'user', 'deploy', true],
    ['*', 'query', 'x', true],
    ['*', 'member-join', undefined, true],
    ['user', 'user', 'deploy', true],
    ['user', 'user', undefined, true],
    ['user', 'query', 'deploy', false],
    ['user:deploy', 'user', 'deploy', true],
    ['user:deploy', 'user', 'Deploy', false],
    ['user:deploy', 'user', 'deploy2', false],
    ['user:deploy', 'user', undefined, false],
    ['user:deploy', 'query', 'deploy', false],
    ['query', 'query', 'anything', true],
    ['query:ping', 'query', 'ping', true],
    ['query:ping', 'query', 'pong', false],
    ['member-join', 'member-join', undefined, true],
    ['member-join', 'member-leave', undefined, false],
    ['member-update', 'user', 'member-update', false],
  ])('%s matches (%s, %s): %s', (filter, type, name, expected) => {
    expect(filterMatches(f(filter), type, name)).toBe(expected);
  });
});

describe('streamFilterFor', () => {
  const of = (...texts: string[]) => streamFilterFor(texts.map(parseFilter));
  it.each<[string[], string]>([
    [[], ''],
    [['user:deploy'], 'user:deploy'],
    [['user:b', 'user:a', 'member-join'], 'member-join,user:a,user:b'],
    [['user:a', 'user:a', 'member-join', 'member-join'], 'member-join,user:a'],
    [['user:a', 'user', 'query:q'], 'query:q,user'],
    [['query:a', 'query:b', 'query'], 'query'],
    [['user:a', 'query:b', '*'], '*'],
    [['*', '*'], '*'],
    [
      ['member-update', 'member-join', 'query:mammatus.status', 'user:mammatus.reconcile'],
      'member-join,member-update,query:mammatus.status,user:mammatus.reconcile',
    ],
  ])('%j → %j', (texts, expected) => {
    expect(of(...texts)).toBe(expected);
  });

  it('produces a filter that parses back to the same coverage', () => {
    const text = of('user:b', 'query:q', 'member-reap', 'user:a');
    expect(parseFilterList(text).map(formatFilter)).toEqual(['member-reap', 'query:q', 'user:a', 'user:b']);
  });
});
