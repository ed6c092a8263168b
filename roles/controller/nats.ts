/**
 * Runs nats-server as a child of the agent and restarts it when it dies (with backoff), the way the
 * gateway runs dnsmasq, so a controller works on hosts where no init system supervises NATS. A
 * change of routes alone reaches the running server as SIGHUP (nats-server 2.9 reloads
 * `cluster.routes`); any other change restarts it, because ports, the store and cluster mode cannot be
 * reloaded.
 */
import type { Argv, Logger, Spawn } from '../../core/contracts.js';
import { DaemonSupervisor } from '../../core/process-supervisor.js';

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
  /** The system user to run it as (see nats-user.ts); undefined = the agent's own. A change restarts. */
  readonly user?: string;
}

/** How `apply` brought the server in line with its config. */
export type NatsApplied = 'started' | 'restarted' | 'reloaded';

/** Supervises one nats-server process (restarts and backoff: core/process-supervisor.ts). */
export class NatsSupervisor {
  /** The process itself: whether it runs, its PID, crashes and last output lines. */
  readonly process: DaemonSupervisor;
  private launchSpec: NatsLaunch | undefined;

  constructor(private readonly deps: NatsSupervisorDeps) {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the getter below reads the current launch
    const self = this;
    this.process = new DaemonSupervisor({
      ...deps,
      name: 'nats-server',
      // Read at every start, restarts after a crash included: the user of the current launch.
      get user() {
        return self.launchSpec?.user;
      },
      // SIGTERM, not lame-duck (SIGUSR2): clients of a restart reconnect at once to the same port.
      stopTimeoutMs: deps.stopTimeoutMs ?? 10_000,
      onStart: (pid) =>
        deps.log.info({ nats_pid: pid, conf: this.launchSpec?.confPath, user: this.launchSpec?.user ?? null }, 'nats-server started'),
    });
  }

  /** The config file the server was last started or reloaded with. */
  get confPath(): string | undefined {
    return this.launchSpec?.confPath;
  }

  /** The config file it ran with before that, when the path changed (for a rollback). */
  previousConfPath: string | undefined;

  /** Makes the running server use `launch`: SIGHUP when only routes changed, else a (re)start. */
  async apply(launch: NatsLaunch): Promise<NatsApplied> {
    const same = this.launchSpec !== undefined && sameLaunch(this.launchSpec, launch);
    if (this.launchSpec && this.launchSpec.confPath !== launch.confPath) this.previousConfPath = this.launchSpec.confPath;
    this.launchSpec = launch;
    if (this.process.running && same) {
      this.deps.log.info({ nats_pid: this.process.pid }, 'nats-server: reloading its routes (SIGHUP)');
      this.process.signal('SIGHUP');
      return 'reloaded';
    }
    const was = this.process.running;
    await this.process.restart(argv(launch));
    return was ? 'restarted' : 'started';
  }

  /** Starts nats-server with `launch` unless it runs already (agent start with unchanged files). */
  ensureRunning(launch: NatsLaunch): void {
    if (this.process.running) return;
    this.launchSpec = launch;
    this.process.ensureRunning(argv(launch));
  }

  /** Stops nats-server for good (role removed, agent stopping). */
  stop(): Promise<void> {
    return this.process.stop();
  }
}

const argv = (launch: NatsLaunch): Argv => [launch.binary, ['-c', launch.confPath]];

function sameLaunch(a: NatsLaunch, b: NatsLaunch): boolean {
  return a.binary === b.binary && a.confPath === b.confPath && a.restartKey === b.restartKey && a.user === b.user;
}
