/**
 * A stand-in for targetcli/targetctl over a simulated LIO, for the apply-sequence tests (this
 * machine has no configfs). It keeps the live config as rtslib would dump it (with the extra
 * attributes, parameters and aliases a real dump carries), writes it for `targetctl save FILE`
 * into the in-memory files, and follows rtslib-fb 2.1.75's restore rules as read in its root.py
 * and target.py: clear the named target and the storage object of that name, load that object and
 * that target, skip (", skipped") what cannot be made and keep going. Faults are injected per call.
 */
import { recordingRun, commandFailed, type RecordingRun } from '../../helpers/recording-run.js';
import { memoryFiles, type MemoryFiles } from '../../helpers/memory-files.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** What a test can make the simulated LIO do. */
export interface LioFaults {
  /** Fail this command (before it does anything); return the error. */
  fail?(argv: readonly string[]): Error | undefined;
  /** Silently drop a piece while restoring: `acl:<target>`, `chap:<target>`, `object:<name>`, `attributes:<target>`. */
  skip?(what: string): boolean;
  /** Runs after a command took effect, to tamper with the live state (a neighbour that changes, say). */
  after?(argv: readonly string[], live: { storage_objects: Obj[]; targets: Obj[] }): void;
}

/** The simulated node: its runner, its files, and its live LIO state. */
export interface LioSim {
  readonly run: RecordingRun;
  readonly files: MemoryFiles;
  readonly live: { storage_objects: Obj[]; targets: Obj[] };
  readonly faults: LioFaults;
  /** Backing files made with truncate: path → size. */
  readonly sizes: Map<string, number>;
  /** The commands run, without the read-backs (`targetctl save`). */
  changes(): string[][];
}

const DEFAULT_TPG_ATTRIBUTES = {
  authentication: 0,
  cache_dynamic_acls: 0,
  default_cmdsn_depth: 64,
  demo_mode_discovery: 1,
  demo_mode_write_protect: 1,
  generate_node_acls: 0,
  login_timeout: 15,
  prod_mode_write_protect: 0,
};
const DEFAULT_TPG_PARAMETERS = { AuthMethod: 'CHAP,None', DataDigest: 'CRC32C,None', MaxConnections: '1', TargetAlias: 'LIO Target' };
const rtslibIscsiName = (w: string) => /^iqn\.[0-9]{4}-[01][0-9]\..*\..*/.test(w) && !/[ _]/.test(w);
const clone = <T>(x: T): T => structuredClone(x);

/** Builds a simulated LIO, optionally holding `initial` (saveconfig-shaped) already. */
export function lioSim(initial: { storage_objects?: Obj[]; targets?: Obj[] } = {}): LioSim {
  const files = memoryFiles();
  const live = { storage_objects: [] as Obj[], targets: [] as Obj[] };
  const faults: LioFaults = {};
  const sizes = new Map<string, number>();
  for (const so of initial.storage_objects ?? []) live.storage_objects.push(dressObject(so));
  for (const t of initial.targets ?? []) createTarget(live, t, () => undefined, faults);

  const run = recordingRun((argv) => {
    const failure = faults.fail?.(argv);
    if (failure) return failure;
    const outcome = execute(argv, live, files, faults, sizes);
    faults.after?.(argv, live);
    return outcome;
  });
  return {
    run,
    files,
    live,
    faults,
    sizes,
    changes: () => run.calls.filter((c) => !(c[0] === 'targetctl' && c[1] === 'save' && !c[2]?.startsWith('/etc/'))),
  };
}

function execute(
  argv: readonly string[],
  live: LioSim['live'],
  files: MemoryFiles,
  faults: LioFaults,
  sizes: Map<string, number>,
): Error | undefined {
  const [cmd, ...args] = argv;
  if (cmd === 'targetctl' && args[0] === 'save' && args[1]) {
    // rtslib dumps with sort_keys=True, indent=2, mode 0600.
    files.entries.set(args[1], {
      content: JSON.stringify({ fabric_modules: [], storage_objects: live.storage_objects, targets: live.targets }, null, 2) + '\n',
      mode: 0o600,
    });
    return undefined;
  }
  if (cmd === 'mkdir' || cmd === 'chmod') return undefined;
  if (cmd === 'stat')
    return sizes.has(argv.at(-1)!) ? undefined : commandFailed(argv, 1, `stat: cannot statx '${argv.at(-1)}': No such file`);
  if (cmd === 'truncate') {
    const size = Number(/^--size=>(\d+)$/.exec(args[0] ?? '')?.[1]);
    sizes.set(args[1], Math.max(size, sizes.get(args[1]) ?? 0));
    // The file exists for the file writer too (the role removes a deleted volume's file with it).
    if (!files.entries.has(args[1])) files.entries.set(args[1], { content: '', mode: 0o600 });
    return undefined;
  }
  if (cmd !== 'targetcli') return commandFailed(argv, 127, `${cmd}: not simulated`);
  if (args[0] === '/iscsi' && args[1] === 'delete') {
    const i = live.targets.findIndex((t) => t.wwn === args[2]);
    if (i < 0) return commandFailed(argv, 1, `No such Target in configfs: ${args[2]}`);
    live.targets.splice(i, 1);
    return undefined;
  }
  const bs = /^\/backstores\/(\w+)$/.exec(args[0] ?? '');
  if (bs && args[1] === 'delete') {
    const i = live.storage_objects.findIndex((so) => so.plugin === bs[1] && so.name === args[2]);
    if (i < 0) return commandFailed(argv, 1, `No storage object named ${args[2]}.`);
    deleteObject(live, i);
    return undefined;
  }
  if (args[0] === 'restoreconfig') return restore(argv, live, files, faults);
  return commandFailed(argv, 1, `not simulated: ${argv.join(' ')}`);
}

/** `restoreconfig savefile=F target=T storage_object=S clear_existing=X`, as rtslib does it. */
function restore(argv: readonly string[], live: LioSim['live'], files: MemoryFiles, faults: LioFaults): Error | undefined {
  const kv = Object.fromEntries(argv.slice(2).map((a) => a.split(/=(.*)/s).slice(0, 2) as [string, string]));
  const text = files.entries.get(kv.savefile ?? '')?.content;
  // targetcli: "Restore file … not found" is logged at info level, and the exit is 0.
  if (text === undefined) return undefined;
  const config = JSON.parse(text) as Obj;
  const { target, storage_object: name } = kv;
  if (kv.clear_existing) {
    const t = live.targets.findIndex((x) => x.wwn === target);
    if (t >= 0) live.targets.splice(t, 1);
    const s = live.storage_objects.findIndex((x) => x.name === name);
    if (s >= 0) deleteObject(live, s);
  }
  const errors: string[] = [];
  const err = (e: string) => errors.push(`${e}, skipped`);
  for (const so of config.storage_objects ?? []) {
    if (so.name !== name) continue;
    if (faults.skip?.(`object:${so.name}`) || live.storage_objects.some((x) => x.plugin === so.plugin && x.name === so.name)) {
      err(`Could not create StorageObject ${so.name}`);
      break;
    }
    live.storage_objects.push(dressObject(so));
    break;
  }
  for (const t of config.targets ?? []) {
    if (t.wwn !== target) continue;
    createTarget(live, t, err, faults);
    break;
  }
  return errors.length
    ? commandFailed(argv, 1, `Configuration restored, ${errors.length} recoverable errors:\n${errors.join('\n')}`)
    : undefined;
}

function createTarget(live: LioSim['live'], t: Obj, err: (e: string) => void, faults: LioFaults): void {
  if (!rtslibIscsiName(t.wwn)) return err(`Could not create Target object: WWN not valid as: iqn, naa, eui`);
  const target: Obj = { fabric: t.fabric, tpgs: [], wwn: t.wwn };
  live.targets.push(target);
  for (const tpg of t.tpgs ?? []) {
    const skipAttributes = faults.skip?.(`attributes:${t.wwn}`);
    const out: Obj = {
      attributes: { ...DEFAULT_TPG_ATTRIBUTES, ...(skipAttributes ? {} : tpg.attributes) },
      enable: tpg.enable ?? true,
      luns: [],
      node_acls: [],
      parameters: { ...DEFAULT_TPG_PARAMETERS, ...tpg.parameters },
      portals: (tpg.portals ?? []).map((p: Obj) => ({ ip_address: p.ip_address, iser: false, offload: false, port: p.port })),
      tag: tpg.tag,
    };
    target.tpgs.push(out);
    for (const lun of tpg.luns ?? []) {
      const [, , plugin, name] = String(lun.storage_object).split('/');
      if (!live.storage_objects.some((so) => so.plugin === plugin && so.name === name)) {
        err(`Could not find matching StorageObject for LUN ${lun.index}`);
        continue;
      }
      out.luns.push({
        alias: `${lun.index}a1b2c3`,
        alua_tg_pt_gp_name: 'default_tg_pt_gp',
        index: lun.index,
        storage_object: lun.storage_object,
      });
    }
    for (const acl of tpg.node_acls ?? []) {
      if (faults.skip?.(`acl:${t.wwn}`) || !rtslibIscsiName(acl.node_wwn)) {
        err(`Error when creating NodeACL for ${acl.node_wwn}`);
        continue;
      }
      const a: Obj = { attributes: { dataout_timeout: 3, nopin_timeout: 15 }, mapped_luns: [], node_wwn: acl.node_wwn };
      // Unknown keys become plain Python attributes and vanish; the four CHAP keys reach configfs.
      if (!faults.skip?.(`chap:${t.wwn}`))
        for (const k of ['chap_userid', 'chap_password', 'chap_mutual_userid', 'chap_mutual_password']) if (acl[k]) a[k] = acl[k];
      for (const m of acl.mapped_luns ?? []) {
        if (!out.luns.some((l: Obj) => l.index === m.tpg_lun)) {
          err(`Could not find matching TPG LUN ${m.tpg_lun} for MappedLUN ${m.index}`);
          continue;
        }
        a.mapped_luns.push({ alias: 'f00dcafe', index: m.index, tpg_lun: m.tpg_lun, write_protect: m.write_protect ?? false });
      }
      out.node_acls.push(a);
    }
  }
}

/** A storage object as a live dump shows it: attributes and ALUA groups added. */
function dressObject(so: Obj): Obj {
  return {
    ...clone(so),
    alua_tpgs: [{ name: 'default_tg_pt_gp', tg_pt_gp_id: 0 }],
    attributes: { block_size: 512, emulate_write_cache: so.write_back ? 1 : 0, max_sectors: 1024 },
  };
}

/** Deleting a storage object deletes the LUNs (and their mapped LUNs) of every target using it. */
function deleteObject(live: LioSim['live'], index: number): void {
  const [so] = live.storage_objects.splice(index, 1);
  const path = `/backstores/${so.plugin}/${so.name}`;
  for (const t of live.targets)
    for (const tpg of t.tpgs) {
      const gone = tpg.luns.filter((l: Obj) => l.storage_object === path).map((l: Obj) => Number(l.index));
      tpg.luns = tpg.luns.filter((l: Obj) => l.storage_object !== path);
      for (const acl of tpg.node_acls) acl.mapped_luns = acl.mapped_luns.filter((m: Obj) => !gone.includes(m.tpg_lun));
    }
}
