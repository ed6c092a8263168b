/** Contract test over the role catalog: names match keys, render is pure and deterministic. */
import { fixedCredentials } from '../helpers/trust.js';
import { describe, expect, it } from 'vitest';
import { roleCatalog } from '../../agent/roles.js';
import { ROLE_NAMES } from '../../core/members.js';
import type { Role } from '../../roles/types.js';

// Rendering never spawns: a spawner that throws proves it.
const catalog = roleCatalog({
  spawn: async () => () => {
    throw new Error('render must not spawn');
  },
});

describe('the role catalog', () => {
  it('has exactly the four role names, each loading the role of that name', async () => {
    expect(Object.keys(catalog).sort()).toEqual([...ROLE_NAMES].sort());
    for (const [key, load] of Object.entries(catalog)) expect((await load()).name).toBe(key);
  });

  it.each(ROLE_NAMES)('%s renders the same files twice from the same input, at absolute paths', async (name) => {
    const role: Role = await catalog[name]();
    const desired = {
      node: 'n1',
      config: {},
      members: [{ name: 'n1', addr: '127.0.0.1', port: 7946, tags: { role: name }, status: 'alive' as const }],
      credentials: fixedCredentials('n1', [name]),
    };
    const first = role.render(desired);
    expect(role.render(desired)).toEqual(first);
    for (const f of first) expect(f.path.startsWith('/')).toBe(true);
  });
});
