/**
 * A recording fake RemoteHost for `node add` / `node remove` unit tests: files live in a map, the
 * status commands answer from sets, and every argv is recorded. systemctl behaves as the real one
 * does where it matters: `is-enabled a b` exits 0 when any of the units is enabled.
 */
import { createHash } from 'node:crypto';
import type { RemoteHost, RemoteResult } from '../../core/ssh-remote.js';

/** What the fake host holds and how it answers. */
export interface FakeHostState {
  readonly files: Map<string, { content: string; mode: number }>;
  /** Pid files (without systemd) or units (with) that are running. */
  readonly running: Set<string>;
  readonly systemd?: boolean;
  /** Enabled units (systemd); default none. */
  readonly enabled?: Set<string>;
  /** What `hostname` prints; default `debian`. */
  readonly hostname?: string;
  /** What `hostname -I` prints; default `10.0.0.7`. */
  readonly addresses?: string;
  /** Make `connect` fail with this (a dead host). */
  readonly unreachable?: string;
}

/** A fake host and the argv of every command it ran (writes are recorded as `['write', path]`). */
export function fakeHost(s: FakeHostState): { host: RemoteHost; calls: string[][] } {
  const calls: string[][] = [];
  const enabled = s.enabled ?? new Set<string>();
  const ok = (stdout = '', code = 0): RemoteResult => ({ code, stdout, stderr: '', ms: 1 });
  const host: RemoteHost = {
    target: { user: 'root', host: '10.0.0.7', port: 22 },
    hostKeyFingerprint: 'SHA256:x',
    auth: 'agent',
    async exec(argv) {
      calls.push([...argv]);
      const [cmd, ...args] = argv;
      const paths = args.filter((a) => a.startsWith('/'));
      switch (cmd) {
        case 'cat': {
          const f = s.files.get(args[1]);
          return f ? ok(f.content) : ok('', 1);
        }
        case 'hostname':
          return args[0] === '-I' ? ok(`${s.addresses ?? '10.0.0.7'} \n`) : ok(`${s.hostname ?? 'debian'}\n`);
        case 'sha256sum':
          return ok(
            paths
              .filter((p) => s.files.has(p))
              .map((p) => `${createHash('sha256').update(s.files.get(p)!.content).digest('hex')}  ${p}\n`)
              .join(''),
            1,
          );
        case 'stat':
          return ok(
            paths
              .filter((p) => s.files.has(p))
              .map((p) => `${s.files.get(p)!.mode.toString(8)} ${p}\n`)
              .join(''),
          );
        case 'chmod':
          s.files.get(args[2])!.mode = parseInt(args[0], 8);
          return ok();
        case 'test':
          return ok('', s.systemd ? 0 : 1);
        case 'rm':
          for (const p of paths) s.files.delete(p);
          return ok();
        case 'start-stop-daemon':
          return args[0] === '--status' ? ok('', s.running.has(args[2]) ? 0 : 3) : ok();
        case 'systemctl': {
          const units = args.filter((a) => !a.startsWith('-')).slice(1);
          if (args[0] === 'is-active') return ok('', s.running.has(units[0]) ? 0 : 3);
          if (args[0] === 'is-enabled') return ok('', units.some((u) => enabled.has(u)) ? 0 : 1);
          if (args[0] === 'enable') for (const u of units) enabled.add(u);
          return ok();
        }
        default:
          return ok();
      }
    },
    async writeFile(path, content, mode) {
      calls.push(['write', path]);
      s.files.set(path, { content: content.toString(), mode });
    },
    copyFile: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  return { host, calls };
}
