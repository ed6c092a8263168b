/**
 * Runs nats-server as a child of the agent and restarts it when it dies (with backoff), the way the
 * gateway runs dnsmasq, so a controller works on hosts where no init system supervises NATS. A
 * change of routes alone reaches the running server as SIGHUP (nats-server 2.9 reloads
 * `cluster.routes`); any other change restarts it, because ports, the store and cluster mode cannot be
 * reloaded.
 */
import type { Logger } from '../../agent/types.js';
import type { Daemon, Spawn } from '../types.js';

/** What the supervisor needs. */
export interface NatsSupervisorDeps {
  readonly spawn: Spawn;
  readonly log: Logger;
  /** Delay before the first restart after a crash; doubles up to `maxRestartMs`. */
  readonly minRestartMs?: number;
  readonly maxRestartMs?: number;
  /** How long a stopped server may take to exit before SIGKILL. */
  readonly stopTimeoutMs?: number;
}

/** One way to run the server: the executable, the config file, and what a reload cannot change. */
export interface NatsLaunch {
  readonly binary: string;
  readonly confPath: string;
  /** Equal keys mean a SIGHUP is enough (see `restartKey`). */
  readonly restartKey: string;
}

/** How `apply` brought the server in line with its config. */
export type NatsApplied = 'started' | 'restarted' | 'reloaded';

/** Supervises one nats-server process. */
export class NatsSupervisor {
  private daemon: Daemon | undefined;
  private launchSpec: NatsLaunch | undefined;
  private stopping = false;
  private delay: number;
  private timer: NodeJS.Timeout | undefined;
  private readonly lines: string[] = [];
  /** How many times nats-server died on its own (and was restarted). */
  crashes = 0;

  constructor(private readonly deps: NatsSupervisorDeps) {
    this.delay = deps.minRestartMs ?? 500;
  }

  /** True while a nats-server process is running. */
  get running(): boolean {
    return this.daemon !== undefined;
  }

  /** The PID of the running nats-server, if any. */
  get pid(): number | undefined {
    return this.daemon?.pid;
  }

  /** The config file the server was last started or reloaded with. */
  get confPath(): string | undefined {
    return this.launchSpec?.confPath;
  }

  /** The config file it ran with before that, when the path changed (for a rollback). */
  previousConfPath: string | undefined;

  /** nats-server's last output lines (newest last), for error messages. */
  lastLines(n = 5): string[] {
    return this.lines.slice(-n);
  }

  /** Makes the running server use `launch`: SIGHUP when only routes changed, else a (re)start. */
  async apply(launch: NatsLaunch): Promise<NatsApplied> {
    const same = this.launchSpec !== undefined && sameLaunch(this.launchSpec, launch);
    if (this.launchSpec && this.launchSpec.confPath !== launch.confPath) this.previousConfPath = this.launchSpec.confPath;
    this.launchSpec = launch;
    this.stopping = false;
    if (this.daemon && same) {
      this.deps.log.info({ nats_pid: this.daemon.pid }, 'nats-server: reloading its routes (SIGHUP)');
      this.daemon.kill('SIGHUP');
      return 'reloaded';
    }
    const was = this.running;
    clearTimeout(this.timer);
    await this.kill();
    this.launch();
    return was ? 'restarted' : 'started';
  }

  /** Starts nats-server with `launch` unless it runs already (agent start with unchanged files). */
  ensureRunning(launch: NatsLaunch): void {
    this.stopping = false;
    if (this.daemon) return;
    this.launchSpec = launch;
    clearTimeout(this.timer);
    this.launch();
  }

  /** Stops nats-server for good (role removed, agent stopping). */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    await this.kill();
  }

  private launch(): void {
    const spec = this.launchSpec!;
    const started = Date.now();
    const daemon = this.deps.spawn(spec.binary, ['-c', spec.confPath], {
      onLine: (line) => {
        this.lines.push(line);
        if (this.lines.length > 50) this.lines.shift();
        this.deps.log.debug({ nats: line }, 'nats-server');
      },
    });
    this.daemon = daemon;
    this.deps.log.info({ nats_pid: daemon.pid, conf: spec.confPath }, 'nats-server started');
    void daemon.exited.then((code) => {
      if (this.daemon !== daemon) return; // replaced by a restart, or stopped
      this.daemon = undefined;
      if (this.stopping) return;
      this.crashes++;
      // A run that lasted a minute was healthy: start the backoff over.
      if (Date.now() - started > 60_000) this.delay = this.deps.minRestartMs ?? 500;
      this.deps.log.error({ code, last: this.lastLines(), retry_ms: this.delay }, 'nats-server exited; restarting it');
      this.timer = setTimeout(() => {
        if (!this.stopping && !this.daemon) this.launch();
      }, this.delay);
      this.delay = Math.min(this.delay * 2, this.deps.maxRestartMs ?? 30_000);
    });
  }

  private async kill(): Promise<void> {
    const daemon = this.daemon;
    if (!daemon) return;
    this.daemon = undefined;
    // SIGTERM, not lame-duck (SIGUSR2): clients of a restart reconnect at once to the same port.
    daemon.kill('SIGTERM');
    const forced = setTimeout(() => daemon.kill('SIGKILL'), this.deps.stopTimeoutMs ?? 10_000);
    await daemon.exited;
    clearTimeout(forced);
  }
}

function sameLaunch(a: NatsLaunch, b: NatsLaunch): boolean {
  return a.binary === b.binary && a.confPath === b.confPath && a.restartKey === b.restartKey;
}
