/**
 * Pure: what a compute node must do with open-iscsi so that it is logged in to exactly the volumes
 * attached to its instances (issue 18, the compute side). Input: the volume records the attached
 * feed gives (`openAttachedVolumeFeed`), the storage nodes' portal addresses, and open-iscsi's
 * state (`iscsiadm -m session` and `-m node`, parsed here). Output: ordered steps per volume, and
 * the block device each logged-in volume shows up as. `iscsi-apply.ts` carries the steps out.
 *
 * The CHAP secret never goes on a command line (iscsiadm takes `-v VALUE` as argv, which any user
 * reads in `ps` or /proc/PID/cmdline): the node record is written as a file (0600) where open-iscsi
 * keeps it, `<nodes>/<IQN>/<IP>,3260,1/default`, and `iscsiadm` is only ever told IQN and portal.
 * No SendTargets discovery either: the record names target and portal (both known from the
 * volume record), so no discovery CHAP is needed. `node.startup = automatic` in the record makes
 * open-iscsi.service log in again at boot, before the agent runs.
 */
import { isIPv4 } from 'node:net';
import type { VolumeRecord } from '../../core/volume-record.js';
import { volumeIqn } from '../../core/volume-record.js';

/** The iSCSI port every mammatus target listens on. */
export const ISCSI_PORT = 3260;
/** Where open-iscsi keeps its node records (Debian's open-iscsi 2.1: `/etc/iscsi/nodes`). */
export const ISCSI_NODES_DIR = '/etc/iscsi/nodes';
/** The file naming this node's initiator IQN. */
export const INITIATOR_NAME_FILE = '/etc/iscsi/initiatorname.iscsi';
/** Both backends serve from target portal group 1 (LIO's TPG 1, tgt's only TPG). */
const TPGT = 1;
/** Targets of the agent: `iqn.<yyyy>-<mm>.mammatus:volume.<name>` (volumeIqn); others are the operator's. */
const OURS = /^iqn\.\d{4}-\d{2}\.mammatus:volume\.([a-z0-9-]+)$/;

/** One iSCSI session (`iscsiadm -m session`). */
export interface IscsiSession {
  readonly transport: string;
  readonly sid: number;
  readonly address: string;
  readonly port: number;
  readonly tpgt: number;
  readonly target: string;
}

/** One node record (`iscsiadm -m node`). */
export interface IscsiNode {
  readonly address: string;
  readonly port: number;
  readonly tpgt: number;
  readonly target: string;
}

/** open-iscsi's state as the planner sees it. */
export interface IscsiState {
  readonly sessions: readonly IscsiSession[];
  readonly nodes: readonly IscsiNode[];
}

// `[::1]` or `10.0.0.1` (iscsiadm brackets IPv6), then `:port,tpgt`.
const PORTAL = String.raw`(\[[^\]\s]+\]|[^\s:\[\]]+):(\d+),(-?\d+)`;
const SESSION_LINE = new RegExp(String.raw`^(\w+): \[(\d+)\] ${PORTAL} (\S+)(?: \(\S+\))?$`);
const NODE_LINE = new RegExp(String.raw`^${PORTAL} (\S+)$`);
const unbracket = (a: string) => a.replace(/^\[(.*)\]$/, '$1');

/**
 * Parses `iscsiadm -m session` (`tcp: [1] 10.0.0.1:3260,1 iqn… (non-flash)`; open-iscsi before
 * 2.0.874 prints no `(non-flash)`). Lines it does not know are skipped, never guessed at.
 */
export function parseIscsiSessions(text: string): IscsiSession[] {
  const out: IscsiSession[] = [];
  for (const line of text.split('\n')) {
    const m = SESSION_LINE.exec(line.trim());
    if (!m) continue;
    out.push({ transport: m[1], sid: Number(m[2]), address: unbracket(m[3]), port: Number(m[4]), tpgt: Number(m[5]), target: m[6] });
  }
  return out;
}

/** Parses `iscsiadm -m node` (`10.0.0.1:3260,1 iqn…`, one record a line). */
export function parseIscsiNodes(text: string): IscsiNode[] {
  const out: IscsiNode[] = [];
  for (const line of text.split('\n')) {
    const m = NODE_LINE.exec(line.trim());
    if (!m) continue;
    out.push({ address: unbracket(m[1]), port: Number(m[2]), tpgt: Number(m[3]), target: m[4] });
  }
  return out;
}

/**
 * The initiator IQN of `/etc/iscsi/initiatorname.iscsi` (`InitiatorName=iqn…`; comments and
 * Debian's `GenerateName=yes` placeholder are skipped; the last name wins, as iscsid reads it),
 * or undefined when the file names none yet.
 */
export function parseInitiatorName(text: string): string | undefined {
  let name: string | undefined;
  for (const raw of text.split('\n')) {
    const m = /^\s*InitiatorName\s*=\s*(\S+)\s*$/.exec(raw);
    if (m) name = m[1];
  }
  return name;
}

/** The by-path device udev makes for LUN `lun` of `iqn` on portal `ip`. */
export function byPathDevice(ip: string, iqn: string, lun: number): string {
  return `/dev/disk/by-path/ip-${ip}:${ISCSI_PORT}-iscsi-${iqn}-lun-${lun}`;
}

/** The node record file of `iqn` on portal `ip` (open-iscsi's layout: target / portal,tpgt / iface). */
export function nodeRecordPath(iqn: string, ip: string, dir = ISCSI_NODES_DIR): string {
  return `${dir}/${iqn}/${ip},${ISCSI_PORT},${TPGT}/default`;
}

/**
 * The node record open-iscsi reads for a login: target, portal, CHAP and automatic startup.
 * Keys not set here take open-iscsi's built-in defaults (its record reader sets them before it reads
 * the file; iscsid.conf applies only to records iscsiadm itself creates). Logins are tried twice,
 * not 8 times, so one unreachable portal holds a pass for about 30 s, not two minutes.
 * Holds the CHAP secret: written 0600, never logged.
 */
export function renderNodeRecord(iqn: string, ip: string, chap: VolumeRecord['chap']): string {
  return [
    '# managed by mammatus role=compute (holds a CHAP secret: 0600)',
    `node.name = ${iqn}`,
    `node.tpgt = ${TPGT}`,
    'node.startup = automatic',
    'node.discovery_type = static',
    'node.session.initial_login_retry_max = 2',
    'iface.iscsi_ifacename = default',
    'iface.transport_name = tcp',
    'node.session.auth.authmethod = CHAP',
    `node.session.auth.username = ${chap.user}`,
    `node.session.auth.password = ${chap.secret}`,
    `node.conn[0].address = ${ip}`,
    `node.conn[0].port = ${ISCSI_PORT}`,
    'node.conn[0].startup = automatic',
    '',
  ].join('\n');
}

/** One step. Steps of one volume run in order; a failed step ends that volume's steps only. */
export type IscsiStep =
  /** Write the node record (0600) unless it already reads the same. */
  | {
      readonly kind: 'record';
      readonly volume: string;
      readonly iqn: string;
      readonly ip: string;
      readonly file: string;
      readonly content: string;
    }
  /** `iscsiadm -m node -T IQN -p IP:3260 --login` ("session exists", exit 15, is success). */
  | { readonly kind: 'login'; readonly volume: string; readonly iqn: string; readonly ip: string }
  /** `iscsiadm -m node -T IQN -p IP:3260 --logout` (no session, exit 21, is success). */
  | { readonly kind: 'logout'; readonly volume: string; readonly iqn: string; readonly ip: string }
  /** `iscsiadm -m node -o delete -T IQN -p IP:3260` (no record, exit 21, is success). */
  | { readonly kind: 'delete'; readonly volume: string; readonly iqn: string; readonly ip: string };

/** A volume the node is (or, after the steps, will be) logged in to: what LXD gets. */
export interface IscsiAttachment {
  readonly volume: string;
  readonly instance: string;
  readonly device: string;
  /** Mount point inside the instance; absent = a raw block device. */
  readonly path?: string;
}

/** The outcome of {@link planIscsi}. */
export interface IscsiPlan {
  readonly steps: readonly IscsiStep[];
  /** Volumes to hand to LXD once their steps succeeded and the device exists. */
  readonly attach: readonly IscsiAttachment[];
  /** Attached volumes not logged in to yet, with why (not served yet, no portal known). */
  readonly waiting: readonly { readonly volume: string; readonly reason: string }[];
}

/** What {@link planIscsi} works from. */
export interface IscsiPlanInput {
  /** This compute node's Serf name. */
  readonly node: string;
  /** The feed's volumes (those attached to instances here; others are ignored). */
  readonly volumes: readonly VolumeRecord[];
  /**
   * Storage node → its Serf address (IPv4), for records whose `observed` names no portal (reported
   * by an agent older than the portal field).
   */
  readonly portals: ReadonlyMap<string, string>;
  readonly state: IscsiState;
  /** Where node records live; default {@link ISCSI_NODES_DIR}. */
  readonly nodesDir?: string;
}

/** Plans the iSCSI side of one pass. */
export function planIscsi(input: IscsiPlanInput): IscsiPlan {
  const steps: IscsiStep[] = [];
  const attach: IscsiAttachment[] = [];
  const waiting: { volume: string; reason: string }[] = [];
  /** IQN → the portal wanted, or '' when kept as it is (attached, but cannot be planned now). */
  const keep = new Map<string, string>();
  const mine = input.volumes.filter((v) => v.attached?.node === input.node && v.state !== 'deleting');
  for (const v of [...mine].sort((a, b) => a.name.localeCompare(b.name))) {
    const att = v.attached!;
    const iqn = volumeIqn(v);
    keep.set(iqn, '');
    const lun = v.lun ?? v.observed?.lun;
    // The portal the storage node reported serving it on; older records name none: its Serf address.
    const ip = v.observed?.portal ?? input.portals.get(v.node);
    const why =
      v.observed?.state !== 'serving'
        ? `storage node ${v.node} does not serve it yet (${v.observed?.state ?? 'no report'})`
        : lun === undefined
          ? 'no LUN recorded'
          : ip === undefined || !isIPv4(ip)
            ? `no portal address known for storage node ${v.node}`
            : undefined;
    if (why !== undefined || ip === undefined || lun === undefined) {
      waiting.push({ volume: v.name, reason: why ?? 'not ready' });
      continue; // a session already up stays: a storage hiccup must not pull the disk away
    }
    keep.set(iqn, ip);
    const file = nodeRecordPath(iqn, ip, input.nodesDir);
    steps.push({ kind: 'record', volume: v.name, iqn, ip, file, content: renderNodeRecord(iqn, ip, v.chap) });
    const up = input.state.sessions.some((s) => s.target === iqn && s.address === ip && s.port === ISCSI_PORT);
    if (!up) steps.push({ kind: 'login', volume: v.name, iqn, ip });
    attach.push({ volume: v.name, instance: att.instance, device: byPathDevice(ip, iqn, lun), ...(att.path ? { path: att.path } : {}) });
  }
  // Ours and no longer wanted here (detached, deleted, moved portal): log out, then forget.
  const stale = (target: string, address: string) => {
    const m = OURS.exec(target);
    if (!m) return undefined; // an operator's own target: never touched
    const want = keep.get(target);
    return want === undefined || (want !== '' && want !== address) ? m[1] : undefined;
  };
  const seen = new Set<string>();
  for (const s of input.state.sessions) {
    const volume = stale(s.target, s.address);
    if (volume === undefined || seen.has(`${s.target} ${s.address}`)) continue;
    seen.add(`${s.target} ${s.address}`);
    steps.push({ kind: 'logout', volume, iqn: s.target, ip: s.address });
  }
  const deleted = new Set<string>();
  for (const n of input.state.nodes) {
    const volume = stale(n.target, n.address);
    if (volume === undefined || deleted.has(`${n.target} ${n.address}`)) continue;
    deleted.add(`${n.target} ${n.address}`);
    steps.push({ kind: 'delete', volume, iqn: n.target, ip: n.address });
  }
  return { steps, attach, waiting };
}
