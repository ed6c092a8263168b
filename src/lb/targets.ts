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
 */
import type { Member } from '../../core/contracts.js';
import type { InstanceRecord } from '../../core/instance-record.js';
import { byText } from './record.js';
import type { LbServer, LbTarget, LoadBalancerRecord, ResolvedBalancer } from '../../core/lb-record.js';

/** What resolving needs of an instance record (a feed may keep just this). */
export type LbInstance = Pick<InstanceRecord, 'name' | 'ips' | 'tags' | 'state' | 'observed'>;

/** What resolving needs of a Serf member. */
export type LbMember = Pick<Member, 'name' | 'addr' | 'status'>;

/** The address an instance serves on, or undefined when it is not a server now (see the header). */
export function instanceAddress(r: LbInstance): string | undefined {
  if (r.state !== 'running' || r.observed?.status !== 'running') return undefined;
  return r.ips.find((ip) => /^\d{1,3}(\.\d{1,3}){3}$/.test(ip));
}

/** A server before de-duplication; instances outrank members when two share a name. */
interface Candidate extends LbServer {
  readonly rank: 0 | 1;
}

function candidates(t: LbTarget, instances: readonly LbInstance[], members: ReadonlyMap<string, LbMember>): Candidate[] {
  const s = t.selector;
  if (s.kind === 'member') {
    const m = members.get(s.name);
    return m && m.status === 'alive' ? [{ name: `${m.name}-${t.port}`, addr: m.addr, port: t.port, rank: 1 }] : [];
  }
  const chosen = s.kind === 'instance' ? instances.filter((r) => r.name === s.name) : instances.filter((r) => r.tags[s.key] === s.value);
  const out: Candidate[] = [];
  for (const r of chosen) {
    const addr = instanceAddress(r);
    if (addr) out.push({ name: `${r.name}-${t.port}`, addr, port: t.port, rank: 0 });
  }
  return out;
}

/**
 * One balancer's servers: every target's matches, one server per name (an instance and a member
 * of one name: the instance's) and one per address and port (two selectors reaching the same
 * machine: the first name), sorted by name.
 */
export function resolveServers(record: LoadBalancerRecord, instances: readonly LbInstance[], members: readonly LbMember[]): LbServer[] {
  const byName = new Map(members.map((m) => [m.name, m]));
  const all = record.targets
    .flatMap((t) => candidates(t, instances, byName))
    .sort((a, b) => a.rank - b.rank || byText(a.name, b.name) || byText(a.addr, b.addr));
  const names = new Set<string>();
  const endpoints = new Set<string>();
  const servers: LbServer[] = [];
  for (const c of all) {
    const endpoint = `${c.addr}|${c.port}`;
    if (names.has(c.name) || endpoints.has(endpoint)) continue;
    names.add(c.name);
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
