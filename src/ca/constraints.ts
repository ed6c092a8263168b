/**
 * Name constraints of the cluster's intermediate (issue 20, docs/security.md): a critical
 * NameConstraints extension that permits DNS names under `mammatus` and IP addresses in private
 * and local ranges only. Whatever a CA backend is talked into signing (caddy 2.6.2's ACME server
 * has no name policy), a leaf for a public name or a public address does not verify under our root
 * in any client that checks name constraints (OpenSSL, Go, node:tls).
 *
 * Encoded and parsed with `@peculiar/asn1-x509`'s schema classes (no hand-written ASN.1). Pure.
 */
import 'reflect-metadata';
import { AsnConvert } from '@peculiar/asn1-schema';
import { GeneralName, GeneralSubtree, GeneralSubtrees, NameConstraints } from '@peculiar/asn1-x509';
import * as x509 from '@peculiar/x509';
import { BlockList, isIP } from 'node:net';

/** The DNS domain node names (and instances' names) live under. */
export const NODE_DOMAIN = 'mammatus';

/** The NameConstraints extension's OID. */
export const NAME_CONSTRAINTS_OID = '2.5.29.30';

/**
 * The IP ranges the intermediate permits: RFC 1918, carrier-grade NAT (RFC 6598, what some labs
 * use), loopback, link-local, IPv6 unique-local, link-local and loopback. A cluster on public
 * addresses cannot put them in node certificates (docs/security.md says why and what to do).
 */
export const PERMITTED_IP_RANGES: readonly string[] = [
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  'fc00::/7',
  'fe80::/10',
  '::1/128',
];

/** The critical NameConstraints extension every intermediate `ca init` makes carries. */
export function clusterNameConstraints(ipRanges: readonly string[] = PERMITTED_IP_RANGES): x509.Extension {
  const subtree = (base: GeneralName) => new GeneralSubtree({ base });
  const permitted = new GeneralSubtrees([
    // A DNS constraint `mammatus` permits `mammatus` and every name below it.
    subtree(new GeneralName({ dNSName: NODE_DOMAIN })),
    // The library's IP converter encodes `ADDR/BITS` as the address followed by its mask.
    ...ipRanges.map((r) => subtree(new GeneralName({ iPAddress: r }))),
  ]);
  const der = AsnConvert.serialize(new NameConstraints({ permittedSubtrees: permitted }));
  return new x509.Extension(NAME_CONSTRAINTS_OID, true, der);
}

/** What an intermediate permits: DNS suffixes and IP ranges (`ADDR/BITS`). */
export interface Permitted {
  readonly dns: readonly string[];
  readonly ips: readonly string[];
}

/** Reads the permitted subtrees of a certificate's NameConstraints; undefined when it has none. */
export function permittedNames(certPem: string): Permitted | undefined {
  const ext = new x509.X509Certificate(certPem).getExtension(NAME_CONSTRAINTS_OID);
  if (!ext) return undefined;
  const nc = AsnConvert.parse(ext.value, NameConstraints);
  const dns: string[] = [];
  const ips: string[] = [];
  for (const s of nc.permittedSubtrees ?? []) {
    if (s.base.dNSName !== undefined) dns.push(s.base.dNSName.toLowerCase());
    if (s.base.iPAddress !== undefined) ips.push(s.base.iPAddress);
  }
  return { dns, ips };
}

/**
 * True when `ip` may appear in a leaf under an intermediate permitting `p` (RFC 5280: with no IP
 * subtree at all, IP names are not constrained).
 */
export function ipPermitted(p: Permitted | undefined, ip: string): boolean {
  const family = isIP(ip);
  if (family === 0) return false;
  if (!p || p.ips.length === 0) return true;
  const list = new BlockList();
  for (const range of p.ips) {
    const [addr, bits] = range.split('/');
    const f = isIP(addr);
    if (f !== 0 && /^\d{1,3}$/.test(bits ?? '')) list.addSubnet(addr, Number(bits), f === 4 ? 'ipv4' : 'ipv6');
  }
  return list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}
