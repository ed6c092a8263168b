/**
 * The registry of role plugins the agent runs. Roles that have not landed yet (storage:
 * their own issues) are placeholders that own no files, so nodes tagged with them report `ok` and
 * tags, status and reconcile already work end to end.
 */
import { buildControllerRole } from './controller/index.js';
import { buildGatewayRole } from './gateway/index.js';
import { buildComputeRole, type ComputeRegistryFactory } from './compute/index.js';
import type { HostedService } from '../core/contracts.js';
import type { Argv } from '../core/contracts.js';
import type { Role } from './types.js';
import type { InstanceFeedFactory, Spawn } from '../core/contracts.js';
import type { RoleName } from '../core/members.js';

const placeholder = (name: RoleName): Role => ({ name, render: () => [] });

/** What role plugins need from the agent (the composition root passes the real funnels). */
export interface RoleDeps {
  readonly spawn: Spawn;
  /** What controllers host in-process once NATS is up (the metadata service, the SQS/SNS API). */
  readonly controllerServices?: readonly HostedService[];
  /** How to run `mammatus` itself (the gateway's metadata proxy runs as its child). */
  readonly mammatus?: Argv;
  /** Opens a live copy of the instance registry (gateways reserve instances' addresses and names). */
  readonly instanceFeed?: InstanceFeedFactory;
  /** The compute role's registry link (records with node and state, and its write-backs). */
  readonly computeRegistry?: ComputeRegistryFactory;
}

/** Builds every role, keyed by the name used in the `role` tag. One registry per agent. */
export function buildRoles(deps: RoleDeps): Readonly<Record<RoleName, Role>> {
  return {
    gateway: buildGatewayRole({
      spawn: deps.spawn,
      ...(deps.mammatus ? { mammatus: deps.mammatus } : {}),
      ...(deps.instanceFeed ? { instanceFeed: deps.instanceFeed } : {}),
    }),
    compute: buildComputeRole(deps.computeRegistry ? { instanceFeed: deps.computeRegistry } : {}),
    storage: placeholder('storage'),
    controller: buildControllerRole({ spawn: deps.spawn, services: deps.controllerServices ?? [] }),
  };
}

export { parseRoleTag } from '../core/members.js';
export { applyRole } from './apply.js';
export type { Role } from './types.js';
export type { RoleName } from '../core/members.js';
