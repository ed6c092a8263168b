/**
 * The controller role: NATS with JetStream, clustered with the other controllers Serf knows, and the
 * services hosted on top of it. Files are rendered from config and membership; this module adds what
 * applying them takes: `nats-server -t` before anything goes live, a SIGHUP when only the routes
 * changed and a restart otherwise, a health probe on the monitor port, the framework's rollback when
 * a step fails, and the hosted services once JetStream can serve them.
 */
import type { Logger } from '../../core/contracts.js';
import type { ApplyContext, DesiredState, Role } from '../types.js';
import type { Spawn } from '../../core/contracts.js';
import { parseControllerConfig, type ControllerConfig } from './config.js';
import { HEALTHZ, fetchProbe, waitHealthy, type MonitorProbe } from './health.js';
import { NatsSupervisor, type NatsLaunch } from './nats.js';
import { NatsMetrics } from './nats-metrics.js';
import { prepareNatsUser, type NatsUserDeps } from './nats-user.js';
import { localUrl, parseNatsConf, renderController, restartKey } from './render.js';
import { duplicateNkeys } from './permissions.js';
import { admittedNode } from '../../core/trust.js';
import { HostedServices } from './services.js';
import { installFirewall, removeFirewall, validateFirewall } from './firewall.js';
import { findNatsTls, shareKeyWithNats } from './tls.js';
import { type HostedService, type RosterFeed, type RosterFeedFactory } from '../../core/contracts.js';
import { CaBackend, type CaBackendDeps } from './ca-backend.js';
import { caConfigPaths } from './ca-render.js';
import { MonitoringPart } from './monitoring/role.js';
import { GRAFANA_DIR, restartGrafanaOnNewDatasources } from './grafana/apply.js';
import { METRICS_STORE_TAG } from '../../core/telegraf.js';
import { existsSync } from 'node:fs';
import type { MonitoringDeps } from './monitoring/stack.js';

export type { HostedService, HostedServiceContext } from '../../core/contracts.js';
export type { MonitorProbe } from './health.js';

/** What the controller role needs from the agent. */
export interface ControllerDeps {
  readonly spawn: Spawn;
  /** Services to run in-process once JetStream is ready, started in this order, stopped in reverse. */
  readonly services?: readonly HostedService[];
  /** GETs a monitor URL; by default Node's fetch. */
  readonly probe?: MonitorProbe;
  /** How long a (re)started nats-server may take to answer its health check (default 30 s). */
  readonly healthTimeoutMs?: number;
  /** How long `start` waits for JetStream (a meta leader, when clustered) before the services (default 30 s). */
  readonly readyTimeoutMs?: number;
  /** How long one hosted service may take to start or stop (default 30 s). */
  readonly serviceTimeoutMs?: number;
  /** Backoff after nats-server crashes (default 0.5 s doubling to 30 s). */
  readonly minRestartMs?: number;
  readonly maxRestartMs?: number;
  /** Follows the roster, whose nodes become the server's users; without it only this node is one. */
  readonly roster?: RosterFeedFactory;
  /** Overrides of how nats-server's user is chosen (tests); default: the apply's runner, the real machine. */
  readonly natsUser?: Partial<NatsUserDeps>;
  /** Overrides of how the CA backend is found, probed and run as its user (tests). */
  readonly ca?: Partial<Omit<CaBackendDeps, 'spawn' | 'run' | 'files' | 'log'>>;
  /** Overrides of how the monitoring stack is found, probed and run as its users (tests). */
  readonly monitoring?: Partial<Omit<MonitoringDeps, 'spawn' | 'run' | 'files' | 'log'>>;
}

/** This controller's store for the `metrics` tag (`none` without one, or before its first apply). */
function metricsStore(last: DesiredState | undefined): string {
  try {
    return (last && parseControllerConfig(last.config).monitoring.store) || 'none';
  } catch {
    return 'none';
  }
}

/** Builds the controller role. One instance per agent: it owns the nats-server process. */
export function buildControllerRole(deps: ControllerDeps): Role {
  const probe = deps.probe ?? fetchProbe;
  const healthTimeoutMs = deps.healthTimeoutMs ?? 30_000;
  const natsMetrics = new NatsMetrics(probe);
  let nats: NatsSupervisor | undefined;
  let hosted: HostedServices | undefined;
  let roster: { feed: RosterFeed; url: string } | undefined;
  /** A reconcile of this role, from the last start (the roster feed asks for one at each change). */
  let askReconcile: ((reason: string) => void) | undefined;

  /**
   * Follows the roster on this server's client port (again, when the port moved). Admissions and
   * revocations reach the server through it: each change re-renders the users, which a SIGHUP loads.
   */
  async function followRoster(ctx: { desired: DesiredState; log: Logger }, cfg: ControllerConfig): Promise<void> {
    const url = localUrl('nats', cfg.nats.listen);
    const creds = ctx.desired.credentials;
    if (roster?.url === url || !deps.roster || !creds || !askReconcile) return;
    await roster?.feed.stop();
    const reconcile = askReconcile;
    const log = ctx.log.child({ component: 'roster' });
    const changed = () => {
      // A key admitted twice is an error the roster should never hold: said at each change, and the later entry left out.
      for (const d of duplicateNkeys(admittedNode(creds), roster?.feed.snapshot() ?? []))
        log.error(
          { node: d.node, kept_by: d.kept, nkey: d.nkey },
          'roster entry shares its nkey with an earlier node: it gets no NATS user',
        );
      reconcile('roster changed');
    };
    roster = { url, feed: deps.roster([url], creds, changed, log, cfg.paths.roster) };
  }
  const supervisor = (log: Logger) =>
    (nats ??= new NatsSupervisor({
      spawn: deps.spawn,
      log: log.child({ component: 'nats-server' }),
      minRestartMs: deps.minRestartMs,
      maxRestartMs: deps.maxRestartMs,
    }));
  const services = (log: Logger) =>
    (hosted ??= new HostedServices(deps.services ?? [], log.child({ component: 'hosted' }), deps.serviceTimeoutMs));
  const config = (ctx: { desired: DesiredState }) => parseControllerConfig(ctx.desired.config);
  let ca: CaBackend | undefined;
  const caBackend = (ctx: Pick<ApplyContext, 'run' | 'files' | 'log'>) =>
    (ca ??= new CaBackend({ ...deps.ca, spawn: deps.spawn, run: ctx.run, files: ctx.files, log: ctx.log.child({ component: 'ca' }) }));
  const monitoring = new MonitoringPart({ ...deps.monitoring, spawn: deps.spawn });
  const caChanged = (ctx: { changed: readonly string[] }, cfg: ControllerConfig) =>
    Object.values(caConfigPaths(cfg.ca)).some((p) => ctx.changed.includes(p));

  /** How to run the server for the config file at `confPath` as it is on disk; undefined when absent. */
  async function launchFor(
    ctx: Pick<ApplyContext, 'files' | 'run' | 'log'>,
    cfg: ControllerConfig,
    confPath = cfg.paths.nats_conf,
  ): Promise<NatsLaunch | undefined> {
    const text = await ctx.files.read(confPath);
    if (text === undefined) return undefined;
    const conf = parseNatsConf(text);
    // The store and this file handed to the server's user (the file again after every write).
    const natsUser = { run: ctx.run, log: ctx.log, ...deps.natsUser };
    const user = await prepareNatsUser(natsUser, cfg.nats.user, cfg.nats.store_dir, confPath);
    if (conf?.tls) await shareKeyWithNats(ctx.run, user, cfg.tls);
    // Not ours (edited by hand?): its whole text is the key, so any change restarts.
    return { binary: cfg.nats.binary, confPath, restartKey: conf ? restartKey(conf) : text, ...(user ? { user } : {}) };
  }

  /** Waits for the monitor's `check`; stops early with nats-server's last words when it died. */
  async function waitFor(cfg: ControllerConfig, check: string, timeoutMs: number): Promise<void> {
    const crashes = nats?.process.crashes ?? 0;
    await waitHealthy(probe, localUrl('http', cfg.nats.monitor_listen) + check, {
      timeoutMs,
      abort: () => {
        if (!nats || (nats.process.running && nats.process.crashes === crashes)) return undefined;
        return `nats-server exited: ${nats.process.lastLines(3).join(' | ') || 'no output'}`;
      },
    });
  }

  return {
    name: 'controller',
    watches: ['member-join', 'member-leave', 'member-failed', 'member-update', 'member-reap'],

    // The node certificate's files, when there, turn TLS on (tls.ts): looked up at each render.
    // And Grafana's provisioning when Grafana is installed (docs/monitoring.md, "Dashboards").
    render: (desired) => renderController(desired, findNatsTls(parseControllerConfig(desired.config).tls), existsSync(GRAFANA_DIR)),

    admitted: () => roster?.feed.snapshot(),

    facts: (last) => {
      const s = ca?.state;
      const caLine = s && s.state !== 'off' ? `ca ${s.backend ?? ''} ${s.state}${s.error ? `: ${s.error.slice(0, 160)}` : ''}` : undefined;
      const m = monitoring.facts;
      // Every node's Telegraf writes to the controllers whose store is InfluxDB (core/telegraf.ts).
      const tags = { [METRICS_STORE_TAG]: metricsStore(last) };
      if (!caLine && !m) return { tags };
      return {
        summary: [caLine, m?.summary].filter(Boolean).join('; '),
        tags,
        ...(caLine ? { ca: s } : {}),
        ...(m ? { monitoring: m.state } : {}),
      };
    },

    async validate(ctx) {
      const cfg = config(ctx);
      // A config caddy refuses is rolled back: the backend keeps running with the last good one.
      if (caChanged(ctx, cfg)) await caBackend(ctx).validate(cfg.ca);
      await monitoring.validate(ctx, cfg.monitoring);
      if (ctx.changed.includes(cfg.paths.firewall) && (await ctx.files.read(cfg.paths.firewall)) !== undefined) {
        await validateFirewall(ctx.run, cfg.paths.firewall).catch((err: Error & { stderr?: string }) => {
          throw new Error(`iptables-restore rejected ${cfg.paths.firewall}: ${err.stderr?.trim() || err.message}`);
        });
      }
      if (!ctx.changed.includes(cfg.paths.nats_conf) || (await ctx.files.read(cfg.paths.nats_conf)) === undefined) return;
      // Parses the file as the server will (unknown keys, bad values); ports and the store are the health check's job.
      await ctx.run(cfg.nats.binary, ['-c', cfg.paths.nats_conf, '-t']).catch((err: Error & { stderr?: string }) => {
        throw new Error(`nats-server -t rejected ${cfg.paths.nats_conf}: ${err.stderr?.trim() || err.message}`);
      });
    },

    async reload(ctx) {
      const cfg = config(ctx);
      // Our chain follows its file: installed when written, taken away when removed (role gone,
      // first apply rolled back, firewall switched off).
      if (ctx.changed.includes(cfg.paths.firewall)) {
        if ((await ctx.files.read(cfg.paths.firewall)) !== undefined) await installFirewall(ctx.run, cfg.paths.firewall);
        else await removeFirewall(ctx.run);
      }
      // The configured file, then those the server ran before: a role leaving the node is applied
      // with empty settings (default paths), and a rollback of a moved path restores the old one.
      const candidates = [...new Set([cfg.paths.nats_conf, nats?.confPath, nats?.previousConfPath])];
      const touched = candidates.filter((p): p is string => p !== undefined && ctx.changed.includes(p));
      if (touched.length > 0) {
        let launch: NatsLaunch | undefined;
        for (const confPath of touched) launch ??= await launchFor(ctx, cfg, confPath);
        if (launch) {
          const how = await supervisor(ctx.log).apply(launch);
          ctx.log.info({ how, nats_pid: nats?.process.pid, conf: launch.confPath }, 'nats-server config applied');
        } else {
          // The role left this node (or its first apply is rolled back): services go before NATS.
          await roster?.feed.stop();
          roster = undefined;
          await hosted?.stop();
          await nats?.stop();
        }
      }
      if (ctx.changed.includes(cfg.paths.members)) hosted?.membersChanged(ctx.desired.members);
      // (Re)starts the backend with its new config and waits for its ACME directory. A backend that
      // will not start or answer (its port taken, its data directory locked) is the status's to
      // report and the poll's to retry: it must never roll NATS back with it.
      if (caChanged(ctx, cfg) || (ca && !cfg.ca.enabled)) {
        const backend = caBackend(ctx);
        await backend
          .apply(cfg.ca)
          .catch((err: Error) => ctx.log.error({ err: err.message }, 'CA backend not started; retried by its poll'));
        // Enabled after the role started (a config reload): the CA files are followed from now on.
        if (cfg.ca.enabled && askReconcile) backend.follow(cfg.ca);
      }
      // The monitoring stack likewise (monitoring/role.ts).
      await monitoring.reload(ctx, cfg.monitoring, askReconcile !== undefined);
      await restartGrafanaOnNewDatasources(ctx, cfg.monitoring);
    },

    async configReloaded() {
      await hosted?.restartChanged();
    },

    async health(ctx) {
      const cfg = config(ctx);
      if (!ctx.changed.includes(cfg.paths.nats_conf) || (await ctx.files.read(cfg.paths.nats_conf)) === undefined) return;
      if (!nats?.process.running) throw new Error(`nats-server is not running: ${nats?.process.lastLines(3).join(' | ') || 'no output'}`);
      // Only this server: JetStream waiting for its peers is a cluster state, not a bad config.
      await waitFor(cfg, HEALTHZ.running, healthTimeoutMs);
      // A new client port: the services started against the old one move over. A failure rolls
      // the port change back and leaves them stopped until the role starts again (agent restart).
      const natsUrl = localUrl('nats', cfg.nats.listen);
      natsMetrics.follow(localUrl('http', cfg.nats.monitor_listen));
      await followRoster(ctx, cfg);
      if (hosted && (await hosted.stopIfUrlChanged(natsUrl)).length > 0) {
        await waitFor(cfg, HEALTHZ.jetstream, deps.readyTimeoutMs ?? 30_000);
        await hosted.start({ node: ctx.desired.node, natsUrl, members: ctx.desired.members, credentials: ctx.desired.credentials });
      }
    },

    async start(ctx) {
      const cfg = config(ctx);
      const launch = await launchFor(ctx, cfg);
      if (!launch) return;
      // After a reboot the file is unchanged but the kernel's rules are gone: install it again.
      if (cfg.firewall.enabled && (await ctx.files.read(cfg.paths.firewall)) !== undefined)
        await installFirewall(ctx.run, cfg.paths.firewall);
      const sup = supervisor(ctx.log);
      // After an agent restart the files are unchanged, so no reload started nats-server: start it here.
      if (!sup.process.running) {
        sup.ensureRunning(launch);
        await waitFor(cfg, HEALTHZ.running, healthTimeoutMs);
      }
      askReconcile = ctx.reconcile ?? askReconcile;
      natsMetrics.follow(localUrl('http', cfg.nats.monitor_listen));
      await followRoster(ctx, cfg);
      // The CA backend after an agent restart, and then whenever the CA files appear or change.
      // Not awaited: the hosted services below must not wait for the CA's health check.
      const backend = caBackend(ctx);
      if (backend.state.state !== 'running')
        void backend
          .apply(cfg.ca)
          .catch((err: Error) => ctx.log.error({ err: err.message }, 'CA backend not started; retried by its poll'));
      if (cfg.ca.enabled) backend.follow(cfg.ca);
      monitoring.start(ctx, cfg.monitoring);
      const svc = services(ctx.log);
      if (svc.size === 0) return;
      await waitFor(cfg, HEALTHZ.jetstream, deps.readyTimeoutMs ?? 30_000).catch((err: Error) => {
        throw new Error(`JetStream not ready, hosted services not started (retried at the next reconcile): ${err.message}`);
      });
      await svc.start({
        node: ctx.desired.node,
        natsUrl: localUrl('nats', cfg.nats.listen),
        members: ctx.desired.members,
        credentials: ctx.desired.credentials,
      });
    },

    async stop() {
      natsMetrics.stop();
      await monitoring.stop();
      await ca?.stop();
      await roster?.feed.stop();
      roster = undefined;
      await hosted?.stop();
      await nats?.stop();
    },
  };
}
