/**
 * Which DHCP leases the gateway hands back to dnsmasq after an apply. dnsmasq serves the name of a
 * lease in DNS for as long as the lease lasts (12 h by default), and removing a reservation does not
 * end its lease: without a release, a deleted instance's name would keep resolving, and point at the
 * next holder of its address. So after an apply the gateway releases (with `dhcp_release`, as
 * OpenStack's DHCP agent does) every lease that the change left stale:
 *
 * - a lease of a MAC whose reservation was removed, renamed or re-addressed;
 * - a lease of an address now reserved for another MAC (an instance's, after the old holder left);
 * - a lease named after a member that is gone (reaped) or left.
 *
 * Pure: the reload hook gathers the inputs (the lease file, what the apply changed) and runs the
 * releases. Members are diffed through a file the role renders (`paths.members`), so a release
 * also happens for changes made while the agent was down.
 */
import type { Member } from '../../core/contracts.js';
import { MANAGED_HEADER } from './config.js';
import { isDnsLabel } from '../../core/net.js';
import type { Lease } from './leases.js';
import type { DhcpHost } from './render-instances.js';

/** A member as the gateway's members file records it. */
export interface KnownMember {
  readonly name: string;
  readonly addr: string;
  readonly status: string;
}

/** A lease to give back, and why (for the log). */
export interface LeaseRelease {
  readonly ip: string;
  readonly mac: string;
  readonly name: string;
  readonly why: string;
}

/** What `leasesToRelease` compares. */
export interface ReleaseInput {
  /** dnsmasq's current leases. */
  readonly leases: readonly Lease[];
  /** Reservations as they were before this apply, for those the apply changed or removed. */
  readonly before: readonly DhcpHost[];
  /** Every reservation now (served instances, with their reserved address when they have one). */
  readonly now: readonly DhcpHost[];
  /** Members as the last apply saw them (empty when membership did not change). */
  readonly membersBefore: readonly KnownMember[];
  readonly membersNow: readonly Member[];
}

/** The leases the change left stale; each lease at most once. */
export function leasesToRelease(input: ReleaseInput): LeaseRelease[] {
  const out = new Map<string, LeaseRelease>();
  const add = (l: Lease, why: string) => {
    const key = `${l.mac} ${l.ip}`;
    if (!out.has(key)) out.set(key, { ip: l.ip, mac: l.mac, name: l.name, why });
  };
  const byMac = new Map<string, DhcpHost>();
  for (const r of input.now) for (const m of r.macs) byMac.set(m, r);
  const changedMacs = new Map<string, DhcpHost>();
  for (const r of input.before) for (const m of r.macs) changedMacs.set(m, r);
  const reservedIp = new Map<string, DhcpHost>();
  for (const r of input.now) if (r.ip) reservedIp.set(r.ip, r);

  for (const l of input.leases) {
    const old = changedMacs.get(l.mac);
    if (old) {
      const now = byMac.get(l.mac);
      if (!now) add(l, `the reservation of ${old.name} is gone`);
      else if (l.name && l.name.toLowerCase() !== now.name) add(l, `${old.name} is now named ${now.name}`);
      else if (now.ip && now.ip !== l.ip) add(l, `${now.name} is now reserved ${now.ip}`);
    }
    const holder = reservedIp.get(l.ip);
    if (holder && !holder.macs.includes(l.mac)) add(l, `${l.ip} is reserved for ${holder.name}`);
  }

  const present = new Map(input.membersNow.map((m) => [m.name.toLowerCase(), m.status]));
  for (const m of input.membersBefore) {
    const status = present.get(m.name.toLowerCase());
    if (status !== undefined && status !== 'left') continue;
    for (const l of input.leases) {
      if (l.name.toLowerCase() === m.name.toLowerCase()) add(l, `member ${m.name} ${status === 'left' ? 'left' : 'is gone'}`);
    }
  }
  return [...out.values()];
}

/**
 * The members file: `name addr status` per known member, sorted by name. Only names that can be a
 * lease's name (DNS labels) are kept, which also keeps a strange Serf name from breaking a line.
 */
export function renderMembersFile(members: readonly Member[]): string {
  const lines = members
    .filter((m) => isDnsLabel(m.name) && /^[0-9a-fA-F.:]+$/.test(m.addr))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((m) => `${m.name} ${m.addr} ${m.status}\n`);
  return `${MANAGED_HEADER}# the members this gateway knows (name address status): the next apply releases the leases of those gone\n${lines.join('')}`;
}

/** Parses what `renderMembersFile` wrote; other lines are skipped. */
export function parseMembersFile(content: string | undefined): KnownMember[] {
  return (content ?? '').split('\n').flatMap((line) => {
    const [name, addr, status, extra] = line.split(' ');
    return name && addr && status && extra === undefined && !name.startsWith('#') ? [{ name, addr, status }] : [];
  });
}
