/**
 * The registry of role plugins the agent runs. Roles that have not landed yet (compute, storage:
 * their own issues) are placeholders that own no files, so nodes tagged with them report `ok` and
 * tags, status and reconcile already work end to end.
 */
import { buildControllerRole } from './controller/index.js';
import { buildGatewayRole } from './gateway/index.js';
import type { Role, RoleName, Spawn } from './types.js';

const placeholder = (name: RoleName): Role => ({ name, render: () => [] });

/** What role plugins need from the agent (the composition root passes the real funnels). */
export interface RoleDeps {
  readonly spawn: Spawn;
}

/** Builds every role, keyed by the name used in the `role` tag. One registry per agent. */
export function buildRoles(deps: RoleDeps): Readonly<Record<RoleName, Role>> {
  return {
    gateway: buildGatewayRole({ spawn: deps.spawn }),
    compute: placeholder('compute'),
    storage: placeholder('storage'),
    // The services it will host (metadata, SQS/SNS) arrive with their own issues.
    controller: buildControllerRole({ spawn: deps.spawn, services: [] }),
  };
}

export { parseRoleTag } from './parse.js';
export { applyRole } from './apply.js';
export type { Role, RoleName } from './types.js';
