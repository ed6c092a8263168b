/**
 * Runs dnsmasq in the foreground as a child of the agent and restarts it when it dies (with
 * backoff), so the gateway works on hosts where no init system supervises dnsmasq. The agent owns
 * this one process: DNS names change through `hostsdir` (no restart), the static config through
 * `restart()` after `dnsmasq --test` passed.
 */
import type { Logger } from '../../agent/types.js';
import type { Daemon, Spawn } from '../types.js';

/** What the supervisor needs. */
export interface DnsmasqDeps {
  readonly spawn: Spawn;
  readonly log: Logger;
  /** Delay before the first restart after a crash; doubles up to `maxRestartMs`. */
  readonly minRestartMs?: number;
  readonly maxRestartMs?: number;
}

/** Supervises one dnsmasq process. */
export class DnsmasqSupervisor {
  private daemon: Daemon | undefined;
  private confPath = '';
  private stopping = false;
  private delay: number;
  private timer: NodeJS.Timeout | undefined;
  private readonly lastLines: string[] = [];
  /** How many times dnsmasq was restarted after dying on its own. */
  crashes = 0;

  constructor(private readonly deps: DnsmasqDeps) {
    this.delay = deps.minRestartMs ?? 500;
  }

  /** True while a dnsmasq process is running. */
  get running(): boolean {
    return this.daemon !== undefined;
  }

  /** The PID of the running dnsmasq, if any. */
  get pid(): number | undefined {
    return this.daemon?.pid;
  }

  /** (Re)starts dnsmasq with this config file: stops the running one first and waits for it. */
  async restart(confPath: string): Promise<void> {
    this.confPath = confPath;
    this.stopping = false;
    clearTimeout(this.timer);
    await this.kill();
    this.launch();
  }

  /** Starts dnsmasq unless it runs already. */
  ensureRunning(confPath: string): void {
    this.confPath = confPath;
    this.stopping = false;
    if (!this.daemon) this.launch();
  }

  /** Stops dnsmasq for good (role removed, agent stopping). */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    await this.kill();
  }

  private launch(): void {
    const started = Date.now();
    // -k: stay in the foreground, as our child; log to stderr so its lines reach our log.
    const daemon = this.deps.spawn('dnsmasq', ['--keep-in-foreground', '--log-facility=-', `--conf-file=${this.confPath}`], {
      onLine: (line) => {
        this.lastLines.push(line);
        if (this.lastLines.length > 20) this.lastLines.shift();
        this.deps.log.debug({ dnsmasq: line }, 'dnsmasq');
      },
    });
    this.daemon = daemon;
    void daemon.exited.then((code) => {
      if (this.daemon !== daemon) return; // replaced by a restart, or stopped
      this.daemon = undefined;
      if (this.stopping) return;
      this.crashes++;
      // A run that lasted a minute was healthy: start the backoff over.
      if (Date.now() - started > 60_000) this.delay = this.deps.minRestartMs ?? 500;
      this.deps.log.error({ code, last: this.lastLines.slice(-5), retry_ms: this.delay }, 'dnsmasq exited; restarting it');
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
    daemon.kill('SIGTERM');
    const forced = setTimeout(() => daemon.kill('SIGKILL'), 5000);
    await daemon.exited;
    clearTimeout(forced);
  }
}
