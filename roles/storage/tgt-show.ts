/**
 * Parses what tgtd reports (`tgtadm --lld iscsi --mode target --op show`, `--mode portal`) and
 * compares it with a rendered target. Pure. tgt-admin exits 0 after skipping a LUN whose backing
 * file is missing or busy, and after leaving a busy target alone, so this read-back is how the
 * apply learns what really happened.
 */
import { TGT_NOBODY_ADDRESS, type TgtTarget } from './tgt-render.js';

/** One LUN as tgtd shows it. */
export interface TgtLiveLun {
  readonly lun: number;
  readonly type: string;
  /** The size as tgtd prints it (see {@link tgtSizeMb}). */
  readonly sizeMb: number;
  readonly path: string;
}

/** One logged-in session (tgtd's I_T nexus) and its connections. */
export interface TgtLiveSession {
  readonly sid: number;
  readonly initiator: string;
  readonly connections: readonly { readonly cid: number; readonly address: string }[];
}

/** One target as tgtd shows it. */
export interface TgtLiveTarget {
  readonly tid: number;
  readonly iqn: string;
  readonly state: string;
  /** Logged-in sessions (I_T nexuses): a target with any is busy. */
  readonly sessions: readonly TgtLiveSession[];
  readonly luns: readonly TgtLiveLun[];
  readonly accounts: readonly string[];
  /** Addresses and initiator names, as bound. */
  readonly acl: readonly string[];
}

type Section = 'system' | 'nexus' | 'lun' | 'account' | 'acl' | undefined;

/** Parses `tgtadm --mode target --op show` output. */
export function parseTgtShow(text: string): TgtLiveTarget[] {
  type Session = { sid: number; initiator: string; connections: { cid: number; address: string }[] };
  const out: { tid: number; iqn: string; state: string; sessions: Session[]; luns: TgtLiveLun[]; accounts: string[]; acl: string[] }[] = [];
  let cur: (typeof out)[number] | undefined;
  let section: Section;
  let lun: { lun: number; type: string; sizeMb: number; path: string } | undefined;
  const flushLun = () => {
    if (cur && lun) cur.luns.push(lun);
    lun = undefined;
  };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const target = /^Target (\d+): (\S+)$/.exec(raw);
    if (target) {
      flushLun();
      cur = { tid: Number(target[1]), iqn: target[2], state: '', sessions: [], luns: [], accounts: [], acl: [] };
      out.push(cur);
      section = undefined;
      continue;
    }
    if (!cur || !line) continue;
    const heading = /^(System|I_T nexus|LUN|Account|ACL) information:$/.exec(line);
    if (heading) {
      flushLun();
      section = ({ System: 'system', 'I_T nexus': 'nexus', LUN: 'lun', Account: 'account', ACL: 'acl' } as const)[heading[1] as 'System'];
      continue;
    }
    if (section === 'system') {
      const m = /^State: (\S+)/.exec(line);
      if (m) cur.state = m[1]!;
    } else if (section === 'nexus') {
      const sid = /^I_T nexus: (\d+)/.exec(line);
      if (sid) cur.sessions.push({ sid: Number(sid[1]), initiator: '', connections: [] });
      const session = cur.sessions.at(-1);
      const init = /^Initiator: (\S+)/.exec(line);
      if (init && session) session.initiator = init[1]!;
      const cid = /^Connection: (\d+)/.exec(line);
      if (cid && session) session.connections.push({ cid: Number(cid[1]), address: '' });
      const ip = /^IP Address: (\S+)/.exec(line);
      const conn = session?.connections.at(-1);
      if (ip && conn) conn.address = ip[1]!;
    } else if (section === 'lun') {
      const n = /^LUN: (\d+)$/.exec(line);
      if (n) {
        flushLun();
        lun = { lun: Number(n[1]), type: '', sizeMb: 0, path: '' };
      } else if (lun) {
        const type = /^Type: (\S+)/.exec(line);
        if (type) lun.type = type[1]!;
        const size = /^Size: (\d+) MB/.exec(line);
        if (size) lun.sizeMb = Number(size[1]);
        const path = /^Backing store path: (.*)$/.exec(line);
        if (path) lun.path = path[1]!;
      }
    } else if (section === 'account') cur.accounts.push(line);
    else if (section === 'acl') cur.acl.push(line);
  }
  flushLun();
  return out;
}

/** Parses `tgtadm --lld iscsi --mode portal --op show` (`Portal: 10.0.0.5:3260,1`) into `IP:PORT` strings. */
export function parseTgtPortals(text: string): string[] {
  return [...text.matchAll(/^Portal: (\S+),\d+$/gm)].map((m) => m[1]);
}

/** The size tgtd prints for a LUN of `bytes`: its own approximation of MB (10^6 bytes); 16 MiB shows as 17. */
export function tgtSizeMb(bytes: number): number {
  const sectors = Math.floor(bytes / 512);
  return Math.floor((sectors - Math.floor(sectors / 625) + 974) / 1950);
}

/**
 * Why the live target differs from the rendered one, or [] when it matches: missing, no LUN
 * (backing store missing or in use), another backing store or size, the CHAP account or the ACL.
 */
export function tgtMismatches(want: TgtTarget, live: TgtLiveTarget | undefined): string[] {
  if (!live) return ['target missing'];
  const problems: string[] = [];
  const lun = live.luns.find((l) => l.lun === want.lun);
  if (!lun) problems.push(`no LUN ${want.lun} (is the backing store ${want.backing} missing or in use?)`);
  else {
    if (lun.path !== want.backing) problems.push(`LUN ${want.lun} serves ${lun.path}, not ${want.backing}`);
    if (lun.sizeMb !== tgtSizeMb(want.sizeBytes)) problems.push(`LUN ${want.lun} is ${lun.sizeMb} MB, not ${tgtSizeMb(want.sizeBytes)} MB`);
  }
  if (live.accounts.join(' ') !== want.chapUser) problems.push(`CHAP accounts [${live.accounts.join(', ')}], not [${want.chapUser}]`);
  const acl = [TGT_NOBODY_ADDRESS, ...(want.initiator ? [want.initiator] : [])].sort();
  const liveAcl = [...live.acl].sort();
  if (liveAcl.join(' ') !== acl.join(' ')) problems.push(`ACL [${liveAcl.join(', ')}], not [${acl.join(', ')}]`);
  return problems;
}
