/**
 * Thin LVs for volumes (`roles.storage.lvm.thin_pool: VG/POOL`), the pure half: reading `lvs`'s
 * JSON report, the pool's free space, and the plan of what to create, grow or activate before the
 * backend renders its targets. lvm-apply.ts runs the plan through the injected runner.
 *
 * Which LVs are the agent's: those in the configured pool carrying the LVM tag {@link LVM_TAG},
 * which `lvcreate --addtag` sets. Only those are ever grown or removed, so a record naming an LV an
 * operator made in the pool can neither get it exported nor destroyed.
 *
 * Which volume an LV is: its name is `mammatus-<volume>` ({@link thinLvName}; a record in the pool
 * naming another LV is refused) and it carries the record's {@link identityTag}, set at lvcreate.
 * A record is served, grown or removed only with an LV carrying its own tag: an LV left behind by
 * `volume rm --force` has the earlier volume's tag, so a new volume of that name never gets the
 * old tenant's data (docs/security.md, "No data from a deleted volume").
 */
import { checkVolumeRecord, type VolumeRecord } from '../../core/volume-record.js';

/** The tag every LV the agent creates carries (`lvs -o lv_tags`). */
export const LVM_TAG = 'mammatus';

/** The LV of volume `name` in the thin pool. */
export function thinLvName(name: string): string {
  return `${LVM_TAG}-${name}`;
}

/**
 * The LVM tag that ties an LV to one volume record: `mammatus-created-` and the record's
 * `created_at` cut to [0-9A-Za-z] (`2026-12-06T12:00:00.000Z` → `mammatus-created-20261206T120000000Z`;
 * LVM tags allow A-Z a-z 0-9 _ + . - / = ! : # &, up to 1024, not starting with `-`). A record's
 * name and creation time together are unique: the registry refuses a second record of a name that
 * exists, and a later one has a later time.
 */
export function identityTag(v: Pick<VolumeRecord, 'created_at'>): string {
  return `${IDENTITY_PREFIX}${v.created_at.replace(/[^0-9A-Za-z]/g, '')}`;
}

const IDENTITY_PREFIX = `${LVM_TAG}-created-`;

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
  /** The record's {@link identityTag}. */
  readonly tag: string;
}

/** What a pass does to LVM before the backend runs. */
export interface ThinPlan {
  readonly create: readonly LvStep[];
  readonly extend: readonly LvStep[];
  readonly activate: readonly LvStep[];
  /** Adopt an LV made before LVs carried the record's tag (`lvchange --addtag`); see {@link planThinVolumes}. */
  readonly tag: readonly LvStep[];
  /** Volumes that must not be rendered (no LV of theirs may be served), and why. */
  readonly refused: ReadonlyMap<string, string>;
}

/**
 * Why a record must not be served whatever LVM says, if so. Pure. A record in the pool must name
 * its own LV, `mammatus-<name>`: another name would serve a second target on another volume's LV
 * (its data to another tenant, two filesystems mounting one device). A record outside the pool may
 * not name an LV of the pool's VG unless that VG is in `volumeGroups` (it would be exported only
 * because of the pool), nor, even then, one named `mammatus-*`: those are the agent's. Records of
 * `volumeGroups` VGs otherwise name the operator's existing LVs freely (exported only).
 */
export function thinRecordProblem(v: VolumeRecord, pool: ThinPool, volumeGroups: readonly string[]): string | undefined {
  if (v.backing.kind !== 'lvm' || v.state === 'deleting') return undefined;
  const { vg, lv } = v.backing;
  const name = `${pool.vg}/${pool.pool}`;
  if (inThinPool(v, pool))
    return lv === thinLvName(v.name)
      ? undefined
      : `backing.lv: ${lv} is not ${thinLvName(v.name)}: a volume in the thin pool ${name} is served only from its own LV`;
  if (vg !== pool.vg) return undefined;
  if (!volumeGroups.includes(vg))
    return `backing: ${vg}/${lv} is not in the thin pool ${name} and ${vg} is not in roles.storage.lvm.volume_groups`;
  if (lv.startsWith(`${LVM_TAG}-`))
    return `backing: ${vg}/${lv} is named like the agent's thin LVs but the record is not in the thin pool ${name}`;
  return undefined;
}

/** What `lv`'s tags say about record `v`: its own, another record's, or made before identity tags. */
function identityOf(lv: LvInfo, v: VolumeRecord): 'own' | 'other' | 'none' {
  if (lv.tags.includes(identityTag(v))) return 'own';
  return lv.tags.some((t) => t.startsWith(IDENTITY_PREFIX)) ? 'other' : 'none';
}

/** The error for an LV named like the volume that is not this record's. */
function leftover(vg: string, lv: string, v: VolumeRecord, tag: string): string {
  // Short: `observed.error` keeps 300 characters. Adopting it instead (lvchange --addtag) is in the docs.
  return (
    `${vg}/${lv} is a leftover of an earlier volume named ${v.name} (no tag ${tag}): left alone. ` +
    `Check its data is not needed, then lvremove ${vg}/${lv} (docs/storage.md, "Leftovers")`
  );
}

/**
 * What to do for this node's volumes in `pool`, given `lvs` of its VG. Pure. Records refused by
 * {@link thinRecordProblem} are refused; other volumes not in the pool are left alone. Volumes
 * being deleted are handled after their target is gone ({@link thinRemovals}). LVs only grow: LVM
 * rounds a size up to whole extents, so an LV larger than its record is normal.
 *
 * An existing LV is this volume's only with the record's {@link identityTag}. One with another
 * record's tag is a leftover (refused). One with no identity tag was made before LVs had one: a
 * record that is no longer `creating` has been served from it, so it is adopted (tagged); a
 * `creating` record has never been served, so it may be a leftover and is refused.
 */
export function planThinVolumes(
  volumes: readonly VolumeRecord[],
  pool: ThinPool,
  lvs: readonly LvInfo[],
  volumeGroups: readonly string[],
): ThinPlan {
  const plan = {
    create: [] as LvStep[],
    extend: [] as LvStep[],
    activate: [] as LvStep[],
    tag: [] as LvStep[],
    refused: new Map<string, string>(),
  };
  const poolLv = findThinPool(lvs, pool);
  const name = `${pool.vg}/${pool.pool}`;
  for (const v of volumes) {
    if (v.backing.kind !== 'lvm' || v.state === 'deleting' || !valid(v)) continue;
    const problem = thinRecordProblem(v, pool, volumeGroups);
    if (problem) plan.refused.set(v.name, problem);
    if (problem || !inThinPool(v, pool)) continue;
    const { vg, lv } = v.backing;
    const step = { volume: v.name, vg, lv, sizeBytes: v.size_bytes, tag: identityTag(v) };
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
        `${vg}/${lv} exists but is not a thin volume of ${name} tagged ${LVM_TAG} (pool ${have.pool || 'none'}, tags ${have.tags.join(',') || 'none'}): not served; lvchange --addtag ${LVM_TAG} --addtag ${step.tag} ${vg}/${lv} if it is this volume's`,
      );
      continue;
    }
    const identity = identityOf(have, v);
    if (identity === 'other' || (identity === 'none' && v.state === 'creating')) {
      plan.refused.set(v.name, leftover(vg, lv, v, step.tag));
      continue;
    }
    if (identity === 'none') plan.tag.push(step);
    if (have.sizeBytes < v.size_bytes) plan.extend.push(step);
    if (have.attr[4] !== 'a') plan.activate.push(step);
  }
  return plan;
}

/**
 * The LVs to remove for volumes being deleted whose target is gone: only the agent's own, carrying
 * the record's tag (`remove`) and named for it. One named like the volume without the tag is a leftover of an earlier
 * volume, or one made before identity tags whose record was never adopted: not removed, and that
 * volume's error (`refused`) until the operator removes or tags it. Pure.
 */
export function thinRemovals(
  deleted: readonly VolumeRecord[],
  pool: ThinPool,
  lvs: readonly LvInfo[],
): { remove: LvStep[]; refused: Map<string, string> } {
  const remove: LvStep[] = [];
  const refused = new Map<string, string>();
  for (const v of deleted) {
    if (v.backing.kind !== 'lvm' || !inThinPool(v, pool)) continue;
    const { vg, lv } = v.backing;
    const have = lvs.find((l) => l.vg === vg && l.lv === lv);
    // A record naming another volume's LV was never served from it: it ends, the LV stays.
    if (!have || !ownedThinLv(have, pool) || lv !== thinLvName(v.name)) continue;
    const tag = identityTag(v);
    if (identityOf(have, v) === 'own') remove.push({ volume: v.name, vg, lv, sizeBytes: have.sizeBytes, tag });
    else refused.set(v.name, `target removed; ${leftover(vg, lv, v, tag)}`);
  }
  return { remove, refused };
}

function valid(v: VolumeRecord): boolean {
  try {
    checkVolumeRecord(v);
    return true;
  } catch {
    return false; // the backend's render names it
  }
}
