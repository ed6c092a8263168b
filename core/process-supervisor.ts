/**
 * Runs one long-lived child process for a role and restarts it when it dies (with backoff), so the
 * role works on hosts where no init system supervises the program. The role owns this one process:
 * `restart` replaces it (after the old one has exited), `stop` ends it for good.
 */
import type { Logger } from './contracts.js';
import type { Daemon, Spawn } from './contracts.js';
import type { Argv } from './contracts.js';
import { detach } from './errors.js';

/** What the supervisor needs. */
export interface SupervisorDeps {
  readonly spawn: Spawn;
  readonly log: Logger;
  /** Name in logs (`dnsmasq`, `metadata-proxy`). */
  readonly name: string;
  /** Delay before the first restart after a crash; doubles up to `maxRestartMs`. */
  readonly minRestartMs?: number;
  readonly maxRestartMs?: number;
  /** How long a stopped process may take to exit before SIGKILL (default 5 s). */
  readonly stopTimeoutMs?: number;
  /** Called with the PID after every start, restarts after a crash included (for logs; a child service sends its settings here). */
  readonly onStart?: (pid: number | undefined) => void;
  /** Run the process as this system user (see `SpawnOptions.user`). */
  readonly user?: string;
  /** Opens an IPC channel to every process started; messages of the current one come here. */
  readonly onMessage?: (message: unknown) => void;
  /** Each output line; without it lines are logged at debug level. */
  readonly onLine?: (line: string) => void;
  /** Called when the process ended on its own (before the restart is scheduled). */
  readonly onExit?: (code: number | null) => void;
}

/** Supervises one process. */
export class DaemonSupervisor {
  private daemon: Daemon | undefined;
  private argv: Argv | undefined;
  private stopping = false;
  private delay: number;
  private timer: NodeJS.Timeout | undefined;
  private readonly recent: string[] = [];
  /** How many times the process was restarted after dying on its own. */
  crashes = 0;

  constructor(private readonly deps: SupervisorDeps) {
    this.delay = deps.minRestartMs ?? 500;
  }

  /** True while the process is running. */
  get running(): boolean {
    return this.daemon !== undefined;
  }

  /** The PID of the running process, if any. */
  get pid(): number | undefined {
    return this.daemon?.pid;
  }

  /** Its last output lines (newest last), for error messages. */
  lastLines(n = 5): string[] {
    return this.recent.slice(-n);
  }

  /** (Re)starts the process with `argv`: stops the running one first and waits for it. */
  async restart(argv: Argv): Promise<void> {
    this.argv = argv;
    this.stopping = false;
    clearTimeout(this.timer);
    await this.kill();
    this.launch();
  }

  /** Starts the process unless it runs already. */
  ensureRunning(argv: Argv): void {
    this.argv = argv;
    this.stopping = false;
    if (!this.daemon) this.launch();
  }

  /** Sends a signal to the running process (e.g. SIGHUP to re-read files); false when none runs. */
  signal(sig: NodeJS.Signals): boolean {
    if (!this.daemon) return false;
    this.daemon.kill(sig);
    return true;
  }

  /** Sends a message over the running process's IPC channel; false when none runs or it has no channel. */
  send(message: unknown): boolean {
    return this.daemon?.send?.(message) ?? false;
  }

  /** Stops the process for good (role removed, agent stopping). */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    await this.kill();
  }

  private launch(): void {
    const [file, args] = this.argv!;
    const started = Date.now();
    const { onMessage, user } = this.deps;
    const daemon: Daemon = this.deps.spawn(file, args, {
      onLine: (line) => {
        this.recent.push(line);
        if (this.recent.length > 50) this.recent.shift();
        if (this.deps.onLine) this.deps.onLine(line);
        else this.deps.log.debug({ [this.deps.name]: line }, this.deps.name);
      },
      ...(user === undefined ? {} : { user }),
      // Only the current process speaks: a message a replaced one sent late is dropped.
      ...(onMessage ? { onMessage: (message: unknown) => void (this.daemon === daemon && onMessage(message)) } : {}),
    });
    this.daemon = daemon;
    this.deps.onStart?.(daemon.pid);
    // `exited` never rejects (the spawner resolves it with null on a failed start).
    detach(
      daemon.exited.then((code) => {
        if (this.daemon !== daemon) return; // replaced by a restart, or stopped
        this.daemon = undefined;
        if (this.stopping) return;
        this.crashes++;
        this.deps.onExit?.(code);
        if (this.stopping) return; // onExit may stop it
        // A run that lasted a minute was healthy: start the backoff over.
        if (Date.now() - started > 60_000) this.delay = this.deps.minRestartMs ?? 500;
        this.deps.log.error({ code, last: this.lastLines(), retry_ms: this.delay }, `${this.deps.name} exited; restarting it`);
        this.timer = setTimeout(() => {
          if (!this.stopping && !this.daemon) this.launch();
        }, this.delay);
        this.delay = Math.min(this.delay * 2, this.deps.maxRestartMs ?? 30_000);
      }),
      (err) => this.deps.log.error({ err }, `${this.deps.name}: supervising failed`),
    );
  }

  private async kill(): Promise<void> {
    const daemon = this.daemon;
    if (!daemon) return;
    this.daemon = undefined;
    daemon.kill('SIGTERM');
    const forced = setTimeout(() => daemon.kill('SIGKILL'), this.deps.stopTimeoutMs ?? 5000);
    await daemon.exited;
    clearTimeout(forced);
  }
}
