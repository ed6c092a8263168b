/**
 * Small pure IPv4 and CIDR helpers for the gateway role. Addresses are unsigned 32-bit numbers so
 * subnet arithmetic is plain integer maths; parsing is strict (no leading zeros, no shorthand) so a
 * value that passes here means the same thing to dnsmasq and iptables as it does to us.
 */

/** An IPv4 address with a prefix length, e.g. `10.88.0.1/24` → `{ address: 0x0a580001, prefix: 24 }`. */
export interface Cidr {
  /** The address as written (a host address, not necessarily the network address). */
  readonly address: number;
  /** Prefix length, 0–32. */
  readonly prefix: number;
}

// One octet: 0, or 1–255 without a leading zero (inet_aton would read "010" as octal 8).
const OCTET = '(?:0|25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]\\d?)';
const IPV4 = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`);

/** Parses a dotted quad into an unsigned 32-bit number; `undefined` when it is not one. */
export function parseIPv4(text: string): number | undefined {
  if (!IPV4.test(text)) return undefined;
  return text.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

/** True when `text` is a strict dotted-quad IPv4 address. */
export function isIPv4(text: string): boolean {
  return parseIPv4(text) !== undefined;
}

/** Formats an unsigned 32-bit number as a dotted quad. */
export function formatIPv4(ip: number): string {
  return [ip >>> 24, (ip >>> 16) & 0xff, (ip >>> 8) & 0xff, ip & 0xff].join('.');
}

/** Splits `IP:PORT` (port 1–65535, no leading zero); `undefined` unless both parts are valid. */
export function parseIPv4Port(text: string): { ip: string; port: number } | undefined {
  const m = /^([\d.]+):([1-9]\d{0,4})$/.exec(text);
  if (!m?.[1] || !isIPv4(m[1]) || Number(m[2]) > 65535) return undefined;
  return { ip: m[1], port: Number(m[2]) };
}

/** Parses `a.b.c.d/len`; `undefined` when the address or the prefix length (0–32) is invalid. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const address = parseIPv4(text.slice(0, slash));
  const len = text.slice(slash + 1);
  if (address === undefined || !/^(?:0|[1-9]\d?)$/.test(len) || Number(len) > 32) return undefined;
  return { address, prefix: Number(len) };
}

/** Formats a CIDR as `a.b.c.d/len`. */
export function formatCidr(cidr: Cidr): string {
  return `${formatIPv4(cidr.address)}/${cidr.prefix}`;
}

/** The netmask of a prefix length as a number (`24` → `0xffffff00`). */
export function netmask(prefix: number): number {
  // A shift by 32 is a no-op in JavaScript, so /0 needs its own case.
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** The network address of a CIDR (`10.88.0.1/24` → `10.88.0.0`). */
export function network(cidr: Cidr): number {
  return (cidr.address & netmask(cidr.prefix)) >>> 0;
}

/** The broadcast (last) address of a CIDR (`10.88.0.1/24` → `10.88.0.255`). */
export function broadcast(cidr: Cidr): number {
  return (network(cidr) | ~netmask(cidr.prefix)) >>> 0;
}

/** The subnet a CIDR lies in, written as network/len (`10.88.0.1/24` → `10.88.0.0/24`). */
export function subnetOf(cidr: Cidr): string {
  return formatCidr({ address: network(cidr), prefix: cidr.prefix });
}

/** True when `ip` lies in the subnet of `cidr` (network and broadcast addresses included). */
export function contains(cidr: Cidr, ip: number): boolean {
  return (ip & netmask(cidr.prefix)) >>> 0 === network(cidr);
}

/**
 * True when `ip` is a usable host address of `cidr`: inside it and neither its network nor its
 * broadcast address (for /31 and /32 every address counts, as RFC 3021 allows).
 */
export function isHostOf(cidr: Cidr, ip: number): boolean {
  if (!contains(cidr, ip)) return false;
  return cidr.prefix >= 31 || (ip !== network(cidr) && ip !== broadcast(cidr));
}
