/**
 * Runs HAProxy for the gateway's balancers as a child of the agent, in master-worker mode
 * (`haproxy -W -S <master socket> -f haproxy.cfg`, foreground; core/process-supervisor.ts restarts
 * the master when it dies). The same contract as the role's other daemons: `validate` checks the
 * written files (`haproxy -c`) before anything goes live, `reload` makes them live, `health` checks
 * the result, and when one of them fails the role's apply puts the old files back and calls
 * `reload` again (roles/apply.ts), which this class treats like any other reload.
 *
 * A reload goes through the master socket: the master re-executes itself, starts a new worker on
 * the new files, hands it the listening sockets (`expose-fd listeners`) and lets the old worker
 * finish its connections, so no connection is refused or cut. HAProxy 2.6 answers `reload` with
 * nothing, so success is read from `show proc`: a new current worker, and no failed reload more.
 * Server changes that need no reload go through the admin socket (`applyChanges`).
 *
 * The workers run as the `haproxy` user when the host has one (render-haproxy-global.ts), and a
 * master left running by an agent that was killed (SIGKILL: no cleanup ran) is ended before ours
 * starts, or ours could never bind its ports. Bounds: `stop` takes at most STOP_MS plus the
 * SIGKILL; a start or reload `readyTimeoutMs`; the removals of one `applyChanges` share one drain
 * deadline.
 */
import path from 'node:path';
import type { Argv, FileOps, Logger, Run, Spawn } from '../../../core/contracts.js';
import { DaemonSupervisor } from '../../../core/process-supervisor.js';
import { errorMessage } from '../../../core/errors.js';
import { CommandFailedError } from '../../../core/exec.js';
import { HaproxyMaster, HaproxyRuntime } from './haproxy-runtime.js';
import type { RuntimeChange } from './plan-runtime.js';
import { findPasswdUser } from '../../../core/users.js';
import { configPath, serverOptions, type HaproxySettings } from './render-haproxy.js';
import { HAPROXY_USER, renderHaproxyUser, userConfigPath } from './render-haproxy-global.js';

/** How long a stopped master (ours, or one left from before) may take to exit before SIGKILL. */
const STOP_MS = 5000;

/**
 * openssl writing a self-signed P-256 certificate and its key (one PEM, as HAProxy reads it) for
 * `name` (subject and DNS name) to `out` (`-`: stdout). The placeholder's name is
 * `placeholder.invalid`, which no client asks for: it is only served to a client without SNI, or
 * to one asking for a name whose certificate is not there yet.
 */
export function selfSignedCertArgv(out: string, name = 'placeholder.invalid'): Argv {
  const subject = ['-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name}`, '-days', '36500'];
  return [
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', ...subject, '-keyout', out, '-out', out],
  ];
}

/** What the supervisor needs. */
export interface HaproxyDeps {
  readonly spawn: Spawn;
  readonly run: Run;
  readonly files: FileOps;
  readonly log: Logger;
  readonly settings: HaproxySettings;
  /** The HAProxy program (default `haproxy`, looked up on PATH). */
  readonly binary?: string;
  /** The master CLI socket (`-S`), mode 600. */
  readonly masterSocket: string;
  /** How long a start or reload may take to show a new worker answering (default 10 s). */
  readonly readyTimeoutMs?: number;
  readonly minRestartMs?: number;
  /** passwd-format file the workers' user is looked up in (default /etc/passwd). */
  readonly passwd?: string;
}

/** Supervises one HAProxy master and talks to its sockets. */
export class HaproxySupervisor {
  /** The master process: whether it runs, its PID, crashes and last output lines. */
  readonly process: DaemonSupervisor;
  /** The worker's runtime API. */
  readonly runtime: HaproxyRuntime;
  /** The master CLI. */
  readonly master: HaproxyMaster;

  constructor(private readonly deps: HaproxyDeps) {
    this.process = new DaemonSupervisor({
      spawn: deps.spawn,
      log: deps.log,
      name: 'haproxy',
      stopTimeoutMs: STOP_MS,
      ...(deps.minRestartMs === undefined ? {} : { minRestartMs: deps.minRestartMs }),
      // Its log lines (server up/down, reload) are worth info, unlike most daemons' chatter.
      onLine: (line) => deps.log.info({ haproxy: line }, 'haproxy'),
    });
    this.runtime = new HaproxyRuntime(deps.settings.adminSocket);
    this.master = new HaproxyMaster(deps.masterSocket);
  }

  private get argv(): Argv {
    return [this.deps.binary ?? 'haproxy', ['-W', '-S', `${this.deps.masterSocket},mode,600`, ...this.configArgs]];
  }

  /** The workers' user include, then the balancers' config (one `global` is both files'). */
  private get configArgs(): string[] {
    return ['-f', userConfigPath(this.deps.settings), '-f', configPath(this.deps.settings)];
  }

  /**
   * Directories, the workers' user include (the `haproxy` user as /etc/passwd has it now), and the
   * placeholder certificate `tls acme` binds until real ones exist (see render-haproxy.ts):
   * self-signed for `placeholder.invalid`, made once by openssl.
   */
  async prepare(): Promise<void> {
    const s = this.deps.settings;
    const dirs = [s.configDir, s.certDir, path.dirname(s.adminSocket), path.dirname(this.deps.masterSocket)];
    await this.deps.run('install', ['-d', '-m', '0755', ...new Set(dirs)]);
    const user = findPasswdUser((await this.deps.files.read(this.deps.passwd ?? '/etc/passwd')) ?? '', HAPROXY_USER);
    const include = renderHaproxyUser(user);
    if ((await this.deps.files.read(userConfigPath(s))) !== include) {
      if (!user) this.deps.log.warn(`no ${HAPROXY_USER} user: HAProxy's workers run as root (apt-get install haproxy creates it)`);
      await this.deps.files.write(userConfigPath(s), include, 0o644);
    }
    if ((await this.deps.files.read(s.placeholderCert)) !== undefined) return;
    const [file, args] = selfSignedCertArgv('-');
    const out = await this.deps.run(file, args);
    await this.deps.files.write(s.placeholderCert, out.stdout, 0o600);
  }

  /** `haproxy -c` (after `prepare`): rejects with HAProxy's alerts when the written files are not valid. */
  async validate(): Promise<void> {
    // -c reads the placeholder certificate a `tls acme` bind names: make it before the first check.
    await this.prepare();
    // Not -q: it silences the alerts too, and they are the message.
    await this.deps.run(this.deps.binary ?? 'haproxy', ['-c', ...this.configArgs], { timeoutMs: 30_000 }).catch((err: unknown) => {
      const stderr = err instanceof CommandFailedError ? err.stderr : '';
      const alerts = stderr.split('\n').filter((l) => l.includes('[ALERT]') && !/Fatal errors found/.test(l));
      const why = alerts.map((l) => l.replace(/^\[ALERT\]\s+\(\d+\) : /, '').trim()).join('; ');
      throw new Error(`haproxy -c refused the config: ${why || errorMessage(err)}`, { cause: err });
    });
  }

  /** Starts HAProxy unless it runs (after an agent restart); waits for its admin socket. */
  async ensureRunning(): Promise<void> {
    if (this.process.running) return;
    await this.prepare();
    // Ours may have been restarted (after a crash) meanwhile: then it is no orphan to end.
    if (!this.process.running) await this.endOrphan();
    this.process.ensureRunning(this.argv);
    await this.waitReady(undefined);
  }

  /**
   * Makes the written files live: starts HAProxy when it is not running, else a seamless reload
   * through the master. Rejects when no new worker answers within the timeout or the master
   * counts a failed reload (the old worker then keeps serving the old config).
   */
  async reload(): Promise<void> {
    if (!this.process.running) return this.ensureRunning();
    const before = await this.master.processes();
    const old = before.find((p) => p.type === 'worker' && p.reloads === 0)?.pid;
    const failed = before.find((p) => p.type === 'master')?.failed ?? 0;
    await this.master.reload();
    await this.waitReady(old, failed);
  }

  /** The current worker answers on the admin socket, and is the master's current worker. */
  async health(): Promise<void> {
    if (!this.process.running) throw new Error(`haproxy is not running: ${this.process.lastLines(3).join(' | ')}`);
    const [info, worker] = await Promise.all([this.runtime.info(), this.master.currentWorker()]);
    if (Number(info.Pid) !== worker) throw new Error(`haproxy: the admin socket is worker ${info.Pid}, the current one is ${worker}`);
  }

  /**
   * Applies server changes through the runtime API, in order. Returns the ones that failed (with
   * why); the caller then reloads, which the written files make right. Removals wait for their
   * server's connections within one shared `drainMs` (default 2 s), not `drainMs` each.
   */
  async applyChanges(changes: readonly RuntimeChange[], drainMs = 2000): Promise<string[]> {
    const errors: string[] = [];
    const opts = serverOptions(this.deps.settings);
    const deadline = Date.now() + drainMs;
    for (const c of changes) {
      try {
        if (c.op === 'add') await this.runtime.addServer(c.backend, c.server, c.address, opts);
        else if (c.op === 'readdress') await this.runtime.setAddress(c.backend, c.server, c.addr, c.port);
        else if ((await this.runtime.removeServer(c.backend, c.server, Math.max(0, deadline - Date.now()))) === 'maint') {
          this.deps.log.info({ ...c }, 'haproxy server still has connections: left in maintenance until the next reload');
          continue;
        }
        this.deps.log.info({ ...c }, 'haproxy server changed at run time');
      } catch (err) {
        errors.push(`${c.op} ${c.backend}/${c.server}: ${errorMessage(err)}`);
      }
    }
    return errors;
  }

  /**
   * Stops HAProxy for good (no balancer left, role removed, agent stopping): SIGTERM to the master,
   * which ends its workers (old ones still draining included) at once; SIGKILL after STOP_MS, and
   * the workers then exit on their own when their pipe to the master closes.
   */
  stop(): Promise<void> {
    return this.process.stop();
  }

  /**
   * Ends a master that answers on our master socket but is not our child: one an agent killed
   * with SIGKILL left behind, still holding the ports. Its PIDs come from its own `show proc`, on
   * a socket only root can reach (mode 600 in our run dir).
   */
  private async endOrphan(): Promise<void> {
    const procs = await new HaproxyMaster(this.deps.masterSocket, { timeoutMs: 1000 }).processes().catch(() => []);
    const pids = procs.filter((p) => p.type === 'master' || p.type === 'worker').map((p) => String(p.pid));
    if (!pids.length) return;
    this.deps.log.warn({ pids }, 'an haproxy master from before the agent restarted still runs: stopping it');
    for (const [signal, ms] of [
      ['-TERM', STOP_MS],
      ['-KILL', 1000],
    ] as const) {
      // Some may be gone already (kill then fails for them, and signals the rest).
      await this.deps.run('kill', [signal, ...pids]).catch(() => undefined);
      if (await this.allGone(pids, ms)) return;
    }
    throw new Error(`haproxy processes ${pids.join(', ')} from before the agent restarted did not exit`);
  }

  /** Polls /proc until none of `pids` runs (gone, or a zombie nobody reaped) or `ms` pass. */
  private async allGone(pids: readonly string[], ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    for (;;) {
      const stats = await Promise.all(pids.map((pid) => this.deps.files.read(`/proc/${pid}/stat`).catch(() => undefined)));
      // `pid (comm) S ...`: the state follows the last parenthesis (comm may hold some).
      if (stats.every((st) => st === undefined || st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3) === 'Z')) return true;
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Polls until a worker other than `old` is current and answers; a failed reload ends it early. */
  private async waitReady(old: number | undefined, failedBefore = 0): Promise<void> {
    const deadline = Date.now() + (this.deps.readyTimeoutMs ?? 10_000);
    let last = 'no answer';
    for (let wait = 20; Date.now() < deadline; wait = Math.min(wait * 2, 250)) {
      await new Promise((r) => setTimeout(r, wait));
      if (!this.process.running) break;
      try {
        const procs = await this.master.processes();
        const failed = procs.find((p) => p.type === 'master')?.failed ?? 0;
        if (failed > failedBefore) throw new Error(`reload failed: ${this.process.lastLines(3).join(' | ')}`);
        const worker = procs.find((p) => p.type === 'worker' && p.reloads === 0)?.pid;
        if (worker === undefined || worker === old) continue;
        const info = await this.runtime.info();
        if (Number(info.Pid) === worker) return;
        last = `admin socket still answers as worker ${info.Pid}`;
      } catch (err) {
        if (/reload failed/.test(errorMessage(err))) throw err;
        last = errorMessage(err);
      }
    }
    throw new Error(`haproxy did not come up: ${last}; ${this.process.lastLines(3).join(' | ')}`);
  }
}
