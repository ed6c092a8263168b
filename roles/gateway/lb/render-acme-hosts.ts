/**
 * The DNS names of the `tls acme` balancers (pure): the CA resolves a name through the gateway's
 * DNS before it checks http-01 there. A `tls acme` host under the cluster domain (`shop.mammatus`)
 * answers with the gateway's LAN address (`<hosts_dir>/balancers.hosts`; not a DNS label, so no
 * member or instance file can have that name), where HAProxy answers the challenge
 * (render-acme.ts). A host that is a member's or instance's own name (`web-1.mammatus`) keeps that
 * machine's address and is left out: dnsmasq would answer both addresses.
 */
import type { ResolvedBalancer } from '../../../core/lb-record.js';
import type { RenderedFile } from '../../types.js';
import { MANAGED_HEADER, type GatewayConfig } from '../config.js';

/** Where the balancers' DNS names are (see the header). */
export const balancerHostsPath = (cfg: GatewayConfig): string => `${cfg.paths.hosts_dir}/balancers.hosts`;

/**
 * `<hosts_dir>/balancers.hosts`: `<LAN address> <host>` for each `tls acme` host under the cluster
 * domain whose first label is not one of `taken` (the labels the hosts dir already names). None: no file.
 */
export function renderBalancerHosts(
  cfg: GatewayConfig,
  balancers: readonly ResolvedBalancer[] | undefined,
  taken: ReadonlySet<string>,
): RenderedFile[] {
  const suffix = `.${cfg.domain}`;
  const hosts = new Set<string>();
  for (const b of balancers ?? []) {
    if (b.record.tls !== 'acme') continue;
    for (const h of b.record.hosts) {
      if (!h.endsWith(suffix)) continue;
      const rest = h.slice(0, -suffix.length);
      if (!rest.includes('.') && taken.has(rest)) continue;
      hosts.add(h);
    }
  }
  if (!hosts.size || !cfg.lb.enabled) return [];
  const lan = cfg.lan.address.split('/')[0];
  const lines = [...hosts].sort().map((h) => `${lan} ${h}\n`);
  return [{ path: balancerHostsPath(cfg), content: MANAGED_HEADER + lines.join(''), mode: 0o644 }];
}
