/**
 * The controller's own INPUT rules: NATS (client and route ports) only from admitted members, the
 * metadata service only from gateways and configured callers, everything else (the SQS/SNS API, the CA,
 * SSH) untouched. Rendered pure, as an iptables-restore file for one chain of ours, `MAMMATUS-CTL`.
 *
 * The chain lives in the `mangle` table, jumped to from mangle INPUT: a gateway on the same node
 * restores the whole `filter` and `nat` tables at each apply, which would wipe a chain of ours
 * there; mangle INPUT sees every packet for this host, with conntrack, before filter does.
 * Restored with `--noflush`, so only our chain is replaced (atomically), and validated first by a
 * restore into a scratch network namespace, as the gateway does.
 */
import { isIPv4 } from 'node:net';
import type { Member, Run } from '../../core/contracts.js';
import { ROLE_TAG, parseRoleTag } from '../../core/members.js';
import { TRUST_TAG, verifyTrustTag, type AdmittedNode } from '../../core/trust.js';
import { MANAGED_HEADER } from './config.js';
import { installOwnChain, removeOwnChain, validateOwnChain, type OwnChain } from '../../core/iptables-chain.js';

/** Our chain. */
export const FIREWALL_CHAIN = 'MAMMATUS-CTL';
const TABLE = 'mangle';

/** What the rules are made from. */
export interface FirewallInput {
  /** The NATS client and cluster ports. */
  readonly natsPorts: readonly number[];
  /** The metadata service's port. */
  readonly metadataPort: number;
  /** Extra sources (CIDR or address) allowed to the metadata service: direct callers. */
  readonly metadataFrom: readonly string[];
  /** The authority's public key; members are admitted when their trust tag verifies with it. */
  readonly authority: string;
  /** The roster, when read: a member must also be in it with the same key (a revoked node is not). */
  readonly admitted?: readonly AdmittedNode[];
  readonly members: readonly Member[];
}

/** The admitted members' IPv4 addresses, and those of the admitted gateways. */
export function admittedAddresses(input: Pick<FirewallInput, 'authority' | 'admitted' | 'members'>): { all: string[]; gateways: string[] } {
  const roster = input.admitted ? new Map(input.admitted.map((n) => [n.node, n.nkey])) : undefined;
  const all = new Set<string>();
  const gateways = new Set<string>();
  for (const m of input.members) {
    if (!isIPv4(m.addr) || m.status === 'left') continue;
    const proof = verifyTrustTag(input.authority, m.name, m.tags[TRUST_TAG]);
    if (!proof || (roster && roster.get(m.name) !== proof.nkey)) continue;
    all.add(m.addr);
    if (proof.roles.includes('gateway') && parseRoleTag(m.tags[ROLE_TAG]).roles.includes('gateway')) gateways.add(m.addr);
  }
  const sorted = (s: Set<string>) => [...s].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return { all: sorted(all), gateways: sorted(gateways) };
}

/** The iptables-restore file (for `--noflush`): our chain, declared (and so flushed) and filled. */
export function renderFirewall(input: FirewallInput): string {
  const { all, gateways } = admittedAddresses(input);
  const nats = [...new Set(input.natsPorts)].sort((a, b) => a - b).join(',');
  const md = String(input.metadataPort);
  const lines = [
    `${MANAGED_HEADER}# NATS from admitted members only, the metadata service from gateways only`,
    `*${TABLE}`,
    `:${FIREWALL_CHAIN} - [0:0]`,
    `-A ${FIREWALL_CHAIN} -i lo -j RETURN`,
    `-A ${FIREWALL_CHAIN} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN`,
    ...all.map((a) => `-A ${FIREWALL_CHAIN} -s ${a}/32 -p tcp -m multiport --dports ${nats} -j RETURN`),
    `-A ${FIREWALL_CHAIN} -p tcp -m multiport --dports ${nats} -j DROP`,
    ...[...gateways.map((a) => `${a}/32`), ...input.metadataFrom].map((s) => `-A ${FIREWALL_CHAIN} -s ${s} -p tcp --dport ${md} -j RETURN`),
    `-A ${FIREWALL_CHAIN} -p tcp --dport ${md} -j DROP`,
    'COMMIT',
  ];
  return `${lines.join('\n')}\n`;
}

const OWN: OwnChain = { table: TABLE, hook: 'INPUT', chain: FIREWALL_CHAIN };

/** Restores `file` into a throw-away network namespace (`unshare -n`); throws with iptables' message. */
export const validateFirewall = (run: Run, file: string): Promise<void> => validateOwnChain(run, file);

/** Installs the chain from `file` and makes sure mangle INPUT jumps to it, once. */
export const installFirewall = (run: Run, file: string): Promise<void> => installOwnChain(run, OWN, file);

/** Takes the chain away (rollback of a first apply, the role leaving the node); absent is fine. */
export const removeFirewall = (run: Run): Promise<void> => removeOwnChain(run, OWN);
