/** Contract test over the role registry: names match keys, render is pure and deterministic. */
import { describe, expect, it } from 'vitest';
import { buildRoles } from '../../roles/index.js';
import { ROLE_NAMES } from '../../core/members.js';

// Rendering never spawns: a spawner that throws proves it.
const roles = buildRoles({
  spawn: () => {
    throw new Error('render must not spawn');
  },
});

describe('the role registry', () => {
  it('has exactly the four role names, each under its own name', () => {
    expect(Object.keys(roles).sort()).toEqual([...ROLE_NAMES].sort());
    for (const [key, role] of Object.entries(roles)) expect(role.name).toBe(key);
  });

  it.each(ROLE_NAMES)('%s renders the same files twice from the same input, at absolute paths', (name) => {
    const desired = {
      node: 'n1',
      config: {},
      members: [{ name: 'n1', addr: '127.0.0.1', port: 7946, tags: { role: name }, status: 'alive' as const }],
    };
    const first = roles[name].render(desired);
    expect(roles[name].render(desired)).toEqual(first);
    for (const f of first) expect(f.path.startsWith('/')).toBe(true);
  });
});
