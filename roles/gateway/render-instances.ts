/**
 * Registered instances at the gateway: one file per instance in dnsmasq's `dhcp-hostsdir` (its
 * MACs get its address and name), and its DNS name through the hosts files. A registry entry never
 * overrides the operator's own config or a member: an instance whose name, MAC or address a
 * `dhcp.reservations` entry, a member or the gateway itself already has is left out, and the
 * reason is kept so that the operator can be told (`left-out` file, status, `mammatus.reservations`).
 */
import type { Member } from '../../core/contracts.js';
import type { RenderedFile } from '../types.js';
import type { InstanceSummary } from '../../core/contracts.js';
import { MANAGED_HEADER, type GatewayConfig } from './config.js';
import { isDnsLabel } from '../../core/net.js';
import { contains, formatIPv4, isIPv4, parseCidr, parseIPv4, subnetOf } from '../../core/net.js';
import type { InstanceName } from './render-hosts.js';

/**
 * A registered instance the gateway does not serve as registered, and why (one short sentence):
 * left out entirely (`served: false`), or served with a dynamic address instead of its own.
 */
export interface InstanceNote {
  readonly name: string;
  readonly served: boolean;
  readonly reason: string;
}

/** What the gateway makes of the registry: the instances it serves, and notes on the others. */
export interface InstancePlan {
  readonly served: readonly InstanceSummary[];
  readonly notes: readonly InstanceNote[];
}

/** The IPv4 address the gateway reserves for an instance: its first one inside the LAN, if any. */
export function lanAddressOf(cfg: GatewayConfig, instance: InstanceSummary): string | undefined {
  const lan = parseCidr(cfg.lan.address)!;
  return instance.ips.find((ip) => isIPv4(ip) && contains(lan, parseIPv4(ip)!) && parseIPv4(ip) !== lan.address);
}

const byName = (a: { readonly name: string }, b: { readonly name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * Decides, in name order, which instances the gateway serves. An instance is left out when its
 * name is not a DNS label or is the gateway's, a member's, a reservation's or an earlier
 * instance's; when one of its MACs is reserved; or when its address is the gateway's, a member's
 * or reserved. An instance whose addresses all lie outside the LAN is served (its MACs get a
 * dynamic address and its name) and noted, since it will not get the address it was registered with.
 * A planned bare-metal host (`host`) is not left out for the member of its own name (and that
 * member's address): after it joins Serf it is that member, and keeps its reservation and name.
 */
export function planInstances(cfg: GatewayConfig, members: readonly Member[], instances: readonly InstanceSummary[]): InstancePlan {
  const lan = parseCidr(cfg.lan.address)!;
  const gatewayIp = formatIPv4(lan.address);
  const names = new Map<string, string>([['gateway', "the gateway's own name"]]);
  const ips = new Map<string, string>([[gatewayIp, "the gateway's own address"]]);
  const macs = new Map<string, string>();
  // Who holds a name or address as a member: a planned host is that member once it has joined.
  const memberNames = new Set<string>();
  const memberIps = new Map<string, string>();
  for (const m of members) {
    names.set(m.name.toLowerCase(), `member ${m.name}'s name`);
    memberNames.add(m.name.toLowerCase());
    // A member that left may come back; one that is gone keeps no address.
    if (m.status !== 'left') {
      ips.set(m.addr, `member ${m.name}'s address`);
      memberIps.set(m.addr, m.name.toLowerCase());
    }
  }
  for (const r of cfg.dhcp.reservations) {
    memberNames.delete(r.name.toLowerCase());
    memberIps.delete(r.ip);
    names.set(r.name.toLowerCase(), `reserved for ${r.mac} in roles.gateway.dhcp.reservations`);
    macs.set(r.mac.toLowerCase(), `reserved for ${r.name} in roles.gateway.dhcp.reservations`);
    ips.set(r.ip, `reserved for ${r.name} in roles.gateway.dhcp.reservations`);
  }
  const served: InstanceSummary[] = [];
  const notes: InstanceNote[] = [];
  for (const i of [...instances].sort(byName)) {
    const ip = lanAddressOf(cfg, i);
    // A planned host's own member (same name; its address, if any) is no clash: it is the host.
    const self = i.host === true && memberNames.has(i.name);
    const taken = self ? new Map([...ips].filter(([a]) => memberIps.get(a) !== i.name)) : ips;
    const reason = !isDnsLabel(i.name)
      ? `name ${i.name} is not a DNS label`
      : names.has(i.name) && !self
        ? `name ${i.name} is ${names.get(i.name)}`
        : (clash(i.macs, macs, 'MAC') ?? clash(i.ips.filter(isIPv4), taken, 'address'));
    if (reason) {
      notes.push({ name: i.name, served: false, reason });
      continue;
    }
    names.set(i.name, `instance ${i.name}'s name`);
    memberNames.delete(i.name);
    for (const m of i.macs) macs.set(m, `instance ${i.name}'s`);
    if (ip) ips.set(ip, `instance ${i.name}'s address`);
    served.push(i);
    const v4 = i.ips.filter(isIPv4);
    if (!ip && v4.length)
      notes.push({ name: i.name, served: true, reason: `address ${v4[0]} is outside the LAN ${subnetOf(lan)}: it gets a dynamic one` });
  }
  return { served, notes };
}

/** The first value of `values` that `taken` holds, as a reason; undefined when none clashes. */
function clash(values: readonly string[], taken: ReadonlyMap<string, string>, what: string): string | undefined {
  const hit = values.find((v) => taken.has(v));
  return hit === undefined ? undefined : `${what} ${hit} is ${taken.get(hit)!}`;
}

/** The dnsmasq tag a Raspberry Pi host's MACs get: dnsmasq.conf answers it with the Pi's boot options. */
export const RPI_TAG = 'rpi';

/**
 * One `dhcp-hostsdir` file per instance: `mac,[set:rpi,][ip,]name` per MAC (a Raspberry Pi host's
 * lines set the tag its bootloader is answered by, render-dnsmasq.ts). Mode 0644; sorted by path.
 */
export function renderDhcpHosts(cfg: GatewayConfig, instances: readonly InstanceSummary[]): RenderedFile[] {
  return instances.map((i) => {
    const ip = lanAddressOf(cfg, i);
    const tag = i.rpi ? [`set:${RPI_TAG}`] : [];
    const lines = i.macs.map((mac) => [mac, ...tag, ...(ip ? [ip] : []), i.name].join(','));
    return { path: `${cfg.paths.dhcp_hosts_dir}/${i.name}`, content: `${MANAGED_HEADER}${lines.join('\n')}\n`, mode: 0o644 };
  });
}

/** A `dhcp-hostsdir` file read back: the reservation an earlier apply made (for lease release). */
export interface DhcpHost {
  readonly name: string;
  readonly macs: readonly string[];
  readonly ip?: string;
}

/** Parses what `renderDhcpHosts` wrote; lines it did not write are skipped. */
export function parseDhcpHosts(content: string): DhcpHost | undefined {
  const macs: string[] = [];
  let name: string | undefined;
  let ip: string | undefined;
  for (const line of content.split('\n')) {
    // Tags (`set:rpi`) say how to answer the MAC, not who holds it.
    const parts = line
      .trim()
      .split(',')
      .filter((p) => !p.startsWith('set:'));
    if (parts.length < 2 || parts.length > 3 || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(parts[0])) continue;
    macs.push(parts[0]);
    name = parts[parts.length - 1];
    if (parts.length === 3) ip = parts[1];
  }
  return name && macs.length ? { name, macs, ...(ip ? { ip } : {}) } : undefined;
}

/**
 * The `left-out` file: one `name: left out|served: reason` line per instance not served as
 * registered, so an operator can read why, and the next apply can log what changed.
 */
export function renderNotes(notes: readonly InstanceNote[]): string {
  const lines = notes.map((n) => `${n.name}: ${n.served ? 'served' : 'left out'}: ${n.reason}\n`);
  return `${MANAGED_HEADER}# registered instances this gateway does not serve as registered, and why\n${lines.join('')}`;
}

/** Parses what `renderNotes` wrote (lines it did not write are skipped). */
export function parseNotes(content: string | undefined): InstanceNote[] {
  return (content ?? '').split('\n').flatMap((line) => {
    const m = /^([a-z0-9-]+): (served|left out): (.+)$/.exec(line);
    return m ? [{ name: m[1], served: m[2] === 'served', reason: m[3] }] : [];
  });
}

/** Hosts-file entries for instances that have a LAN address (the others get theirs from DHCP). */
export function instanceNames(cfg: GatewayConfig, instances: readonly InstanceSummary[]): InstanceName[] {
  return instances.flatMap((i) => {
    const ip = lanAddressOf(cfg, i);
    return ip ? [{ name: i.name, ip }] : [];
  });
}
