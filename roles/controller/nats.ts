/**
 * Runs nats-server as a child of the agent and restarts it when it dies (with backoff), the way the
 * gateway runs dnsmasq, so a controller works on hosts where no init system supervises NATS. A
 * change of routes alone reaches the running server as SIGHUP (nats-server 2.9 reloads
 * `cluster.routes`); any other change restarts it, because ports, the store and cluster mode cannot be
 * reloaded.
 */
import type { Logger } from '../../core/contracts.js';
import { DaemonSupervisor } from '../../core/process-supervisor.js';
import { type Argv } from '../../core/contracts.js';
import type { Spawn } from '../../core/contracts.js';

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

/** Supervises one nats-server process (restarts and backoff: core/process-supervisor.ts). */
export class NatsSupervisor {
  private readonly supervisor: DaemonSupervisor;
  private launchSpec: NatsLaunch | undefined;

  constructor(private readonly deps: NatsSupervisorDeps) {
    this.supervisor = new DaemonSupervisor({
      ...deps,
      name: 'nats-server',
      // SIGTERM, not lame-duck (SIGUSR2): clients of a restart reconnect at once to the same port.
      stopTimeoutMs: deps.stopTimeoutMs ?? 10_000,
      onStart: (pid) => deps.log.info({ nats_pid: pid, conf: this.launchSpec?.confPath }, 'nats-server started'),
    });
  }

  /** True while a nats-server process is running. */
  get running(): boolean {
    return this.supervisor.running;
  }

  /** The PID of the running nats-server, if any. */
  get pid(): number | undefined {
    return this.supervisor.pid;
  }

  /** How many times nats-server died on its own (and was restarted). */
  get crashes(): number {
    return this.supervisor.crashes;
  }

  /** The config file the server was last started or reloaded with. */
  get confPath(): string | undefined {
    return this.launchSpec?.confPath;
  }

  /** The config file it ran with before that, when the path changed (for a rollback). */
  previousConfPath: string | undefined;

  /** nats-server's last output lines (newest last), for error messages. */
  lastLines(n = 5): string[] {
    return this.supervisor.lastLines(n);
  }

  /** Makes the running server use `launch`: SIGHUP when only routes changed, else a (re)start. */
  async apply(launch: NatsLaunch): Promise<NatsApplied> {
    const same = this.launchSpec !== undefined && sameLaunch(this.launchSpec, launch);
    if (this.launchSpec && this.launchSpec.confPath !== launch.confPath) this.previousConfPath = this.launchSpec.confPath;
    this.launchSpec = launch;
    if (this.supervisor.running && same) {
      this.deps.log.info({ nats_pid: this.supervisor.pid }, 'nats-server: reloading its routes (SIGHUP)');
      this.supervisor.signal('SIGHUP');
      return 'reloaded';
    }
    const was = this.supervisor.running;
    await this.supervisor.restart(argv(launch));
    return was ? 'restarted' : 'started';
  }

  /** Starts nats-server with `launch` unless it runs already (agent start with unchanged files). */
  ensureRunning(launch: NatsLaunch): void {
    if (this.supervisor.running) return;
    this.launchSpec = launch;
    this.supervisor.ensureRunning(argv(launch));
  }

  /** Stops nats-server for good (role removed, agent stopping). */
  stop(): Promise<void> {
    return this.supervisor.stop();
  }
}

const argv = (launch: NatsLaunch): Argv => [launch.binary, ['-c', launch.confPath]];

function sameLaunch(a: NatsLaunch, b: NatsLaunch): boolean {
  return a.binary === b.binary && a.confPath === b.confPath && a.restartKey === b.restartKey;
}
