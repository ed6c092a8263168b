/**
 * The CA backend on a controller (docs/ca.md): caddy or step-ca, run as a supervised child of the
 * agent (restarted with backoff when it dies), as its package's system user when the agent is root.
 * The role renders its config (ca-render.ts); this module decides which backend runs, validates a
 * config before it goes live, starts and restarts the process, and proves it works by fetching the
 * ACME directory over TLS with the cluster's root as the only trust.
 *
 * The backend needs the CA files (root, intermediate, its key), which `mammatus ca init` and the
 * agents write, not the role: until they exist the backend waits, and while the role runs a poll
 * notices when they appear or change (an intermediate rotated), validates the backend with them
 * and restarts it. A bad file never replaces a backend that works: it keeps running with what it
 * loaded, and the error shows in the role's status.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { FileOps, Logger, Run, Spawn } from '../../core/contracts.js';
import { errorMessage } from '../../core/errors.js';
import { DaemonSupervisor } from '../../core/process-supervisor.js';
import type { DirStat } from './nats-user.js';
import type { CaConfig } from './config.js';
import { CA_NAME, caConfigPaths } from './ca-render.js';
import {
  backendArgv,
  chooseBackend,
  findProgram,
  prepareCaUser,
  httpsProbe,
  localDirectoryUrl,
  type CaBackendKind,
  type DirectoryProbe,
} from './ca-launch.js';

export {
  backendArgv,
  chooseBackend,
  findProgram,
  httpsProbe,
  localDirectoryUrl,
  type CaBackendKind,
  type DirectoryProbe,
} from './ca-launch.js';

/** What the backend needs from the agent; the defaults read the real machine. */
export interface CaBackendDeps {
  readonly spawn: Spawn;
  readonly run: Run;
  readonly files: FileOps;
  readonly log: Logger;
  readonly probe?: DirectoryProbe;
  /** The path of an executable found on PATH (or the absolute path itself), undefined when absent. */
  readonly which?: (program: string) => string | undefined;
  readonly euid?: () => number;
  readonly passwd?: () => string;
  /** A directory's owner and mode, undefined when absent (default: fs.stat). */
  readonly stat?: (path: string) => Promise<DirStat | undefined>;
  /** How long a (re)started backend may take to answer the directory (default 30 s). */
  readonly healthTimeoutMs?: number;
  /** How often the CA files are checked while the role runs (default 15 s). */
  readonly pollMs?: number;
  readonly minRestartMs?: number;
  readonly maxRestartMs?: number;
}

/** What the role's status shows about the CA. */
export interface CaState {
  readonly state: 'off' | 'waiting' | 'running' | 'error';
  readonly backend?: CaBackendKind;
  readonly error?: string;
}

/** Runs one CA backend for the controller role. */
export class CaBackend {
  private supervisor: DaemonSupervisor | undefined;
  private running: { kind: CaBackendKind; key: string; user: string | undefined } | undefined;
  private cfg: CaConfig | undefined;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private current: CaState = { state: 'off' };
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly deps: CaBackendDeps) {}

  /** What the status shows. */
  get state(): CaState {
    return this.current;
  }

  /** The running backend's process, for tests and logs. */
  get pid(): number | undefined {
    return this.supervisor?.pid;
  }

  /** Which backend `ca` runs here. */
  kind(ca: CaConfig): CaBackendKind {
    return chooseBackend(ca, this.deps.which ?? findProgram);
  }

  /** The root (PEM) and a digest of the three CA files, or undefined while any is missing (before `mammatus ca init`). */
  async caFiles(ca: CaConfig): Promise<{ root: string; digest: string } | undefined> {
    const [root, inter, key] = await Promise.all(
      [ca.paths.root_cert, ca.paths.intermediate_cert, ca.paths.intermediate_key].map((p) => this.deps.files.read(p)),
    );
    if (!root || !inter || !key) return undefined;
    // A digest, so the key itself is kept nowhere else.
    return { root, digest: createHash('sha256').update(`${root}\0${inter}\0${key}`).digest('hex') };
  }

  /**
   * Checks the backend's rendered config with the CA files as they are: `caddy validate` (which
   * loads the certificates and key), or for step-ca that the binary runs and the JSON parses.
   * Resolves without checking while the CA files are missing (nothing will run yet).
   */
  async validate(ca: CaConfig): Promise<void> {
    if (!ca.enabled || !(await this.caFiles(ca))) return;
    const kind = this.kind(ca);
    const paths = caConfigPaths(ca);
    // A missing binary is the status's to say (apply), not a reason to roll the role's files back.
    if (!(this.deps.which ?? findProgram)(kind === 'caddy' ? ca.caddy_binary : ca.step_ca_binary)) return;
    if (kind === 'step-ca') {
      JSON.parse((await this.deps.files.read(paths.stepCa)) ?? '');
      await this.deps.run(ca.step_ca_binary, ['version']);
      return;
    }
    // A scratch data directory: validating provisions acme_server, which must not touch the running one's database.
    const scratch = path.join(ca.paths.data_dir, 'validate');
    await this.deps.run('mkdir', ['-p', scratch]);
    await this.deps
      .run(ca.caddy_binary, ['validate', '--config', paths.caddy], { env: { XDG_DATA_HOME: scratch, HOME: scratch } })
      .catch((err: Error & { stderr?: string }) => {
        const why = (err.stderr ?? '').split('\n').find((l) => l.startsWith('Error:')) ?? err.stderr?.trim() ?? err.message;
        throw new Error(`caddy validate rejected ${paths.caddy}: ${why || err.message}`);
      });
  }

  /**
   * Brings the backend in line with `ca` and the files on disk: stopped when disabled, waiting
   * while the CA files are missing, (re)started when its config, the CA files or the user changed
   * (or `force`), and then health-checked. Rejects when the started backend does not answer.
   */
  apply(ca: CaConfig, opts: { force?: boolean } = {}): Promise<void> {
    this.cfg = ca;
    // One at a time: the role's reload, its start and the poll may ask at once.
    const next = this.queue.then(() => this.applyNow(ca, opts));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async applyNow(ca: CaConfig, opts: { force?: boolean }): Promise<void> {
    if (!ca.enabled) {
      await this.stopProcess();
      this.current = { state: 'off' };
      return;
    }
    const pki = await this.caFiles(ca);
    const kind = this.kind(ca);
    const paths = caConfigPaths(ca);
    if ((await this.deps.files.read(kind === 'caddy' ? paths.caddy : paths.stepCa)) === undefined) {
      // The role left this node, or its first apply was rolled back.
      await this.stopProcess();
      this.current = { state: 'off' };
      return;
    }
    const binary = kind === 'caddy' ? ca.caddy_binary : ca.step_ca_binary;
    if (!(this.deps.which ?? findProgram)(binary)) {
      // Not a reason to roll NATS back: the status says what to install.
      await this.stopProcess();
      this.current = { state: 'error', backend: kind, error: `${binary} is not installed (apt-get install caddy, or step-ca)` };
      return;
    }
    if (!pki) {
      await this.stopProcess();
      this.current = { state: 'waiting', backend: kind, error: 'no CA files yet: run `mammatus ca init`' };
      return;
    }
    const user = await prepareCaUser(this.deps, kind, ca);
    const key = await this.launchKey(ca, kind, pki.digest);
    const sup = await this.supervisorFor(kind, user);
    if (opts.force || !sup.running || this.running?.key !== key || this.running.user !== user) {
      this.running = { kind, key, user };
      await sup.restart(backendArgv(kind, ca));
    }
    try {
      await this.waitHealthy(ca, pki.root);
      this.current = { state: 'running', backend: kind };
    } catch (err) {
      this.current = { state: 'error', backend: kind, error: errorMessage(err) };
      throw err;
    }
  }

  /** Starts the poll that follows the CA files (appearing, rotated); idempotent. */
  follow(ca: CaConfig): void {
    this.cfg = ca;
    if (this.timer) return;
    const tick = () => {
      this.polling = this.poll().finally(() => {
        if (this.timer) this.timer = setTimeout(tick, this.deps.pollMs ?? 15_000);
      });
    };
    this.timer = setTimeout(tick, this.deps.pollMs ?? 15_000);
  }

  /** Stops the poll and the backend for good (role stopped or removed). */
  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.polling;
    await this.stopProcess();
    this.current = { state: 'off' };
  }

  /** One check of the CA files: a change is validated first, and only then restarts the backend. */
  private async poll(): Promise<void> {
    const ca = this.cfg;
    if (!ca?.enabled) return;
    try {
      const pki = await this.caFiles(ca);
      if (!pki && this.current.state === 'waiting') return;
      if (pki && this.current.state === 'running' && this.supervisor?.running) {
        if ((await this.launchKey(ca, this.kind(ca), pki.digest)) === this.running?.key) return;
      }
      await this.validate(ca);
      await this.apply(ca);
      this.deps.log.info({ backend: this.current.backend, state: this.current.state }, 'CA backend follows the CA files');
    } catch (err) {
      // The running backend keeps what it loaded; the status says why nothing changed.
      this.current = { ...this.current, state: 'error', error: errorMessage(err) };
      this.deps.log.error({ err: errorMessage(err) }, 'CA backend: the changed CA files were not taken up');
    }
  }

  /** What a running backend was started from: equal keys, nothing to restart. */
  private async launchKey(ca: CaConfig, kind: CaBackendKind, pkiDigest: string): Promise<string> {
    const paths = caConfigPaths(ca);
    const file = kind === 'caddy' ? paths.caddy : paths.stepCa;
    const conf = await this.deps.files.read(file);
    if (conf === undefined) throw new Error(`${kind}'s config is missing (${file})`);
    return createHash('sha256')
      .update(`${kind}\0${JSON.stringify(backendArgv(kind, ca))}\0${conf}\0${pkiDigest}`)
      .digest('hex');
  }

  /** Polls the directory until it answers 200; stops early when the backend died. */
  private async waitHealthy(ca: CaConfig, rootPem: string): Promise<void> {
    const probe = this.deps.probe ?? httpsProbe;
    const url = localDirectoryUrl(ca);
    const timeoutMs = this.deps.healthTimeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    const crashes = this.supervisor?.crashes ?? 0;
    let last: string;
    for (;;) {
      try {
        const res = await probe(url, rootPem, CA_NAME);
        if (res.status === 200 && res.body.includes('newOrder')) return;
        last = `HTTP ${res.status} ${res.body.trim().slice(0, 200)}`;
      } catch (err) {
        const e = err as { code?: string; message?: string };
        last = e.code ?? e.message ?? String(err);
      }
      const sup = this.supervisor;
      if (!sup?.running || sup.crashes !== crashes) throw new Error(`CA backend exited: ${sup?.lastLines(3).join(' | ') || 'no output'}`);
      if (Date.now() >= deadline) throw new Error(`${url} not healthy after ${Math.round(timeoutMs / 1000)}s: ${last}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  private async supervisorFor(kind: CaBackendKind, user: string | undefined): Promise<DaemonSupervisor> {
    if (this.supervisor && this.running?.kind === kind && this.running.user === user) return this.supervisor;
    // Another backend or user: the old process goes first (it holds the port).
    await this.supervisor?.stop();
    const log = this.deps.log;
    this.supervisor = new DaemonSupervisor({
      spawn: this.deps.spawn,
      log,
      name: kind,
      ...(user ? { user } : {}),
      minRestartMs: this.deps.minRestartMs,
      maxRestartMs: this.deps.maxRestartMs,
      onStart: (pid) => log.info({ ca_pid: pid, backend: kind, user: user ?? null }, 'CA backend started'),
    });
    return this.supervisor;
  }

  private async stopProcess(): Promise<void> {
    await this.supervisor?.stop();
    this.running = undefined;
  }
}
