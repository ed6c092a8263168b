/**
 * The controller's monitoring stack (docs/monitoring.md): Prometheus, Alertmanager and, with store
 * influxdb, InfluxDB, each a supervised child of the agent (restarted with backoff when it dies),
 * run as its package's system user when the agent is root. The role renders their files
 * (render.ts); this module checks them before they go live, starts, reloads (SIGHUP) or restarts
 * each daemon as what changed asks, and proves each works (`/-/ready`, `/ping`) before an apply
 * counts as done. A membership change rewrites only members.json, which Prometheus follows by
 * itself. Usable without the role (test/integration/monitoring-stack.test.ts runs it alone).
 */
import type { FileOps, Logger, Run, Spawn } from '../../../core/contracts.js';
import { errorMessage } from '../../../core/errors.js';
import { DaemonSupervisor } from '../../../core/process-supervisor.js';
import type { MonitorProbe } from '../health.js';
import { fetchProbe } from '../health.js';
import { findProgram } from '../ca-launch.js';
import type { MonitoringConfig } from './config.js';
import { monitoringPaths } from './paths.js';
import {
  daemonSpec,
  daemonUser,
  daemonsOf,
  ensureInfluxDatabase,
  Fatal,
  metricValue,
  pollUntil,
  validationCommands,
  type DaemonUserDeps,
  type MonitoringDaemon,
} from './launch.js';

/** What the stack needs from the agent; the defaults read the real machine. */
export interface MonitoringDeps extends Omit<DaemonUserDeps, 'run' | 'log'> {
  readonly spawn: Spawn;
  readonly run: Run;
  readonly files: FileOps;
  readonly log: Logger;
  readonly probe?: MonitorProbe;
  /** The path of an executable found on PATH (or the absolute path itself), undefined when absent. */
  readonly which?: (program: string) => string | undefined;
  /** How long a (re)started or reloaded daemon may take to answer (default 30 s). */
  readonly healthTimeoutMs?: number;
  /** How often a stack that is not healthy is retried while followed (default 15 s). */
  readonly pollMs?: number;
  readonly minRestartMs?: number;
  readonly maxRestartMs?: number;
}

/** What the role's status shows about the stack. */
export interface MonitoringState {
  readonly state: 'off' | 'ok' | 'not installed' | 'error';
  readonly store?: string;
  readonly error?: string;
  /** PIDs of the running daemons. */
  readonly pids?: Partial<Record<MonitoringDaemon, number>>;
}

interface Running {
  readonly supervisor: DaemonSupervisor;
  key: string;
}

/** Runs the monitoring stack of one controller. */
export class MonitoringStack {
  private readonly running = new Map<MonitoringDaemon, Running>();
  private current: MonitoringState = { state: 'off' };
  private queue: Promise<void> = Promise.resolve();
  private cfg: MonitoringConfig | undefined;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private influxReady: string | undefined;

  constructor(private readonly deps: MonitoringDeps) {}

  /** What the status shows. */
  get state(): MonitoringState {
    const pids: Partial<Record<MonitoringDaemon, number>> = {};
    for (const [kind, r] of this.running) if (r.supervisor.pid !== undefined) pids[kind] = r.supervisor.pid;
    return { ...this.current, ...(Object.keys(pids).length > 0 ? { pids } : {}) };
  }

  /** The status line: `monitoring prometheus ok`, `monitoring influxdb: influxd not installed`; undefined when off. */
  get summary(): string | undefined {
    const s = this.current;
    if (s.state === 'off') return undefined;
    if (s.state === 'ok') return `monitoring ${s.store} ok`;
    return `monitoring ${s.store}${s.state === 'error' ? ' error' : ''}: ${(s.error ?? s.state).slice(0, 160)}`;
  }

  /** The PID of a running daemon. */
  pid(kind: MonitoringDaemon): number | undefined {
    return this.running.get(kind)?.supervisor.pid;
  }

  private which(program: string): string | undefined {
    return (this.deps.which ?? findProgram)(program);
  }

  /**
   * Checks the files among `changed` (all with no list) with the daemons' own tools: `promtool check
   * config` and `check rules`, `amtool check-config`, `influxd config`. A tool that is not installed
   * checks nothing (the status says what is missing); a refusal rejects, naming the file.
   */
  async validate(mon: MonitoringConfig, changed?: readonly string[]): Promise<void> {
    const members = monitoringPaths(mon).members;
    for (const kind of daemonsOf(mon)) {
      for (const cmd of validationCommands(kind, mon)) {
        const files = daemonSpec(kind, mon).files;
        if (changed && !files.some((f) => changed.includes(f) && f !== members)) continue;
        if ((await this.deps.files.read(cmd.file)) === undefined || !this.which(cmd.program)) continue;
        await this.deps.run(cmd.program, cmd.args).catch((err: Error & { stderr?: string; stdout?: string }) => {
          const why = `${err.stderr ?? ''}\n${err.stdout ?? ''}`.trim() || err.message;
          throw new Error(`${cmd.program} ${cmd.args[0]} rejected ${cmd.file}: ${this.redact(mon, why).slice(0, 600)}`);
        });
      }
    }
    // amtool does not open it, but Alertmanager refuses to start without it.
    const ca = mon.alerts.sns?.endpoint.startsWith('https:') ? mon.alerts.sns.ca_file : undefined;
    if (mon.store && mon.alertmanager.enabled && ca && (await this.deps.files.read(ca)) === undefined)
      throw new Error(
        `alerts.sns.ca_file ${ca} does not exist: Alertmanager would not start (the node has no certificate yet? use http until it has)`,
      );
  }

  /** Never the SNS secret in a message (amtool may quote the file). */
  private redact(mon: MonitoringConfig, text: string): string {
    const secret = mon.alerts.sns?.secret_access_key;
    return secret ? text.split(secret).join('<secret>') : text;
  }

  /**
   * Brings the daemons in line with `mon` and the files on disk: stops them when there is no store
   * (or the files are gone: the role left), starts the missing ones, restarts those whose program,
   * flags or user changed (InfluxDB also for its config), SIGHUPs Prometheus and Alertmanager for
   * their changed files, then waits until each answers and the reloads took. Rejects when one does
   * not (the supervisor keeps restarting a daemon that dies; `follow` retries).
   */
  apply(mon: MonitoringConfig, changed: readonly string[] = []): Promise<void> {
    this.cfg = mon;
    const next = this.queue.then(() => this.applyNow(mon, changed));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async applyNow(mon: MonitoringConfig, changed: readonly string[]): Promise<void> {
    const wanted = daemonsOf(mon);
    const paths = monitoringPaths(mon);
    if (wanted.length === 0 || (await this.deps.files.read(paths.prometheus)) === undefined) {
      await this.stopAll();
      this.current = { state: 'off' };
      return;
    }
    for (const [kind] of this.running) if (!wanted.includes(kind)) await this.stopOne(kind);
    const missing = wanted.map((k) => daemonSpec(k, mon).binary).filter((b) => !this.which(b));
    if (missing.length > 0) {
      // Not a reason to roll NATS back: the status says what to install.
      await this.stopAll();
      this.current = { state: 'not installed', store: mon.store, error: `${missing.join(', ')} not installed` };
      return;
    }
    // Each daemon on its own: Alertmanager not answering must not keep Prometheus from scraping.
    const errors: string[] = [];
    for (const kind of wanted) await this.applyDaemon(kind, mon, changed).catch((err) => errors.push(errorMessage(err)));
    if (errors.length === 0) {
      this.current = { state: 'ok', store: mon.store };
      return;
    }
    this.current = { state: 'error', store: mon.store, error: this.redact(mon, errors.join('; ')) };
    throw new Error(this.current.error);
  }

  private async applyDaemon(kind: MonitoringDaemon, mon: MonitoringConfig, changed: readonly string[]): Promise<void> {
    const spec = daemonSpec(kind, mon);
    const log = this.deps.log.child({ component: kind });
    const user = await daemonUser({ ...this.deps, log }, spec.user, [spec.dataDir, ...spec.files]);
    const key = JSON.stringify({ argv: spec.argv, user: user?.name ?? null });
    const filesChanged = spec.files.some((f) => changed.includes(f));
    let run = this.running.get(kind);
    if (run && run.key !== key) {
      // Another user or program: the old process goes first (it holds the port).
      await this.stopOne(kind);
      run = undefined;
    }
    // The secret is handed to the daemon's group after every write (a write makes the file root's again).
    if (kind === 'alertmanager' && user && (filesChanged || !run?.supervisor.running))
      await this.deps.run('chown', [`0:${user.gid}`, spec.files[0]]);
    const restart = !run?.supervisor.running || (filesChanged && spec.reload === 'restart');
    let before: number | undefined;
    if (restart) {
      await this.deps.run('mkdir', ['-p', spec.dataDir]);
      if (user) await this.deps.run('chown', ['-R', `${user.uid}:${user.gid}`, spec.dataDir]);
      run ??= { supervisor: this.supervisor(kind, user?.name), key };
      this.running.set(kind, run);
      await run.supervisor.restart(spec.argv);
      log.info({ pid: run.supervisor.pid, user: user?.name ?? null }, `${kind} started`);
    } else if (filesChanged && spec.metrics && spec.reloadMetric) {
      before = await this.reloadStamp(spec.metrics, spec.reloadMetric);
      run!.supervisor.signal('SIGHUP');
    }
    await this.waitFor(kind, spec.health, kind === 'influxdb' ? [200, 204] : [200]);
    if (before !== undefined) await this.waitReloaded(kind, spec.metrics!, spec.reloadMetric!, before);
    if (kind === 'influxdb') {
      const want = JSON.stringify([mon.influxdb.database, mon.influxdb.retention, run!.supervisor.pid]);
      if (this.influxReady !== want) {
        await ensureInfluxDatabase(mon);
        this.influxReady = want;
      }
    }
  }

  private supervisor(kind: MonitoringDaemon, user: string | undefined): DaemonSupervisor {
    return new DaemonSupervisor({
      spawn: this.deps.spawn,
      log: this.deps.log.child({ component: kind }),
      name: kind,
      ...(user ? { user } : {}),
      minRestartMs: this.deps.minRestartMs,
      maxRestartMs: this.deps.maxRestartMs,
    });
  }

  private async reloadStamp(url: string, metric: string): Promise<number> {
    const res = await (this.deps.probe ?? fetchProbe)(url);
    return metricValue(res.body, metric) ?? 0;
  }

  /** Polls `url` until it answers one of `ok`; stops early when the daemon died. */
  private async waitFor(kind: MonitoringDaemon, url: string, ok: readonly number[]): Promise<void> {
    const sup = this.running.get(kind)!.supervisor;
    await pollUntil(kind, this.deps.healthTimeoutMs ?? 30_000, async () => {
      if (!sup.running) throw new Fatal(`${kind} exited: ${sup.lastLines(3).join(' | ') || 'no output'}`);
      const res = await (this.deps.probe ?? fetchProbe)(url);
      if (ok.includes(res.status)) return true;
      throw new Error(`${url}: HTTP ${res.status} ${res.body.trim().slice(0, 200)}`);
    });
  }

  /** Waits until the daemon's reload stamp moves past `before` (a refused config never does). */
  private async waitReloaded(kind: MonitoringDaemon, url: string, metric: string, before: number): Promise<void> {
    await pollUntil(kind, this.deps.healthTimeoutMs ?? 30_000, async () => {
      const body = (await (this.deps.probe ?? fetchProbe)(url)).body;
      if ((metricValue(body, metric) ?? 0) > before) return true;
      // Until its reload ends, a daemon whose last one failed still says so: only the timeout decides.
      if (metricValue(body, metric.replace(/_success_timestamp_seconds$/, '_successful')) === 0)
        throw new Error(
          `${kind} refused its new config (the old one keeps running): ${this.running.get(kind)?.supervisor.lastLines(2).join(' | ')}`,
        );
      throw new Error(`${kind} has not reloaded yet`);
    });
  }

  /** Starts the poll that retries a stack that is not healthy (or not installed yet); idempotent. */
  follow(mon: MonitoringConfig): void {
    this.cfg = mon;
    if (this.timer) return;
    const tick = () => {
      const mon = this.cfg;
      const again = mon?.store && this.current.state !== 'ok';
      this.polling = (again ? this.apply(mon) : this.checkAlive())
        .catch((err: Error) => this.deps.log.warn({ err: errorMessage(err) }, 'monitoring stack not healthy; retried'))
        .finally(() => {
          if (this.timer) this.timer = setTimeout(tick, this.deps.pollMs ?? 15_000);
        });
    };
    this.timer = setTimeout(tick, this.deps.pollMs ?? 15_000);
  }

  /** A daemon that died since (the supervisor restarts it) turns the status to error until the next apply proves it. */
  private async checkAlive(): Promise<void> {
    const dead = [...this.running].filter(([, r]) => !r.supervisor.running).map(([k]) => k);
    if (dead.length > 0 && this.current.state === 'ok')
      this.current = { ...this.current, state: 'error', error: `${dead.join(', ')} exited; restarting` };
  }

  /** Stops the poll and every daemon (role stopped or removed). */
  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.polling;
    await this.queue;
    await this.stopAll();
    this.current = { state: 'off' };
  }

  private async stopOne(kind: MonitoringDaemon): Promise<void> {
    await this.running.get(kind)?.supervisor.stop();
    this.running.delete(kind);
    if (kind === 'influxdb') this.influxReady = undefined;
  }

  private async stopAll(): Promise<void> {
    // Prometheus first: it writes to the others.
    for (const kind of ['prometheus', 'alertmanager', 'influxdb'] as const) await this.stopOne(kind);
  }
}
