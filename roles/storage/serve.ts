/**
 * One pass of the storage role: pick the backend (LIO when the kernel has it, else tgt, unless
 * configured), refuse to run when the other backend holds port 3260, render this node's volumes
 * with the chosen backend, apply, and say per volume what is served (`observed`, for the record).
 * The backends keep the last good live state of a volume whose change failed; this module only
 * translates their results. Effects go through the injected runner and file writer.
 */
import path from 'node:path';
import type { FileOps, Logger, Run } from '../../core/contracts.js';
import { errorMessage } from '../../core/errors.js';
import { volumeIqn, type VolumeRecord } from '../../core/volume-record.js';
import { backingIdentity, releaseBackingFile } from './backing-id.js';
import { thinPoolOf, type StorageConfig } from './config.js';
import { applyLio, LioApplyError, type LioApplyOptions } from './lio-apply.js';
import { LIO_PORT, renderLio } from './lio-render.js';
import { inThinPool } from './lvm.js';
import { prepareThinVolumes, removeThinVolumes } from './lvm-apply.js';
import { applyTgt, type TgtApplyOptions } from './tgt-apply.js';
import { renderTgt } from './tgt-render.js';

/** A backend that serves volumes. */
export type StorageBackend = 'lio' | 'tgt';

/** What a volume is, as served (the record's `observed`, without its time). */
export interface ServedState {
  readonly state: 'serving' | 'error' | 'absent';
  readonly error?: string;
  readonly lun?: number;
}

/** What the backends are driven with besides the runner and the file writer (tests point them elsewhere). */
export interface BackendOptions {
  readonly tgt?: Omit<TgtApplyOptions, 'run' | 'files' | 'portal'>;
  readonly lio?: Omit<LioApplyOptions, 'run' | 'files' | 'log'>;
}

/** Where LIO's configfs tree is when the kernel's target is loaded. */
export const LIO_CONFIGFS = '/sys/kernel/config/target';

/**
 * The backend `setting` means on this machine: `auto` is LIO when its configfs tree exists or
 * `modprobe -n target_core_mod` finds the module, else tgt.
 */
export async function chooseBackend(setting: StorageConfig['backend'], run: Run): Promise<StorageBackend> {
  if (setting !== 'auto') return setting;
  const works = (file: string, args: string[]) =>
    run(file, args).then(
      () => true,
      () => false,
    );
  if (await works('test', ['-d', LIO_CONFIGFS])) return 'lio';
  return (await works('modprobe', ['-n', 'target_core_mod'])) ? 'lio' : 'tgt';
}

/**
 * Why `backend` must not run here, if it must not: the other one listens on the iSCSI port
 * (tgtd is a process; LIO's listener is the kernel's, a socket with no process). `ss` missing or
 * failing proves nothing either way: the backend's own read-back still catches a broken state.
 */
export async function otherBackendProblem(backend: StorageBackend, run: Run, port = LIO_PORT): Promise<string | undefined> {
  const out = await run('ss', ['-Hltnp', `sport = :${port}`]).then(
    (r) => r.stdout,
    () => '',
  );
  for (const line of out.split('\n').filter((l) => l.trim())) {
    const proc = /users:\(\("([^"]+)"/.exec(line)?.[1];
    if (backend === 'lio' && proc)
      return `${proc} listens on port ${port}, so LIO cannot serve there: stop it (for tgt: systemctl disable --now tgt) or set roles.storage.backend: tgt`;
    if (backend === 'tgt' && proc !== 'tgtd')
      return proc
        ? `${proc} listens on port ${port}, so tgtd cannot serve there: stop it`
        : `the kernel's LIO target listens on port ${port}, so tgtd cannot serve there: clear LIO (targetcli clearconfig confirm=true) or set roles.storage.backend: lio`;
  }
  return undefined;
}

/** What a pass did: each volume's state, and what is wrong with the node as a whole (nothing can be served). */
export interface ServeResult {
  readonly volumes: Map<string, ServedState>;
  /** The other backend holds the port, the daemon does not answer, LIO's config cannot be read. */
  readonly problem?: string;
}

/** What one pass needs. */
export interface ServeInput {
  readonly backend: StorageBackend;
  readonly node: string;
  readonly config: StorageConfig;
  /** The portal's IPv4. */
  readonly portal: string;
  readonly volumes: readonly VolumeRecord[];
  readonly run: Run;
  readonly files: FileOps;
  readonly log: Logger;
  readonly options?: BackendOptions;
}

/**
 * Serves `volumes` with the chosen backend; returns what each of this node's volumes now is. With a
 * thin pool configured, its LVs are made or grown first and removed after their targets are gone.
 */
export async function serveVolumes(input: ServeInput): Promise<ServeResult> {
  const mine = input.volumes.filter((v) => v.node === input.node);
  const refused = await otherBackendProblem(input.backend, input.run);
  if (refused) return everyVolume(mine, refused);
  const pool = thinPoolOf(input.config);
  if (!pool) return serveWith(input, mine);

  const { lvm } = input.config;
  const prepared = await prepareThinVolumes(mine, pool, lvm.volume_groups, input.run);
  // The pool's VG is exportable for the backends' own check; lvm.ts already refused other LVs of it.
  const config = { ...input.config, lvm: { ...lvm, volume_groups: [...new Set([...lvm.volume_groups, pool.vg])] } };
  const served = await serveWith({ ...input, config }, prepared.volumes, prepared.hold);
  const gone = mine.filter((v) => v.state === 'deleting' && inThinPool(v, pool) && served.volumes.get(v.name)?.state === 'absent');
  const errors = new Map(prepared.errors);
  if (prepared.lvs) for (const [name, e] of await removeThinVolumes(gone, pool, prepared.lvs, input.run)) errors.set(name, e);
  // Without an LVM read the LV may still be there: `absent` would end the record and leave it behind.
  else for (const v of gone) errors.set(v.name, 'target removed, but LVM cannot be read to remove its LV (lvs failed)');
  const volumes = new Map(served.volumes);
  for (const v of mine) {
    const own = errors.get(v.name);
    if (!own) continue;
    const also = volumes.get(v.name)?.error;
    volumes.set(v.name, { state: 'error', error: also && also !== 'not served' ? `${own}; ${also}` : own });
  }
  return { ...served, volumes };
}

/** `hold`: volumes whose live target is left exactly as it is (none is made), and why. */
function serveWith(input: ServeInput, mine: readonly VolumeRecord[], hold?: ReadonlyMap<string, string>): Promise<ServeResult> {
  return input.backend === 'tgt' ? serveTgt(input, mine, hold) : serveLio(input, mine, hold);
}

/** Nothing could be served: every volume says why. */
function everyVolume(mine: readonly VolumeRecord[], problem: string): ServeResult {
  return { volumes: new Map(mine.map((v) => [v.name, { state: 'error', error: problem }])), problem };
}

/** The IQN of a record, or undefined when its date is bad (the render reports it as skipped). */
function iqnOf(v: VolumeRecord): string | undefined {
  try {
    return volumeIqn(v);
  } catch {
    return undefined;
  }
}

async function serveTgt(input: ServeInput, mine: readonly VolumeRecord[], hold?: ReadonlyMap<string, string>): Promise<ServeResult> {
  const { config } = input;
  const render = renderTgt(input.node, mine, { path: config.path, volumeGroups: config.lvm.volume_groups, ...(hold ? { hold } : {}) });
  const result = await applyTgt(render, {
    ...input.options?.tgt,
    run: input.run,
    files: input.files,
    portal: `${input.portal}:${LIO_PORT}`,
  });
  const general = result.errors.filter((e) => !e.volume && !e.iqn).map((e) => e.error);
  const out = new Map<string, ServedState>();
  for (const v of mine) {
    const iqn = iqnOf(v);
    const own = result.errors.filter((e) => e.volume === v.name || (iqn && e.iqn === iqn)).map((e) => e.error);
    const lun = result.luns[v.name];
    if (v.state === 'deleting') out.set(v.name, own.length ? { state: 'error', error: own.join('; ') } : { state: 'absent' });
    else if (lun !== undefined && own.length === 0) out.set(v.name, { state: 'serving', lun });
    else out.set(v.name, { state: 'error', error: [...own, ...general].join('; ') || 'not served' });
  }
  return { volumes: out, ...(general.length ? { problem: general.join('; ') } : {}) };
}

async function serveLio(input: ServeInput, mine: readonly VolumeRecord[], hold?: ReadonlyMap<string, string>): Promise<ServeResult> {
  const { config, files } = input;
  const render = renderLio(mine, {
    node: input.node,
    portal: input.portal,
    backingDir: config.path,
    volumeGroups: config.lvm.volume_groups,
    ...(hold ? { hold } : {}),
  });
  let result;
  try {
    result = await applyLio(render, { ...input.options?.lio, run: input.run, files, log: input.log });
  } catch (err) {
    // Nothing was changed: every volume keeps what it had, and says why nothing moved.
    if (!(err instanceof LioApplyError)) throw err;
    return everyVolume(mine, err.message);
  }
  const served = new Set([...result.restored, ...result.unchanged].map((i) => i.toLowerCase()));
  const skipped = new Map(render.skipped.map((s) => [s.volume, s.reason]));
  const out = new Map<string, ServedState>();
  for (const v of mine) {
    const iqn = iqnOf(v)?.toLowerCase();
    const own = result.errors.filter((e) => e.target.toLowerCase() === iqn).map((e) => e.message);
    const skip = skipped.get(v.name);
    if (skip) own.push(skip);
    if (result.stopped && !own.length) own.push('the apply stopped before this volume (see the agent log)');
    if (v.state === 'deleting') {
      if (own.length) out.set(v.name, { state: 'error', error: own.join('; ') });
      else out.set(v.name, await removeBacking(v, config.path, files));
    } else if (iqn && served.has(iqn) && !own.length)
      out.set(v.name, { state: 'serving', lun: render.targets.find((t) => t.volume === v.name)?.lun ?? 0 });
    else out.set(v.name, { state: 'error', error: own.join('; ') || 'not served' });
  }
  return { volumes: out };
}

/**
 * The backing file of a deleted volume, once its target is gone (LIO never touches data; the tgt
 * backend does this itself). Only a file under `roles.storage.path`: the agent is root.
 */
async function removeBacking(v: VolumeRecord, dir: string, files: FileOps): Promise<ServedState> {
  if (v.backing.kind !== 'file') return { state: 'absent' };
  const file = path.resolve(v.backing.path);
  if (!file.startsWith(`${path.resolve(dir)}/`))
    return { state: 'error', error: `backing.path ${v.backing.path} is not under ${dir}: not removed` };
  try {
    // Only the record's own file: a leftover of an earlier volume of that name stays the operator's.
    const exists = !files.mode || (await files.mode(file)) !== undefined;
    await releaseBackingFile(files, file, exists, backingIdentity(v));
    return { state: 'absent' };
  } catch (err) {
    return { state: 'error', error: `target removed, but not its backing file: ${errorMessage(err)}` };
  }
}
