/**
 * What this node may be: the roles its `role` tag asks for against those its credentials admit
 * (or `trust.allowed_roles`), and whether Serf is safe enough to run a controller on. Pure; the
 * daemon feeds it its config, credentials and Serf's own answer about gossip encryption.
 */
import { ROLE_NAMES, type ParsedRoles } from '../core/members.js';
import type { NodeCredentials } from '../core/trust.js';
import type { AgentConfig } from './config/schema.js';
import type { TrustStatus } from './types.js';

/** Why Serf is not safe enough for a controller: gossip not encrypted, RPC without a key. */
export function serfWeaknesses(c: Pick<AgentConfig, 'serf'>, gossipEncrypted: boolean | undefined): string[] {
  const out: string[] = [];
  if (gossipEncrypted === false) out.push('Serf gossip is not encrypted (serf agent -encrypt / keyring)');
  if (!c.serf.rpc_auth) out.push('Serf RPC has no auth key (serf.rpc_auth)');
  return out;
}

/** The roles to run and those refused, each with why. */
export interface RoleDecision {
  readonly roles: string[];
  readonly refused: Record<string, string>;
}

/**
 * Decides which of the tagged roles run: those allowed (`trust.allowed_roles`, else the admitted
 * ones; every role on a node never admitted, whose roles then fail on their own), and the
 * controller only on a safe Serf unless `trust.allow_plain_serf`.
 */
export function decideRoles(
  tagged: ParsedRoles,
  c: Pick<AgentConfig, 'trust' | 'serf'>,
  credentials: NodeCredentials | undefined,
  gossipEncrypted: boolean | undefined,
): RoleDecision {
  const [allowed, why]: [readonly string[], string] = c.trust.allowed_roles.length
    ? [c.trust.allowed_roles, 'not in trust.allowed_roles']
    : credentials
      ? [credentials.roles, `not admitted (its credentials admit ${credentials.roles.join(',') || 'no role'})`]
      : [ROLE_NAMES, ''];
  const refused: Record<string, string> = {};
  for (const r of tagged.roles) if (!allowed.includes(r)) refused[r] = why;
  // A controller holds every secret of the cluster: not on a Serf that strangers can join or drive.
  const weak = c.trust.allow_plain_serf ? [] : serfWeaknesses(c, gossipEncrypted);
  if (tagged.roles.includes('controller') && !refused.controller && weak.length) {
    refused.controller = `refused: ${weak.join('; ')} (trust.allow_plain_serf for a lab)`;
  }
  return { roles: tagged.roles.filter((r) => !refused[r]), refused };
}

/** The `trust` section of this node's status answer. */
export function trustStatus(
  c: Pick<AgentConfig, 'serf'>,
  credentials: NodeCredentials | undefined,
  gossipEncrypted: boolean | undefined,
): TrustStatus {
  const errors = serfWeaknesses(c, gossipEncrypted);
  if (!credentials) errors.push('not admitted: no credentials (mammatus node admit)');
  return { ...(credentials ? { admitted: credentials.roles } : {}), errors };
}
