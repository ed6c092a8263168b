/**
 * The agent's side of Telegraf on nodes (core/telegraf.ts renders the drop-in): write it only where
 * the telegraf package is installed, and have a running Telegraf reload it. Nothing here throws: a
 * node without Telegraf, or a Telegraf that refuses to reload, must not fail the agent's work; the
 * failure is logged and the next apply tries again.
 */
import type { FileOps, Logger, Run } from '../core/contracts.js';
import { errorMessage } from '../core/errors.js';
import { TELEGRAF_DIR } from '../core/telegraf.js';

/** What {@link applyTelegraf} did. */
export type TelegrafOutcome = 'not-installed' | 'unchanged' | 'written' | 'reloaded' | 'failed';

/**
 * Writes `rendered` when Telegraf is installed (`/etc/telegraf` exists) and the content differs,
 * then `systemctl reload telegraf` when the unit is active (a stopped Telegraf reads the file when
 * it starts). Effects only through `files` and `run` (argv arrays).
 */
export async function applyTelegraf(
  files: FileOps,
  run: Run,
  rendered: { readonly path: string; readonly content: string },
  log: Logger,
): Promise<TelegrafOutcome> {
  try {
    // FileOps.mode stats any path, a directory too; without it the file system cannot be asked.
    if ((await files.mode?.(TELEGRAF_DIR)) === undefined) return 'not-installed';
    if ((await files.read(rendered.path)) === rendered.content) return 'unchanged';
    await files.write(rendered.path, rendered.content, 0o644);
  } catch (err) {
    log.error({ err: errorMessage(err), path: rendered.path }, 'could not write the Telegraf drop-in');
    return 'failed';
  }
  try {
    await run('systemctl', ['is-active', '--quiet', 'telegraf.service']);
  } catch {
    // Not active (or no systemd): nothing to reload.
    log.info({ path: rendered.path }, 'Telegraf drop-in written; telegraf is not running');
    return 'written';
  }
  try {
    await run('systemctl', ['reload', 'telegraf.service'], { timeoutMs: 30_000 });
    log.info({ path: rendered.path }, 'Telegraf drop-in written; telegraf reloaded');
    return 'reloaded';
  } catch (err) {
    log.error({ err: errorMessage(err) }, 'telegraf did not reload its config');
    return 'failed';
  }
}
