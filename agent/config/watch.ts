/**
 * Notices config edits so the agent can reload without a SIGHUP. It watches directories rather than
 * files: tools that write config (editors, cloud-init, config management) replace a file by renaming
 * a new one over it, and a watch on the old file would silently stop firing after the first rename.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { watch } from 'chokidar';
import type { Logger } from '../../core/contracts.js';
import { isConfigFileName } from './load.js';

/** Quiet period before `onChange` runs: one save is several events (temp file, rename, unlink). */
export const DEBOUNCE_MS = 200;

/** A running config watcher. */
export interface ConfigWatcher {
  /** Resolves once the initial scan is done and later changes will be seen. */
  readonly ready: Promise<void>;
  /** Stops watching; no `onChange` runs after this resolves. Safe to call more than once. */
  close(): Promise<void>;
}

/**
 * Calls `onChange` (once per burst of events, after `DEBOUNCE_MS` of quiet) whenever a YAML file in
 * one of `dirs`, or one of `files` whatever its name, is added, changed or removed. A directory that
 * does not exist yet (a missing `agent.d/`) is picked up when it appears in its parent.
 *
 * @param files config files to watch even without a `.yaml`/`.yml` name (e.g. a `--config` path).
 * @param dirs directories whose YAML files make up the config (`LoadedConfig.dirs`).
 * @param onChange what to run, typically "load the config again"; errors and rejections are logged.
 */
export function watchConfig(files: string[], dirs: string[], onChange: () => void | Promise<void>, log: Logger): ConfigWatcher {
  const wantedFiles = new Set(files.map((f) => path.resolve(f)));
  const wantedDirs = new Set(dirs.map((d) => path.resolve(d)));
  // chokidar mis-reports readiness when handed a path that does not exist, so only existing
  // directories are watched; a missing one (typically `agent.d/`) is added when it appears in a
  // watched parent. Not watching a missing parent's parent keeps us from watching all of /etc.
  const roots = [...new Set([...wantedDirs, ...[...wantedFiles].map((f) => path.dirname(f))])].filter((dir) => existsSync(dir));
  for (const dir of wantedDirs) {
    if (!roots.includes(dir) && !roots.includes(path.dirname(dir))) {
      log.debug({ dir }, 'config directory missing and its parent not watched; send SIGHUP once created');
    }
  }
  const relevant = (file: string): boolean =>
    wantedFiles.has(file) || (wantedDirs.has(path.dirname(file)) && isConfigFileName(path.basename(file)));

  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const fire = (): void => {
    timer = undefined;
    if (closed) return;
    try {
      Promise.resolve(onChange()).catch((err: unknown) => log.error({ err }, 'config reload failed'));
    } catch (err) {
      log.error({ err }, 'config reload failed');
    }
  };
  const schedule = (): void => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(fire, DEBOUNCE_MS);
  };

  const watcher = watch(roots, {
    ignoreInitial: true,
    // depth 0: only the directories' own entries, never a walk of whatever lives below them.
    depth: 0,
    // chokidar keeps a watch per file it tracks; skip files that could never matter (keys, notes).
    ignored: (p: string) => {
      const file = path.resolve(p);
      return !(wantedDirs.has(file) || roots.includes(file) || relevant(file));
    },
  });
  watcher.on('all', (event, changed) => {
    const file = path.resolve(changed);
    if (event === 'addDir' || event === 'unlinkDir') {
      if (!wantedDirs.has(file)) return;
      // A drop-in directory appeared (perhaps already full) or vanished: both change the config.
      if (event === 'addDir') watcher.add(file);
      log.debug({ event, dir: file }, 'config directory changed');
      schedule();
      return;
    }
    if (!relevant(file)) return;
    log.debug({ event, file }, 'config file changed');
    schedule();
  });
  watcher.on('error', (err) => log.error({ err }, 'config watcher error'));

  const ready = new Promise<void>((resolve) => {
    if (roots.length === 0) resolve();
    else watcher.once('ready', () => resolve());
  });
  let closing: Promise<void> | undefined;
  return {
    ready,
    close() {
      closed = true;
      clearTimeout(timer);
      closing ??= watcher.close();
      return closing;
    },
  };
}
