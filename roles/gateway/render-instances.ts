/**
 * Registered instances at the gateway: one file per instance in dnsmasq's `dhcp-hostsdir` (its
 * MACs get its address and name), and its DNS name through the hosts files. A registry entry never
 * overrides the operator's own config or a member: a MAC, address or name that a
 * `dhcp.reservations` entry or a member already has is left out (and the instance then gets a
 * dynamic address, or no name).
 */
import type { Member } from '../../agent/types.js';
import type { InstanceSummary, RenderedFile } from '../types.js';
import { MANAGED_HEADER, isDnsLabel, type GatewayConfig } from './config.js';
import { isIPv4, parseCidr, parseIPv4 } from './ipv4.js';
import type { InstanceName } from './render-hosts.js';

/** The IPv4 address the gateway reserves for an instance: its first one inside the LAN, if any. */
export function lanAddressOf(cfg: GatewayConfig, instance: InstanceSummary): string | undefined {
  const lan = parseCidr(cfg.lan.address)!;
  const mask = lan.prefix === 0 ? 0 : (~0 << (32 - lan.prefix)) >>> 0;
  const inLan = (ip: string) => isIPv4(ip) && ((parseIPv4(ip)! & mask) >>> 0) === ((lan.address & mask) >>> 0) && parseIPv4(ip) !== lan.address;
  return instance.ips.find(inLan);
}

/** The instances the gateway serves, after dropping what conflicts with config and members. */
export function usableInstances(cfg: GatewayConfig, members: readonly Member[], instances: readonly InstanceSummary[]): InstanceSummary[] {
  const names = new Set(['gateway', ...members.map((m) => m.name.toLowerCase()), ...cfg.dhcp.reservations.map((r) => r.name)]);
  const macs = new Set(cfg.dhcp.reservations.map((r) => r.mac.toLowerCase()));
  const ips = new Set(cfg.dhcp.reservations.map((r) => r.ip));
  const out: InstanceSummary[] = [];
  for (const i of [...instances].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const ip = lanAddressOf(cfg, i);
    if (!isDnsLabel(i.name) || names.has(i.name) || i.macs.some((m) => macs.has(m)) || (ip && ips.has(ip))) continue;
    names.add(i.name);
    for (const m of i.macs) macs.add(m);
    if (ip) ips.add(ip);
    out.push(i);
  }
  return out;
}

/** One `dhcp-hostsdir` file per instance: `mac,[ip,]name` per MAC. Mode 0644; sorted by path. */
export function renderDhcpHosts(cfg: GatewayConfig, instances: readonly InstanceSummary[]): RenderedFile[] {
  return instances.map((i) => {
    const ip = lanAddressOf(cfg, i);
    const lines = i.macs.map((mac) => [mac, ...(ip ? [ip] : []), i.name].join(','));
    return { path: `${cfg.paths.dhcp_hosts_dir}/${i.name}`, content: `${MANAGED_HEADER}${lines.join('\n')}\n`, mode: 0o644 };
  });
}

/** Hosts-file entries for instances that have a LAN address (the others get theirs from DHCP). */
export function instanceNames(cfg: GatewayConfig, instances: readonly InstanceSummary[]): InstanceName[] {
  return instances.flatMap((i) => {
    const ip = lanAddressOf(cfg, i);
    return ip ? [{ name: i.name, ip }] : [];
  });
}
