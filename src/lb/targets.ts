/**
 * Balancers' targets resolved to servers at one moment: what the gateway's renderer writes and
 * what it changes through the engine's runtime API when instances come and go. Pure.
 *
 * When an instance counts (core/instance-record.ts): its `state` is what was asked for and its
 * `observed.status` what its compute node last saw (LXD's status). An instance is a server only
 * when both say `running` (asked to run and seen running) and it has an IPv4 address: one asked to
 * stop, being deleted, not created yet (no report), or failed gets no traffic. Records that no
 * compute node observes (planned PXE hosts, hand-registered machines) therefore never count: a
 * machine that joins Serf is reached with `member:NAME` instead. A Serf member counts while it is
 * `alive`, at its Serf address.
 *
 * A server's name says what kind of machine it is: `i-<instance>-<port>` or `m-<member>-<port>`.
 * An instance and a Serf member may share a name and be different machines; one name for both
 * would let the engine's runtime API readdress that server from one machine to the other as they
 * come and go, where two names make it a removal and an addition anyone can see.
 */
import { isIPv4 } from 'node:net';
import type { Member } from '../../core/contracts.js';
import type { InstanceRecord } from '../../core/instance-record.js';
import { byText } from '../../core/lb-syntax.js';
import type { LbServer, LbTarget, LoadBalancerRecord, ResolvedBalancer } from '../../core/lb-record.js';

/** What resolving needs of an instance record (a feed may keep just this). */
export type LbInstance = Pick<InstanceRecord, 'name' | 'ips' | 'tags' | 'state' | 'observed'>;

/** What resolving needs of a Serf member. */
export type LbMember = Pick<Member, 'name' | 'addr' | 'status'>;

/** The address an instance serves on, or undefined when it is not a server now (see the header). */
export function instanceAddress(r: LbInstance): string | undefined {
  if (r.state !== 'running' || r.observed?.status !== 'running') return undefined;
  return r.ips.find((ip) => isIPv4(ip));
}

/** A server before de-duplication; instances outrank members when two reach one address and port. */
interface Candidate extends LbServer {
  readonly rank: 0 | 1;
}

function candidates(t: LbTarget, instances: readonly LbInstance[], members: ReadonlyMap<string, LbMember>): Candidate[] {
  const s = t.selector;
  if (s.kind === 'member') {
    const m = members.get(s.name);
    return m && m.status === 'alive' ? [{ name: `m-${m.name}-${t.port}`, addr: m.addr, port: t.port, rank: 1 }] : [];
  }
  const chosen = s.kind === 'instance' ? instances.filter((r) => r.name === s.name) : instances.filter((r) => r.tags[s.key] === s.value);
  const out: Candidate[] = [];
  for (const r of chosen) {
    const addr = instanceAddress(r);
    if (addr) out.push({ name: `i-${r.name}-${t.port}`, addr, port: t.port, rank: 0 });
  }
  return out;
}

/**
 * One balancer's servers: every target's matches, one server per address and port (two selectors
 * reaching the same machine and port: an instance's name before a member's, then the first by
 * name), sorted by name.
 */
export function resolveServers(record: LoadBalancerRecord, instances: readonly LbInstance[], members: readonly LbMember[]): LbServer[] {
  const byName = new Map(members.map((m) => [m.name, m]));
  const all = record.targets
    .flatMap((t) => candidates(t, instances, byName))
    .sort((a, b) => a.rank - b.rank || byText(a.name, b.name) || byText(a.addr, b.addr));
  const endpoints = new Set<string>();
  const servers: LbServer[] = [];
  for (const c of all) {
    const endpoint = `${c.addr}|${c.port}`;
    if (endpoints.has(endpoint)) continue;
    endpoints.add(endpoint);
    servers.push({ name: c.name, addr: c.addr, port: c.port });
  }
  return servers.sort((a, b) => byText(a.name, b.name));
}

/** Every balancer with its servers, sorted by balancer name. */
export function resolveBalancers(
  records: readonly LoadBalancerRecord[],
  instances: readonly LbInstance[],
  members: readonly LbMember[],
): ResolvedBalancer[] {
  return [...records]
    .sort((a, b) => byText(a.name, b.name))
    .map((record) => ({ record, servers: resolveServers(record, instances, members) }));
}
