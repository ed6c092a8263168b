/**
 * Reading LIO's live state (a `targetctl save` dump) and comparing it with the render, one target
 * at a time. A live dump carries far more than mammatus writes (every attribute and parameter,
 * ALUA groups, aliases), so the comparison projects both sides onto what the render sets. Pure.
 */
import type { LioConfig, LioStorageObject, LioTarget, LioTargetPlan } from './lio-render.js';
import { STORAGE_OBJECT_PREFIX, storageObjectPath } from './lio-render.js';

/** Targets mammatus made (and so may delete): the IQN form of core/volume-record.ts's volumeIqn. */
export const OWNED_TARGET = /^iqn\.\d{4}-\d{2}\.mammatus:/;

/** The live config is not a saveconfig document. */
export class LioStateError extends Error {
  override readonly name = 'LioStateError';
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** Parses a saved config; @throws LioStateError when it is not JSON or not shaped like one. */
export function parseLioConfig(text: string, source: string): LioConfig {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new LioStateError(`${source}: not JSON: ${(err as Error).message}`);
  }
  if (!isObj(doc)) throw new LioStateError(`${source}: not a saveconfig object`);
  for (const key of ['storage_objects', 'targets'])
    if (doc[key] !== undefined && !Array.isArray(doc[key])) throw new LioStateError(`${source}: ${key} is not a list`);
  const targets = list(doc.targets).filter(isObj);
  if (targets.some((t) => typeof t.wwn !== 'string')) throw new LioStateError(`${source}: a target has no wwn`);
  const objects = list(doc.storage_objects).filter(isObj);
  if (objects.some((o) => typeof o.name !== 'string' || typeof o.plugin !== 'string'))
    throw new LioStateError(`${source}: a storage object has no name or plugin`);
  return {
    fabric_modules: list(doc.fabric_modules).filter(isObj),
    storage_objects: objects as unknown as LioStorageObject[],
    targets: targets as unknown as LioTarget[],
  };
}

/** The storage object paths a target's LUNs use. */
export function referencedObjects(target: LioTarget): string[] {
  return [...new Set(list(target.tpgs).flatMap((tpg) => list((tpg as Obj).luns).map((l) => String((l as Obj).storage_object))))].sort();
}

/** A live target by IQN (rtslib stores IQNs in lower case). */
export function findTarget(config: LioConfig, iqn: string): LioTarget | undefined {
  return config.targets.find((t) => t.wwn.toLowerCase() === iqn.toLowerCase());
}

/** A live storage object by its `/backstores/<plugin>/<name>` path. */
export function findObject(config: LioConfig, path: string): LioStorageObject | undefined {
  return config.storage_objects.find((so) => storageObjectPath(so) === path);
}

/** Is this storage object one mammatus made? */
export const ownedObject = (so: { readonly name: string }): boolean => so.name.startsWith(STORAGE_OBJECT_PREFIX);

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const pick = (from: unknown, keys: readonly string[]): Obj => {
  const src = isObj(from) ? from : {};
  return Object.fromEntries(keys.map((k) => [k, src[k] ?? null]));
};

/**
 * A target reduced to what the render decides: the TPG attributes and parameters named by `like`
 * (the rendered target), and all portals, LUNs, ACLs (with every CHAP key) and mapped LUNs, so an
 * extra ACL or an extra CHAP key in the live target counts as a difference.
 */
function projectTarget(t: LioTarget, like: LioTarget): unknown {
  const likeTpg = (tag: unknown) => like.tpgs.find((x) => x.tag === tag);
  const tpgs = list(t.tpgs)
    .filter(isObj)
    .sort((a, b) => Number(a.tag) - Number(b.tag))
    .map((tpg) => {
      const want = likeTpg(tpg.tag);
      return {
        tag: tpg.tag,
        enable: tpg.enable ?? true,
        attributes: pick(tpg.attributes, Object.keys(want?.attributes ?? {})),
        parameters: pick(tpg.parameters, Object.keys(want?.parameters ?? {})),
        portals: list(tpg.portals)
          .filter(isObj)
          .map((p) => ({ ip_address: p.ip_address, port: p.port, iser: p.iser ?? false, offload: p.offload ?? false }))
          .sort((a, b) => cmp(`${String(a.ip_address)}:${String(a.port)}`, `${String(b.ip_address)}:${String(b.port)}`)),
        luns: list(tpg.luns)
          .filter(isObj)
          .map((l) => ({ index: l.index, storage_object: l.storage_object }))
          .sort((a, b) => Number(a.index) - Number(b.index)),
        node_acls: list(tpg.node_acls)
          .filter(isObj)
          .map((acl) => ({
            node_wwn: String(acl.node_wwn).toLowerCase(),
            ...pick(acl, ['chap_userid', 'chap_password', 'chap_mutual_userid', 'chap_mutual_password']),
            mapped_luns: list(acl.mapped_luns)
              .filter(isObj)
              .map((m) => ({ index: m.index, tpg_lun: m.tpg_lun, write_protect: m.write_protect ?? false }))
              .sort((a, b) => Number(a.index) - Number(b.index)),
          }))
          .sort((a, b) => cmp(a.node_wwn, b.node_wwn)),
      };
    });
  return { fabric: t.fabric, wwn: t.wwn.toLowerCase(), tpgs };
}

/** A storage object reduced to the keys the rendered one sets (a live dump adds attributes, ALUA groups…). */
function projectObject(so: LioStorageObject | undefined, like: LioStorageObject): unknown {
  if (!so) return null;
  return pick(
    so,
    Object.keys(like).filter((k) => k !== 'attributes'),
  );
}

/** The first place two projections differ, as a path (`tpgs[0].node_acls`), or undefined when equal. */
export function firstDifference(want: unknown, have: unknown, path = ''): string | undefined {
  if (Array.isArray(want) && Array.isArray(have)) {
    if (want.length !== have.length) return `${path || '.'} (${have.length} instead of ${want.length} entries)`;
    for (let i = 0; i < want.length; i++) {
      const d = firstDifference(want[i], have[i], `${path}[${i}]`);
      if (d) return d;
    }
    return undefined;
  }
  if (isObj(want) && isObj(have)) {
    for (const key of [...new Set([...Object.keys(want), ...Object.keys(have)])].sort()) {
      const d = firstDifference(want[key], have[key], path ? `${path}.${key}` : key);
      if (d) return d;
    }
    return undefined;
  }
  // Secrets never reach an error message: only where they differ.
  return want === have ? undefined : path || '.';
}

/**
 * How the live config differs from one rendered target and its storage object: undefined when it
 * serves exactly that, else a short reason naming the first difference.
 */
export function targetDifference(plan: LioTargetPlan, live: LioConfig): string | undefined {
  const want = plan.config.targets[0];
  const have = findTarget(live, plan.iqn);
  if (!have) return 'the target does not exist';
  const d = firstDifference(projectTarget(want, want), projectTarget(have, want));
  if (d) return `target differs at ${d}`;
  for (const so of plan.config.storage_objects) {
    const path = storageObjectPath(so);
    const o = firstDifference(projectObject(so, so), projectObject(findObject(live, path), so));
    if (o) return `storage object ${path} ${findObject(live, path) ? `differs at ${o}` : 'does not exist'}`;
  }
  return undefined;
}

/**
 * Every live target and storage object as its full dump text, keyed `target:<iqn>` /
 * `object:<path>`: what "the other targets are left as they were" is checked against.
 */
export function fingerprints(live: LioConfig): Map<string, string> {
  const out = new Map<string, string>();
  for (const t of live.targets) out.set(`target:${t.wwn.toLowerCase()}`, JSON.stringify(t));
  for (const so of live.storage_objects) out.set(`object:${storageObjectPath(so)}`, JSON.stringify(so));
  return out;
}

/** Keys whose fingerprint changed, appeared or vanished between two reads, except `allowed` ones. */
export function unexpectedChanges(before: Map<string, string>, after: Map<string, string>, allowed: ReadonlySet<string>): string[] {
  const keys = new Set([...before.keys(), ...after.keys()]);
  return [...keys].filter((k) => !allowed.has(k) && before.get(k) !== after.get(k)).sort();
}
