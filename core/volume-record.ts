/**
 * A volume record of the registry (issue 18, the storage role): a block device a storage node
 * serves over iSCSI to the compute node of the instance it is attached to. Its shape and the checks
 * every write passes, so the storage role's renderers (LIO, tgt) never see a malformed one. Pure.
 */
import { isIPv4 } from 'node:net';

/** What a volume is doing, as asked for (the storage node reports what is in `observed`). */
export type VolumeState = 'creating' | 'available' | 'deleting';

/** Where a volume's blocks live on its storage node. */
export type VolumeBacking =
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'lvm'; readonly vg: string; readonly pool: string; readonly lv: string };

/** The instance a volume is attached to, and the initiator that may log in. */
export interface VolumeAttachment {
  readonly instance: string;
  /** The compute node running the instance (its Serf name). */
  readonly node: string;
  /** That node's iSCSI initiator IQN: the only one the target's ACL admits. */
  readonly initiator: string;
  /** Where the volume is mounted inside the instance; absent = a raw block device. */
  readonly path?: string;
}

/**
 * What the storage node last reported about a volume (it writes only this block, through the
 * controllers' volume write API): `serving` = its target is up; `error` = it could not serve it
 * (`error` says why); `absent` = it has no target for it (after a delete this ends the record).
 */
export interface VolumeObserved {
  readonly state: 'serving' | 'error' | 'absent';
  /** Why, when `error` (at most 300 characters are stored). */
  readonly error?: string;
  /** The LUN it serves the volume as (copied to the record's `lun`). */
  readonly lun?: number;
  /**
   * The IPv4 address its target listens on (`roles.storage.portal`, by default the storage node's
   * Serf address): where compute nodes log in. Reported with `serving`.
   */
  readonly portal?: string;
  /** When the registry stored the report; set by the write API (what a node sends is ignored). */
  readonly at?: string;
}

/** One volume. Times are ISO 8601 (UTC). */
export interface VolumeRecord {
  /** A DNS label; part of the IQN. Unique. */
  readonly name: string;
  readonly size_bytes: number;
  /** The storage node that serves it (its Serf name). */
  readonly node: string;
  readonly backing: VolumeBacking;
  readonly state: VolumeState;
  readonly attached?: VolumeAttachment;
  /** CHAP for the attaching initiator: user 1–223 chars, secret 12–16 chars (RFC 3720 and Windows/LIO practice). */
  readonly chap: { readonly user: string; readonly secret: string };
  /** The LUN the target serves it as: 0 with LIO, 1 with tgt (tgt's LUN 0 is its controller). */
  readonly lun?: number;
  /** The storage node's last report; absent until it made one. */
  readonly observed?: VolumeObserved;
  readonly created_at: string;
  readonly updated_at: string;
}

/** A volume record that breaks a rule; the message names the field. */
export class VolumeRecordError extends Error {
  override readonly name = 'VolumeRecordError';
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** RFC 3720 iqn. names: `iqn.YYYY-MM.reversed.domain[:anything]`, lower case, no spaces. */
const IQN = /^iqn\.\d{4}-(0[1-9]|1[0-2])\.[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[a-z0-9.:_-]+)?$/;

/** Is `text` a valid iSCSI qualified name (`iqn.` form, at most 223 bytes)? */
export function isIqn(text: string): boolean {
  return text.length <= 223 && IQN.test(text);
}

/**
 * The target IQN of a volume: `iqn.<year>-<month of creation>.mammatus:volume.<name>` (stable for
 * its life). The `volume.` is not decoration: rtslib-fb (targetcli, targetctl; Debian 12 ships
 * 2.1.75) accepts an iqn. name only when a dot follows the date's dot, so it refuses
 * `iqn.2026-12.mammatus:data` ("WWN not valid as: iqn, naa, eui") and LIO could serve no volume.
 */
export function volumeIqn(v: Pick<VolumeRecord, 'name' | 'created_at'>): string {
  const d = new Date(v.created_at);
  if (Number.isNaN(d.getTime())) throw new VolumeRecordError(`created_at: not a time: ${v.created_at}`);
  return `iqn.${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}.mammatus:volume.${v.name}`;
}

/** Checks a record; @throws VolumeRecordError naming the first field at fault. */
export function checkVolumeRecord(v: VolumeRecord): VolumeRecord {
  const fail = (field: string, why: string): never => {
    throw new VolumeRecordError(`volume ${JSON.stringify(v.name)}: ${field}: ${why}`);
  };
  if (!DNS_LABEL.test(v.name)) fail('name', 'must be a DNS label (a-z, 0-9, -; at most 63)');
  if (!Number.isSafeInteger(v.size_bytes) || v.size_bytes < 1 << 20) fail('size_bytes', 'must be a whole number of at least 1 MiB');
  if (!v.node) fail('node', 'is required');
  if (v.backing.kind === 'file' && !v.backing.path.startsWith('/')) fail('backing.path', 'must be absolute');
  if (v.backing.kind === 'lvm' && ![v.backing.vg, v.backing.pool, v.backing.lv].every((s) => /^[A-Za-z0-9+_.-]{1,127}$/.test(s)))
    fail('backing', 'LVM names may hold only A-Z a-z 0-9 + _ . -');
  if (!/^[\x21-\x7e]{1,223}$/.test(v.chap.user)) fail('chap.user', 'must be 1–223 printable characters without spaces');
  if (!/^[\x21-\x7e]{12,16}$/.test(v.chap.secret)) fail('chap.secret', 'must be 12–16 printable characters without spaces');
  if (v.attached && !isIqn(v.attached.initiator)) fail('attached.initiator', 'must be an iqn. name');
  if (v.attached && !DNS_LABEL.test(v.attached.instance)) fail('attached.instance', 'must be an instance name');
  if (v.attached && !v.attached.node) fail('attached.node', 'is required');
  if (v.attached?.path !== undefined && !/^\/[^\0\n]*$/.test(v.attached.path)) fail('attached.path', 'must be an absolute path');
  if (v.lun !== undefined && (!Number.isInteger(v.lun) || v.lun < 0 || v.lun > 255)) fail('lun', 'must be 0–255');
  if (v.observed && !['serving', 'error', 'absent'].includes(v.observed.state)) fail('observed.state', 'must be serving, error or absent');
  if (v.observed?.portal !== undefined && !isIPv4(v.observed.portal)) fail('observed.portal', 'must be an IPv4 address');
  if (!['creating', 'available', 'deleting'].includes(v.state)) fail('state', 'must be creating, available or deleting');
  volumeIqn(v);
  return v;
}
