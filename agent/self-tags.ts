/**
 * Which Serf tags this node must gain: the pure part of the daemon's tag publishing. The agent
 * owns `role`-independent tags (`trust`, `mammatus`); roles may ask for their own (the compute
 * role's `iscsi`). Only tags whose value Serf does not have yet are returned, so an unchanged set
 * costs no broadcast (each `serf tags` call is one gossip round, ~0.6 s).
 */
import type { Logger } from '../core/contracts.js';
import { AGENT_TAG, ROLE_TAG } from '../core/members.js';
import { TRUST_TAG, type NodeCredentials } from '../core/trust.js';

type Tags = Readonly<Record<string, string>>;

/** The `trust` tag (this node's proof of admission) when Serf has another value; none for credentials of another node. */
export function trustTagWanted(have: Tags, node: string, credentials: NodeCredentials | undefined, log: Logger): Record<string, string> {
  if (!credentials || have[TRUST_TAG] === credentials.tag) return {};
  if (credentials.node !== node) {
    log.error({ node, admitted_as: credentials.node }, 'the credentials were made for another node; not publishing them');
    return {};
  }
  return { [TRUST_TAG]: credentials.tag };
}

/** The roles' tags whose value Serf does not have yet; the agent's own tags are never theirs to set. */
export function roleTagsWanted(have: Tags, fromRoles: Tags): Record<string, string> {
  const own = new Set([ROLE_TAG, TRUST_TAG, AGENT_TAG]);
  return Object.fromEntries(Object.entries(fromRoles).filter(([k, v]) => !own.has(k) && have[k] !== v));
}
