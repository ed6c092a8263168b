/**
 * The gateway's part of the load balancers in its pure render: HAProxy's files for the balancers
 * of the desired state (none → no files: the apply removes them and stops HAProxy) and the ports
 * the firewall opens on the WAN side for them. Refuses a balancer on a port the gateway uses itself
 * (lb/config.ts `refuseReservedPorts`) before HAProxy ever sees it.
 *
 * Beside HAProxy's files it keeps `balancers.json`, the resolved balancers they were rendered from:
 * an agent that starts again has no feed snapshot until the controllers answer, and renders from
 * this copy meanwhile, so a restart (with the controllers unreachable, too) leaves HAProxy's files
 * and the firewall's ports as they were instead of taking every balancer away.
 */
import path from 'node:path';
import type { ResolvedBalancer } from '../../../core/lb-record.js';
import type { RenderedFile } from '../../types.js';
import type { GatewayConfig } from '../config.js';
import { haproxySettings, refuseReservedPorts, type GatewayLbConfig, type ReservedPort } from './config.js';
import { LB_HEADER, renderHaproxy } from './render-haproxy.js';
import { acmeFirewallPorts } from './render-acme.js';

/** The copy of the balancers HAProxy's files were rendered from (see the header). */
export const balancersCachePath = (lb: Pick<GatewayLbConfig, 'dir'>): string => path.join(lb.dir, 'balancers.json');

/** Reads the copy back; undefined when it is not one (a foreign edit, an older format). */
export function parseBalancersCache(text: string | undefined): ResolvedBalancer[] | undefined {
  if (!text?.startsWith(LB_HEADER)) return undefined;
  try {
    const value: unknown = JSON.parse(text.slice(LB_HEADER.length));
    const isBalancer = (b: unknown) => typeof b === 'object' && b !== null && 'record' in b && 'servers' in b && Array.isArray(b.servers);
    const ok = Array.isArray(value) && value.every(isBalancer);
    return ok ? (value as ResolvedBalancer[]) : undefined;
  } catch {
    return undefined;
  }
}

/** The gateway's own listening ports; `serfPort` is this node's gossip port. */
export function reservedPorts(cfg: GatewayConfig, serfPort: number): ReservedPort[] {
  return [
    { port: 22, what: 'ssh' },
    { port: 53, what: 'DNS' },
    { port: 67, what: 'DHCP' },
    { port: 69, what: 'TFTP' },
    { port: cfg.metadata.proxy_port, what: 'metadata proxy (metadata.proxy_port)' },
    ...(cfg.boot.enabled ? [{ port: cfg.boot.port, what: 'boot server (boot.port)' }] : []),
    { port: serfPort, what: 'Serf gossip' },
  ];
}

/** What the render adds for the balancers. */
export interface LbRender {
  readonly files: RenderedFile[];
  /** The balancers' listen ports, sorted, each once (TCP, opened on the WAN interface); 80 for ACME's http-01 too. */
  readonly ports: number[];
  /** Ports opened on the LAN interface too: 80 while a `tls acme` balancer exists (the cluster CA's http-01 checks). */
  readonly lanPorts: number[];
}

/**
 * HAProxy's files and the listen ports for `balancers` (undefined: not read yet, rendered as none).
 * Throws `HaproxyRenderError` on a set HAProxy cannot serve or a reserved port.
 */
export function renderGatewayLb(cfg: GatewayConfig, balancers: readonly ResolvedBalancer[] | undefined, serfPort: number): LbRender {
  if (!cfg.lb.enabled || !balancers?.length) return { files: [], ports: [], lanPorts: [] };
  refuseReservedPorts(balancers, reservedPorts(cfg, serfPort));
  const cache = { path: balancersCachePath(cfg.lb), content: `${LB_HEADER}${JSON.stringify(balancers)}\n`, mode: 0o644 };
  const files = [...renderHaproxy(balancers, haproxySettings(cfg.lb)), cache];
  const lanPorts = acmeFirewallPorts(balancers);
  const ports = [...new Set([...balancers.map((b) => b.record.listen.port), ...lanPorts])].sort((a, b) => a - b);
  return { files, ports, lanPorts };
}
