/**
 * The gateway's metrics (docs/monitoring.md, "Gateway"): DHCP leases and the pool they come from,
 * dnsmasq's own DNS counters, the LAN and WAN ports' byte counters and the forwarding rules'
 * counters. All are read at scrape time by collectors the role registers while it runs; each read
 * is bounded in time (the DNS read 500 ms, `iptables-save` 1.5 s), a read already in flight is
 * shared rather than repeated, and a read that fails leaves the last values (core/metrics.ts counts
 * it).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Run } from '../../core/contracts.js';
import { counterFrom, gauge, onCollect } from '../../core/metrics.js';
import { parseIPv4 } from '../../core/net.js';
import type { GatewayConfig } from './config.js';
import { lanAddress } from './apply-steps.js';
import { parseLeases, type Lease } from './leases.js';
import { readDnsmasqStats, type DnsStatsReader } from './dns-stats.js';
import { parseRuleCounters } from './iptables-counters.js';

const leaseGauge = gauge({ name: 'mammatus_gateway_dhcp_leases', help: "Active DHCP leases (unexpired, in dnsmasq's lease file)." });
const poolGauge = gauge({ name: 'mammatus_gateway_dhcp_pool_size', help: 'Addresses in the DHCP range (roles.gateway.dhcp.range).' });
const cacheSize = gauge({ name: 'mammatus_gateway_dns_cache_size', help: "dnsmasq's DNS cache size (cachesize.bind)." });
const dns = {
  hits: counterFrom({
    name: 'mammatus_gateway_dns_cache_hits_total',
    help: 'DNS queries dnsmasq answered from its cache or local names (hits.bind).',
  }),
  misses: counterFrom({
    name: 'mammatus_gateway_dns_cache_misses_total',
    help: 'DNS queries dnsmasq did not find in its cache (misses.bind).',
  }),
  insertions: counterFrom({ name: 'mammatus_gateway_dns_cache_insertions_total', help: "Names put in dnsmasq's cache (insertions.bind)." }),
  evictions: counterFrom({
    name: 'mammatus_gateway_dns_cache_evictions_total',
    help: "Unexpired names dnsmasq's full cache dropped (evictions.bind).",
  }),
};
/** dnsmasq's count of queries sent to each upstream (`queries`) or failed there (`failures`), from servers.bind. */
const upstream = (what: 'queries' | 'failures', help: string) =>
  counterFrom<'server'>({ name: `mammatus_gateway_dns_upstream_${what}_total`, help: `${help} (servers.bind).`, labelNames: ['server'] });
const upstreamQueries = upstream('queries', 'DNS queries dnsmasq sent to each upstream server');
const upstreamFailures = upstream('failures', 'DNS queries to each upstream server that failed');
const interfaceBytes = counterFrom<'interface' | 'direction'>({
  name: 'mammatus_gateway_interface_bytes_total',
  help: "Bytes through the gateway's LAN and WAN ports (/sys/class/net/<port>/statistics).",
  labelNames: ['interface', 'direction'],
});
/** Bytes or packets through each forwarding rule (iptables-counters.ts names the rules). */
const forward = (what: 'bytes' | 'packets') =>
  counterFrom<'rule'>({
    name: `mammatus_gateway_forward_${what}_total`,
    help: `${what === 'bytes' ? 'Bytes' : 'Packets'} through each of the gateway's forwarding rules (filter FORWARD, nat PREROUTING and POSTROUTING).`,
    labelNames: ['rule'],
  });
const forwardBytes = forward('bytes');
const forwardPackets = forward('packets');

/** How long one `iptables-save -c` may take (ms). */
export const IPTABLES_SAVE_TIMEOUT_MS = 1500;

/** Addresses in the DHCP range (0 when it is not a range of IPv4 addresses). */
export function poolSize(cfg: Pick<GatewayConfig, 'dhcp'>): number {
  const start = parseIPv4(cfg.dhcp.range.start);
  const end = parseIPv4(cfg.dhcp.range.end);
  return start === undefined || end === undefined || end < start ? 0 : end - start + 1;
}

/** Leases that have not expired at `nowS` (Unix seconds; expiry 0 = infinite). */
export function activeLeases(leases: readonly Lease[], nowS: number): number {
  return leases.filter((l) => l.expires === 0 || l.expires > nowS).length;
}

/** What the gateway's collectors read from. */
export interface GatewayMetricsSources {
  /** The role's current settings; undefined before the first start. */
  readonly config: () => GatewayConfig | undefined;
  readonly run: Run;
  /** Whether the role's dnsmasq runs (not asked while it does not). */
  readonly dnsmasqRunning: () => boolean;
  /** How dnsmasq's counters are read (default: over UDP to the LAN address, port 53). */
  readonly dnsStats?: DnsStatsReader;
  /** Where the ports' statistics are (default `/sys/class/net`). */
  readonly sysClassNet?: string;
  /** Unix time in seconds (tests). */
  readonly nowS?: () => number;
}

/** `work`, shared by the calls made while it runs (two scrapes at once read once). */
function sharedInFlight(work: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () =>
    (running ??= work().finally(() => {
      running = undefined;
    }));
}

/**
 * Registers the gateway's collectors; returns how to remove them, which also drops the series
 * (a node that stops being a gateway exports none).
 */
export function startGatewayMetrics(src: GatewayMetricsSources): () => void {
  const nowS = src.nowS ?? (() => Date.now() / 1000);
  const sysNet = src.sysClassNet ?? '/sys/class/net';
  const dnsStats = src.dnsStats ?? readDnsmasqStats;

  const dhcp = async () => {
    const cfg = src.config();
    if (!cfg) return;
    poolGauge.set(poolSize(cfg));
    // No lease file yet: dnsmasq has given no lease.
    const text = await readFile(cfg.paths.leases, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return '';
      throw err;
    });
    leaseGauge.set(activeLeases(parseLeases(text), nowS()));
  };

  const dnsmasq = sharedInFlight(async () => {
    const cfg = src.config();
    if (!cfg || !src.dnsmasqRunning()) return;
    const stats = await dnsStats(lanAddress(cfg), 53);
    if (stats.cacheSize !== undefined) cacheSize.set(stats.cacheSize);
    for (const key of ['hits', 'misses', 'insertions', 'evictions'] as const) {
      const value = stats[key];
      if (value !== undefined) dns[key].set({}, value);
    }
    if (!stats.servers) return;
    for (const s of stats.servers) {
      upstreamQueries.set({ server: s.server }, s.queries);
      upstreamFailures.set({ server: s.server }, s.failures);
    }
    // An upstream taken out of the config stops being exported.
    const servers = stats.servers.map((s) => ({ server: s.server }));
    upstreamQueries.retain(servers);
    upstreamFailures.retain(servers);
  });

  const interfaces = async () => {
    const cfg = src.config();
    if (!cfg) return;
    const reads = [cfg.lan.interface, cfg.wan.interface].flatMap((iface) =>
      (['rx', 'tx'] as const).map(async (direction) => {
        const text = await readFile(path.join(sysNet, iface, 'statistics', `${direction}_bytes`), 'utf8');
        const value = Number(text.trim());
        if (!Number.isFinite(value)) throw new Error(`${iface} ${direction}_bytes: not a number`);
        interfaceBytes.set({ interface: iface, direction }, value);
      }),
    );
    const failed = (await Promise.allSettled(reads)).find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  };

  const iptables = sharedInFlight(async () => {
    const cfg = src.config();
    if (!cfg) return;
    const save = await src.run('iptables-save', ['-c'], { timeoutMs: IPTABLES_SAVE_TIMEOUT_MS });
    const rules = parseRuleCounters(save.stdout, { lan: cfg.lan.interface, wan: cfg.wan.interface });
    for (const r of rules) {
      forwardBytes.set({ rule: r.rule }, r.bytes);
      forwardPackets.set({ rule: r.rule }, r.packets);
    }
    const names = rules.map((r) => ({ rule: r.rule }));
    forwardBytes.retain(names);
    forwardPackets.retain(names);
  });

  const removers = [
    onCollect('gateway_dhcp', dhcp),
    onCollect('gateway_dns', dnsmasq),
    onCollect('gateway_interfaces', interfaces),
    onCollect('gateway_iptables', iptables),
  ];
  return () => {
    for (const remove of removers) remove();
    // Removed, not reset: a reset gauge without labels reads 0, which is not "no gateway here".
    for (const g of [leaseGauge, poolGauge, cacheSize]) g.remove();
    for (const c of [...Object.values(dns), upstreamQueries, upstreamFailures, interfaceBytes, forwardBytes, forwardPackets]) c.retain([]);
  };
}

/** The gateway role's handle on its metrics: started with the role, told each new config, stopped with it. */
export class GatewayMetrics {
  private cfg: GatewayConfig | undefined;
  private remove: (() => void) | undefined;

  /** `sources`: where dnsmasq's counters and the ports' statistics are read (tests). */
  constructor(private readonly sources: Pick<GatewayMetricsSources, 'dnsStats' | 'sysClassNet'> = {}) {}

  /** Registers the collectors (once), reading through the role's runner. */
  start(cfg: GatewayConfig, run: Run, dnsmasqRunning: () => boolean): void {
    this.cfg = cfg;
    this.remove ??= startGatewayMetrics({ ...this.sources, config: () => this.cfg, run, dnsmasqRunning });
  }

  /** The settings of the latest reload. */
  configure(cfg: GatewayConfig): void {
    this.cfg = cfg;
  }

  /** Removes the collectors and their series. */
  stop(): void {
    this.remove?.();
    this.remove = undefined;
  }
}
