/**
 * Where SNS may POST: http(s) subscription endpoints are chosen by tenants, and the controller that
 * delivers sits inside the cluster, so without a guard a subscription is a request forgery tool
 * (the metadata service at 169.254.169.254, the NATS monitor on loopback, other members on the LAN).
 *
 * Refused by default: loopback, link-local (169.254/16, fe80::/10), unspecified (0.0.0.0/8, ::),
 * multicast and reserved ranges, the private networks a cluster LAN uses (RFC 1918, CGNAT
 * 100.64/10, IPv6 ULA fc00::/7, site-local fec0::/10), this machine's own addresses, and the
 * operator's `messaging.sns.endpoint_deny` CIDRs (a LAN on public addresses).
 * `messaging.sns.endpoint_allow` lets chosen CIDRs or host names through anyway.
 *
 * Checked twice: at Subscribe when the host is an IP literal (a clear InvalidParameter), and at
 * every delivery. A delivery resolves the host name once, refuses it when any of its addresses is
 * refused, and connects to the address it checked (the `lookup` of the request answers with that
 * pinned address; Host header and TLS server name stay the name), so a DNS answer that changes
 * between the check and the connection (rebinding) cannot redirect it.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { request as httpRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { networkInterfaces } from 'node:os';

/** A resolved address. */
export interface PinnedAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

/** Resolves every address of a host name (dns.lookup with `all`); injectable for tests. */
export type ResolveAll = (host: string) => Promise<readonly PinnedAddress[]>;

/** Settings of a guard. */
export interface EndpointGuardOptions {
  /** CIDRs, single addresses or host names delivered to even when in a refused range. */
  readonly allow?: readonly string[];
  /** CIDRs or single addresses refused in addition to the defaults. */
  readonly deny?: readonly string[];
  readonly resolve?: ResolveAll;
  /** This machine's addresses (refused); default: the network interfaces' addresses. */
  readonly localAddresses?: () => readonly string[];
}

/** Decides about endpoint hosts. */
export interface EndpointGuard {
  /** Why an IP-literal host is refused, or undefined (host names are decided at delivery). */
  literalRefusal(url: URL): string | undefined;
  /**
   * Resolves `url`'s host once and returns the addresses to connect to (all of them checked; the
   * first is preferred, the others are there for dual-stack fallback). @throws EndpointRefused
   */
  pin(url: URL): Promise<readonly PinnedAddress[]>;
}

/** A delivery refused by the guard (counted as a failed attempt, like a network error). */
export class EndpointRefused extends Error {
  override readonly name = 'EndpointRefused';
}

// The ranges refused by default, each with the word used in refusals.
const DEFAULT_DENY: readonly (readonly [string, number, 'ipv4' | 'ipv6', string])[] = [
  ['0.0.0.0', 8, 'ipv4', 'unspecified'],
  ['127.0.0.0', 8, 'ipv4', 'loopback'],
  ['169.254.0.0', 16, 'ipv4', 'link-local'],
  ['10.0.0.0', 8, 'ipv4', 'private'],
  ['172.16.0.0', 12, 'ipv4', 'private'],
  ['192.168.0.0', 16, 'ipv4', 'private'],
  ['100.64.0.0', 10, 'ipv4', 'shared (CGNAT)'],
  ['192.0.0.0', 24, 'ipv4', 'reserved'],
  ['198.18.0.0', 15, 'ipv4', 'reserved'],
  ['224.0.0.0', 4, 'ipv4', 'multicast'],
  ['240.0.0.0', 4, 'ipv4', 'reserved'],
  ['::', 128, 'ipv6', 'unspecified'],
  ['::1', 128, 'ipv6', 'loopback'],
  ['fe80::', 10, 'ipv6', 'link-local'],
  ['fec0::', 10, 'ipv6', 'private'],
  ['fc00::', 7, 'ipv6', 'private'],
  ['ff00::', 8, 'ipv6', 'multicast'],
  // IPv4 inside IPv6: NAT64 and 6to4 reach the IPv4 address they embed, whatever it is.
  ['64:ff9b::', 96, 'ipv6', 'NAT64 (embedded IPv4)'],
  ['64:ff9b:1::', 48, 'ipv6', 'NAT64 (embedded IPv4)'],
  ['2002::', 16, 'ipv6', '6to4 (embedded IPv4)'],
];

const familyOf = (address: string): 'ipv4' | 'ipv6' => (isIP(address) === 6 ? 'ipv6' : 'ipv4');

/** Splits `a.b.c.d/n`, `x::/n` or a single address; undefined when it is neither. */
export function parseNetwork(
  text: string,
): { readonly address: string; readonly prefix: number; readonly type: 'ipv4' | 'ipv6' } | undefined {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return undefined;
  const max = version === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(max) : text.slice(slash + 1);
  const prefix = Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText) || prefix > max) return undefined;
  return { address, prefix, type: version === 4 ? 'ipv4' : 'ipv6' };
}

/** True for an allow-list entry: a network (see parseNetwork) or a host name. */
export function isEndpointAllowEntry(text: string): boolean {
  return (
    parseNetwork(text) !== undefined ||
    /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(text)
  );
}

const systemResolve: ResolveAll = async (host) =>
  (await dnsLookup(host, { all: true, verbatim: true })).map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));

function localAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
}

/** Builds a guard from the allow and deny lists (already checked by the settings). */
export function createEndpointGuard(opts: EndpointGuardOptions = {}): EndpointGuard {
  const named = DEFAULT_DENY.map(([address, prefix, type, word]) => {
    const list = new BlockList();
    list.addSubnet(address, prefix, type);
    return { list, word };
  });
  const extra = new BlockList();
  for (const entry of opts.deny ?? []) {
    const n = parseNetwork(entry);
    if (n) extra.addSubnet(n.address, n.prefix, n.type);
  }
  const allowed = new BlockList();
  const allowedNames = new Set<string>();
  for (const entry of opts.allow ?? []) {
    const n = parseNetwork(entry);
    if (n) allowed.addSubnet(n.address, n.prefix, n.type);
    else allowedNames.add(entry.toLowerCase());
  }
  const resolve = opts.resolve ?? systemResolve;
  const locals = opts.localAddresses ?? localAddresses;

  function refusal(address: string): string | undefined {
    const type = familyOf(address);
    if (allowed.check(address, type)) return undefined;
    const hit = named.find((n) => n.list.check(address, type));
    if (hit) return `${address} is a ${hit.word} address`;
    if (extra.check(address, type)) return `${address} is in a network refused by the configuration`;
    // `::ffff:a.b.c.d` connects to a.b.c.d: compare the IPv4 form with this machine's addresses.
    const plain = unmapped(address);
    if (locals().some((l) => l.toLowerCase() === plain)) return `${address} is an address of this machine`;
    return undefined;
  }

  const hostOf = (url: URL) => url.hostname.replace(/^\[(.*)\]$/, '$1');

  return {
    literalRefusal(url) {
      const host = hostOf(url);
      return isIP(host) === 0 ? undefined : refusal(host);
    },
    async pin(url) {
      const host = hostOf(url);
      if (isIP(host) !== 0) {
        const why = refusal(host);
        if (why) throw new EndpointRefused(why);
        return [{ address: host, family: isIP(host) === 6 ? 6 : 4 }];
      }
      let addresses: readonly PinnedAddress[];
      try {
        addresses = await resolve(host);
      } catch (err) {
        throw new EndpointRefused(`${host} could not be resolved`, { cause: err });
      }
      if (addresses.length === 0) throw new EndpointRefused(`${host} has no address`);
      // An allow-listed name is trusted whatever it resolves to; it is still pinned.
      if (allowedNames.has(host.toLowerCase())) return addresses;
      for (const a of addresses) {
        const why = refusal(a.address);
        if (why) throw new EndpointRefused(`${host} resolves to ${why}`);
      }
      return addresses;
    },
  };
}

/** What a delivery sends. */
export interface PostInit {
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  readonly timeoutMs: number;
}

/**
 * POSTs `init` to `url` over a connection to one of `pinned` (never to another address of the
 * name: the request's DNS lookup answers with these); resolves with the status. Redirects are not
 * followed; the answer's body is discarded.
 */
export function postPinned(url: URL, pinned: readonly PinnedAddress[], init: PostInit): Promise<number> {
  const first = pinned[0];
  if (!first) return Promise.reject(new EndpointRefused('no address to connect to'));
  const lookup: LookupFunction = (_host, options, callback) => {
    if (options.all)
      callback(
        null,
        pinned.map((a) => ({ address: a.address, family: a.family })),
      );
    else callback(null, first.address, first.family);
  };
  const body = Buffer.from(init.body, 'utf8');
  const options: RequestOptions = {
    method: 'POST',
    headers: { ...init.headers, 'content-length': String(body.length) },
    lookup,
    signal: AbortSignal.timeout(init.timeoutMs),
  };
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, options, (res) => {
      res.on('error', () => undefined);
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The IPv4 address inside an IPv4-mapped IPv6 one (`::ffff:1.2.3.4`, `::ffff:102:304`), else `address` lower-cased. */
function unmapped(address: string): string {
  const a = address.toLowerCase();
  if (/^::ffff:\d+\.\d+\.\d+\.\d+$/.test(a)) return a.slice(7);
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(a);
  if (!hex) return a;
  const [hi, lo] = [parseInt(hex[1], 16), parseInt(hex[2], 16)];
  return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
}
