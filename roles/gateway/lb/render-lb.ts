/**
 * The gateway's part of the load balancers in its pure render: HAProxy's files for the balancers
 * of the desired state (none → no files: the apply removes them and stops HAProxy) and the ports
 * the firewall opens on the WAN side for them. Refuses a balancer on a port the gateway uses itself
 * (lb/config.ts `refuseReservedPorts`) before HAProxy ever sees it.
 */
import type { ResolvedBalancer } from '../../../core/lb-record.js';
import type { RenderedFile } from '../../types.js';
import type { GatewayConfig } from '../config.js';
import { haproxySettings, refuseReservedPorts, type ReservedPort } from './config.js';
import { renderHaproxy } from './render-haproxy.js';

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
  /** The balancers' listen ports, sorted, each once (TCP, opened on the WAN interface). */
  readonly ports: number[];
}

/**
 * HAProxy's files and the listen ports for `balancers` (undefined: not read yet, rendered as none).
 * Throws `HaproxyRenderError` on a set HAProxy cannot serve or a reserved port.
 */
export function renderGatewayLb(cfg: GatewayConfig, balancers: readonly ResolvedBalancer[] | undefined, serfPort: number): LbRender {
  if (!cfg.lb.enabled || !balancers?.length) return { files: [], ports: [] };
  refuseReservedPorts(balancers, reservedPorts(cfg, serfPort));
  const files = renderHaproxy(balancers, haproxySettings(cfg.lb));
  const ports = [...new Set(balancers.map((b) => b.record.listen.port))].sort((a, b) => a - b);
  return { files, ports };
}
