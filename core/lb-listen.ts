/**
 * Where a balancer listens (the record's `listen`), as every reader checks it: the registry before
 * it stores a record (`mammatus lb create`), the feed on every value it reads, the gateway's copy of
 * the balancers read back after a restart, and the gateway's renderer. One check, so a record the
 * registry takes is never one the renderer refuses for its address, nor the other way round.
 *
 * An address, when given, is one the gateway can serve the WAN on: IPv4 only (the gateway's
 * firewall is iptables, IPv4: an IPv6 listener would bind but never be opened, or be open without
 * the firewall's say), not the unspecified address (leave it out for every address), not loopback
 * (nothing outside the gateway reaches it).
 */
import { isIPv4 } from 'node:net';
import { check } from './lb-syntax.js';

/** The record's `listen`: `addr` absent = every address the gateway binds for balancers. */
export interface LbListen {
  readonly addr?: string;
  readonly port: number;
}

/**
 * Ports no balancer may take on any gateway, with who holds them: `lb create` refuses them, and so
 * does the renderer. The renderer also refuses the ports its own configuration and this node's
 * other roles use (roles/gateway/lb/render-lb.ts `reservedPorts`).
 */
export const ALWAYS_RESERVED_PORTS: Readonly<Record<number, string>> = {
  22: 'ssh',
  53: "the gateway's DNS (dnsmasq)",
  67: "the gateway's DHCP (dnsmasq)",
  69: "the gateway's TFTP (dnsmasq)",
  7373: 'Serf RPC',
  7946: 'Serf gossip',
};

/** Why `addr` (any text) cannot be a listen address, or undefined when it can. */
export function refusedListenAddr(addr: string): string | undefined {
  if (addr.includes(':') || addr.startsWith('['))
    return `${addr}: IPv6 listen addresses are not supported (the gateway's firewall is IPv4 only); leave the address out or give an IPv4 one`;
  if (!isIPv4(addr)) return `${JSON.stringify(addr)} is not an IPv4 address`;
  if (addr === '0.0.0.0') return 'leave the address out to listen on every address of the gateway';
  if (addr.startsWith('127.')) return `${addr} is loopback: nothing outside the gateway reaches it`;
  return undefined;
}

/** Checks a record's `listen` (parsed, or read back); throws `LbRecordError('listen', why)`. */
export function checkListen(l: Record<string, unknown>): void {
  for (const key of Object.keys(l)) check(key === 'addr' || key === 'port', `listen.${key}`, 'unknown field');
  check(Number.isInteger(l.port) && (l.port as number) >= 1 && (l.port as number) <= 65535, 'listen', 'port must be 1–65535');
  const held = ALWAYS_RESERVED_PORTS[l.port as number];
  check(held === undefined, 'listen', `port ${String(l.port)} belongs to ${held} on every gateway`);
  if (l.addr === undefined) return;
  check(typeof l.addr === 'string', 'listen', 'addr must be an IPv4 address');
  const refused = refusedListenAddr(l.addr);
  check(refused === undefined, 'listen', refused ?? '');
}

/** A listen address as the CLI prints it: `*:80`, `192.0.2.10:80`. */
export function formatListen(l: LbListen): string {
  return `${l.addr ?? '*'}:${l.port}`;
}
