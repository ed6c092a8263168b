// The validation kit on a small section of its own: every kind of failure becomes one SettingsError
// with the full key path (list indices included) and a sentence, hints word what Ajv cannot, a
// format's sentence can quote the value, defaults fill a copy, and two sections cannot share a name.
import { describe, expect, it } from 'vitest';
import { COMMON_FORMATS, keyPath, SettingsError, sectionChecker, withDefaults } from '../../core/validation.js';

interface Lab {
  name: string;
  hosts?: { ip: string; port?: number }[];
  mode?: 'a' | 'b';
  size?: number;
}

const checkLab = sectionChecker<Lab>({
  name: 'test.lab',
  at: 'roles.lab',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['name'],
    properties: {
      name: { type: 'string', minLength: 1, pattern: '^[a-z]+$' },
      hosts: {
        type: 'array',
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['ip'],
          properties: { ip: { type: 'string', format: 'ipv4' }, port: { type: 'integer', minimum: 1, maximum: 65535, default: 80 } },
        },
      },
      mode: { type: 'string', enum: ['a', 'b'] },
      size: { type: 'integer', minimum: 1 },
    },
  },
  formats: { ipv4: { check: COMMON_FORMATS.ipv4.check, why: (v) => `${JSON.stringify(v)} is not an IPv4 address` } },
  hints: { name: 'must be lower-case letters', 'size#minimum': 'must be 1 or more nodes' },
  useDefaults: true,
});

function problem(raw: unknown): string {
  try {
    checkLab(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(SettingsError);
    return (err as SettingsError).message;
  }
  throw new Error('expected a SettingsError');
}

describe('sectionChecker', () => {
  it('returns a valid value with its defaults filled, on a copy', () => {
    const raw = { name: 'lab', hosts: [{ ip: '10.0.0.1' }] };
    expect(checkLab(raw)).toEqual({ name: 'lab', hosts: [{ ip: '10.0.0.1', port: 80 }] });
    expect(raw.hosts[0]).toEqual({ ip: '10.0.0.1' });
  });

  it.each([
    // A plain hint words every failure of its key but a wrong type, a missing key too.
    [{}, 'roles.lab.name: must be lower-case letters'],
    [{ name: 'lab', extra: 1 }, 'roles.lab.extra: unknown key'],
    [{ name: 'Lab' }, 'roles.lab.name: must be lower-case letters'],
    [{ name: 7 }, 'roles.lab.name: must be a string'],
    [{ name: 'lab', hosts: [{ ip: '10.0.0.1' }, { ip: '10.0.0' }] }, 'roles.lab.hosts[1].ip: "10.0.0" is not an IPv4 address'],
    [{ name: 'lab', hosts: [{ ip: '10.0.0.1', port: 0 }] }, 'roles.lab.hosts[0].port: must be at least 1'],
    [{ name: 'lab', hosts: [{}] }, 'roles.lab.hosts[0].ip: is required'],
    [{ name: 'lab', mode: 'c' }, 'roles.lab.mode: must be one of a, b'],
    [{ name: 'lab', size: 0 }, 'roles.lab.size: must be 1 or more nodes'],
    [{ name: 'lab', hosts: 'x' }, 'roles.lab.hosts: must be a list'],
    ['x', 'roles.lab: must be a mapping'],
  ])('%j → %s', (raw, message) => {
    expect(problem(raw)).toBe(message);
  });

  it('refuses a second section with the same name', () => {
    expect(() => sectionChecker({ name: 'test.lab', at: 'elsewhere', schema: {} })).toThrow('two settings sections named test.lab');
  });
});

describe('SettingsError, keyPath, withDefaults', () => {
  it('names the file and line when known', () => {
    expect(new SettingsError('serf.rpc_addr', 'must match host:port', '/etc/mammatus/agent.yaml').message).toBe(
      '/etc/mammatus/agent.yaml: serf.rpc_addr: must match host:port',
    );
    expect(new SettingsError('', 'is not YAML', 'a.yaml', 3).message).toBe('a.yaml:3: is not YAML');
    expect(new SettingsError('k', 'bad').in('b.yaml').message).toBe('b.yaml: k: bad');
  });

  it('joins key paths, list indices without a dot', () => {
    expect(keyPath('roles.gateway', 'lan.address')).toBe('roles.gateway.lan.address');
    expect(keyPath('roles.gateway', '[2].ip')).toBe('roles.gateway[2].ip');
    expect(keyPath('', 'serf')).toBe('serf');
    expect(keyPath('metadata', '')).toBe('metadata');
  });

  it('merges settings over defaults: null keeps the default, lists replace, mappings merge', () => {
    const defaults = { a: 1, list: [1, 2], map: { x: 1, y: 2 } };
    expect(withDefaults(defaults, { a: null, list: [3], map: { y: 5 } })).toEqual({ a: 1, list: [3], map: { x: 1, y: 5 } });
    expect(withDefaults(defaults, undefined)).toEqual(defaults);
  });
});
