/**
 * Runs dnsmasq in the foreground as a child of the agent (core/process-supervisor.ts restarts it when it
 * dies). The agent owns this one process: DNS names change through `hostsdir` (no restart), the
 * static config through `restart()` after `dnsmasq --test` passed.
 */
import type { Logger } from '../../core/contracts.js';
import { DaemonSupervisor } from '../../core/process-supervisor.js';
import { type Argv } from '../../core/contracts.js';
import type { Spawn } from '../../core/contracts.js';

/** What the supervisor needs. */
export interface DnsmasqDeps {
  readonly spawn: Spawn;
  readonly log: Logger;
  readonly minRestartMs?: number;
  readonly maxRestartMs?: number;
}

// -k: stay in the foreground, as our child; log to stderr so its lines reach our log.
const argv = (confPath: string): Argv => ['dnsmasq', ['--keep-in-foreground', '--log-facility=-', `--conf-file=${confPath}`]];

/** Supervises one dnsmasq process. */
export class DnsmasqSupervisor {
  /** The process itself: whether it runs, its PID, crashes and last output lines. */
  readonly process: DaemonSupervisor;

  constructor(deps: DnsmasqDeps) {
    this.process = new DaemonSupervisor({ ...deps, name: 'dnsmasq' });
  }

  /** (Re)starts dnsmasq with this config file: stops the running one first and waits for it. */
  restart(confPath: string): Promise<void> {
    return this.process.restart(argv(confPath));
  }

  /** Starts dnsmasq unless it runs already. */
  ensureRunning(confPath: string): void {
    this.process.ensureRunning(argv(confPath));
  }

  /**
   * SIGHUP: dnsmasq re-reads its hosts and DHCP hosts directories (new files there are read on their
   * own, but a removed or changed reservation only goes away this way), without a restart.
   */
  rereadHosts(): boolean {
    return this.process.signal('SIGHUP');
  }

  /** Stops dnsmasq for good (role removed, agent stopping). */
  stop(): Promise<void> {
    return this.process.stop();
  }
}
