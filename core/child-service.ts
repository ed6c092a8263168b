/**
 * A tenant-facing service run as a supervised child process under an unprivileged user
 * (docs/security.md, "Privilege separation"). The agent (root) reads what only root may read — the
 * node's NATS seed, the metadata secret, Vault's token, signing keys — and hands it to the child as
 * the first message on Node's IPC channel (a socketpair no other process can open): never on argv,
 * in the environment or in a file the child reads. Later messages carry what changes (membership).
 * The child answers `ready` (with its URL) or `error`; a crash is restarted with backoff and the
 * settings are sent again.
 */
import type { Argv, Logger, Spawn } from './contracts.js';
import { errorMessage } from './errors.js';
import { addTextSource } from './metrics.js';
import { DaemonSupervisor } from './process-supervisor.js';

/** The first message to a child: which service, and everything it starts from. */
export interface ChildInit {
  readonly type: 'init';
  /** `metadata`, `messaging`, `metadata-proxy`. */
  readonly service: string;
  /** The agent's log level. */
  readonly level: string;
  readonly [key: string]: unknown;
}

/** What a child says. */
export type ChildReport =
  | { readonly type: 'ready'; readonly url?: string }
  | { readonly type: 'error'; readonly message: string }
  | { readonly type: 'listening'; readonly url: string }
  /** The answer to the agent's `{type: 'metrics', id}`: the child's exposition (core/metrics.ts). */
  | { readonly type: 'metrics'; readonly id: number; readonly text: string };

/** Options of a {@link ChildService}. */
export interface ChildServiceOptions {
  readonly spawn: Spawn;
  readonly log: Logger;
  /** In logs (`metadata`, `messaging`, `metadata-proxy`). */
  readonly name: string;
  /** The program: `mammatus service run <name>`. */
  readonly argv: Argv;
  /** The system user it runs as (when the agent is root). */
  readonly user?: string;
  /** How long the child may take to say `ready` (default 30 s). */
  readonly readyTimeoutMs?: number;
  /** How long it may take to exit after SIGTERM before SIGKILL (default 10 s: the SQS API hands its leases back). */
  readonly stopTimeoutMs?: number;
  readonly minRestartMs?: number;
  readonly maxRestartMs?: number;
}

const LEVELS: Record<number, 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};

/**
 * Passes one output line of a child to `log`: a pino JSON line keeps its level, message and fields
 * (the child's own pid and time give way to the agent's); anything else (a crash trace) is a warning.
 */
export function relogChildLine(log: Logger, line: string): void {
  let rec: Record<string, unknown> | undefined;
  try {
    // A syslog priority prefix (a logger that thinks it writes to the journal) is not part of the record.
    const parsed: unknown = JSON.parse(line.replace(/^<\d>/, ''));
    if (parsed && typeof parsed === 'object' && typeof (parsed as { level?: unknown }).level === 'number')
      rec = parsed as Record<string, unknown>;
  } catch {
    rec = undefined;
  }
  if (!rec) return log.warn({ output: line }, 'child output');
  const { level, msg, time, pid, hostname, ...fields } = rec;
  void time;
  void hostname;
  const method = LEVELS[Number(level)] ?? 'info';
  log[method]({ ...fields, child_pid: pid }, typeof msg === 'string' ? msg : '');
}

/** Runs one service as a child; `start` resolves once it is ready. */
export class ChildService {
  private readonly supervisor: DaemonSupervisor;
  private init?: () => ChildInit;
  private waiter?: { resolve: (url: string | undefined) => void; reject: (err: Error) => void };
  private lastError?: string;
  /** Keep restarting after a failed start (a gateway's proxy) instead of stopping (a hosted service). */
  private keepTrying = false;
  /** Metrics requests waiting for their answer, by id. */
  private readonly asked = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void }>();
  private nextId = 1;

  constructor(private readonly opts: ChildServiceOptions) {
    const log = opts.log;
    this.supervisor = new DaemonSupervisor({
      spawn: opts.spawn,
      log,
      name: opts.name,
      user: opts.user,
      stopTimeoutMs: opts.stopTimeoutMs ?? 10_000,
      minRestartMs: opts.minRestartMs,
      maxRestartMs: opts.maxRestartMs,
      onLine: (line) => relogChildLine(log, line),
      onStart: (pid) => this.sendInit(pid),
      onMessage: (message) => this.onReport(message),
      onExit: (code) => {
        this.failAsked(new Error(`${opts.name} exited`));
        this.settle(new Error(this.lastError ?? this.exitReason(code)));
      },
    });
  }

  /** The child's PID while it runs. */
  get pid(): number | undefined {
    return this.supervisor.pid;
  }

  get running(): boolean {
    return this.supervisor.running;
  }

  /** How many times it was restarted after dying on its own. */
  get crashes(): number {
    return this.supervisor.crashes;
  }

  /** Its last output lines, joined, for error messages. */
  lastLines(n = 3): string {
    return this.supervisor.lastLines(n).join(' | ') || 'no output';
  }

  /**
   * (Re)starts the child; `init` builds its first message at every launch (a restart after a crash
   * too). Resolves with its URL once it says ready; rejects with its error (then it is stopped,
   * unless `keepTrying`: a supervised retry with backoff).
   */
  async start(init: () => ChildInit, opts: { keepTrying?: boolean } = {}): Promise<string | undefined> {
    this.init = init;
    this.keepTrying = opts.keepTrying ?? false;
    this.settle(new Error('replaced by a new start'));
    this.lastError = undefined;
    const ready = new Promise<string | undefined>((resolve, reject) => (this.waiter = { resolve, reject }));
    // Handled even when the spawn below throws and nobody awaits it (a later settle rejects it).
    ready.catch(() => undefined);
    const timeoutMs = this.opts.readyTimeoutMs ?? 30_000;
    const timer = setTimeout(
      () => this.settle(new Error(`not ready within ${Math.round(timeoutMs / 1000)}s: ${this.lastLines()}`)),
      timeoutMs,
    );
    try {
      // Inside the try: a spawn that throws must not leave the timer to fail the next start.
      await this.supervisor.restart(this.opts.argv);
      return await ready;
    } catch (err) {
      if (!this.keepTrying) await this.supervisor.stop();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends a message to the running child (a membership change); false when none runs. */
  send(message: Record<string, unknown>): boolean {
    return this.supervisor.send(message);
  }

  /**
   * The child's metrics in the text format: asks over the IPC channel and waits up to `timeoutMs`.
   * Rejects when no child runs, its channel is closed, it dies or it does not answer in time.
   */
  metrics(timeoutMs: number): Promise<string> {
    const id = this.nextId++;
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.asked.delete(id);
        reject(new Error(`${this.opts.name}: no metrics within ${timeoutMs} ms`));
      }, timeoutMs);
      const done =
        <T>(f: (v: T) => void) =>
        (v: T) => {
          clearTimeout(timer);
          this.asked.delete(id);
          f(v);
        };
      this.asked.set(id, { resolve: done(resolve), reject: done(reject) });
      if (!this.supervisor.send({ type: 'metrics', id })) this.asked.get(id)?.reject(new Error(`${this.opts.name} is not running`));
    });
  }

  /** Stops the child for good: SIGTERM, then SIGKILL after the stop timeout. */
  async stop(): Promise<void> {
    this.settle(new Error('stopped'));
    this.failAsked(new Error(`${this.opts.name} stopped`));
    await this.supervisor.stop();
  }

  private sendInit(pid: number | undefined): void {
    let message: ChildInit;
    try {
      message = this.init!();
    } catch (err) {
      // What the child needs cannot be read (a secret file gone): it must not run half-configured.
      this.lastError = errorMessage(err);
      this.opts.log.error({ err: this.lastError }, `${this.opts.name}: cannot build its settings; stopping it`);
      this.supervisor.signal('SIGTERM');
      return;
    }
    if (!this.supervisor.send(message)) this.opts.log.error({ child_pid: pid }, `${this.opts.name}: its IPC channel is closed`);
  }

  private onReport(message: unknown): void {
    const report = message as Partial<ChildReport> | null;
    if (report?.type === 'ready') {
      this.opts.log.info({ child_pid: this.pid, url: report.url }, `${this.opts.name} ready`);
      const w = this.waiter;
      this.waiter = undefined;
      w?.resolve(report.url);
    } else if (report?.type === 'error') {
      this.lastError = String(report.message);
      this.opts.log.error({ child_pid: this.pid, err: this.lastError }, `${this.opts.name} failed`);
    } else if (report?.type === 'listening') {
      this.opts.log.info({ child_pid: this.pid, url: report.url }, `${this.opts.name} listening`);
    } else if (report?.type === 'metrics' && typeof report.id === 'number' && typeof report.text === 'string') {
      this.asked.get(report.id)?.resolve(report.text);
    }
  }

  /** Rejects every metrics request still waiting (the child died or was stopped: no answer will come). */
  private failAsked(err: Error): void {
    for (const waiter of [...this.asked.values()]) waiter.reject(err);
  }

  /** Why a child died before it said anything: its error line, and what to do when it could not load. */
  private exitReason(code: number | null): string {
    const lines = this.supervisor.lastLines(50);
    const error = lines.find((l) => /^\w*Error\b/.test(l.trim()));
    const why = `exited with code ${code} before it was ready: ${error?.trim() ?? this.lastLines()}`;
    // A checkout in a private home directory: the service user cannot load the program.
    if (!/Cannot find module|EACCES/.test(why)) return why;
    return `${why} (the service user must be able to read ${this.opts.argv[1][0] ?? this.opts.argv[0]}: install the package, or make the path readable; docs/security.md)`;
  }

  /** Rejects a pending start with `err`, if one is pending. */
  private settle(err: Error): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(err);
  }
}

/** How hosted services run their children: the spawner, `mammatus` itself, the user and the log level (read at each start). */
export interface ChildWiring {
  readonly spawn: () => Promise<Spawn>;
  /** node and the bundle: the same program as the agent. */
  readonly mammatus: Argv;
  /** `services.user` of the agent config. */
  readonly user: () => string;
  /** `log.level` of the agent config. */
  readonly level: () => string;
}

/**
 * Adds `child`'s metrics to this process's exposition under `name` (core/metrics.ts text
 * sources) while it runs; returns how to remove them. A child that does not answer within
 * `timeoutMs` is left out of that scrape (and counted as a failed collector).
 */
export function exportChildMetrics(name: string, child: ChildService, timeoutMs = 2500): () => void {
  return addTextSource(name, () => child.metrics(timeoutMs));
}

/** `mammatus service run <name>`; `nodeFlags` go before the program (`mammatus[0]` is node). */
export function serviceArgv(mammatus: Argv, name: string, nodeFlags: readonly string[] = []): Argv {
  return [mammatus[0], [...nodeFlags, ...mammatus[1], 'service', 'run', name]];
}
