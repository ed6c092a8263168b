/**
 * The registry of role plugins the agent runs. Each role arrives with its own issue; until then a
 * role is a placeholder that owns no files, so nodes tagged with it report `ok` and the framework,
 * tags and status already work end to end.
 */
import type { Role, RoleName } from './types.js';

const placeholder = (name: RoleName): Role => ({ name, render: () => [] });

/** Every role, keyed by the name used in the `role` tag. */
export const roles: Readonly<Record<RoleName, Role>> = {
  gateway: placeholder('gateway'),
  compute: placeholder('compute'),
  storage: placeholder('storage'),
  controller: placeholder('controller'),
};

export { parseRoleTag } from './parse.js';
export { applyRole } from './apply.js';
export type { Role, RoleName } from './types.js';
