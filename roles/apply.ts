/**
 * The apply framework every role shares: render, write only what changed, then validate → reload →
 * health, and put the old files back (and reload them) when any step fails. Roles stay declarative;
 * the transaction logic lives here once. It never throws: the agent's reconcile loop gets a report.
 */
import { posix } from 'node:path';
import type { Logger } from '../core/contracts.js';
import type { ApplyContext, DesiredState, RenderedFile, Role } from './types.js';
import type { FileOps, Run } from '../core/contracts.js';

/** How many files are written at once. */
const WRITE_CONCURRENCY = 16;

/** Mode used for files a role renders without one, and for rollbacks when `FileOps.mode` is absent. */
const DEFAULT_MODE = 0o644;

/** What `applyRole` needs from the outside world. */
export interface ApplyDeps {
  readonly run: Run;
  readonly files: FileOps;
  readonly log: Logger;
  /** Paths the role owned after its last successful apply; the caller persists this list. */
  readonly previous?: readonly string[];
}

/** Outcome of one apply. */
export interface ApplyReport {
  readonly role: string;
  /** Paths written in this apply (kept even when rolled back, to show what was attempted). */
  readonly changed: string[];
  /** Paths from `previous` that were removed because the role no longer renders them. */
  readonly removed: string[];
  readonly rolledBack: boolean;
  readonly ok: boolean;
  /** `<stage>: <message>`; stage is render, read, write, remove, validate, reload, health. */
  readonly error?: string;
  /** Paths the role owns now; the caller passes this back as `previous` next time. */
  readonly owned: string[];
}

type Stage = 'render' | 'read' | 'write' | 'remove' | 'validate' | 'reload' | 'health';

/** Content and mode of a path before this apply touched it; `content: undefined` = did not exist. */
interface Prior {
  readonly content: string | undefined;
  readonly mode: number | undefined;
}

class StageError extends Error {
  constructor(
    readonly stage: Stage,
    cause: unknown,
  ) {
    super(`${stage}: ${messageOf(cause)}`, { cause });
  }
}

/**
 * Applies `role` for `desired` as one transaction and reports what happened. Hooks run only when
 * something changed; their `ctx.changed` lists written and removed paths.
 */
export async function applyRole<C>(role: Role<C>, desired: DesiredState<C>, deps: ApplyDeps): Promise<ApplyReport> {
  const { run, files } = deps;
  const log = deps.log.child({ component: `role.${role.name}` });
  const previous = [...(deps.previous ?? [])];
  const base = { role: role.name, changed: [] as string[], removed: [] as string[], rolledBack: false };

  let rendered: RenderedFile[];
  try {
    rendered = role.render(desired);
    checkRendered(rendered);
  } catch (err) {
    const error = new StageError('render', err).message;
    log.error({ err }, 'render failed; nothing written');
    return { ...base, ok: false, error, owned: previous };
  }
  const owned = rendered.map((f) => f.path);

  // Plan before touching anything, so a read failure leaves the disk as it was.
  const toWrite: RenderedFile[] = [];
  const toRemove: string[] = [];
  const priors = new Map<string, Prior>();
  try {
    for (const file of rendered) {
      const prior = await readPrior(files, file.path);
      const modeDiffers = prior.mode !== undefined && prior.mode !== (file.mode ?? DEFAULT_MODE);
      if (prior.content !== file.content || modeDiffers) {
        toWrite.push(file);
        priors.set(file.path, prior);
      }
    }
    const keep = new Set(owned);
    for (const path of previous.filter((p) => !keep.has(p))) {
      const prior = await readPrior(files, path);
      // Already gone is not a change: no hooks for a file someone else deleted.
      if (prior.content !== undefined) {
        toRemove.push(path);
        priors.set(path, prior);
      }
    }
  } catch (err) {
    log.error({ err }, 'reading current files failed; nothing written');
    return { ...base, ok: false, error: new StageError('read', err).message, owned: previous };
  }

  const changed = toWrite.map((f) => f.path);
  if (changed.length === 0 && toRemove.length === 0) {
    log.debug({ files: owned.length }, 'up to date');
    return { ...base, ok: true, owned };
  }

  const touched: string[] = [];
  const prior = (path: string) => priors.get(path)?.content;
  const ctx: ApplyContext<C> = { run, files, log, changed: [...changed, ...toRemove], prior, desired };
  try {
    // Writes go out WRITE_CONCURRENCY at a time: each is an fsync'ed temp file + rename, and a join
    // storm can change hundreds of small files at once (the gateway's hosts files).
    for (let i = 0; i < toWrite.length; i += WRITE_CONCURRENCY) {
      const batch = toWrite.slice(i, i + WRITE_CONCURRENCY);
      // Recorded before the attempt: a failed write may still have created parent dirs or the
      // file, and restoring an unchanged file is harmless.
      touched.push(...batch.map((f) => f.path));
      await step('write', async () => {
        // Settle the whole batch first, so no write is still in flight when the rollback starts.
        const results = await Promise.allSettled(batch.map((f) => files.write(f.path, f.content, f.mode ?? DEFAULT_MODE)));
        const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
      });
    }
    for (const path of toRemove) {
      touched.push(path);
      await step('remove', () => files.remove(path));
    }
    await step('validate', () => role.validate?.(ctx));
    await step('reload', () => role.reload?.(ctx));
    await step('health', () => role.health?.(ctx));
  } catch (err) {
    const failure = err instanceof StageError ? err : new StageError('write', err);
    log.error({ err: failure.cause, stage: failure.stage, changed: ctx.changed }, 'apply failed; rolling back');
    const notRestored = await restore(files, touched, priors, log);
    // Services only saw the new files if reload ran; give them the old ones back the same way.
    if ((failure.stage === 'reload' || failure.stage === 'health') && role.reload) {
      try {
        // The services now get back what they had: what was "before" is the content just undone.
        const attempted = new Map(toWrite.map((f) => [f.path, f.content] as const));
        await role.reload({ ...ctx, changed: touched, prior: (path) => attempted.get(path) });
      } catch (reloadErr) {
        log.error({ err: reloadErr }, 'reload after rollback failed');
      }
    }
    const rolledBack = notRestored.length === 0;
    const error = rolledBack ? failure.message : `${failure.message}; rollback left ${notRestored.join(', ')}`;
    // Paths that could not be restored may still hold our content: keep owning them so the next
    // apply can clean them up.
    const stillOwned = [...new Set([...previous, ...notRestored])];
    return { ...base, changed, removed: toRemove, rolledBack, ok: false, error, owned: stillOwned };
  }

  log.info({ changed, removed: toRemove }, 'applied');
  return { ...base, changed, removed: toRemove, ok: true, owned };
}

/** Runs one step, tagging any failure with its stage so the report can say where it broke. */
async function step(stage: Stage, fn: () => Promise<void> | undefined): Promise<void> {
  try {
    await fn();
  } catch (err) {
    throw new StageError(stage, err);
  }
}

async function readPrior(files: FileOps, path: string): Promise<Prior> {
  const content = await files.read(path);
  const mode = content !== undefined && files.mode ? await files.mode(path) : undefined;
  return { content, mode };
}

/** Puts every touched path back, newest first; returns the paths it could not restore. */
async function restore(files: FileOps, touched: readonly string[], priors: Map<string, Prior>, log: Logger): Promise<string[]> {
  const failed: string[] = [];
  for (const path of [...touched].reverse()) {
    const prior = priors.get(path);
    try {
      if (prior?.content === undefined) await files.remove(path);
      else await files.write(path, prior.content, prior.mode ?? DEFAULT_MODE);
    } catch (err) {
      failed.push(path);
      log.error({ err, path }, 'rollback could not restore file');
    }
  }
  return failed;
}

/** Rejects output the framework cannot apply safely; thrown errors become `render:` failures. */
function checkRendered(rendered: readonly RenderedFile[]): void {
  const seen = new Set<string>();
  for (const { path } of rendered) {
    if (!posix.isAbsolute(path)) throw new Error(`path is not absolute: ${path}`);
    // `/etc/x/../y` would dodge the duplicate check and the caller's prefix checks.
    if (posix.normalize(path) !== path) throw new Error(`path is not normalized: ${path}`);
    if (seen.has(path)) throw new Error(`duplicate path: ${path}`);
    seen.add(path);
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
