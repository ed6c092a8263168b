/**
 * Applies the LIO render to the running kernel one target at a time, never with a global clear:
 * read the live config back (`targetctl save FILE`), delete the targets and storage objects
 * mammatus owns but no longer wants, and for each new or changed target run a one-target restore
 * (`targetcli restoreconfig savefile=F target=IQN storage_object=NAME clear_existing=true`).
 * rtslib's restore is not atomic and skips what it cannot make, so after every step the live
 * config is read back: the target must be exactly what was rendered and everything else exactly
 * as it was. A target that came out different is removed (fail closed) and reported; a step that
 * touched anything else stops the sequence. Effects go through the injected runner and file writer.
 */
import { dirname } from 'node:path';
import type { FileOps, Logger, Run } from '../../core/contracts.js';
import { claimBackingFile } from './backing-id.js';
import { checkLioConfig, lioPolicyProblems, type LioProblem } from './lio-check.js';
import { lioConfigText, storageObjectPath, type LioConfig, type LioRender, type LioTargetPlan } from './lio-render.js';
import {
  findObject,
  findTarget,
  fingerprints,
  OWNED_TARGET,
  ownedObject,
  parseLioConfig,
  referencedObjects,
  targetDifference,
  unexpectedChanges,
} from './lio-state.js';

/** Where the scratch files (the live dump, one-target files) go: root's, in tmpfs. */
export const LIO_WORK_DIR = '/run/mammatus/lio';
/** What rtslib-fb-targetctl.service restores at boot (Debian's default saveconfig path). */
export const LIO_BOOT_FILE = '/etc/rtslib-fb-target/saveconfig.json';

/** What {@link applyLio} works with. */
export interface LioApplyOptions {
  readonly run: Run;
  /** Must address the real filesystem: `targetctl` writes the dump there itself. */
  readonly files: FileOps;
  readonly log?: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** Scratch directory; {@link LIO_WORK_DIR} by default. */
  readonly workDir?: string;
  /** Where the live config is saved after a successful change, for the boot-time restore; `false`: nowhere. */
  readonly bootFile?: string | false;
}

/** A target that could not be brought to its rendered state (or removed), and why. */
export interface LioTargetError {
  readonly target: string;
  readonly message: string;
}

/** What an apply did. IQNs and storage object paths, sorted within each list. */
export interface LioApplyResult {
  readonly restored: string[];
  readonly deleted: string[];
  readonly unchanged: string[];
  readonly errors: LioTargetError[];
  /** True when a step changed something it should not have and the sequence stopped there. */
  readonly stopped: boolean;
}

/** The desired config is unusable as a whole, or the live config cannot be read: nothing was changed. */
export class LioApplyError extends Error {
  override readonly name = 'LioApplyError';
}

const say = (p: readonly LioProblem[]) => p.map((x) => `${x.path}: ${x.message}`).join('; ');
const why = (err: unknown) => {
  const e = err as { message?: string; stderr?: string };
  const detail = e.stderr?.trim();
  return detail ? `${e.message ?? String(err)}: ${detail.split('\n').slice(-3).join(' / ')}` : (e.message ?? String(err));
};

/** Brings LIO to `desired` target by target; see the module comment. */
export async function applyLio(desired: LioRender, opts: LioApplyOptions): Promise<LioApplyResult> {
  const { run, files, log } = opts;
  const work = opts.workDir ?? LIO_WORK_DIR;
  const result = {
    restored: [] as string[],
    deleted: [] as string[],
    unchanged: [] as string[],
    errors: [] as LioTargetError[],
    stopped: false,
  };
  const fail = (target: string, message: string) => {
    result.errors.push({ target, message });
    log?.error({ target }, message);
  };

  // Checked before anything runs: a refused target is reported and its live state left alone.
  const plans: LioTargetPlan[] = [];
  for (const plan of desired.targets) {
    const problems = [...checkLioConfig(plan.config), ...lioPolicyProblems(plan.config)];
    if (problems.length) fail(plan.iqn, `target ${plan.iqn}: refused by the checker: ${say(problems)}`);
    else plans.push(plan);
  }
  const whole: LioConfig = {
    fabric_modules: [],
    storage_objects: plans.flatMap((p) => p.config.storage_objects),
    targets: plans.flatMap((p) => p.config.targets),
  };
  const clash = checkLioConfig(whole);
  if (clash.length) throw new LioApplyError(`the rendered LIO config is refused as a whole, nothing applied: ${say(clash)}`);
  // Held targets are neither restored nor deleted: they stay exactly as they are.
  const wanted = new Set([...desired.targets.map((p) => p.iqn), ...(desired.held ?? [])].map((i) => i.toLowerCase()));
  const wantedObjects = new Set(plans.flatMap((p) => p.config.storage_objects.map(storageObjectPath)));

  // The whole desired config, for operators (docs/storage.md, recovery); it also makes the directory.
  const desiredFile = `${work}/desired.json`;
  if ((await files.read(desiredFile)) !== lioConfigText(desired.config))
    await files.write(desiredFile, lioConfigText(desired.config), 0o600);

  const readBack = async (): Promise<LioConfig> => {
    const file = `${work}/live.json`;
    try {
      await run('targetctl', ['save', file]);
      const text = await files.read(file);
      if (text === undefined) throw new Error(`targetctl save left no ${file}`);
      return parseLioConfig(text, file);
    } catch (err) {
      throw new LioApplyError(`cannot read LIO's live config: ${why(err)}`, { cause: err });
    } finally {
      // It holds every volume's CHAP secret.
      await files.remove(file);
    }
  };
  let live = await readBack();

  /** Runs one step and reads back; false when it touched what it should not have (the sequence stops). */
  const step = async (label: string, allowed: Set<string>, act: () => Promise<void>): Promise<boolean> => {
    const before = fingerprints(live);
    await act();
    live = await readBack();
    const stray = unexpectedChanges(before, fingerprints(live), allowed);
    if (stray.length === 0) return true;
    fail(label, `${label}: the step also changed ${stray.join(', ')}; stopped, nothing further applied`);
    result.stopped = true;
    return false;
  };

  // 1. Deletes first: an old target may hold the device a new one wants.
  for (const target of [...live.targets].sort((a, b) => (a.wwn < b.wwn ? -1 : 1))) {
    const iqn = target.wwn.toLowerCase();
    if (!OWNED_TARGET.test(iqn) || wanted.has(iqn)) continue;
    const users = new Set(live.targets.filter((t) => t !== target).flatMap(referencedObjects));
    const objects = referencedObjects(target).filter((p) => !users.has(p) && !wantedObjects.has(p) && ownedPath(live, p));
    const allowed = new Set([`target:${iqn}`, ...objects.map((p) => `object:${p}`)]);
    let failure: string | undefined;
    const ok = await step(iqn, allowed, async () => {
      try {
        await run('targetcli', ['/iscsi', 'delete', iqn]);
        for (const p of objects)
          await run('targetcli', [`/backstores/${findObject(live, p)!.plugin}`, 'delete', findObject(live, p)!.name]);
      } catch (err) {
        failure = why(err);
      }
    });
    if (!ok) return done(result);
    const left = [findTarget(live, iqn) ? iqn : '', ...objects.filter((p) => findObject(live, p))].filter(Boolean);
    if (failure || left.length)
      fail(iqn, `target ${iqn}: delete ${failure ? `failed (${failure})` : 'ran'}; still there: ${left.join(', ') || 'nothing'}`);
    result.deleted.push(...[iqn, ...objects].filter((x) => !left.includes(x)));
  }
  // Storage objects of ours that no target uses and none is meant to (a delete that stopped half way).
  const used = new Set(live.targets.flatMap(referencedObjects));
  for (const so of live.storage_objects.filter(
    (o) => ownedObject(o) && !used.has(storageObjectPath(o)) && !wantedObjects.has(storageObjectPath(o)),
  )) {
    const path = storageObjectPath(so);
    const ok = await step(path, new Set([`object:${path}`]), async () => {
      await run('targetcli', [`/backstores/${so.plugin}`, 'delete', so.name]).catch((err: unknown) =>
        fail(path, `storage object ${path}: delete failed: ${why(err)}`),
      );
    });
    if (!ok) return done(result);
    if (!findObject(live, path)) result.deleted.push(path);
  }

  // 2. One restore per new or changed target.
  for (const plan of plans) {
    const difference = targetDifference(plan, live);
    if (!difference) {
      result.unchanged.push(plan.iqn);
      continue;
    }
    const blocked = blocker(plan, live);
    if (blocked) {
      fail(plan.iqn, `target ${plan.iqn}: ${blocked}; left as it is`);
      continue;
    }
    log?.info({ target: plan.iqn, difference }, 'restoring LIO target');
    const names = new Set(plan.config.storage_objects.map((so) => so.name));
    const allowed = new Set([
      `target:${plan.iqn.toLowerCase()}`,
      ...[...live.storage_objects, ...plan.config.storage_objects]
        .filter((so) => names.has(so.name))
        .map((so) => `object:${storageObjectPath(so)}`),
    ]);
    let outcome: RestoreOutcome = { ran: false };
    const ok = await step(plan.iqn, allowed, async () => {
      outcome = await restoreTarget(plan, run, files, work).catch((err: unknown): RestoreOutcome => ({ ran: false, failure: why(err) }));
    });
    if (!ok) return done(result);
    const failure = outcome.failure;
    if (!outcome.ran) {
      // Nothing was cleared: the target (if any) still serves what it served before.
      fail(plan.iqn, `target ${plan.iqn}: could not prepare its restore (${failure ?? 'unknown'}); left as it is`);
      continue;
    }
    const after = targetDifference(plan, live);
    if (!after) {
      if (failure) log?.warn({ target: plan.iqn, failure }, 'targetcli reported errors, but the target reads back as rendered');
      result.restored.push(plan.iqn);
      continue;
    }
    // Fail closed: a half-made target (an ACL without its CHAP, say) must not stay served.
    let removed = 'it does not exist';
    if (findTarget(live, plan.iqn)) {
      const gone = await step(plan.iqn, new Set([`target:${plan.iqn.toLowerCase()}`]), async () => {
        await run('targetcli', ['/iscsi', 'delete', plan.iqn]).catch(() => undefined);
      });
      if (!gone) return done(result);
      removed = findTarget(live, plan.iqn) ? 'removing it failed too' : 'removed it, so nothing unchecked is served';
    }
    fail(
      plan.iqn,
      `target ${plan.iqn}: ${failure ? `restore failed (${failure}) and` : 'restore exited 0 but'} left it different from the render (${after}); ${removed}`,
    );
  }

  // 3. The boot-time restore file follows the live state once it is all as rendered.
  if (opts.bootFile !== false && result.errors.length === 0 && (result.restored.length || result.deleted.length)) {
    await run('targetctl', ['save', opts.bootFile ?? LIO_BOOT_FILE]).catch((err: unknown) =>
      fail('boot file', `could not save the boot-time config: ${why(err)}`),
    );
  }
  return done(result);
}

/** Sorts the result's lists. */
function done(r: LioApplyResult): LioApplyResult {
  for (const l of [r.restored, r.deleted, r.unchanged]) l.sort();
  return r;
}

/** Is the object at `path` one of ours? */
function ownedPath(live: LioConfig, path: string): boolean {
  const so = findObject(live, path);
  return so !== undefined && ownedObject(so);
}

/**
 * Why restoring `plan` would harm something else, if it would: its clear deletes every storage
 * object of that name (whatever the plugin) and with it the LUNs of any other target using it;
 * and a fileio object never shrinks (the instance's filesystem would lose its end).
 */
function blocker(plan: LioTargetPlan, live: LioConfig): string | undefined {
  const names = new Set(plan.config.storage_objects.map((so) => so.name));
  for (const t of live.targets) {
    if (t.wwn.toLowerCase() === plan.iqn.toLowerCase()) continue;
    const shared = referencedObjects(t).filter((p) => names.has(p.split('/')[3] ?? ''));
    if (shared.length) return `its storage object ${shared.join(', ')} is also used by target ${t.wwn}`;
  }
  for (const so of plan.config.storage_objects) {
    const have = findObject(live, storageObjectPath(so));
    if (typeof have?.size === 'number' && typeof so.size === 'number' && have.size > so.size)
      return `refusing to shrink ${storageObjectPath(so)} from ${have.size} to ${so.size} bytes (volumes only grow)`;
  }
  return undefined;
}

/** Whether the restore command ran (and so cleared the old target), and how it failed. */
interface RestoreOutcome {
  readonly ran: boolean;
  readonly failure?: string;
}

/**
 * The restore step of one target: its backing file (claimed for its record, made private, sparse,
 * grown to size, never shrunk), its one-target file, the restore, and the file's removal (it
 * holds the CHAP secret). Rejects when the preparation failed (the restore did not run).
 */
async function restoreTarget(plan: LioTargetPlan, run: Run, files: FileOps, work: string): Promise<RestoreOutcome> {
  if (plan.backingFile) {
    const { path, size, identity } = plan.backingFile;
    const exists = await run('stat', ['-c', '%s', '--', path]).then(
      () => true,
      () => false,
    );
    await claimBackingFile(files, path, exists, identity);
    await run('mkdir', ['-p', dirname(path)]);
    // '>' is GNU truncate's "at least": it creates a missing file and only ever grows one.
    await run('truncate', [`--size=>${size}`, path]);
    await run('chmod', ['0600', path]);
  }
  const file = `${work}/target-${plan.volume}.json`;
  await files.write(file, lioConfigText(plan.config), 0o600);
  try {
    const so = plan.storageObject.name;
    // clear_existing=true: targetcli does not parse the value, any non-empty word is true (even "false").
    await run('targetcli', ['restoreconfig', `savefile=${file}`, `target=${plan.iqn}`, `storage_object=${so}`, 'clear_existing=true']);
    return { ran: true };
  } catch (err) {
    return { ran: true, failure: why(err) };
  } finally {
    await files.remove(file);
  }
}
