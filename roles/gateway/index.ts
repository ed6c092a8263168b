/**
 * The gateway role: dnsmasq (DHCP with PXE, DNS for the cluster domain, read-only TFTP) and an
 * iptables NAT/firewall between the LAN and WAN ports. Files are rendered from config and
 * membership; this module adds what applying them takes: `dnsmasq --test` and a scratch-namespace
 * restore before anything goes live, a restart of dnsmasq only when its static config changed (names
 * travel through `hostsdir`), a DNS probe after, and the framework's rollback when any step fails.
 */
import type { Logger } from '../../core/contracts.js';
import type { ApplyContext, BalancerSet, StartContext, RenderedFile, Role } from '../types.js';
import type { InstanceFeed, InstanceFeedFactory, InstanceSummary, LbFeed, LbFeedFactory, Spawn } from '../../core/contracts.js';
import type { ResolvedBalancer } from '../../core/lb-record.js';
import { actsAs } from '../../core/members.js';
import type { Member } from '../../core/contracts.js';
import { parseGatewayConfig, type GatewayConfig } from './config.js';
import { DnsmasqSupervisor } from './dnsmasq.js';
import { Firewall, validateRuleset } from './firewall.js';
import { leaseSpoolPath, renderLeaseHook } from './leases.js';
import { answerLeases, LEASES_QUERY } from './leases-query.js';
import { answerReservations, RESERVATIONS_QUERY, servedFacts } from './served.js';
import { HOP_LIMIT_CHAIN, renderBaseline } from './render-iptables.js';
import { installOwnChain, removeOwnChain, validateOwnChain, type OwnChain } from '../../core/iptables-chain.js';
import { renderGateway } from './render.js';
import { type Argv } from '../../core/contracts.js';
import { errorMessage } from '../../core/errors.js';
import { PROXY_CHILD } from './metadata-proxy.js';
import { BOOT_CHILD } from './boot-server.js';
import { GatewayServiceChild } from './service-child.js';
import { GatewayHaproxy, HAPROXY_MISSING, haproxyInstalled } from './lb/gateway-haproxy.js';
import { balancersCachePath, lbLeftOutPath, parseBalancersCache, planGatewayLb } from './lb/render-lb.js';
import { Forwarding, lanAddress, logLbLeftOut, logNotes, prepareDirs, probeDns, releaseStaleLeases, type DnsProbe } from './apply-steps.js';
import { GatewayAcme } from './lb/acme.js';
import { LbHealthReporter } from './lb/health-report.js';
import { haproxySettings } from './lb/config.js';
import type { LbHealthSinkFactory } from '../../core/lb-health.js';
import { GatewayMetrics, type GatewayMetricsSources } from './metrics.js';

export type { DnsProbe } from './apply-steps.js';

/** The boot loaders the Debian `ipxe` package ships, copied into the TFTP root when present. */
/** The mangle chain that sets the TTL of the metadata proxy's answers (hop limit). */
const HOP_CHAIN: OwnChain = { table: 'mangle', hook: 'OUTPUT', chain: HOP_LIMIT_CHAIN };

/** What the gateway role needs from the agent. */
export interface GatewayDeps {
  readonly spawn: Spawn;
  /** The post-apply DNS check; by default Node's resolver asks the LAN address directly. */
  readonly probe?: DnsProbe;
  /**
   * How to run `mammatus` itself (node and the bundle), for the metadata proxy and boot server
   * children; without it their configs are written but neither runs.
   */
  readonly mammatus?: Argv;
  /** Opens a feed on the instance registry (NATS); without it instances get no reservations or names. */
  readonly instanceFeed?: InstanceFeedFactory;
  /** Opens a feed on the load balancer registry (NATS); without it the gateway serves no balancers. */
  readonly lbFeed?: LbFeedFactory;
  /** Where target health reports go (NATS, core/lb-health.ts); without it the gateway reports none. */
  readonly lbHealth?: LbHealthSinkFactory;
  /** The system user the proxy and boot server run as when the agent is root (`services.user`, default mammatus). */
  readonly serviceUser?: () => string;
  /** The agent's log level, for the proxy's own log (default: the proxy config's). */
  readonly logLevel?: () => string;
  /** Where the metrics read dnsmasq's counters and the ports' statistics (default: UDP, /sys; tests). */
  readonly metrics?: Pick<GatewayMetricsSources, 'dnsStats' | 'sysClassNet'>;
}

/** The registry's NATS servers: configured ones, else every alive controller at `registry.port`. */
export function registryServers(cfg: GatewayConfig, members: readonly Member[]): string[] {
  if (cfg.registry.nats.length) return [...cfg.registry.nats];
  return members
    .filter((m) => m.status === 'alive' && actsAs(m, 'controller'))
    .map((m) => `nats://${m.addr.includes(':') ? `[${m.addr}]` : m.addr}:${cfg.registry.port}`)
    .sort();
}

/** Builds the gateway role. One instance per agent: it owns the dnsmasq process. */
export function buildGatewayRole(deps: GatewayDeps): Role {
  let dnsmasq: DnsmasqSupervisor | undefined;
  let feed: InstanceFeed | undefined;
  let lbFeed: LbFeed | undefined;
  let health: LbHealthReporter | undefined;
  /** The balancers of the last snapshot, or of the copy rendered before a restart, until the feed has one. */
  let lastBalancers: readonly ResolvedBalancer[] | undefined;
  let restored = false;
  let askReconcile: ((reason: string) => void) | undefined;
  /** Opens the registry feeds once the registry's servers are known (the first controller may join later). */
  function ensureFeed(cfg: GatewayConfig, members: readonly Member[], log: Logger): void {
    if (!cfg.registry.enabled || !askReconcile) return;
    const servers = registryServers(cfg, members);
    if (!servers.length) return;
    const reconcile = askReconcile;
    if (!feed && deps.instanceFeed) {
      feed = deps.instanceFeed(servers, () => reconcile('instance registry changed'), log.child({ component: 'registry' }));
    }
    if (!lbFeed && deps.lbFeed && cfg.lb.enabled) {
      lbFeed = deps.lbFeed(servers, () => reconcile('load balancers changed'), log.child({ component: 'lb-feed' }));
    }
    if (!health && deps.lbHealth && cfg.lb.enabled) {
      const hlog = log.child({ component: 'lb-health' });
      health = new LbHealthReporter(deps.lbHealth(servers, hlog), hlog);
    }
  }
  /**
   * Tells the health reporter what HAProxy runs now (after an apply or a start): the balancers'
   * copy its files were rendered from, not the desired set, which a rolled-back apply still holds.
   */
  async function reportHealth(ctx: Pick<ApplyContext, 'files'>, cfg: GatewayConfig): Promise<void> {
    if (!health) return;
    // Balancers turned off: none, so the reports of those it served are deleted.
    const live = cfg.lb.enabled ? parseBalancersCache(await ctx.files.read(balancersCachePath(cfg.lb)).catch(() => undefined)) : [];
    health.update(haproxySettings(cfg.lb).adminSocket, live ?? []);
  }
  const haproxy = new GatewayHaproxy(deps.spawn);
  const acme = new GatewayAcme(() => haproxy.reloadCertificates());
  const proxy = new GatewayServiceChild(deps, PROXY_CHILD);
  /** Starts, restarts or stops the proxy to match its config file. */
  const applyProxy = async (ctx: StartContext, cfg: GatewayConfig, restart: boolean): Promise<void> =>
    proxy.apply(await ctx.files.read(cfg.paths.metadata_proxy), ctx, restart);
  const boot = new GatewayServiceChild(deps, BOOT_CHILD);
  /** Starts, restarts or stops the boot server to match its config file. */
  const applyBoot = async (ctx: StartContext, cfg: GatewayConfig, restart: boolean): Promise<void> =>
    boot.apply(await ctx.files.read(cfg.paths.boot_server), ctx, restart);
  const forwarding = new Forwarding();
  const metrics = new GatewayMetrics(deps.metrics);
  const firewall = new Firewall(renderBaseline());
  const supervisor = (log: Logger) => (dnsmasq ??= new DnsmasqSupervisor({ spawn: deps.spawn, log: log.child({ component: 'dnsmasq' }) }));
  const config = (ctx: ApplyContext) => parseGatewayConfig(ctx.desired.config);

  return {
    name: 'gateway',
    watches: ['member-join', 'member-leave', 'member-failed', 'member-update', 'member-reap'],

    render(desired): RenderedFile[] {
      const cfg = parseGatewayConfig(desired.config);
      const hook = { path: cfg.paths.lease_hook, content: renderLeaseHook(leaseSpoolPath(cfg)), mode: 0o755 };
      return [...renderGateway(desired), hook].sort((a, b) => a.path.localeCompare(b.path));
    },

    async validate(ctx) {
      const cfg = config(ctx);
      await haproxy.validate(ctx, cfg);
      const network = [cfg.paths.dnsmasq_conf, cfg.paths.iptables, cfg.paths.sysctl, cfg.paths.hop_limit];
      // Only names changed (a join, a leave): nothing of the network is touched, nothing to check.
      if (!ctx.changed.some((p) => network.includes(p))) return;
      // A node tagged gateway by mistake (no such ports) must fail here, before its firewall changes.
      for (const port of [cfg.lan.interface, cfg.wan.interface]) {
        await ctx.run('ip', ['-o', 'link', 'show', 'dev', port]).catch(() => {
          throw new Error(`network interface ${port} not found (roles.gateway.lan/wan.interface)`);
        });
      }
      if (ctx.changed.includes(cfg.paths.dnsmasq_conf) && (await ctx.files.read(cfg.paths.dnsmasq_conf)) !== undefined) {
        await prepareDirs(ctx.run, cfg); // --test reads the directories the config names
        await ctx.run('dnsmasq', ['--test', `--conf-file=${cfg.paths.dnsmasq_conf}`]);
      }
      if (ctx.changed.includes(cfg.paths.iptables) && (await ctx.files.read(cfg.paths.iptables)) !== undefined) {
        await validateRuleset(ctx.run, cfg.paths.iptables);
      }
      if (ctx.changed.includes(cfg.paths.hop_limit) && (await ctx.files.read(cfg.paths.hop_limit)) !== undefined) {
        await validateOwnChain(ctx.run, cfg.paths.hop_limit);
      }
    },

    async reload(ctx) {
      const cfg = config(ctx);
      metrics.configure(cfg);
      const changed = (p: string) => ctx.changed.includes(p);
      const exists = async (p: string) => (await ctx.files.read(p)) !== undefined;
      if (changed(cfg.paths.sysctl)) await forwarding.apply(ctx.run, cfg.paths.sysctl, await exists(cfg.paths.sysctl));
      if (changed(cfg.paths.iptables)) await firewall.apply(ctx.run, cfg.paths.iptables, await exists(cfg.paths.iptables));
      if (changed(cfg.paths.hop_limit)) {
        if (await exists(cfg.paths.hop_limit)) await installOwnChain(ctx.run, HOP_CHAIN, cfg.paths.hop_limit);
        else await removeOwnChain(ctx.run, HOP_CHAIN);
      }
      if (changed(cfg.paths.dnsmasq_conf)) {
        if (await exists(cfg.paths.dnsmasq_conf)) {
          await prepareDirs(ctx.run, cfg);
          await supervisor(ctx.log).restart(cfg.paths.dnsmasq_conf);
        } else await dnsmasq?.stop();
      }
      // New upstreams (a controller joined or left) take a proxy restart: it reads its config once.
      if (changed(cfg.paths.metadata_proxy)) await applyProxy(ctx, cfg, true);
      // The stub is read per request; only the server's own config (address, port, roots) restarts it.
      if (changed(cfg.paths.boot_server)) await applyBoot(ctx, cfg, true);
      const reservations = ctx.changed.some((p) => p.startsWith(`${cfg.paths.dhcp_hosts_dir}/`));
      // Leases go before dnsmasq drops the reservation: it writes its lease file on every release.
      if (reservations || changed(cfg.paths.members)) await releaseStaleLeases(ctx, cfg);
      // A reservation removed or changed stays in dnsmasq until SIGHUP (new ones it reads itself).
      if (!changed(cfg.paths.dnsmasq_conf) && reservations) dnsmasq?.rereadHosts();
      if (changed(cfg.paths.left_out)) logNotes(ctx, cfg);
      if (changed(lbLeftOutPath(cfg))) await logLbLeftOut(ctx, cfg);
      // After the firewall: a new listen port is open by the time HAProxy binds it.
      await haproxy.reload(ctx, cfg);
      await acme.update(ctx, cfg);
      ensureFeed(cfg, ctx.desired.members, ctx.log);
      await reportHealth(ctx, cfg);
    },

    async health(ctx) {
      const cfg = config(ctx);
      await haproxy.health(ctx, cfg);
      if (
        ctx.changed.includes(cfg.paths.metadata_proxy) &&
        deps.mammatus &&
        (await ctx.files.read(cfg.paths.metadata_proxy)) !== undefined
      ) {
        // reload waited for it to be ready; it must still be running.
        if (!proxy.running) throw new Error(`the metadata proxy is not running: ${proxy.lastLines(3)}`);
      }
      if (ctx.changed.includes(cfg.paths.boot_server) && deps.mammatus && (await ctx.files.read(cfg.paths.boot_server)) !== undefined) {
        if (!boot.running) throw new Error(`the boot server is not running: ${boot.lastLines(3)}`);
      }
      if (!ctx.changed.includes(cfg.paths.dnsmasq_conf) && !ctx.changed.includes(cfg.paths.iptables)) return;
      if (!(await ctx.files.read(cfg.paths.dnsmasq_conf))) return;
      if (!dnsmasq?.process.running) throw new Error('dnsmasq is not running');
      await (deps.probe ?? probeDns)(lanAddress(cfg), `gateway.${cfg.domain}`);
    },

    async start(ctx) {
      // After an agent restart the files are unchanged, so no reload started dnsmasq: start it here.
      const cfg = parseGatewayConfig(ctx.desired.config);
      askReconcile = ctx.reconcile;
      metrics.start(cfg, ctx.run, () => dnsmasq?.process.running === true);
      ensureFeed(cfg, ctx.desired.members, ctx.log);
      // Rules do not outlive a reboot; the file (unchanged, so no reload) does.
      if ((await ctx.files.read(cfg.paths.hop_limit)) !== undefined) await installOwnChain(ctx.run, HOP_CHAIN, cfg.paths.hop_limit);
      // Not fatal at start: the supervisor keeps trying (a secret fixed later is read at the next try).
      await applyProxy(ctx, cfg, false).catch((err: unknown) =>
        ctx.log.error({ err: errorMessage(err) }, 'the metadata proxy did not start; retrying with backoff'),
      );
      await applyBoot(ctx, cfg, false).catch((err: unknown) =>
        ctx.log.error({ err: errorMessage(err) }, 'the boot server did not start; retrying with backoff'),
      );
      await haproxy.start(ctx, cfg);
      await acme.update(ctx, cfg);
      await reportHealth(ctx, cfg);
      if ((await ctx.files.read(cfg.paths.dnsmasq_conf)) === undefined) return;
      if (!dnsmasq?.process.running) await prepareDirs(ctx.run, cfg);
      supervisor(ctx.log).ensureRunning(cfg.paths.dnsmasq_conf);
    },

    instances(): readonly InstanceSummary[] | undefined {
      return feed?.snapshot();
    },

    async balancers(members, from): Promise<BalancerSet | undefined> {
      let cfg: GatewayConfig;
      try {
        cfg = parseGatewayConfig(from.config);
      } catch {
        return undefined; // the render fails on the same config, and says why
      }
      if (!cfg.lb.enabled) return undefined;
      // Before the first good apply (start comes after it): the feed replaces a restored copy as soon
      // as the registry answers, even while the applies of that copy fail.
      askReconcile ??= from.reconcile;
      ensureFeed(cfg, members, from.log);
      lastBalancers = lbFeed?.snapshot(members) ?? lastBalancers;
      if (!lastBalancers && !restored) {
        // An agent just started: until the feed reads, the copy beside HAProxy's files (render-lb.ts),
        // only while a feed will replace it: without the registry the copy would be served for good.
        restored = true;
        if (cfg.registry.enabled && deps.lbFeed !== undefined)
          lastBalancers = parseBalancersCache(await from.files.read(balancersCachePath(cfg.lb)).catch(() => undefined));
      }
      if (!lastBalancers) return undefined;
      // Without the program every balancer is left out (and says why) rather than fail the role's
      // apply, DHCP and DNS with it, at `haproxy -c`.
      if (lastBalancers.length && !haproxyInstalled(cfg.lb.binary))
        return { balancers: [], leftOut: lastBalancers.map((b) => ({ name: b.record.name, reason: HAPROXY_MISSING })) };
      // What this gateway cannot serve is left out here, so HAProxy's hooks see only what it serves.
      const plan = planGatewayLb(cfg, lastBalancers, { node: from.node, members });
      return { balancers: plan.served, leftOut: plan.leftOut };
    },

    facts(last) {
      const served = servedFacts(last);
      const out = last?.balancersLeftOut ?? [];
      const leftOut = out.length
        ? `${out.length} balancer${out.length === 1 ? '' : 's'} left out (${out.map((l) => l.name).join(', ')})`
        : '';
      const lb = [haproxy.summary(last?.balancers), leftOut].filter(Boolean).join(', ');
      if (!lb) return served;
      // Balancers first: the status answer cuts a detail at 80 characters, and instances' notes run long.
      return { ...served, summary: served?.summary ? `${lb}; ${served.summary}` : lb };
    },

    queries: { [LEASES_QUERY]: answerLeases, [RESERVATIONS_QUERY]: answerReservations },

    async stop() {
      const [f, l, h] = [feed, lbFeed, health];
      feed = undefined;
      lbFeed = undefined;
      health = undefined;
      metrics.stop();
      acme.stop();
      await Promise.all([dnsmasq?.stop(), proxy.stop(), boot.stop(), haproxy.stop(), f?.stop(), l?.stop(), h?.stop()]);
    },
  };
}
