/**
 * Thin LVs for volumes (`roles.storage.lvm.thin_pool: VG/POOL`), the pure half: reading `lvs`'s
 * JSON report, the pool's free space, and the plan of what to create, grow or activate before the
 * backend renders its targets. lvm-apply.ts runs the plan through the injected runner.
 *
 * Which LVs are the agent's: those in the configured pool carrying the LVM tag {@link LVM_TAG},
 * which `lvcreate --addtag` sets. Only those are ever grown or removed, so a record naming an LV an
 * operator made in the pool can neither get it exported nor destroyed.
 */
import { checkVolumeRecord, type VolumeRecord } from '../../core/volume-record.js';

/** The tag every LV the agent creates carries (`lvs -o lv_tags`). */
export const LVM_TAG = 'mammatus';

/** The columns the agent reads. */
export const LVS_FIELDS = 'vg_name,lv_name,lv_size,lv_attr,pool_lv,lv_tags,data_percent,metadata_percent';

/** `lvs` argv (after `lvs`) for one VG: a JSON report, sizes in bytes without a suffix. */
export function lvsArgs(vg: string): string[] {
  return ['--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', LVS_FIELDS, '--', vg];
}

/** A thin pool, as configured. */
export interface ThinPool {
  readonly vg: string;
  readonly pool: string;
}

/** One LV, as `lvs` reports it. */
export interface LvInfo {
  readonly vg: string;
  readonly lv: string;
  readonly sizeBytes: number;
  /** `lv_attr`: [0] type (`t` thin pool, `V` thin volume), [4] state (`a` active), [7] `z` (pool zeroes new blocks). */
  readonly attr: string;
  /** The pool of a thin volume; empty otherwise. */
  readonly pool: string;
  readonly tags: readonly string[];
  /** A pool's (or thin volume's) data use in percent; undefined for other LVs. */
  readonly dataPercent?: number;
  readonly metadataPercent?: number;
}

/** `lvs` printed something the agent cannot read. */
export class LvsParseError extends Error {
  override readonly name = 'LvsParseError';
}

/** A report value: lvm2's `json` format prints strings, `json_std` numbers; empty means none. */
function num(v: unknown): number | undefined {
  const text = typeof v === 'number' ? String(v) : typeof v === 'string' ? v.trim().replace(/[Bb]$/, '') : '';
  if (!text) return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

/** Parses `lvs --reportformat json` output (see {@link lvsArgs}). Pure; @throws LvsParseError. */
export function parseLvs(text: string): LvInfo[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new LvsParseError('lvs printed no JSON report (is lvm2 at least 2.02.158?)');
  }
  const reports = (doc as { report?: unknown }).report;
  if (!Array.isArray(reports)) throw new LvsParseError('lvs report: no "report" list');
  const out: LvInfo[] = [];
  for (const r of reports) {
    const rows = (r as { lv?: unknown }).lv ?? [];
    if (!Array.isArray(rows)) throw new LvsParseError('lvs report: "lv" is not a list');
    for (const row of rows as Record<string, unknown>[]) {
      const str = (k: string) => (typeof row[k] === 'string' ? row[k].trim() : '');
      const size = num(row.lv_size);
      if (!str('vg_name') || !str('lv_name') || size === undefined)
        throw new LvsParseError(`lvs report: a row without vg_name, lv_name or lv_size`);
      const data = num(row.data_percent);
      const meta = num(row.metadata_percent);
      out.push({
        vg: str('vg_name'),
        lv: str('lv_name'),
        sizeBytes: size,
        attr: str('lv_attr'),
        pool: str('pool_lv').replace(/^\[|\]$/g, ''),
        tags: str('lv_tags').split(',').filter(Boolean),
        ...(data !== undefined ? { dataPercent: data } : {}),
        ...(meta !== undefined ? { metadataPercent: meta } : {}),
      });
    }
  }
  return out;
}

/** The pool's LV, or why it cannot hold volumes. */
export function findThinPool(lvs: readonly LvInfo[], pool: ThinPool): LvInfo | string {
  const lv = lvs.find((l) => l.vg === pool.vg && l.lv === pool.pool);
  if (!lv) return `thin pool ${pool.vg}/${pool.pool} does not exist (lvcreate --type thin-pool -L SIZE -n ${pool.pool} ${pool.vg})`;
  if (lv.attr[0] !== 't') return `${pool.vg}/${pool.pool} is not a thin pool (lv_attr ${lv.attr})`;
  return lv;
}

/** The pool's size and what of it is not used yet (data_percent), or why there is none. Pure. */
export function thinPoolSpace(lvs: readonly LvInfo[], pool: ThinPool): { free: number; total: number } | string {
  const lv = findThinPool(lvs, pool);
  if (typeof lv === 'string') return lv;
  const used = Math.min(100, Math.max(0, lv.dataPercent ?? 0));
  return { free: Math.floor((lv.sizeBytes * (100 - used)) / 100), total: lv.sizeBytes };
}

/** Is `lv` a thin volume the agent made in `pool`? */
export function ownedThinLv(lv: LvInfo, pool: ThinPool): boolean {
  return lv.vg === pool.vg && lv.pool === pool.pool && lv.attr[0] === 'V' && lv.tags.includes(LVM_TAG);
}

/** Is the record's backing a thin LV of the configured pool (so the agent manages it)? */
export function inThinPool(v: VolumeRecord, pool: ThinPool | undefined): boolean {
  return pool !== undefined && v.backing.kind === 'lvm' && v.backing.vg === pool.vg && v.backing.pool === pool.pool;
}

/** One LV change. */
export interface LvStep {
  readonly volume: string;
  readonly vg: string;
  readonly lv: string;
  /** create and extend: the record's size. */
  readonly sizeBytes: number;
}

/** What a pass does to LVM before the backend runs. */
export interface ThinPlan {
  readonly create: readonly LvStep[];
  readonly extend: readonly LvStep[];
  readonly activate: readonly LvStep[];
  /** Volumes that must not be rendered (no LV of theirs may be served), and why. */
  readonly refused: ReadonlyMap<string, string>;
}

/**
 * What to do for this node's volumes in `pool`, given `lvs` of its VG. Pure. A volume not in the
 * pool is left alone, except one naming another LV of the pool's VG when that VG is not listed in
 * `volumeGroups` (it would be exported only because of the pool). Volumes being deleted are
 * handled after their target is gone ({@link thinRemovals}). LVs only grow: LVM rounds a size up to
 * whole extents, so an LV larger than its record is normal.
 */
export function planThinVolumes(
  volumes: readonly VolumeRecord[],
  pool: ThinPool,
  lvs: readonly LvInfo[],
  volumeGroups: readonly string[],
): ThinPlan {
  const plan = { create: [] as LvStep[], extend: [] as LvStep[], activate: [] as LvStep[], refused: new Map<string, string>() };
  const poolLv = findThinPool(lvs, pool);
  const name = `${pool.vg}/${pool.pool}`;
  for (const v of volumes) {
    if (v.backing.kind !== 'lvm' || v.state === 'deleting' || !valid(v)) continue;
    const { vg, lv } = v.backing;
    if (!inThinPool(v, pool)) {
      if (vg === pool.vg && !volumeGroups.includes(vg))
        plan.refused.set(
          v.name,
          `backing: ${vg}/${lv} is not in the thin pool ${name} and ${vg} is not in roles.storage.lvm.volume_groups`,
        );
      continue;
    }
    const step = { volume: v.name, vg, lv, sizeBytes: v.size_bytes };
    const have = lvs.find((l) => l.vg === vg && l.lv === lv);
    if (!have) {
      if (typeof poolLv === 'string') plan.refused.set(v.name, poolLv);
      else if (poolLv.attr[7] !== 'z')
        plan.refused.set(
          v.name,
          `thin pool ${name} does not zero new blocks, so a new volume could read a deleted one's data: lvchange -Z y ${name}`,
        );
      else plan.create.push(step);
      continue;
    }
    if (!ownedThinLv(have, pool)) {
      plan.refused.set(
        v.name,
        `${vg}/${lv} exists but is not a thin volume of ${name} tagged ${LVM_TAG} (pool ${have.pool || 'none'}, tags ${have.tags.join(',') || 'none'}): not served; lvchange --addtag ${LVM_TAG} ${vg}/${lv} if it is this volume's`,
      );
      continue;
    }
    if (have.sizeBytes < v.size_bytes) plan.extend.push(step);
    if (have.attr[4] !== 'a') plan.activate.push(step);
  }
  return plan;
}

/** The LVs to remove for volumes being deleted whose target is gone: only the agent's own. Pure. */
export function thinRemovals(deleted: readonly VolumeRecord[], pool: ThinPool, lvs: readonly LvInfo[]): LvStep[] {
  const out: LvStep[] = [];
  for (const v of deleted) {
    if (v.backing.kind !== 'lvm' || !inThinPool(v, pool)) continue;
    const { vg, lv } = v.backing;
    const have = lvs.find((l) => l.vg === vg && l.lv === lv);
    if (have && ownedThinLv(have, pool)) out.push({ volume: v.name, vg, lv, sizeBytes: have.sizeBytes });
  }
  return out;
}

function valid(v: VolumeRecord): boolean {
  try {
    checkVolumeRecord(v);
    return true;
  } catch {
    return false; // the backend's render names it
  }
}
