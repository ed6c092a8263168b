/**
 * The metadata proxy's config file. The gateway role runs `mammatus metadata proxy --config FILE`
 * as a child; this file tells it the cluster secret's path, where to listen (the port 169.254.169.254:80
 * is redirected to), the metadata services to forward to, and dnsmasq's lease file for callers' MACs.
 */
import { stringify } from 'yaml';
import type { Member } from '../../core/contracts.js';
import { actsAs } from '../../core/members.js';
import { MANAGED_HEADER, type GatewayConfig } from './config.js';

/** The metadata service URLs: configured ones, else every controller Serf knows (alive first). */
export function metadataUpstreams(cfg: GatewayConfig, members: readonly Member[]): string[] {
  if (cfg.metadata.upstreams.length) return [...cfg.metadata.upstreams];
  const controllers = members.filter((m) => actsAs(m, 'controller'));
  // Alive ones first: the proxy tries them in order and fails over to the next.
  const rank = (m: Member) => (m.status === 'alive' ? 0 : 1);
  return controllers
    .filter((m) => m.status === 'alive' || m.status === 'failed')
    .sort((a, b) => rank(a) - rank(b) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((m) => `http://${m.addr.includes(':') ? `[${m.addr}]` : m.addr}:${cfg.metadata.upstream_port}`);
}

/** The proxy's config (an agent config with a `metadata:` section), or undefined without a secret. */
export function renderMetadataProxyConf(cfg: GatewayConfig, members: readonly Member[]): string | undefined {
  if (!cfg.metadata.secret_file) return undefined;
  const doc = {
    log: { level: 'info' },
    watch_config: false,
    metadata: {
      proxy_secret_file: cfg.metadata.secret_file,
      proxy: { listen: `0.0.0.0:${cfg.metadata.proxy_port}`, upstreams: metadataUpstreams(cfg, members), leases_file: cfg.paths.leases },
    },
  };
  return `${MANAGED_HEADER}${stringify(doc)}`;
}
