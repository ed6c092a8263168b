/**
 * The LIO backend's pure render: the volumes this storage node serves in, rtslib's saveconfig JSON
 * out (the format `targetctl save` / `targetcli saveconfig` write and `targetctl restore` /
 * `targetcli restoreconfig` read). One storage object, one iSCSI target and at most one node ACL
 * per volume, locked down so that no volume is reachable without its ACL and its CHAP secret.
 * Besides the node's whole config it renders, per target, the file a one-target restore reads.
 * Same input, same output: sorted, no clock, no I/O.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { checkVolumeRecord, volumeIqn, type VolumeRecord } from '../../core/volume-record.js';
import { backingIdentity, type BackingIdentity } from './backing-id.js';

/** The iSCSI port LIO listens on unless told otherwise. */
export const LIO_PORT = 3260;
/** The LUN every volume is served as: LIO numbers from 0 (tgt from 1); the record stores it. */
export const LIO_LUN = 0;
/** Storage objects mammatus owns carry this prefix, so an operator's own objects are never touched. */
export const STORAGE_OBJECT_PREFIX = 'mammatus-';

/**
 * The TPG attributes every volume's target gets: CHAP enforced, no ACLs made up for unknown
 * initiators (demo mode off, and read-only if it were on), and discovery shows a target only to
 * initiators that have an ACL on it (so volume names do not leak to every SendTargets).
 */
export const TPG_ATTRIBUTES = Object.freeze({
  authentication: 1,
  demo_mode_discovery: 0,
  demo_mode_write_protect: 1,
  generate_node_acls: 0,
});
/** TPG parameters: only CHAP is offered (the kernel default is "CHAP,None"). */
export const TPG_PARAMETERS = Object.freeze({ AuthMethod: 'CHAP' });

/** A storage object as rtslib dumps it (the keys mammatus writes; a live dump has more). */
export interface LioStorageObject {
  readonly plugin: string;
  readonly name: string;
  readonly dev?: string;
  readonly size?: number;
  readonly wwn?: string;
  readonly write_back?: boolean;
  readonly aio?: boolean;
  readonly readonly?: boolean;
  readonly attributes?: Readonly<Record<string, unknown>>;
  readonly [key: string]: unknown;
}

/** A mapped LUN of a node ACL: what the initiator sees (`index`) is which TPG LUN. */
export interface LioMappedLun {
  readonly index: number;
  readonly tpg_lun: number;
  readonly write_protect?: boolean;
  readonly [key: string]: unknown;
}

/** A node ACL: the one initiator admitted, with its CHAP credentials as rtslib names them. */
export interface LioNodeAcl {
  readonly node_wwn: string;
  readonly chap_userid?: string;
  readonly chap_password?: string;
  readonly chap_mutual_userid?: string;
  readonly chap_mutual_password?: string;
  readonly mapped_luns: readonly LioMappedLun[];
  readonly [key: string]: unknown;
}

/** A target portal group. */
export interface LioTpg {
  readonly tag: number;
  readonly enable?: boolean;
  readonly attributes?: Readonly<Record<string, unknown>>;
  readonly parameters?: Readonly<Record<string, unknown>>;
  readonly portals: readonly { readonly ip_address: string; readonly port: number; readonly [key: string]: unknown }[];
  readonly luns: readonly { readonly index: number; readonly storage_object: string; readonly [key: string]: unknown }[];
  readonly node_acls: readonly LioNodeAcl[];
  readonly [key: string]: unknown;
}

/** A target (for mammatus always `fabric: "iscsi"` and an IQN). */
export interface LioTarget {
  readonly fabric: string;
  readonly wwn: string;
  readonly tpgs: readonly LioTpg[];
  readonly [key: string]: unknown;
}

/** A whole saveconfig file. */
export interface LioConfig {
  readonly fabric_modules: readonly Record<string, unknown>[];
  readonly storage_objects: readonly LioStorageObject[];
  readonly targets: readonly LioTarget[];
}

/** What the LIO render needs besides the volumes. */
export interface LioSettings {
  /** This storage node's Serf name: only volumes whose `node` is this one are served. */
  readonly node: string;
  /** The portal address: the node's LAN IPv4 (never 0.0.0.0: targets stay off other networks). */
  readonly portal: string;
  /** The portal port; {@link LIO_PORT} by default. */
  readonly port?: number;
  /**
   * The directory backing files must lie in (`roles.storage.path`). The agent runs as root and
   * LIO exports whatever file it is given: a record naming `/etc/shadow` must not get it served.
   */
  readonly backingDir: string;
  /** The LVM volume groups volumes may live in; none by default. */
  readonly volumeGroups?: readonly string[];
  /**
   * Volumes left out with this reason whose live target is kept exactly as it is (in `held`):
   * the thin-pool step holds attached volumes while LVM cannot be read.
   */
  readonly hold?: ReadonlyMap<string, string>;
}

/** One volume's target, ready for a one-target restore. */
export interface LioTargetPlan {
  readonly volume: string;
  readonly iqn: string;
  /** The LUN the volume is served as ({@link LIO_LUN}), for the record. */
  readonly lun: number;
  readonly storageObject: { readonly plugin: 'fileio' | 'block'; readonly name: string };
  /** The backing file to create (sparse, grown only) before the restore, and its record (backing-id.ts); absent for LVM. */
  readonly backingFile?: { readonly path: string; readonly size: number; readonly identity: BackingIdentity };
  /** The file `targetcli restoreconfig … target=IQN storage_object=NAME` reads: this target and its object. */
  readonly config: LioConfig;
}

/** The node's desired LIO state. */
export interface LioRender {
  /** Every served volume's object and target, sorted (what `targetctl restore` would load at once). */
  readonly config: LioConfig;
  /** One entry per target, sorted by IQN. */
  readonly targets: readonly LioTargetPlan[];
  /** Volumes of this node left out because their record is malformed, with the reason. */
  readonly skipped: readonly { readonly volume: string; readonly reason: string }[];
  /** IQNs of the volumes in `settings.hold`: their live targets are neither changed nor deleted. */
  readonly held?: readonly string[];
}

/** The storage object name of a volume. */
export function storageObjectName(volume: string): string {
  return `${STORAGE_OBJECT_PREFIX}${volume}`;
}

/**
 * A stable T10 unit serial for a volume's storage object, in the UUID form rtslib expects. rtslib
 * makes up a random one when none is given, so every re-create would change the disk's serial
 * (and /dev/disk/by-id in the instance) and the read-back could never match the render.
 */
export function storageObjectWwn(iqn: string): string {
  const h = createHash('sha256').update(`mammatus lio unit serial\0${iqn}`).digest('hex');
  // Version 4 / variant 10 bits, as uuid4 has them; the rest is the hash.
  const variant = ((parseInt(h[16], 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The saveconfig path of a storage object, as LUNs refer to it. */
export function storageObjectPath(so: { readonly plugin: string; readonly name: string }): string {
  return `/backstores/${so.plugin}/${so.name}`;
}

/** Renders the storage object of a checked volume. */
function renderStorageObject(v: VolumeRecord, iqn: string): LioStorageObject {
  const name = storageObjectName(v.name);
  const wwn = storageObjectWwn(iqn);
  if (v.backing.kind === 'file') {
    // write_back: the initiator is told the LUN has a volatile cache and flushes it (targetcli's
    // default for fileio; write-through would sync every write).
    return { aio: false, dev: v.backing.path, name, plugin: 'fileio', size: v.size_bytes, write_back: true, wwn };
  }
  return { dev: `/dev/${v.backing.vg}/${v.backing.lv}`, name, plugin: 'block', readonly: false, wwn };
}

/** Renders the target of a checked volume: TPG 1, its portal, LUN 0, and the attached initiator's ACL. */
function renderTarget(v: VolumeRecord, iqn: string, so: LioStorageObject, settings: LioSettings): LioTarget {
  const nodeAcls: LioNodeAcl[] = v.attached
    ? [
        {
          chap_password: v.chap.secret,
          chap_userid: v.chap.user,
          mapped_luns: [{ index: LIO_LUN, tpg_lun: LIO_LUN, write_protect: false }],
          node_wwn: v.attached.initiator,
        },
      ]
    : [];
  return {
    fabric: 'iscsi',
    tpgs: [
      {
        attributes: { ...TPG_ATTRIBUTES },
        enable: true,
        luns: [{ index: LIO_LUN, storage_object: storageObjectPath(so) }],
        node_acls: nodeAcls,
        parameters: { ...TPG_PARAMETERS },
        portals: [{ ip_address: settings.portal, iser: false, offload: false, port: settings.port ?? LIO_PORT }],
        tag: 1,
      },
    ],
    wwn: iqn,
  };
}

/** Why a volume's backing is not one this node may serve, if it is not. */
function backingRefusal(v: VolumeRecord, settings: LioSettings): string | undefined {
  if (v.backing.kind === 'lvm') {
    const vgs = settings.volumeGroups ?? [];
    return vgs.includes(v.backing.vg)
      ? undefined
      : `backing.vg: ${v.backing.vg} is not among this node's volume groups (${vgs.join(', ') || 'none'})`;
  }
  const dir = posix.normalize(settings.backingDir).replace(/\/+$/, '');
  const path = v.backing.path;
  // Normalising must not change it (no "..", "//", "./"), and it must lie below the directory.
  if (posix.normalize(path) !== path || !path.startsWith(`${dir}/`)) return `backing.path: ${path} is not a file under ${dir}/`;
  return undefined;
}

const byKey =
  <T>(key: (t: T) => string) =>
  (a: T, b: T) =>
    key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;

/**
 * Renders this node's LIO state from the volume registry. Volumes of other nodes and volumes being
 * deleted are not served; a malformed record is left out and named in `skipped` (never thrown:
 * one bad record must not take the node's other volumes down).
 */
export function renderLio(volumes: readonly VolumeRecord[], settings: LioSettings): LioRender {
  const skipped: { volume: string; reason: string }[] = [];
  const targets: LioTargetPlan[] = [];
  const held: string[] = [];
  for (const v of volumes) {
    if (v.node !== settings.node || v.state === 'deleting') continue;
    try {
      checkVolumeRecord(v);
    } catch (err) {
      skipped.push({ volume: String(v.name), reason: (err as Error).message });
      continue;
    }
    const hold = settings.hold?.get(v.name);
    if (hold) {
      skipped.push({ volume: v.name, reason: hold });
      held.push(volumeIqn(v));
      continue;
    }
    const refused = backingRefusal(v, settings);
    if (refused) {
      skipped.push({ volume: v.name, reason: `volume ${JSON.stringify(v.name)}: ${refused}` });
      continue;
    }
    const iqn = volumeIqn(v);
    const so = renderStorageObject(v, iqn);
    const target = renderTarget(v, iqn, so, settings);
    targets.push({
      volume: v.name,
      iqn,
      lun: LIO_LUN,
      storageObject: { plugin: so.plugin as 'fileio' | 'block', name: so.name },
      ...(v.backing.kind === 'file' ? { backingFile: { path: v.backing.path, size: v.size_bytes, identity: backingIdentity(v) } } : {}),
      config: { fabric_modules: [], storage_objects: [so], targets: [target] },
    });
  }
  // Code-unit order, not localeCompare: the output must not depend on the host's locale.
  targets.sort(byKey((t) => t.iqn));
  const config: LioConfig = {
    // Empty on purpose: discovery authentication is the node's, not a volume's (see docs/storage.md).
    fabric_modules: [],
    storage_objects: targets.flatMap((t) => t.config.storage_objects).sort(byKey((so) => `${so.plugin}/${so.name}`)),
    targets: targets.flatMap((t) => t.config.targets),
  };
  return { config, targets, skipped: skipped.sort(byKey((s) => s.volume)), ...(held.length ? { held: held.sort() } : {}) };
}

/**
 * A saveconfig file's text as rtslib writes it: keys sorted, two-space indent, final newline
 * (so a diff between a rendered and a saved file shows only real differences).
 */
export function lioConfigText(config: unknown): string {
  return `${JSON.stringify(sortKeys(config), null, 2)}\n`;
}

/** A copy with every object's keys in code-unit order (array order is kept). */
function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) out[key] = sortKeys((value as Record<string, unknown>)[key]);
  return out;
}
