/**
 * The tgt backend's pure render (issue 18): the volumes a storage node serves in, the
 * `/etc/tgt/conf.d/mammatus.conf` that `tgt-admin` reads out, one `<target>` block per volume.
 *
 * tgt's traps this file is shaped by (each verified against tgtd 1.0.85 with libiscsi, see
 * docs/storage.md):
 * - tgtd admits a login when the initiator's address is in the target's address list OR its name
 *   is in the name list. Rendering the compute node's address next to its name would therefore
 *   admit any initiator on that node and that name from anywhere; and `tgt-admin` binds `ALL`
 *   when a block has no `initiator-address` at all. So every block carries one address no TCP peer
 *   can have (255.255.255.255) and, when attached, only the attaching node's initiator name.
 *   An unattached volume gets that address alone: a target nobody may log in to, or discover.
 * - `tgt-admin` runs each tgtadm command through a shell and cuts it at the first `#`, and
 *   Config::General reads `#` as a comment: CHAP names, secrets and paths are held to a safe set.
 * - tgtd's CHAP accounts are global and `tgt-admin` never changes an existing account's password,
 *   so two volumes may not share a CHAP user (the apply deletes an account before re-creating it).
 * - LUN 0 is tgt's controller: the volume is LUN 1 ({@link TGT_LUN}), which the record stores.
 */
import { checkVolumeRecord, volumeIqn, type VolumeRecord } from '../../core/volume-record.js';
import { errorMessage } from '../../core/errors.js';
import { backingIdentity, type BackingIdentity } from './backing-id.js';

/** The LUN tgt serves a volume as (LUN 0 is the target's controller). */
export const TGT_LUN = 1;

/** The one address in every target's address list: no TCP peer has it, so it admits nobody. */
export const TGT_NOBODY_ADDRESS = '255.255.255.255';

/** Where the agent writes its targets; `/etc/tgt/targets.conf` includes `conf.d/*.conf`. */
export const TGT_CONF_PATH = '/etc/tgt/conf.d/mammatus.conf';

/** What the render needs besides the volumes. */
export interface TgtSettings {
  /** Directory every file backing store must lie under (`roles.storage.path`). */
  readonly path: string;
  /** LVM volume groups this node may export logical volumes from (none by default). */
  readonly volumeGroups?: readonly string[];
  /**
   * Volumes to skip with this reason: their last good block stays in the conf and their live
   * target as it is (none is made). The thin-pool step holds attached volumes while LVM cannot be read.
   */
  readonly hold?: ReadonlyMap<string, string>;
}

/** One rendered target. */
export interface TgtTarget {
  readonly volume: string;
  readonly iqn: string;
  readonly lun: number;
  /** The backing store as tgt opens it: a file or `/dev/<vg>/<lv>`. */
  readonly backing: string;
  /** Whether the agent creates and grows the backing store (a file) or only expects it (an LV). */
  readonly kind: 'file' | 'lvm';
  /** A file's record, checked against its `.id` sidecar before it is served (backing-id.ts). */
  readonly identity?: BackingIdentity;
  readonly sizeBytes: number;
  readonly chapUser: string;
  /** The only initiator admitted, or undefined: nobody. */
  readonly initiator?: string;
  /** The target's `<target …>` … `</target>` block, newline-terminated. */
  readonly block: string;
}

/** A volume of this node that was left out, and why (its live target is left as it is). */
export interface TgtSkipped {
  readonly volume: string;
  readonly iqn?: string;
  readonly error: string;
}

/** The render's output. */
export interface TgtRender {
  /** The whole conf file. */
  readonly content: string;
  /** Sorted by volume name. */
  readonly targets: readonly TgtTarget[];
  /** Volumes of this node in state `deleting`: their targets (and files) go. */
  readonly deleting: readonly {
    readonly volume: string;
    readonly iqn: string;
    /** A file's path and record (backing-id.ts); absent for an LV. */
    readonly backing?: string;
    readonly identity?: BackingIdentity;
  }[];
  readonly skipped: readonly TgtSkipped[];
}

// Characters that survive tgt-admin's shell and its `#` split, and Config::General's parser.
const SAFE = /^[A-Za-z0-9._:@+=-]+$/;
const SAFE_PATH = /^(\/[A-Za-z0-9._+-]+)+$/;

/** The first lines of the conf: who owns it, and why every target lists the no-one address. */
export const HEADER =
  '# managed by mammatus role=storage backend=tgt: rewritten by the agent, edits are lost.\n' +
  '# Every target lists 255.255.255.255, an address no initiator has: tgtd admits an address OR a\n' +
  '# name, and tgt-admin opens a target without initiator-address to ALL.\n';

/** Renders the conf for the volumes `node` serves. Never throws: a bad volume is skipped with its reason. */
export function renderTgt(node: string, volumes: readonly VolumeRecord[], settings: TgtSettings): TgtRender {
  const mine = volumes.filter((v) => v.node === node).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const targets: TgtTarget[] = [];
  const deleting: TgtRender['deleting'][number][] = [];
  const skipped: TgtSkipped[] = [];
  const chapUsers = new Map<string, string>();
  for (const v of mine) {
    let iqn: string | undefined;
    try {
      checkVolumeRecord(v);
      iqn = volumeIqn(v);
      const backing = backingOf(v, settings);
      if (v.state === 'deleting') {
        deleting.push({ volume: v.name, iqn, ...(v.backing.kind === 'file' ? { backing, identity: backingIdentity(v) } : {}) });
        continue;
      }
      const held = settings.hold?.get(v.name);
      if (held) throw new Error(held);
      if (!SAFE.test(v.chap.user) || !SAFE.test(v.chap.secret)) {
        throw new Error('chap: tgt-admin passes CHAP through a shell: use only A-Z a-z 0-9 . _ : @ + = -');
      }
      const other = chapUsers.get(v.chap.user);
      if (other) throw new Error(`chap.user ${v.chap.user} is also volume ${other}'s: tgtd's accounts are global`);
      chapUsers.set(v.chap.user, v.name);
      targets.push(targetOf(v, iqn, backing));
    } catch (err) {
      skipped.push({ volume: v.name, ...(iqn ? { iqn } : {}), error: errorMessage(err) });
    }
  }
  const content = HEADER + targets.map((t) => `\n${t.block}`).join('');
  return { content, targets, deleting, skipped };
}

/** The backing store's path, refused when outside what this node serves. */
function backingOf(v: VolumeRecord, settings: TgtSettings): string {
  if (v.backing.kind === 'lvm') {
    if (!(settings.volumeGroups ?? []).includes(v.backing.vg)) {
      throw new Error(`backing.vg: ${v.backing.vg} is not a volume group this node exports (roles.storage.lvm.volume_groups)`);
    }
    return `/dev/${v.backing.vg}/${v.backing.lv}`;
  }
  const path = v.backing.path;
  const root = settings.path.replace(/\/+$/, '');
  // A record could otherwise export any file of the node (/etc/shadow, a disk) to the cluster.
  if (!SAFE_PATH.test(path) || path.split('/').some((s) => s === '.' || s === '..') || !path.startsWith(`${root}/`)) {
    throw new Error(`backing.path: ${path} must be a plain path under ${root}/ (A-Z a-z 0-9 . _ + - only)`);
  }
  return path;
}

function targetOf(v: VolumeRecord, iqn: string, backing: string): TgtTarget {
  const initiator = v.attached?.initiator;
  const note = v.attached ? `attached to ${v.attached.instance} on ${v.attached.node}` : 'not attached: nobody may log in';
  const lines = [
    `<target ${iqn}>`,
    // The size is part of the block so that a grow re-creates the LUN (tgt sizes it at creation).
    `    # volume ${v.name}, ${v.size_bytes} bytes, ${note}`,
    `    <backing-store ${backing}>`,
    `        lun ${TGT_LUN}`,
    '    </backing-store>',
    `    incominguser ${v.chap.user} ${v.chap.secret}`,
    `    initiator-address ${TGT_NOBODY_ADDRESS}`,
    ...(initiator ? [`    initiator-name ${initiator}`] : []),
    '</target>',
  ];
  return {
    volume: v.name,
    iqn,
    lun: TGT_LUN,
    backing,
    kind: v.backing.kind,
    ...(v.backing.kind === 'file' ? { identity: backingIdentity(v) } : {}),
    sizeBytes: v.size_bytes,
    chapUser: v.chap.user,
    ...(initiator ? { initiator } : {}),
    block: `${lines.join('\n')}\n`,
  };
}

/** Splits a conf this module wrote into its target blocks by IQN (for diffs and carrying skipped ones over). */
export function tgtBlocks(content: string | undefined): Map<string, string> {
  const blocks = new Map<string, string>();
  if (!content) return blocks;
  const re = /^<target (\S+)>\n[\s\S]*?^<\/target>\n/gm;
  for (const m of content.matchAll(re)) blocks.set(m[1], m[0]);
  return blocks;
}
