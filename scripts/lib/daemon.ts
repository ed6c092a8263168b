/**
 * What every launcher in this harness does with the daemon it spawns: find the program on PATH,
 * wait until the daemon is ready or has died (whichever comes first), and stop it by its PID with
 * a signal, escalating to SIGKILL when it does not exit in time.
 */
import type { ChildProcess } from 'node:child_process';

export { findOnPath } from '../../core/exec.js';

/** A spawned daemon, stoppable by its PID. */
export interface Daemon {
  /** Resolves with the exit code (null when a signal ended it, or when it could not be started). */
  readonly exited: Promise<number | null>;
  /** Why the program could not be started (ENOENT, EACCES), once `exited` resolved; else undefined. */
  spawnError(): Error | undefined;
  /** Sends `signal` (nothing when it already exited) and waits for the exit; SIGKILL after `killAfterMs`. */
  stop(signal: NodeJS.Signals, killAfterMs?: number): Promise<number | null>;
}

/** Tracks `child` from its spawn on (call it right after spawn, so no exit is missed). */
export function trackDaemon(child: ChildProcess): Daemon {
  let failed: Error | undefined;
  // A program that cannot be started emits 'error' and never 'exit'.
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', (err) => {
      failed = err;
      resolve(null);
    });
  });
  return {
    exited,
    spawnError: () => failed,
    async stop(signal, killAfterMs = 5000) {
      if (failed) return null;
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/**
 * Waits for `ready`; when the daemon exits first (or `ready` fails) it is killed and the error
 * names `what` and its log file.
 */
export async function untilReady(daemon: Daemon, ready: Promise<unknown>, what: string, logFile: string): Promise<void> {
  try {
    await Promise.race([
      ready,
      daemon.exited.then((code) => {
        const failed = daemon.spawnError();
        throw new Error(failed ? `${what} could not be started: ${failed.message}` : `${what} exited (${code}) at start; see ${logFile}`);
      }),
    ]);
  } catch (err) {
    await daemon.stop('SIGKILL');
    throw err;
  }
}
