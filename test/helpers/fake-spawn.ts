/**
 * A fake `Spawn` for unit tests: every "process" it starts is recorded with its argv and the
 * signals it was sent, and the test decides when it exits (a crash) or says something (`say`).
 * SIGHUP is recorded without ending the process, as daemons reload on it; any other signal ends it
 * unless the test says the process ignores it.
 */
import type { Daemon, Spawn } from '../../core/contracts.js';

/** One process the fake started. */
export interface FakeProcess {
  readonly file: string;
  readonly args: readonly string[];
  /** The `user` option it was started with. */
  readonly user?: string;
  readonly pid: number;
  /** Signals sent to it, in order. */
  readonly signals: NodeJS.Signals[];
  /** True once it has exited. */
  readonly exitedYet: boolean;
  /** Ends the process with `code` (null = killed by a signal), as a crash would. */
  exit(code: number | null): void;
  /** Emits one output line, as the process would print it. */
  say(line: string): void;
}

/** A `Spawn` plus everything it started. */
export type FakeSpawn = Spawn & { readonly started: FakeProcess[] };

/** Options for {@link fakeSpawn}. */
export interface FakeSpawnOptions {
  /** Signals that do not end a process (default: SIGHUP only). */
  readonly ignore?: readonly NodeJS.Signals[];
}

/** Builds a fake spawner; pids count up from 1001. */
export function fakeSpawn(opts: FakeSpawnOptions = {}): FakeSpawn {
  const ignore = opts.ignore ?? ['SIGHUP'];
  const started: FakeProcess[] = [];
  const spawn: Spawn = (file, args, options = {}) => {
    let resolveExit!: (code: number | null) => void;
    const exited = new Promise<number | null>((resolve) => (resolveExit = resolve));
    let done = false;
    const proc: FakeProcess = {
      file,
      args: [...args],
      ...(options.user === undefined ? {} : { user: options.user }),
      pid: 1001 + started.length,
      signals: [],
      get exitedYet() {
        return done;
      },
      exit(code) {
        if (done) return;
        done = true;
        resolveExit(code);
      },
      say(line) {
        options.onLine?.(line);
      },
    };
    started.push(proc);
    const daemon: Daemon = {
      pid: proc.pid,
      exited,
      kill(signal = 'SIGTERM') {
        proc.signals.push(signal);
        if (!ignore.includes(signal)) proc.exit(null);
      },
    };
    return daemon;
  };
  return Object.assign(spawn, { started });
}
