/**
 * A child that runs as an unprivileged user must be able to read the program it runs. On a node
 * installed from the package it can (`/usr/bin/node`, `/usr/lib/mammatus`); an agent run as root
 * from a checkout, or with a Node installed in a private home directory (`/root` is 0700), is
 * another matter. There the program is staged: the executable, and the whole directory of the
 * script it runs (a bundle loads its chunks beside it), are copied once per agent process into a
 * fresh root-owned, world-readable directory (`mkdtemp`, so nobody can have planted it), and the
 * child runs the copy. Nothing is copied when the user can read the originals.
 */
import { chmodSync, copyFileSync, cpSync, mkdtempSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The ids a child runs as (supplementary groups are cleared, so only the primary group counts). */
export interface ChildIds {
  readonly uid: number;
  readonly gid: number;
}

/** The permission bits that apply to `ids` on a file with this owner and mode. */
function bitsFor(st: { uid: number; gid: number; mode: number }, ids: ChildIds): number {
  if (st.uid === ids.uid) return (st.mode >> 6) & 7;
  if (st.gid === ids.gid) return (st.mode >> 3) & 7;
  return st.mode & 7;
}

/**
 * True when `ids` can reach `file` (search permission on every directory above it) and has `want`
 * on it (4 = read, 1 = execute, 5 = both). Symbolic links are resolved first. False when it is missing.
 */
export function accessibleBy(file: string, ids: ChildIds, want: number): boolean {
  let real: string;
  try {
    real = realpathSync(file);
  } catch {
    return false;
  }
  const parts = real.split(path.sep).filter(Boolean);
  for (let i = 0; i < parts.length; i++) {
    const at = path.sep + parts.slice(0, i + 1).join(path.sep);
    const st = statSync(at);
    const needed = i === parts.length - 1 ? want : 1;
    if ((bitsFor(st, ids) & needed) !== needed) return false;
  }
  return true;
}

let stageDir: string | undefined;
const staged = new Map<string, string>();

/** The agent's staging directory, made on first use and removed when the agent exits. */
function stageRoot(): string {
  if (!stageDir) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mammatus-program-'));
    chmodSync(dir, 0o755);
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    stageDir = dir;
  }
  return stageDir;
}

/** Makes every file and directory under `dir` readable (and directories searchable) by all. */
function openUp(dir: string): void {
  chmodSync(dir, 0o755);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) openUp(p);
    else chmodSync(p, 0o644);
  }
}

/** A copy of `source` (a file, or a whole directory) in the staging directory, made once. */
function stage(source: string, kind: 'executable' | 'directory'): string {
  const key = `${kind}:${source}`;
  const hit = staged.get(key);
  if (hit) return hit;
  const target = path.join(stageRoot(), `${staged.size}-${path.basename(source)}`);
  if (kind === 'executable') {
    copyFileSync(source, target);
    chmodSync(target, 0o755);
  } else {
    cpSync(source, target, { recursive: true, dereference: true });
    openUp(target);
  }
  staged.set(key, target);
  return target;
}

/**
 * `file` and `args` as `ids` can run them: unchanged when it can read them, else with the
 * executable (an absolute `file`) and the script (an absolute `args[0]` naming a file) replaced by
 * staged copies. Relative names (`nats-server`, found on PATH) are left to the system.
 */
export function runnableProgram(file: string, args: readonly string[], ids: ChildIds): { file: string; args: readonly string[] } {
  let runFile = file;
  if (path.isAbsolute(file) && !accessibleBy(file, ids, 5)) runFile = stage(realpathSync(file), 'executable');
  const script = args[0];
  if (script === undefined || !path.isAbsolute(script) || !isFile(script) || accessibleBy(script, ids, 4)) return { file: runFile, args };
  const real = realpathSync(script);
  const dir = stage(path.dirname(real), 'directory');
  return { file: runFile, args: [path.join(dir, path.basename(real)), ...args.slice(1)] };
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}
