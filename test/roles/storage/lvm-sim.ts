/**
 * A simulated LVM (lvs, lvcreate, lvextend, lvchange -ay / --addtag, lvremove as the storage role calls them:
 * argv arrays, `lvs` in lvm2 2.03's `json` report format with every value a string, sizes rounded
 * up to 4 MiB extents as LVM does) and a tgtd that serves what the conf file says, sizing each LUN
 * by its backing store, so an LV that is missing or smaller than recorded shows in the read-back.
 */
import type { RunResult } from '../../../core/contracts.js';
import type { MemoryFiles } from '../../helpers/memory-files.js';
import { commandFailed, recordingRun, type RecordingRun } from '../../helpers/recording-run.js';
import { tgtSizeMb } from '../../../roles/storage/tgt-show.js';

export const EXTENT = 4 * 2 ** 20;
const ok = (stdout = ''): RunResult => ({ stdout, stderr: '', exitCode: 0 });

export interface SimLv {
  vg: string;
  lv: string;
  size: number;
  attr: string;
  pool: string;
  tags: string[];
  data?: number;
}

/** LVM with one VG `vg0` holding the thin pool `pool0` (zeroing, 10 GiB, `data` % used). */
export function lvmSim(opts: { poolBytes?: number; data?: number; poolAttr?: string } = {}) {
  const lvs = new Map<string, SimLv>();
  lvs.set('vg0/pool0', {
    vg: 'vg0',
    lv: 'pool0',
    size: opts.poolBytes ?? 10 * 2 ** 30,
    attr: opts.poolAttr ?? 'twi-aotz--',
    pool: '',
    tags: [],
    data: opts.data ?? 25,
  });
  const faults: { fail?: (argv: readonly string[]) => Error | undefined } = {};
  const round = (n: number) => Math.ceil(n / EXTENT) * EXTENT;
  const bytes = (s: string) => Number(s.replace(/B$/, ''));
  const report = (vg: string) =>
    JSON.stringify({
      report: [
        {
          lv: [...lvs.values()]
            .filter((l) => l.vg === vg)
            .map((l) => ({
              vg_name: l.vg,
              lv_name: l.lv,
              lv_size: String(l.size),
              lv_attr: l.attr,
              pool_lv: l.pool,
              lv_tags: l.tags.join(','),
              data_percent: l.data === undefined ? '' : l.data.toFixed(2),
              metadata_percent: l.data === undefined ? '' : '10.00',
            })),
        },
      ],
    });
  /** Answers an LVM command, or undefined when `argv` is not one. */
  const answer = (argv: readonly string[]): RunResult | Error | undefined => {
    const [cmd, ...args] = argv;
    if (!['lvs', 'lvcreate', 'lvextend', 'lvchange', 'lvremove'].includes(cmd)) return undefined;
    const fault = faults.fail?.(argv);
    if (fault) return fault;
    if (cmd === 'lvs') return ok(report(args.at(-1)!));
    if (cmd === 'lvcreate') {
      const [vg, pool] = args[args.indexOf('-T') + 1].split('/');
      const lv = args[args.indexOf('-n') + 1];
      if (lvs.has(`${vg}/${lv}`)) return commandFailed(argv, 5, `  Logical Volume "${lv}" already exists in volume group "${vg}"`);
      const tags = args.flatMap((a, i) => (a === '--addtag' ? [args[i + 1]] : []));
      lvs.set(`${vg}/${lv}`, { vg, lv, size: round(bytes(args[args.indexOf('-V') + 1])), attr: 'Vwi-a-tz--', pool, tags, data: 0 });
      return ok(`  Logical volume "${lv}" created.\n`);
    }
    const l = lvs.get(args.at(-1)!);
    if (!l) return commandFailed(argv, 5, `  Failed to find logical volume "${args.at(-1)}"`);
    if (cmd === 'lvextend') {
      const size = round(bytes(args[args.indexOf('-L') + 1]));
      if (size < l.size) return commandFailed(argv, 5, '  New size given is smaller than the current size');
      l.size = size;
    }
    if (cmd === 'lvchange' && args[0] === '--addtag') l.tags.push(args[1]);
    else if (cmd === 'lvchange') l.attr = `${l.attr.slice(0, 4)}a${l.attr.slice(5)}`;
    if (cmd === 'lvremove') lvs.delete(args.at(-1)!);
    return ok();
  };
  return { lvs, faults, answer, size: (dev: string) => lvs.get(dev.replace(/^\/dev\//, ''))?.size };
}

/**
 * A tgtd that creates a target from its block in the conf (`tgt-admin --update IQN`), its LUN 1
 * sized by `sizeOf(backing)` and absent when that is undefined; `extra` answers other commands first.
 */
export function confTgt(
  files: MemoryFiles,
  sizeOf: (path: string) => number | undefined,
  extra: (argv: readonly string[]) => RunResult | Error | undefined,
) {
  type Live = { path: string; size?: number; user: string; initiator?: string };
  const live = new Map<string, Live>();
  const show = () =>
    [...live.entries()]
      .map(
        ([iqn, t], n) =>
          `Target ${n + 1}: ${iqn}\n    System information:\n        Driver: iscsi\n        State: ready\n    I_T nexus information:\n    LUN information:\n` +
          `        LUN: 0\n            Type: controller\n            Size: 0 MB, Block size: 1\n            Backing store type: null\n            Backing store path: None\n` +
          (t.size === undefined
            ? ''
            : `        LUN: 1\n            Type: disk\n            Size: ${tgtSizeMb(t.size)} MB, Block size: 512\n            Backing store type: rdwr\n            Backing store path: ${t.path}\n`) +
          `    Account information:\n        ${t.user}\n    ACL information:\n        255.255.255.255\n${t.initiator ? `        ${t.initiator}\n` : ''}`,
      )
      .join('');
  const run: RecordingRun = recordingRun((argv) => {
    const other = extra(argv);
    if (other) return other;
    const [cmd, ...args] = argv;
    if (cmd === 'ss') return ok();
    if (cmd === 'tgtadm' && args.includes('target') && args.includes('show')) return ok(show());
    if (cmd === 'tgtadm' && args.includes('portal') && args.includes('show')) return ok('Portal: 10.0.0.5:3260,1\n');
    if (cmd === 'tgt-admin' && args[0] === '--delete') live.delete(args[1]);
    if (cmd === 'tgt-admin' && args.includes('--update')) {
      const iqn = argv.at(-1)!;
      const conf = files.entries.get('/etc/tgt/conf.d/mammatus.conf')?.content ?? '';
      const block = new RegExp(`^<target ${iqn.replace(/\./g, '\\.')}>\\n([\\s\\S]*?)^</target>`, 'm').exec(conf)?.[1] ?? '';
      const path = /<backing-store (\S+)>/.exec(block)?.[1] ?? '';
      const initiator = /initiator-name (\S+)/.exec(block)?.[1];
      live.set(iqn, { path, size: sizeOf(path), user: /incominguser (\S+)/.exec(block)?.[1] ?? '', ...(initiator ? { initiator } : {}) });
    }
    return undefined;
  });
  return { run, live };
}
