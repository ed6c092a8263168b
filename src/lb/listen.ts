/**
 * Where a balancer listens (`--listen [ADDR:]PORT`, the record's `listen`): the parser and the
 * check of a value read back, which refuse the same things. An address, when given, is one the
 * gateway can serve the WAN on: not the unspecified address (leave it out for every address), not
 * loopback (nothing outside the gateway reaches it), not an IPv4-mapped IPv6 address (a second
 * spelling of an IPv4 address, which would slip past the conflict check's equal-address test).
 */
import { isIP, isIPv4 } from 'node:net';
import type { LoadBalancerRecord } from '../../core/lb-record.js';
import { check } from '../../core/lb-syntax.js';

/** Ports no balancer may take, with who holds them on a gateway. */
export const RESERVED_PORTS: Readonly<Record<number, string>> = {
  22: 'sshd',
  53: "the gateway's DNS (dnsmasq)",
  7373: 'Serf RPC',
  7946: 'Serf gossip',
};

/** A decimal port 1–65535; `field` names the flag in the error. */
export function parsePort(text: string, field: string): number {
  check(/^\d{1,5}$/.test(text), field, `not a port: ${JSON.stringify(text)}`);
  const port = Number(text);
  check(port >= 1 && port <= 65535, field, `port ${port} is outside 1–65535`);
  return port;
}

/**
 * An IP address in the one form records keep (IPv6 compressed, lower case), so equal addresses
 * compare equal; undefined for anything else, a scoped IPv6 address (`fe80::1%eth0`) included:
 * a WAN listener has no use for a link-local scope.
 */
function canonicalAddr(addr: string): string | undefined {
  if (isIPv4(addr)) return addr;
  if (isIP(addr) !== 6 || addr.includes('%')) return undefined;
  return new URL(`http://[${addr}]/`).hostname.slice(1, -1);
}

/** Why a canonical address cannot be listened on, or undefined when it can (see the header). */
function refusedAddr(addr: string): string | undefined {
  if (addr === '0.0.0.0' || addr === '::') return 'leave the address out to listen on every address of the gateway';
  if (addr.startsWith('127.') || addr === '::1') return `${addr} is loopback: nothing outside the gateway reaches it`;
  if (/^::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}$/.test(addr)) return `${addr} is an IPv4-mapped IPv6 address: write the IPv4 address`;
  return undefined;
}

/** `--listen [ADDR:]PORT`: `80`, `192.0.2.10:80`, `[2001:db8::10]:443`. */
export function parseListen(text: string): LoadBalancerRecord['listen'] {
  const v6 = /^\[([^\]]+)\]:([^:]*)$/.exec(text);
  const at = text.lastIndexOf(':');
  const [addr, port] = v6 ? [v6[1], v6[2]] : at < 0 ? [undefined, text] : [text.slice(0, at), text.slice(at + 1)];
  let canonical: string | undefined;
  if (addr !== undefined) {
    canonical = v6 ? (isIP(addr) === 6 ? canonicalAddr(addr) : undefined) : isIPv4(addr) ? addr : undefined;
    check(canonical !== undefined, 'listen', `not [ADDR:]PORT (IPv4, or IPv6 in brackets): ${JSON.stringify(text)}`);
  }
  const listen = { ...(canonical !== undefined ? { addr: canonical } : {}), port: parsePort(port, 'listen') };
  checkListen(listen);
  return listen;
}

/** A listen address as the CLI prints it: `*:80`, `192.0.2.10:80`, `[2001:db8::10]:443`. */
export function formatListen(l: LoadBalancerRecord['listen']): string {
  return `${l.addr === undefined ? '*' : l.addr.includes(':') ? `[${l.addr}]` : l.addr}:${l.port}`;
}

/** Checks a record's `listen` (parsed, or read from the bucket). */
export function checkListen(l: Record<string, unknown>): void {
  for (const key of Object.keys(l)) check(key === 'addr' || key === 'port', `listen.${key}`, 'unknown field');
  check(Number.isInteger(l.port) && (l.port as number) >= 1 && (l.port as number) <= 65535, 'listen', 'port must be 1–65535');
  const held = RESERVED_PORTS[l.port as number];
  check(held === undefined, 'listen', `port ${String(l.port)} belongs to ${held}`);
  if (l.addr === undefined) return;
  check(typeof l.addr === 'string' && canonicalAddr(l.addr) === l.addr, 'listen', 'addr must be an IP address');
  const refused = refusedAddr(l.addr);
  check(refused === undefined, 'listen', refused ?? '');
}
