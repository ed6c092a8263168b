/**
 * The one place mammatus spawns processes. Everything else receives a `Run` or a `Spawn` and so can
 * be tested with a recording fake. Commands are argv arrays handed to execa without a shell: the
 * agent only calls known tools, and a shell would turn cluster-supplied strings into code. execa is
 * loaded on first use (a run, or building the spawner): an agent that runs nothing never loads it.
 */
import type { ExecaError } from 'execa';
import type { Run, RunOptions, RunResult, Spawn } from './contracts.js';

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

/** Builds the production `Spawn` for daemons a role supervises (dnsmasq …), backed by execa (loaded here). */
export async function buildSpawn(): Promise<Spawn> {
  const { execa } = await loadExeca();
  return (file, args, options = {}) => {
    const child = execa(file, [...args], {
      stdin: 'ignore',
      all: true,
      buffer: false,
      reject: false,
      shell: false,
      // Killed with the agent, so a crashed agent leaves no orphan daemon holding the ports.
      cleanup: true,
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
    return {
      pid: child.pid,
      exited: child.then(
        (r) => r.exitCode ?? null,
        () => null,
      ),
      kill: (signal = 'SIGTERM') => void child.kill(signal),
    };
  };
}
