/**
 * `mammatus.storage-capacity`: a storage node answers how much room it has for volumes, so the
 * volume CLI can pick a node. The answer is one small JSON object, shaped like the compute role's
 * `mammatus.capacity` answer (`node`, `ready`, `reason`) with `kind: "storage"`:
 *
 * ```json
 * {"kind":"storage","node":"st1","ready":true,"backend":"tgt","free_bytes":85899345920,"total_bytes":107374182400,"allocated_bytes":12884901888,"volumes":3,"attached":1,"path":"/var/lib/mammatus/volumes"}
 * ```
 *
 * With `roles.storage.lvm.thin_pool` set, `free_bytes`/`total_bytes` are the pool's (its size and
 * what `data_percent` leaves) and `"thin_pool":"vg0/pool0"` tells the volume CLI to record new
 * volumes there:
 *
 * ```json
 * {"kind":"storage","node":"st1","ready":true,"backend":"lio","free_bytes":…,"total_bytes":…,"allocated_bytes":0,"volumes":0,"attached":0,"path":"/var/lib/mammatus/volumes","thin_pool":"vg0/pool0"}
 * ```
 *
 * Its own query name, not `mammatus.capacity`: a node may run both roles, and the agent takes one
 * handler per query name (the dispatcher refuses a second).
 */

import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Query name, as documented in docs/serf.md. */
export const STORAGE_CAPACITY_QUERY = 'mammatus.storage-capacity';

/** One storage node's answer. */
export interface StorageCapacityAnswer {
  readonly kind: 'storage';
  readonly node: string;
  /** The registry is followed and the last pass ran: a volume recorded for this node will be served. */
  readonly ready: boolean;
  /** Why not ready (shortened). */
  readonly reason?: string;
  readonly backend?: 'lio' | 'tgt';
  /** Free bytes of the filesystem of `roles.storage.path` (what an unprivileged writer could get), or of the thin pool. */
  readonly free_bytes: number;
  readonly total_bytes: number;
  /** The sizes of the volumes recorded for this node (sparse files: more than they use now). */
  readonly allocated_bytes: number;
  readonly volumes: number;
  readonly attached: number;
  /** `roles.storage.path`: where a new volume's backing file goes. */
  readonly path?: string;
  /** `VG/POOL` when the node makes new volumes as thin LVs there (`roles.storage.lvm.thin_pool`). */
  readonly thin_pool?: string;
}

/** Builds the answer from the storage role's facts (undefined: the role reports nothing yet). Pure. */
export function buildStorageCapacity(node: string, facts: Readonly<Record<string, unknown>> | undefined): StorageCapacityAnswer {
  const num = (k: string) => (typeof facts?.[k] === 'number' ? facts[k] : 0);
  const ready = facts?.ready === true;
  const reason = typeof facts?.reason === 'string' ? facts.reason : 'the storage role reports nothing yet';
  const backend = facts?.backend === 'lio' || facts?.backend === 'tgt' ? facts.backend : undefined;
  return {
    kind: 'storage',
    node,
    ready,
    ...(ready ? {} : { reason: reason.length > 160 ? `${reason.slice(0, 159)}…` : reason }),
    ...(backend ? { backend } : {}),
    free_bytes: num('free_bytes'),
    total_bytes: num('total_bytes'),
    allocated_bytes: num('allocated_bytes'),
    volumes: num('volumes'),
    attached: num('attached'),
    ...(typeof facts?.path === 'string' ? { path: facts.path } : {}),
    ...(typeof facts?.thin_pool === 'string' ? { thin_pool: facts.thin_pool } : {}),
  };
}

/** Parses one answer; a string says why it is not a storage capacity answer. */
export function parseStorageCapacity(text: string): StorageCapacityAnswer | string {
  try {
    const v = JSON.parse(text) as Partial<StorageCapacityAnswer> & { error?: unknown };
    if (typeof v.error === 'string') return `error: ${v.error}`;
    const ok =
      v.kind === 'storage' &&
      typeof v.node === 'string' &&
      typeof v.ready === 'boolean' &&
      [v.free_bytes, v.total_bytes, v.allocated_bytes, v.volumes, v.attached].every((n) => typeof n === 'number');
    return ok ? (v as StorageCapacityAnswer) : 'bad answer';
  } catch {
    return 'bad answer';
  }
}

/** Free and total bytes of a filesystem. */
export type FsSpace = (path: string) => Promise<{ readonly free: number; readonly total: number }>;

/** statfs of `p`, or of its nearest existing parent (the volume directory is made by the first volume). */
export const fsSpace: FsSpace = async (p) => {
  for (let dir = p; ; dir = dirname(dir)) {
    try {
      const s = await statfs(dir);
      return { free: s.bavail * s.bsize, total: s.blocks * s.bsize };
    } catch (err) {
      if (dir === '/') throw err;
    }
  }
};
