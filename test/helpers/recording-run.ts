/**
 * A fake `Run` for unit tests: it records every call as `[file, ...args]` and answers from a
 * script, so tests assert on the exact commands a role issued instead of mocking modules.
 */
import { CommandFailedError } from '../../core/exec.js';
import type { Run, RunOptions, RunResult } from '../../core/contracts.js';

/**
 * Decides the outcome of one call from its argv. Return a result, an `Error` to reject with, or
 * `undefined` for success with empty output.
 */
export type RunScript = (argv: readonly string[], options?: RunOptions) => RunResult | Error | undefined;

/** A `Run` that also exposes what it was asked to do. */
export type RecordingRun = Run & {
  /** Every call in order, as `[file, ...args]`. */
  readonly calls: string[][];
};

/** Builds a recording `Run`; without a script every command succeeds with empty output. */
export function recordingRun(script: RunScript = () => undefined): RecordingRun {
  const calls: string[][] = [];
  const run = async (file: string, args: readonly string[], options?: RunOptions): Promise<RunResult> => {
    const argv = [file, ...args];
    calls.push(argv);
    const outcome = script(argv, options);
    if (outcome instanceof Error) throw outcome;
    return outcome ?? { stdout: '', stderr: '', exitCode: 0 };
  };
  return Object.assign(run, { calls });
}

/** The error the real runner throws for a non-zero exit, for scripts that want to fail a command. */
export function commandFailed(argv: readonly string[], exitCode = 1, stderr = ''): CommandFailedError {
  return new CommandFailedError(`${argv.join(' ')}: exit code ${exitCode}`, {
    cmd: [...argv],
    exitCode,
    stderr,
    timedOut: false,
  });
}
