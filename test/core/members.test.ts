import { describe, it, expect } from 'vitest';
import type { Member } from '../../core/contracts.js';
import { actsAs, aliveWithRole, parseRoleTag } from '../../core/members.js';

describe('parseRoleTag', () => {
  it.each<[string, string | undefined, string[], string[]]>([
    ['absent', undefined, [], []],
    ['empty', '', [], []],
    ['only commas and spaces', ' , ,, ', [], []],
    ['one role', 'gateway', ['gateway'], []],
    ['spaces around names', ' gateway , compute ', ['gateway', 'compute'], []],
    ['tabs around names', '\tstorage\t', ['storage'], []],
    ['duplicates', 'compute,compute, compute', ['compute'], []],
    ['canonical order', 'controller,storage,compute,gateway', ['gateway', 'compute', 'storage', 'controller'], []],
    ['unknown names in tag order, trimmed, deduplicated', 'web, gateway,db,web ,DB', ['gateway'], ['web', 'db', 'DB']],
    ['case matters', 'Gateway', [], ['Gateway']],
    ['a space inside a name', 'gate way', [], ['gate way']],
    ['empty items between commas', 'gateway,,storage,', ['gateway', 'storage'], []],
  ])('%s: %j', (_what, tag, roles, unknown) => {
    expect(parseRoleTag(tag)).toEqual({ roles, unknown });
  });

  it('never throws on odd input', () => {
    for (const tag of ['\u0000', ',', 'a'.repeat(10_000), '🙂,gateway']) expect(() => parseRoleTag(tag)).not.toThrow();
  });
});

describe('who acts as a role', () => {
  const m = (name: string, role: string, trusted?: string[]): Member => ({
    name,
    addr: '10.0.0.1',
    port: 7946,
    status: 'alive',
    tags: { role },
    ...(trusted ? { trusted } : {}),
  });

  it('is the tag alone before trust is checked, and tag and proof after (vendor-data, routes, upstreams use it)', () => {
    expect(aliveWithRole([m('a', 'controller')], 'controller').map((x) => x.name)).toEqual(['a']);
    const checked = [m('0evil', 'controller', []), m('b', 'controller', ['controller']), m('c', 'controller', ['compute'])];
    expect(aliveWithRole(checked, 'controller').map((x) => x.name)).toEqual(['b']);
    expect(actsAs(m('d', 'gateway', ['gateway', 'controller']), 'controller')).toBe(false); // proven but not asked for
  });
});
