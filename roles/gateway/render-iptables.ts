/**
 * Renders the gateway's firewall and NAT as one complete `iptables-restore` file: restoring it without `--noflush` replaces both tables it names, each atomically. Also the
 * open baseline that rollback restores when nothing was installed before, and the forwarding sysctl.
 */
import { MANAGED_HEADER, type GatewayConfig } from './config.js';
import { parseCidr, parseIPv4Port, subnetOf } from '../../core/net.js';

/** Serf's default gossip port, used when this node's own member record is not known. */
export const SERF_DEFAULT_PORT = 7946;

/** The link-local metadata address instances call (EC2 and cloud-init convention). */
export const METADATA_IP = '169.254.169.254';

/** Inputs to the ruleset that do not come from the role's settings. */
export interface IptablesOptions {
  /** This node's Serf gossip port (tcp and udp), opened on the LAN; default 7946. */
  readonly serfPort?: number;
  /** The load balancers' listen ports (tcp), opened on the WAN interface. */
  readonly lbPorts?: readonly number[];
  /** Load balancer ports (tcp) opened on the LAN interface too: ACME's http-01 port (lb/render-acme.ts). */
  readonly lbLanPorts?: readonly number[];
}

/**
 * Renders the `*filter` and `*nat` tables: default-deny INPUT and FORWARD, the gateway's LAN
 * services, stateful LAN→WAN forwarding with MASQUERADE, declared port forwards, and the metadata
 * address redirected to the local proxy. Pure; port forwards are sorted by protocol and port.
 */
export function renderIptables(cfg: GatewayConfig, options: IptablesOptions = {}): string {
  const lan = cfg.lan.interface;
  const wan = cfg.wan.interface;
  const cidr = parseCidr(cfg.lan.address);
  if (!cidr) throw new Error(`roles.gateway.lan.address: invalid CIDR ${cfg.lan.address}`);
  const serf = options.serfPort ?? SERF_DEFAULT_PORT;
  const accept = (proto: string, port: number) => `-A INPUT -i ${lan} -p ${proto} --dport ${port} -j ACCEPT`;
  const forwards = [...cfg.firewall.port_forwards].sort((a, b) => (a.proto === b.proto ? a.port - b.port : a.proto < b.proto ? -1 : 1));

  const filter = [
    '*filter',
    ':INPUT DROP [0:0]',
    ':FORWARD DROP [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    '-A INPUT -i lo -j ACCEPT',
    '-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
    '-A INPUT -m conntrack --ctstate INVALID -j DROP',
    '-A INPUT -p icmp -j ACCEPT',
    accept('udp', 67),
    accept('udp', 53),
    accept('tcp', 53),
    ...(cfg.tftp.enabled ? [accept('udp', 69)] : []),
    ...(cfg.firewall.ssh_from_lan ? [accept('tcp', 22)] : []),
    // Reached through the REDIRECT below: after it the packet is addressed to the gateway itself.
    accept('tcp', cfg.metadata.proxy_port),
    // The boot server (iPXE stub, live image, apt repository): LAN only, never the WAN.
    ...(cfg.boot.enabled ? [accept('tcp', cfg.boot.port)] : []),
    // Serf gossip: without it LAN members' probes are dropped and the gateway looks failed.
    accept('tcp', serf),
    accept('udp', serf),
    // The load balancers HAProxy serves: exactly their listen ports, from the WAN side; ACME's
    // http-01 port from the LAN side too, where the cluster CA checks from (lb/render-acme.ts).
    ...[...(options.lbPorts ?? [])].sort((a, b) => a - b).map((p) => `-A INPUT -i ${wan} -p tcp --dport ${p} -j ACCEPT`),
    ...[...(options.lbLanPorts ?? [])].sort((a, b) => a - b).map((p) => accept('tcp', p)),
    '-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
    '-A FORWARD -m conntrack --ctstate INVALID -j DROP',
    `-A FORWARD -i ${lan} -o ${wan} -j ACCEPT`,
    // ctstate DNAT: only traffic that came in through the forward, not WAN hosts routing straight
    // to the LAN address.
    ...forwards.map((f) => {
      const to = parseIPv4Port(f.to);
      const match = `-d ${to?.ip}/32 -p ${f.proto} --dport ${to?.port}`;
      return `-A FORWARD -i ${wan} -o ${lan} ${match} -m conntrack --ctstate DNAT -j ACCEPT`;
    }),
    'COMMIT',
  ];
  const nat = [
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    // REDIRECT to the local proxy, not DNAT to a controller on the LAN: that needs hairpin
    // MASQUERADE, which hides the caller's address from the metadata service.
    `-A PREROUTING -i ${lan} -d ${METADATA_IP}/32 -p tcp --dport 80 -j REDIRECT --to-ports ${cfg.metadata.proxy_port}`,
    ...forwards.map((f) => `-A PREROUTING -i ${wan} -p ${f.proto} --dport ${f.port} -j DNAT --to-destination ${f.to}`),
    `-A POSTROUTING -o ${wan} -s ${subnetOf(cidr)} -j MASQUERADE`,
    'COMMIT',
  ];
  return `${MANAGED_HEADER}${[...filter, ...nat].join('\n')}\n`;
}

/**
 * The explicit "open" ruleset: both managed tables with ACCEPT policies and no rules. Rollback
 * restores this when `iptables-save` showed nothing before the first install, because restoring an
 * empty save changes nothing and would leave the DROP policies in force.
 */
export function renderBaseline(): string {
  const lines = [
    '*filter',
    ':INPUT ACCEPT [0:0]',
    ':FORWARD ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    'COMMIT',
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    'COMMIT',
  ];
  return `${MANAGED_HEADER}${lines.join('\n')}\n`;
}

/** Our mangle chain for the metadata proxy's answers, jumped to from mangle OUTPUT. */
export const HOP_LIMIT_CHAIN = 'MAMMATUS-GW-HOPS';

/**
 * The `iptables-restore --noflush` file of our mangle chain that sets the TTL of every packet the
 * metadata proxy sends to instances to `metadata.hop_limit` — AWS's hop limit, on every answer and
 * the TCP handshake too, not only token answers: a container or VM behind an instance's NAT or
 * routing is one hop further, so its connection never completes. Its own chain in mangle, so the
 * whole-table restores of `filter` and `nat` (and a controller's mangle chain) never touch it.
 */
export function renderHopLimit(cfg: GatewayConfig): string {
  const lines = [
    `${MANAGED_HEADER}# TTL of the metadata proxy's answers: metadata.hop_limit`,
    '*mangle',
    `:${HOP_LIMIT_CHAIN} - [0:0]`,
    `-A ${HOP_LIMIT_CHAIN} -o ${cfg.lan.interface} -p tcp --sport ${cfg.metadata.proxy_port} -j TTL --ttl-set ${cfg.metadata.hop_limit}`,
    'COMMIT',
  ];
  return `${lines.join('\n')}\n`;
}

/** `/etc/sysctl.d/` content that turns on IPv4 forwarding (the agent also applies it at once). */
export function renderSysctl(): string {
  return `${MANAGED_HEADER}net.ipv4.ip_forward=1\n`;
}
