/**
 * Runs what `metrics:` asks for (docs/monitoring.md): the agent's collectors and the process's own
 * metrics, the local listener, and the NATS connection on which this node answers the controllers
 * (and a controller asks the members). Nothing here may stop the agent: a taken port or an
 * unreachable NATS is logged and retried.
 */
import type { Server } from 'node:http';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { FileOps, Logger, Member, Run } from '../core/contracts.js';
import { influxdbControllers, renderTelegraf } from '../core/telegraf.js';
import { applyTelegraf } from './telegraf.js';
import { detach, errorMessage } from '../core/errors.js';
import { processMetrics } from '../core/metrics.js';
import { connectNats } from '../core/nats.js';
import type { NodeCredentials } from '../core/trust.js';
import type { MetricsConfig } from './config/schema.js';
import { registerAgentCollectors } from './metrics.js';
import { answerMetrics, startMetricsHttp, stopMetricsHttp } from './metrics-server.js';
import type { AgentView } from './types.js';

/** How often the runtime looks again at its listener and NATS servers (a membership change, a taken port). */
const CHECK_MS = 5000;

/** How long after a failed Telegraf drop-in write the runtime tries again. */
const TELEGRAF_RETRY_MS = 5 * 60_000;

/** What the runtime reads; all of it may change while it runs. */
export interface MetricsRuntimeDeps {
  config(): MetricsConfig;
  readonly view: AgentView;
  members(): readonly Member[];
  stateDir(): string;
  credentials(): NodeCredentials | undefined;
  /** The NATS servers this node reaches (agent/certs-plan.ts certServers). */
  servers(): readonly string[];
  readonly log: Logger;
  /** For the Telegraf drop-in (written only where Telegraf is installed). */
  readonly files: FileOps;
  readonly run: Run;
}

/** The agent's metrics: `start` once, `check` after a config reload, `stop` at the end. */
export class MetricsRuntime {
  private removeCollectors?: () => void;
  private server?: { listen: string; server: Server };
  private nats?: { key: string; nc?: NatsConnection; sub?: Subscription };
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private listening: Promise<void> = Promise.resolve();
  /** The Telegraf drop-in last handed to `applyTelegraf` (undefined: none yet, or it failed). */
  private telegraf?: string;
  /** After a failed write, when to try again (a read-only /etc must not be retried every check). */
  private telegrafRetryAt = 0;
  /** The listen address that last failed, so a taken port is logged once, not every check. */
  private failedListen?: string;

  constructor(private readonly deps: MetricsRuntimeDeps) {}

  /** Starts what the config asks for and keeps it so. */
  start(): void {
    this.check();
    this.timer = setInterval(() => this.check(), CHECK_MS);
    this.timer.unref();
  }

  /** Brings the listener and the NATS answers in line with the config and membership now. */
  check(): void {
    if (this.stopped) return;
    const cfg = this.deps.config();
    if (cfg.enabled) {
      processMetrics();
      this.removeCollectors ??= registerAgentCollectors(this.deps);
    } else {
      this.removeCollectors?.();
      this.removeCollectors = undefined;
    }
    const listen = cfg.enabled ? cfg.listen : '';
    // One change of listener at a time: two checks in a row must not both bind the port.
    this.listening = this.listening
      .then(() => (this.server?.listen !== (listen || undefined) ? this.relisten(listen) : undefined))
      .catch((err: unknown) => this.deps.log.warn({ err: errorMessage(err) }, 'metrics listener'));
    const key = this.natsKey(cfg);
    if (this.nats?.key !== key) this.reconnect(key);
    this.followTelegraf(listen);
  }

  /** Keeps the Telegraf drop-in in line with the controllers that run InfluxDB (docs/monitoring.md, "Telegraf"). */
  private followTelegraf(listen: string): void {
    const node = this.deps.view.node();
    if (!node) return;
    const local = listen.replace(/^(0\.0\.0\.0|\[::\]):/, '127.0.0.1:');
    const rendered = renderTelegraf({
      node,
      influxdb: influxdbControllers(this.deps.members()),
      ...(local ? { agentMetricsUrl: `http://${local}/metrics` } : {}),
    });
    if (rendered.content === this.telegraf || Date.now() < this.telegrafRetryAt) return;
    this.telegraf = rendered.content;
    detach(
      applyTelegraf(this.deps.files, this.deps.run, rendered, this.deps.log).then((outcome) => {
        if (outcome !== 'failed' || this.telegraf !== rendered.content) return;
        // Tried again in 5 minutes.
        this.telegraf = undefined;
        this.telegrafRetryAt = Date.now() + TELEGRAF_RETRY_MS;
      }),
      () => undefined,
    );
  }

  /** What the NATS side should be: empty when none (metrics off, no credentials, no server to reach). */
  private natsKey(cfg: MetricsConfig): string {
    const creds = this.deps.credentials();
    const servers = this.deps.servers();
    const node = this.deps.view.node();
    if (!cfg.enabled || !creds || servers.length === 0 || !node) return '';
    return JSON.stringify([node, creds.seed.slice(-8), [...servers].sort()]);
  }

  private async relisten(listen: string): Promise<void> {
    const old = this.server;
    this.server = undefined;
    if (old) await stopMetricsHttp(old.server);
    if (!listen || this.stopped) return;
    try {
      const server = await startMetricsHttp(listen, {
        node: () => this.deps.view.node(),
        gatherer: () => (this.deps.credentials()?.roles.includes('controller') ? this.nats?.nc : undefined),
        log: this.deps.log,
      });
      if (this.stopped) return void (await stopMetricsHttp(server));
      this.server = { listen, server };
      this.failedListen = undefined;
      this.deps.log.info({ listen }, 'metrics listening');
    } catch (err) {
      // Retried at the next check; said once per address.
      if (this.failedListen !== listen) this.deps.log.error({ listen, err: errorMessage(err) }, 'metrics listener not started; retrying');
      this.failedListen = listen;
    }
  }

  private reconnect(key: string): void {
    const old = this.nats;
    if (old?.nc) detach(old.nc.close(), () => undefined);
    const current: { key: string; nc?: NatsConnection; sub?: Subscription } = { key };
    this.nats = current;
    if (!key) return;
    const creds = this.deps.credentials()!;
    const node = this.deps.view.node();
    // Not `persistent`: a first attempt that fails, or a connection that drops (a controller
    // restarting), is forgotten and made again at the next check, so a stop never leaves a retry loop.
    const forget = () => {
      if (this.nats === current) this.nats = undefined;
    };
    detach(
      connectNats(this.deps.servers(), { name: `mammatus-metrics ${node}`, timeoutMs: 3000, credentials: creds }).then((nc) => {
        // Replaced or stopped while connecting: this connection is nobody's.
        if (this.nats !== current || this.stopped) return nc.close();
        current.nc = nc;
        // A refused subscription closes this connection: the next check connects (and subscribes) again.
        current.sub = answerMetrics(nc, node, this.deps.log, () => detach(nc.close(), () => undefined));
        detach(nc.closed().then(forget), () => undefined);
        this.deps.log.info({ subject: current.sub.getSubject() }, 'answering metrics requests');
      }),
      (err) => {
        forget();
        this.deps.log.debug({ err: errorMessage(err) }, 'metrics: no NATS connection yet; retrying');
      },
    );
  }

  /** Stops the listener and the NATS answers. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.removeCollectors?.();
    const nc = this.nats?.nc;
    this.nats = undefined;
    await this.listening;
    const server = this.server?.server;
    this.server = undefined;
    await Promise.allSettled([nc?.close(), server ? stopMetricsHttp(server) : undefined]);
  }
}
