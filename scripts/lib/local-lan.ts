/**
 * The local cluster's LAN when it runs as root: 10.213.0.0/24 on a bridge in a switch namespace of
 * its own, with up to four ports — the host (`mmc-lan`, 10.213.0.2, where the compute and
 * controller nodes gossip and the controller serves), the gateway's namespace (`gw-lan`,
 * 10.213.0.1), when LXD runs the compute node's namespace (`cn-lan`, no address: the macvlan
 * parent of its containers, whose frames thus reach the gateway's DHCP, DNS and metadata proxy)
 * and, when tgt is installed, the storage node's namespace (`st-lan`, 10.213.0.3: its Serf
 * address and iSCSI portal, scripts/lib/local-storage.ts).
 *
 * The gateway's WAN is a veth to the host: `gw-wan` (203.0.113.2/24) in its namespace, `mmc-wan`
 * (203.0.113.1/24) here, so this host is the internet side of the gateway and reaches what the
 * gateway opens there (its load balancers: docs/loadbalancer.md). TEST-NET-3, documentation only;
 * should this host already route part of it, the WAN end stays inside the gateway's namespace
 * (leading nowhere) rather than shadow the host's route, and {@link buildLocalLan} says so.
 *
 * Why a namespace for the bridge and not a host bridge: with br_netfilter loaded, bridged frames go
 * through the iptables FORWARD chain of the bridge's namespace, which on a host with Docker drops
 * them; a fresh namespace has no rules. Nothing here touches the host's own interfaces: only
 * `mmc-lan` and `mmc-wan` appear in the root namespace, and they go when the switch's and the
 * gateway's namespaces are deleted.
 */
import { execFileSync, spawnSync } from 'node:child_process';

/** Addresses on the LAN. */
export const LAN = { host: '10.213.0.2', gateway: '10.213.0.1', storage: '10.213.0.3', prefix: 24 } as const;
/** The namespaces this module creates (and alone deletes). */
export const NETNS = { sw: 'mammatus-lc-sw', gw: 'mammatus-lc-gw', cn: 'mammatus-lc-cn', st: 'mammatus-lc-st' } as const;
/** The compute node's LAN interface inside {@link NETNS}.cn: `roles.compute.parent`. */
export const CN_LAN = 'cn-lan';
/** The gateway's WAN subnet: the gateway's address there, and this host's (the gateway's "internet"). */
export const WAN = { gateway: '203.0.113.2', host: '203.0.113.1', prefix: 24, net: '203.0.113.0/24' } as const;
const HOST_END = 'mmc-lan';
const WAN_END = 'mmc-wan';
const BRIDGE = 'br0';

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'inherit'] });

/** A veth from `peer` in `ns` (default: the root namespace, ours) to the switch's port `port`, on the bridge. */
function plug(port: string, peer: string, ns?: string): void {
  ip(...(ns ? ['-n', ns] : []), 'link', 'add', peer, 'type', 'veth', 'peer', 'name', port, 'netns', NETNS.sw);
  ip('-n', NETNS.sw, 'link', 'set', port, 'master', BRIDGE);
  ip('-n', NETNS.sw, 'link', 'set', port, 'up');
}

/** Why the host cannot be the WAN side: an address or route of its own in {@link WAN}'s subnet; else undefined. */
export function wanTaken(): string | undefined {
  const out = (args: string[]) => (spawnSync('ip', ['-4', ...args], { encoding: 'utf8' }).stdout ?? '').split('\n');
  // Addresses in it; routes inside it (`root`) or holding it (`match`), the default route aside.
  const taken = [
    ...out(['-o', 'addr', 'show', 'to', WAN.net]),
    ...out(['route', 'show', 'root', WAN.net]),
    ...out(['route', 'show', 'match', WAN.net]),
  ]
    .map((l) => l.replace(/\\.*/, '').trim().replace(/\s+/g, ' ')) // `addr -o` continues after a backslash
    .filter((l) => l && !l.startsWith('default '));
  return taken.length ? `this host already has ${WAN.net} (${taken[0]})` : undefined;
}

/** Is this host on the gateway's WAN (`mmc-wan` here, with {@link WAN}.host)? */
export function hostOnWan(): boolean {
  const r = spawnSync('ip', ['-4', '-o', 'addr', 'show', 'dev', WAN_END], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes(` ${WAN.host}/`);
}

/**
 * Builds the switch, the host's port and the gateway's namespace with its WAN (to this host,
 * unless {@link wanTaken}: then it says why not); the compute node's with `compute`, the storage
 * node's with `storage`.
 */
export function buildLocalLan(opts: { compute: boolean; storage: boolean }): void {
  ip('netns', 'add', NETNS.sw);
  // A bridge without STP forwards as soon as a port is up: no 15 s listening/learning delay.
  ip('-n', NETNS.sw, 'link', 'add', BRIDGE, 'type', 'bridge', 'stp_state', '0');
  ip('-n', NETNS.sw, 'link', 'set', BRIDGE, 'up');
  plug('p-host', HOST_END);
  ip('addr', 'add', `${LAN.host}/${LAN.prefix}`, 'dev', HOST_END);
  ip('link', 'set', HOST_END, 'up');

  ip('netns', 'add', NETNS.gw);
  ip('-n', NETNS.gw, 'link', 'set', 'lo', 'up');
  plug('p-gw', 'gw-lan', NETNS.gw);
  ip('-n', NETNS.gw, 'addr', 'add', `${LAN.gateway}/${LAN.prefix}`, 'dev', 'gw-lan');
  ip('-n', NETNS.gw, 'link', 'set', 'gw-lan', 'up');
  // The WAN's far end on this host; when the subnet is the host's already, inside the gateway's
  // namespace: an up WAN port without an outside (not every kernel has `dummy`).
  const noWan = wanTaken();
  if (noWan) console.log(`The gateway's WAN leads nowhere: ${noWan}, so this host cannot be its outside.`);
  if (noWan) ip('-n', NETNS.gw, 'link', 'add', 'gw-wan', 'type', 'veth', 'peer', 'name', WAN_END);
  else ip('link', 'add', WAN_END, 'type', 'veth', 'peer', 'name', 'gw-wan', 'netns', NETNS.gw);
  ip('-n', NETNS.gw, 'addr', 'add', `${WAN.gateway}/${WAN.prefix}`, 'dev', 'gw-wan');
  if (!noWan) ip('addr', 'add', `${WAN.host}/${WAN.prefix}`, 'dev', WAN_END);
  ip(...(noWan ? ['-n', NETNS.gw] : []), 'link', 'set', WAN_END, 'up');
  ip('-n', NETNS.gw, 'link', 'set', 'gw-wan', 'up');

  if (opts.compute) {
    ip('netns', 'add', NETNS.cn);
    ip('-n', NETNS.cn, 'link', 'set', 'lo', 'up');
    plug('p-cn', CN_LAN, NETNS.cn);
    ip('-n', NETNS.cn, 'link', 'set', CN_LAN, 'up');
  }
  if (opts.storage) {
    ip('netns', 'add', NETNS.st);
    ip('-n', NETNS.st, 'link', 'set', 'lo', 'up');
    plug('p-st', 'st-lan', NETNS.st);
    ip('-n', NETNS.st, 'addr', 'add', `${LAN.storage}/${LAN.prefix}`, 'dev', 'st-lan');
    ip('-n', NETNS.st, 'link', 'set', 'st-lan', 'up');
  }
}

/**
 * Deletes what {@link buildLocalLan} made, also a crashed run's leftover: processes still inside
 * these namespaces (a dnsmasq, an agent: ours, by the namespace's name) are killed by PID first.
 * Deleting a namespace deletes its veths, and with them their peers (`mmc-lan` on the host).
 */
export function removeLocalLan(): void {
  for (const ns of [NETNS.st, NETNS.cn, NETNS.gw, NETNS.sw]) {
    const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '';
    for (const pid of pids.split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  }
  // The layout of older runs had mmc-lan peered straight into the gateway's namespace; mmc-wan
  // goes with gw-wan, unless a run died between making it and moving its peer.
  for (const end of [HOST_END, WAN_END]) spawnSync('ip', ['link', 'del', end], { stdio: 'ignore' });
}

/** The namespaces of {@link NETNS} that exist now (for the tests' teardown check). */
export function localLanLeftovers(): string[] {
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  const ours: string[] = Object.values(NETNS);
  return list
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => ours.includes(n));
}
