/**
 * Network names and addresses, checked one way everywhere: IPv4 and CIDR (addresses are unsigned
 * 32-bit numbers, so subnet arithmetic is plain integer maths; parsing is strict — no leading
 * zeros, no shorthand — so a value that passes here means the same thing to dnsmasq and iptables
 * as it does to us), `host:port`, host names, DNS labels and names, and an address as a URL host.
 */
import { isIP, isIPv6 } from 'node:net';

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

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
// Host names as machines carry them: underscores too (container and test hosts use them).
const HOST_LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/i;

/** True for one DNS label (RFC 1123 host name part): letters, digits, inner hyphens, at most 63. */
export function isDnsLabel(text: string): boolean {
  return LABEL.test(text);
}

/** True for a DNS name: DNS labels joined by dots, at most 253 characters (`mammatus`, `lab.example`). */
export function isDnsName(text: string): boolean {
  return text.length <= 253 && text.split('.').every(isDnsLabel);
}

/** True for a host name as hosts carry them (labels may hold `_`; one trailing dot allowed). */
export function isHostname(text: string): boolean {
  const name = text.endsWith('.') ? text.slice(0, -1) : text;
  return name.length > 0 && name.length <= 253 && name.split('.').every((l) => HOST_LABEL.test(l));
}

/** A `host:port` split; `host` is as written, brackets of an IPv6 address removed. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/**
 * Parses `host:port`: an IPv4 address, a host name or a bracketed IPv6 address, and a port 1–65535
 * (0 too with `allowPortZero`, for "any free port"). Undefined when it is not one.
 */
export function parseHostPort(text: string, opts: { readonly allowPortZero?: boolean } = {}): HostPort | undefined {
  const m = /^(\[[^\]]+\]|[^:[\]]+):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port > 65535 || (port === 0 && !opts.allowPortZero) || (m[2].length > 1 && m[2].startsWith('0'))) return undefined;
  const raw = m[1];
  if (raw.startsWith('[')) return isIPv6(raw.slice(1, -1)) ? { host: raw.slice(1, -1), port } : undefined;
  return isIPv4(raw) || isHostname(raw) ? { host: raw, port } : undefined;
}

/** Like {@link parseHostPort}, for a value checked already: throws a `RangeError` naming it otherwise. */
export function splitHostPort(text: string, opts: { readonly allowPortZero?: boolean } = {}): HostPort {
  const hp = parseHostPort(text, opts);
  if (!hp) throw new RangeError(`not a host:port address: ${text}`);
  return hp;
}

/** True for `host:port` as {@link parseHostPort} reads it. */
export function isHostPort(text: string): boolean {
  return parseHostPort(text) !== undefined;
}

/** An address as the host part of a URL or `host:port`: IPv6 in brackets. */
export function urlHost(addr: string): string {
  return addr.includes(':') && !addr.startsWith('[') ? `[${addr}]` : addr;
}

/** Addresses sorted (IPv4 numerically, then the rest as text) without duplicates: stable output. */
export function sortAddresses(addrs: readonly string[]): string[] {
  const key = (a: string): string =>
    isIP(a) === 4
      ? `0${a
          .split('.')
          .map((o) => o.padStart(3, '0'))
          .join('.')}`
      : `1${a}`;
  return [...new Set(addrs)].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}
