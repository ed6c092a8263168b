/**
 * Where `mammatus volume create` puts a volume. Without `--node` it asks the storage nodes
 * (`mammatus.storage-capacity`, a Serf query filtered to the `storage` role) and picks the ready
 * one with the most free space that fits the volume. A storage node's answer (docs/serf.md,
 * docs/storage.md) is one JSON object (also accepted under `storage`, should a node answer for
 * several roles at once); `path`, where its backing files go, and `thin_pool` (`VG/POOL`, when it
 * makes volumes as thin LVs) are optional and decide the new record's backing ({@link backingFor}):
 *
 * ```json
 * {"kind":"storage","node":"st1","ready":true,"free_bytes":107374182400,"total_bytes":214748364800,"volumes":3,"attached":1}
 * ```
 *
 * Choosing is pure ({@link chooseStorageNode}); asking is one Serf query that ends as soon as every
 * alive storage member has answered.
 */
import type { Member } from '../../core/contracts.js';
import { AGENT_TAG, hasRole, ROLE_TAG } from '../../core/members.js';
import type { VolumeBacking } from '../../core/volume-record.js';
import { connect, queryUntilAnswered, type GlobalOptions } from './common.js';

/** The storage nodes' capacity query (compute nodes answer `mammatus.capacity`). */
export const STORAGE_CAPACITY_QUERY = 'mammatus.storage-capacity';
/** Serf's tag filters are unanchored regular expressions; the `role` tag is a comma-separated list. */
export const STORAGE_TAG_FILTER = { [ROLE_TAG]: '(^|,)storage(,|$)' };

/** What a storage node says about its room for volumes. */
export interface StorageCapacity {
  readonly node: string;
  /** Its backend runs and it follows the registry: a volume recorded for it will be served. */
  readonly ready: boolean;
  readonly reason?: string;
  /** Bytes free where its backing files (or LVs) go. */
  readonly free_bytes: number;
  readonly total_bytes?: number;
  readonly volumes?: number;
  /** Its `roles.storage.path`: where new backing files go. */
  readonly path?: string;
  /** `VG/POOL` when it makes new volumes as thin LVs (`roles.storage.lvm.thin_pool`): the record gets an lvm backing. */
  readonly thin_pool?: string;
}

/** The storage members, and each one's answer (or why there is none). */
export interface StorageSurvey {
  readonly members: readonly Member[];
  readonly answers: ReadonlyMap<string, StorageCapacity | string>;
}

/** Parses one answer; a string says why it is not a storage capacity answer. */
export function parseStorageCapacity(text: string): StorageCapacity | string {
  try {
    const outer = JSON.parse(text) as Record<string, unknown>;
    if (typeof outer.error === 'string') return `error: ${outer.error}`;
    const v = (typeof outer.storage === 'object' && outer.storage !== null ? { node: outer.node, ...outer.storage } : outer) as Partial<
      Record<keyof StorageCapacity, unknown>
    >;
    if (typeof v.node !== 'string' || typeof v.ready !== 'boolean' || typeof v.free_bytes !== 'number')
      return 'no storage capacity in its answer';
    return v as StorageCapacity;
  } catch {
    return 'bad answer';
  }
}

/** Asks the storage members (all, or only `node`) for their capacity. */
export async function surveyStorage(g: GlobalOptions, opts: { node?: string; timeoutMs?: number } = {}): Promise<StorageSurvey> {
  const client = await connect(g);
  try {
    const all = await client.members();
    const members = all.filter((m) => (opts.node ? m.name === opts.node : hasRole(m, 'storage')));
    const waiting = new Set(members.filter((m) => m.status === 'alive' && hasRole(m, 'storage') && m.tags[AGENT_TAG]).map((m) => m.name));
    const params = {
      name: STORAGE_CAPACITY_QUERY,
      filterTags: STORAGE_TAG_FILTER,
      ...(opts.node ? { filterNodes: [opts.node] } : {}),
      timeoutMs: opts.timeoutMs ?? 0,
    };
    const texts = await queryUntilAnswered(client, params, waiting);
    return { members, answers: new Map([...texts].map(([node, text]) => [node, parseStorageCapacity(text)])) };
  } finally {
    client.close();
  }
}

/** Why a member cannot take a volume of `size` bytes now, or undefined when it can. */
export function storageUnfitReason(
  member: Member | undefined,
  answer: StorageCapacity | string | undefined,
  size: number,
): string | undefined {
  if (!member) return 'not a member of the cluster';
  if (member.status !== 'alive') return `not alive (serf: ${member.status})`;
  if (!hasRole(member, 'storage')) return 'does not have the storage role';
  if (!member.tags[AGENT_TAG]) return 'runs no mammatus agent';
  if (answer === undefined) return 'did not answer';
  if (typeof answer === 'string') return answer;
  if (!answer.ready) return `not ready: ${answer.reason ?? 'unknown'}`;
  if (answer.free_bytes < size) return `only ${answer.free_bytes} bytes free`;
  return undefined;
}

/**
 * Picks the storage node for a new volume of `size` bytes: among the ready ones with room, the
 * most free space (less what the registry has placed there but the node may not have made yet,
 * `placed`); then the name, so the choice is stable. No answer at all is its own error: the
 * storage nodes run no agent that answers yet, and the operator must name one.
 */
export function chooseStorageNode(
  survey: StorageSurvey,
  size: number,
  placed: ReadonlyMap<string, number> = new Map(),
): { node: string; path?: string; thin_pool?: string } | { error: string } {
  const answered = [...survey.answers.values()].some((a) => typeof a !== 'string');
  if (!answered)
    return {
      error: `no storage node answers ${STORAGE_CAPACITY_QUERY} yet${survey.members.length ? ` (${survey.members.map((m) => m.name).join(', ')})` : ''}; name one with --node`,
    };
  const fit: StorageCapacity[] = [];
  const unfit: string[] = [];
  for (const m of [...survey.members].sort((a, b) => a.name.localeCompare(b.name))) {
    const answer = survey.answers.get(m.name);
    const why = storageUnfitReason(m, answer, size);
    if (why) unfit.push(`${m.name}: ${why}`);
    else fit.push(answer as StorageCapacity);
  }
  if (!fit.length) return { error: `no storage node can take the volume (${unfit.join('; ')})` };
  const room = (a: StorageCapacity) => a.free_bytes - (placed.get(a.node) ?? 0);
  fit.sort((a, b) => room(b) - room(a) || a.node.localeCompare(b.node));
  const best = fit[0];
  return { node: best.node, ...(best.path ? { path: best.path } : {}), ...(best.thin_pool ? { thin_pool: best.thin_pool } : {}) };
}

/** The LV name of a volume in a thin pool (`mammatus-` keeps the agent's LVs apart in `lvs`). */
export function volumeLvName(volume: string): string {
  return `mammatus-${volume}`;
}

/**
 * The backing a new volume gets from its storage node's answer: a thin LV `mammatus-<name>` when
 * the node serves from a thin pool, else a file `<path>/<name>.img`; undefined (the registry's
 * default file) when the answer says neither. Pure.
 */
export function backingFor(name: string, answer: Pick<StorageCapacity, 'path' | 'thin_pool'> | undefined): VolumeBacking | undefined {
  const [vg, pool, ...rest] = answer?.thin_pool?.split('/') ?? [];
  if (vg && pool && rest.length === 0) return { kind: 'lvm', vg, pool, lv: volumeLvName(name) };
  if (answer?.path) return { kind: 'file', path: `${answer.path.replace(/\/+$/, '')}/${name}.img` };
  return undefined;
}
