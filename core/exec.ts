/**
 * The one place mammatus spawns processes. Everything else receives a `Run` or a `Spawn` and so can
 * be tested with a recording fake. Commands are argv arrays handed to execa without a shell: the
 * agent only calls known tools, and a shell would turn cluster-supplied strings into code. execa is
 * loaded on first use (a run, or building the spawner): an agent that runs nothing never loads it.
 */
import type { ExecaError } from 'execa';
import { accessSync, constants, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Daemon, Logger, Run, RunOptions, RunResult, Spawn } from './contracts.js';
import { FALLBACK_SERVICE_USER, findPasswdUser, type SystemUser } from './users.js';
import { runnableProgram } from './program-stage.js';

let execaModule: Promise<typeof import('execa')> | undefined;
/** execa, loaded once; a failed load is tried again on the next call, not remembered. */
const loadExeca = () =>
  (execaModule ??= import('execa').catch((err: unknown) => {
    execaModule = undefined;
    throw err;
  }));

/** Used when neither the factory nor the call sets a timeout; a hung tool must not stall a reconcile. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/** Why a command did not succeed: non-zero exit, timeout, or a binary that could not be started. */
export class CommandFailedError extends Error {
  override readonly name = 'CommandFailedError';
  /** The full argv, file first. */
  readonly cmd: string[];
  /** Exit code, or `undefined` when the process never exited normally (signal, timeout, ENOENT). */
  readonly exitCode: number | undefined;
  readonly stderr: string;
  readonly timedOut: boolean;

  constructor(
    message: string,
    fields: { cmd: string[]; exitCode: number | undefined; stderr: string; timedOut: boolean },
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.cmd = fields.cmd;
    this.exitCode = fields.exitCode;
    this.stderr = fields.stderr;
    this.timedOut = fields.timedOut;
  }
}

/** Options for {@link buildRun}. */
export interface BuildRunOptions {
  /** Timeout for calls that do not pass their own `timeoutMs`; defaults to {@link DEFAULT_TIMEOUT_MS}. */
  readonly defaultTimeoutMs?: number;
}

/** Builds the production `Run`, backed by execa. */
export function buildRun(opts: BuildRunOptions = {}): Run {
  const defaultTimeoutMs = opts.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  return async (file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> => {
    const cmd = [file, ...args];
    const { execa, ExecaError } = await loadExeca();
    try {
      const result = await execa(file, [...args], {
        timeout: options.timeoutMs ?? defaultTimeoutMs,
        // Without input, close stdin so a tool that unexpectedly prompts fails instead of waiting
        // for the timeout.
        ...(options.input === undefined ? { stdin: 'ignore' as const } : { input: options.input }),
        // execa extends process.env with these (extendEnv), so callers add variables without
        // losing PATH.
        ...(options.env === undefined ? {} : { env: { ...options.env } }),
        ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
        shell: false,
        reject: true,
      });
      return { stdout: result.stdout, stderr: result.stderr, exitCode: result.exitCode ?? 0 };
    } catch (err) {
      throw toCommandFailedError(cmd, err, ExecaError);
    }
  };
}

/** Maps whatever execa threw into our one typed error, keeping the original as `cause`. */
function toCommandFailedError(cmd: string[], err: unknown, execaError: typeof ExecaError): CommandFailedError {
  if (err instanceof execaError) {
    const stderr = typeof err.stderr === 'string' ? err.stderr : '';
    // shortMessage names the reason (exit code, signal, ENOENT, timeout) and the command, but
    // leaves out stdout/stderr, which can be long and belong in the `stderr` field.
    return new CommandFailedError(err.shortMessage, { cmd, exitCode: err.exitCode, stderr, timedOut: err.timedOut }, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new CommandFailedError(`${cmd.join(' ')}: ${message}`, { cmd, exitCode: undefined, stderr: '', timedOut: false }, { cause: err });
}

/** Options of {@link buildSpawn}; the defaults read the real process and machine. */
export interface BuildSpawnOptions {
  /** Where "user not found, falling back" goes (once per user name). */
  readonly log?: Pick<Logger, 'error'>;
  /** The agent's effective uid (`process.geteuid`); users are switched only from 0. */
  readonly euid?: () => number;
  /** passwd-format text to resolve user names in (default: /etc/passwd, read at each spawn). */
  readonly passwd?: () => string;
}

/** What a child is run as: the ids to switch to, or undefined to keep the agent's own. */
function childIdentity(user: string | undefined, opts: BuildSpawnOptions, warned: Set<string>): { ids?: SystemUser; error?: string } {
  const euid = opts.euid ?? (() => process.geteuid?.() ?? -1);
  // Not root: the agent cannot change users and need not (tests, development machines).
  if (user === undefined || euid() !== 0) return {};
  const passwd = (opts.passwd ?? (() => readFileSync('/etc/passwd', 'utf8')))();
  const found = findPasswdUser(passwd, user);
  if (found) return { ids: found };
  if (!warned.has(user)) {
    warned.add(user);
    opts.log?.error(
      { user, fallback: FALLBACK_SERVICE_USER },
      `system user ${user} does not exist: what should run as ${user} runs as ${FALLBACK_SERVICE_USER} instead; ` +
        `create it (useradd --system --no-create-home --shell /usr/sbin/nologin ${user}) and restart the agent`,
    );
  }
  const fallback = findPasswdUser(passwd, FALLBACK_SERVICE_USER);
  if (fallback) return { ids: fallback };
  // Never run a tenant-facing service as root because a user is missing.
  return { error: `neither ${user} nor ${FALLBACK_SERVICE_USER} exists in /etc/passwd: not started` };
}

/** The whole environment of a service child: a PATH and the locale, nothing the agent was given. */
function serviceEnv(): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' };
  for (const key of ['LANG', 'LC_ALL', 'TZ']) if (process.env[key]) env[key] = process.env[key]!;
  return env;
}

/** A daemon that never ran: its reason goes to `onLine`, and it has exited. */
function notStarted(reason: string, onLine?: (line: string) => void): Daemon {
  onLine?.(reason);
  return { pid: undefined, exited: Promise.resolve(null), kill: () => undefined };
}

/**
 * Builds the production `Spawn` for daemons a role supervises (dnsmasq, nats-server, the
 * tenant-facing services), backed by execa (loaded here). With `user`, a root agent's child runs
 * as that user (libuv sets the gid, clears the supplementary groups, then sets the uid, so the
 * child keeps no capability) in `/` (the agent's working directory may be closed to that user).
 */
export async function buildSpawn(opts: BuildSpawnOptions = {}): Promise<Spawn> {
  const { execa } = await loadExeca();
  const warned = new Set<string>();
  return (file, args, options = {}) => {
    const who = childIdentity(options.user, opts, warned);
    if (who.error) return notStarted(who.error, options.onLine);
    // A program the user cannot read (a checkout or a Node in root's home) runs from a staged copy.
    const program = who.ids ? runnableProgram(file, args, who.ids) : { file, args };
    const child = execa(program.file, [...program.args], {
      stdin: 'ignore',
      all: true,
      buffer: false,
      reject: false,
      shell: false,
      // Killed with the agent, so a crashed agent leaves no orphan daemon holding the ports.
      cleanup: true,
      ...(who.ids ? { uid: who.ids.uid, gid: who.ids.gid, cwd: '/' } : {}),
      // A service run as another user inherits nothing of the agent's environment (SERF_RPC_AUTH …).
      ...(options.user === undefined ? {} : { extendEnv: false, env: serviceEnv() }),
      ...(options.onMessage ? { ipc: true, serialization: 'json' as const } : {}),
    });
    if (options.onLine && child.all) {
      let rest = '';
      child.all.setEncoding('utf8');
      child.all.on('data', (chunk: string) => {
        const lines = (rest + chunk).split('\n');
        rest = lines.pop() ?? '';
        for (const line of lines) if (line) options.onLine!(line);
      });
    }
    if (options.onMessage) child.on('message', (message: unknown) => options.onMessage!(message));
    return {
      pid: child.pid,
      exited: child.then(
        (r) => r.exitCode ?? null,
        () => null,
      ),
      kill: (signal = 'SIGTERM') => void child.kill(signal),
      ...(options.onMessage
        ? {
            send: (message: unknown) => {
              if (!child.connected) return false;
              // A child that died meanwhile closes the channel: the error is its exit's to report.
              child.send(message as object, (err) => void err);
              return true;
            },
          }
        : {}),
    };
  };
}

/** The executable `name` from PATH, then `extraDirs` (the sbin dirs a root shell has); undefined if none. */
export function findOnPath(name: string, extraDirs: readonly string[] = []): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), ...extraDirs]) {
    if (!dir) continue;
    const file = path.join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      /* next */
    }
  }
  return undefined;
}
