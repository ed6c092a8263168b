/**
 * Whose name is it? `node add` refuses a name another node holds (the roster lists it with another
 * key, or an alive Serf member of that name is elsewhere): admitting it would silently revoke that
 * node. `node remove` reads which node a host is before stopping or purging it. Pure.
 */
import { isIP } from 'node:net';
import type { Member } from '../../core/contracts.js';
import { parseCredentials, userKey, type AdmittedNode, type NodeCredentials } from '../../core/trust.js';
import { NODE_PATHS } from './node-plan.js';

/** What `node add` knows when it checks that the node name is not another node's. */
export interface NameCheck {
  readonly node: string;
  /** The host's credentials file, as read (undefined: none). */
  readonly remoteCredentials: string | undefined;
  /** This cluster's authority (public key). */
  readonly authority: string;
  /** The roster's entry of that name. */
  readonly roster: AdmittedNode | undefined;
  readonly members: readonly Member[];
  /** The host's addresses (its interfaces, the SSH target, `--bind` and its Serf config's `bind`). */
  readonly hostAddrs: readonly string[];
}

/**
 * Why the name is another node's, or undefined when the host may take it. A host holding that
 * name's credentials from this authority, with the key the roster lists, is that node. Else the name
 * is taken when the roster lists it (another key: admitting would revoke that node) or an alive Serf
 * member of that name has an address that is not the host's.
 */
export function nameTaken(c: NameCheck): string | undefined {
  let creds: NodeCredentials | undefined;
  try {
    creds = c.remoteCredentials === undefined ? undefined : parseCredentials(JSON.parse(c.remoteCredentials), NODE_PATHS.credentials);
  } catch {
    creds = undefined;
  }
  if (creds && creds.authority === c.authority && creds.node === c.node && c.roster?.nkey === userKey(creds)) return undefined;
  if (c.roster)
    return `the roster already lists ${c.node} with another key (${c.roster.nkey}, roles ${c.roster.roles.join(',') || '-'}, admitted ${c.roster.admitted_at})`;
  const member = c.members.find((m) => m.name === c.node && m.status === 'alive');
  if (member && !c.hostAddrs.includes(member.addr))
    return `${c.node} is an alive Serf member at ${member.addr}:${member.port}, which is not this host`;
  return undefined;
}

/** The addresses in `hostname -I` output and in `--bind`-style `ip:port` values (brackets dropped). */
export function hostAddresses(hostnameI: string, binds: readonly (string | undefined)[]): string[] {
  const ip = (b: string) => /^\[(.*)\](:\d+)?$/.exec(b)?.[1] ?? (isIP(b) || !b.includes(':') ? b : b.slice(0, b.lastIndexOf(':')));
  return [...hostnameI.split(/\s+/).filter(Boolean), ...binds.filter((b): b is string => Boolean(b)).map(ip)];
}

/** A string field of a Serf config text, if it has one. */
export function serfConfigField(text: string | undefined, field: 'bind' | 'node_name'): string | undefined {
  try {
    const v = (JSON.parse(text ?? '') as Record<string, unknown>)[field];
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Which node a host is, as `node remove` checks before stopping or purging: the `node` of its
 * credentials file, else the `node_name` of its Serf config; undefined when neither says.
 */
export function hostNodeName(credentialsText: string | undefined, serfConfigText: string | undefined): string | undefined {
  try {
    const node = (JSON.parse(credentialsText ?? '') as { node?: unknown }).node;
    if (typeof node === 'string' && node) return node;
  } catch {
    // unreadable: ask Serf's config
  }
  return serfConfigField(serfConfigText, 'node_name');
}
