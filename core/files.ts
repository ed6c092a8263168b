/**
 * The one module that writes to disk, so tests swap one funnel for a fake. Writes are atomic: a temp file in the target's own
 * directory (rename is only atomic within one filesystem), fsynced, chmodded, then renamed over the
 * target, so a crash or a reader never sees half a config file.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, posix } from 'node:path';
import type { FileOps } from './contracts.js';

/** Mode for files written without an explicit one. */
export const DEFAULT_FILE_MODE = 0o644;

/** Options for {@link buildFileOps}. */
export interface BuildFileOpsOptions {
  /**
   * Directory that stands in for `/`: every absolute path is placed under it. Lets tests and the
   * local cluster run real roles without touching the host's `/etc`.
   */
  readonly root?: string;
}

/** Builds the production `FileOps`, optionally confined under `root`. */
export function buildFileOps(opts: BuildFileOpsOptions = {}): FileOps {
  const { root } = opts;
  // posix.normalize clamps `..` at `/`, so `/../../etc` cannot escape the root.
  const place = (path: string): string => (root !== undefined && isAbsolute(path) ? join(root, posix.normalize(path)) : path);
  return {
    read: (path) => readIfExists(place(path)),
    write: (path, content, mode) => writeFileAtomic(place(path), content, mode),
    remove: (path) => removeIfExists(place(path)),
    mode: (path) => modeIfExists(place(path)),
  };
}

/**
 * Atomically replaces `path` with `content` (UTF-8) and `mode` (default 0o644), creating parent
 * directories. For agent modules that keep state files; roles go through `FileOps`.
 */
export async function writeFileAtomic(path: string, content: string, mode: number = DEFAULT_FILE_MODE): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  // pid + random: two agents (or two applies) never share a temp name; the leading dot keeps
  // the temp file out of `*.conf` globs that services load from a directory.
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(tmp, 'wx', mode);
    try {
      await handle.writeFile(content, 'utf8');
      // open()'s mode is filtered by the umask; chmod sets exactly what the caller asked for.
      await handle.chmod(mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await syncDir(dir);
}

/** Makes the rename itself durable; not every filesystem allows fsync on a directory, so best effort. */
async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Durability of the directory entry is a bonus; the content is already synced.
  }
}

/** Why a secret file with these permission bits is refused, or undefined when only its owner can read it. */
export function privateModeProblem(path: string, mode: number): string | undefined {
  if ((mode & 0o077) === 0) return undefined;
  return `${path} is readable by others (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); run chmod 600 ${path}`;
}

/**
 * Reads a file that holds a secret (the metadata proxy secret, say), refusing one that group or
 * others can read, as ssh refuses such a private key: its secret is no longer the node's alone.
 */
export function readSecretFileSync(path: string): string {
  const problem = privateModeProblem(path, statSync(path).mode);
  if (problem) throw new Error(problem);
  return readFileSync(path, 'utf8');
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

async function removeIfExists(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

async function modeIfExists(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).mode & 0o7777;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

function isNotFound(err: unknown): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === 'ENOENT';
}
