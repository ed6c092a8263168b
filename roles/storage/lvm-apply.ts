/**
 * Thin LVs for volumes, the effects: read `lvs`, create (`lvcreate -V BYTESB -T VG/POOL -n LV
 * --addtag mammatus --addtag mammatus-created-…`), adopt an LV made before identity tags
 * (`lvchange --addtag mammatus-created-… VG/LV`), grow (`lvextend -L BYTESB VG/LV`), activate
 * (`lvchange -ay VG/LV`) and, once a deleted volume's target is gone, remove (`lvremove -y VG/LV`),
 * all through the injected runner. Every failure is that volume's error; none stops the others or the pass.
 */
import type { Run } from '../../core/contracts.js';
import { errorMessage } from '../../core/errors.js';
import type { VolumeRecord } from '../../core/volume-record.js';
import {
  inThinPool,
  LVM_TAG,
  lvsArgs,
  parseLvs,
  planThinVolumes,
  thinPoolSpace,
  thinRecordProblem,
  thinRemovals,
  type LvInfo,
  type LvStep,
  type ThinPool,
} from './lvm.js';

/** What {@link prepareThinVolumes} leaves for the backend. */
export interface ThinPrepared {
  /** The volumes to render: refused ones left out, thin ones at their LV's real size (LVM rounds up). */
  readonly volumes: readonly VolumeRecord[];
  /** volume → why its LV is not as recorded (it is reported `error`, whatever the backend says). */
  readonly errors: ReadonlyMap<string, string>;
  /**
   * Volumes whose target the backend must leave exactly as it is (none is made), and why: attached
   * thin volumes while `lvs` fails (their LV's size and identity are unknown).
   */
  readonly hold: ReadonlyMap<string, string>;
  /** The LVs as last read; undefined when `lvs` failed. */
  readonly lvs?: readonly LvInfo[];
}

/** The message of a failed command, with its stderr's last line (LVM says why there). */
function why(err: unknown): string {
  const stderr = (err as { stderr?: unknown }).stderr;
  const last = typeof stderr === 'string' ? stderr.trim().split('\n').at(-1)?.trim() : undefined;
  return last ? `${errorMessage(err)}: ${last}` : errorMessage(err);
}

/** Reads the LVs of the pool's VG. @throws when lvs cannot be run or read. */
export async function readLvs(run: Run, pool: ThinPool): Promise<LvInfo[]> {
  return parseLvs((await run('lvs', lvsArgs(pool.vg))).stdout);
}

/** The pool's free and total bytes; @throws when LVM cannot say (the caller keeps the last value). */
export async function thinPoolSpaceOf(run: Run, pool: ThinPool): Promise<{ free: number; total: number }> {
  const space = thinPoolSpace(await readLvs(run, pool), pool);
  if (typeof space === 'string') throw new Error(space);
  return space;
}

/**
 * Brings the thin LVs of `volumes` (this node's) to their records before the backend renders:
 * creates missing ones, grows small ones, activates inactive ones, then reads `lvs` again for the
 * real sizes. A volume whose LV cannot be made is left out of the render (there is nothing to
 * serve); one whose LV could not grow is rendered at its current size (its target stays as it
 * was). When `lvs` itself fails, every thin volume reports the error: an attached one is held (its
 * target stays as it was: rendered at the recorded size, tgt would see a size other than the LV's
 * rounded-up one and re-create it), an unattached one is left out (nobody may log in to it, and
 * no target is made for an LV whose identity cannot be checked).
 */
export async function prepareThinVolumes(
  volumes: readonly VolumeRecord[],
  pool: ThinPool,
  volumeGroups: readonly string[],
  run: Run,
): Promise<ThinPrepared> {
  const errors = new Map<string, string>();
  const thin = volumes.filter((v) => inThinPool(v, pool) && v.state !== 'deleting');
  let lvs: LvInfo[];
  try {
    lvs = await readLvs(run, pool);
  } catch (err) {
    const hold = new Map<string, string>();
    for (const v of thin) {
      errors.set(v.name, `cannot read LVM (lvs): ${why(err)}`);
      if (v.attached) hold.set(v.name, 'its target is left as it was until LVM can be read');
    }
    // Records refused whatever LVM says stay refused: the pool's VG is exportable for the backends.
    const out = volumes.filter((v) => {
      const problem = thinRecordProblem(v, pool, volumeGroups);
      if (problem && !errors.has(v.name)) errors.set(v.name, problem);
      return !problem && (!thin.includes(v) || hold.has(v.name));
    });
    return { volumes: out, errors, hold };
  }
  const plan = planThinVolumes(volumes, pool, lvs, volumeGroups);
  for (const [name, reason] of plan.refused) errors.set(name, reason);
  const failedCreate = new Set<string>();
  const attempt = async (s: LvStep, what: string, argv: string[], onFail?: () => void) => {
    try {
      await run(argv[0], argv.slice(1));
    } catch (err) {
      errors.set(s.volume, `${what} ${s.vg}/${s.lv}: ${why(err)}`);
      onFail?.();
    }
  };
  const target = `${pool.vg}/${pool.pool}`;
  for (const s of plan.create)
    await attempt(
      s,
      'lvcreate',
      ['lvcreate', '-V', `${s.sizeBytes}B`, '-T', target, '-n', s.lv, '--addtag', LVM_TAG, '--addtag', s.tag],
      () => failedCreate.add(s.volume),
    );
  for (const s of plan.tag) await attempt(s, 'lvchange --addtag', ['lvchange', '--addtag', s.tag, `${s.vg}/${s.lv}`]);
  // Grow only: lvextend refuses a smaller size anyway, and the plan never asks for one.
  for (const s of plan.extend) await attempt(s, 'lvextend', ['lvextend', '-L', `${s.sizeBytes}B`, `${s.vg}/${s.lv}`]);
  for (const s of plan.activate) await attempt(s, 'lvchange -ay', ['lvchange', '-ay', `${s.vg}/${s.lv}`]);
  if (plan.create.length + plan.extend.length + plan.activate.length + plan.tag.length > 0) {
    try {
      lvs = await readLvs(run, pool);
    } catch (err) {
      for (const v of thin) if (!errors.has(v.name)) errors.set(v.name, `cannot read LVM after changing it (lvs): ${why(err)}`);
    }
  }
  const render: VolumeRecord[] = [];
  for (const v of volumes) {
    if (plan.refused.has(v.name) || failedCreate.has(v.name)) continue;
    const b = v.backing;
    const have = b.kind === 'lvm' && inThinPool(v, pool) ? lvs.find((l) => l.vg === b.vg && l.lv === b.lv) : undefined;
    render.push(have && v.state !== 'deleting' ? { ...v, size_bytes: have.sizeBytes } : v);
  }
  return { volumes: render, errors, hold: new Map(), lvs };
}

/**
 * Removes the LVs of deleted volumes whose targets are gone (`gone`); returns volume → error for
 * those that could not be removed. LVs the agent did not make, or made for another record of that
 * name, are never touched ({@link thinRemovals}).
 */
export async function removeThinVolumes(
  gone: readonly VolumeRecord[],
  pool: ThinPool,
  lvs: readonly LvInfo[],
  run: Run,
): Promise<Map<string, string>> {
  const { remove, refused } = thinRemovals(gone, pool, lvs);
  const errors = new Map(refused);
  for (const s of remove) {
    try {
      await run('lvremove', ['-y', `${s.vg}/${s.lv}`]);
    } catch (err) {
      errors.set(s.volume, `target removed, but not its LV ${s.vg}/${s.lv}: ${why(err)}`);
    }
  }
  return errors;
}
