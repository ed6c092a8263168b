/**
 * A checker for rtslib saveconfig JSON that mirrors what rtslib-fb's restore (2.1.75, Debian 12)
 * refuses or silently drops, so a file is known good before `targetcli restoreconfig` sees it:
 * rtslib's restore is not atomic, skips what it cannot make ("…, skipped") and `targetctl`
 * exits 0 even then. Written from reading rtslib's root.py, tcm.py, target.py and utils.py; no
 * code of theirs. A second, stricter set of rules ({@link lioPolicyProblems}) is mammatus's own:
 * no target reachable without an ACL and CHAP. Pure.
 */
import { isIPv4 } from '../../core/net.js';
import { isIqn } from '../../core/volume-record.js';

/** One thing rtslib would refuse or drop, at a JSON path like `$.targets[0].tpgs[0].luns[0]`. */
export interface LioProblem {
  readonly path: string;
  readonly message: string;
  /** The target (wwn) the problem lies in or refers to, when it belongs to one. */
  readonly target?: string;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown, min: number, max: number): v is number =>
  Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max;

/** The plugin names rtslib maps to a storage object class, and the name its LUN paths use. */
const PLUGINS: Readonly<Record<string, string>> = {
  block: 'block',
  fileio: 'fileio',
  iblock: 'block',
  pscsi: 'pscsi',
  ramdisk: 'ramdisk',
  rd_mcp: 'ramdisk',
  user: 'user',
};
/** Keys rtslib removes before calling the storage object class, plus the class's own arguments. */
const SO_COMMON = ['name', 'plugin', 'exists', 'attributes', 'buffered_mode', 'alua_tpgs', 'index', 'wwn'];
const SO_KEYS: Readonly<Record<string, readonly string[]>> = {
  fileio: [...SO_COMMON, 'dev', 'size', 'write_back', 'aio'],
  block: [...SO_COMMON, 'dev', 'readonly', 'write_back'],
};
/** CHAP keys as rtslib names them on a node ACL (and a TPG); any other is set as a plain Python attribute and lost. */
export const CHAP_KEYS = ['chap_userid', 'chap_password', 'chap_mutual_userid', 'chap_mutual_password'] as const;
const ACL_KEYS = new Set<string>(['node_wwn', 'attributes', 'mapped_luns', 'tag', ...CHAP_KEYS]);
const TPG_KEYS = new Set<string>(['tag', 'enable', 'attributes', 'parameters', 'luns', 'portals', 'node_acls', ...CHAP_KEYS]);
const UNIT_SERIAL = /^[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}$/;

/**
 * Would rtslib take `wwn` as an iSCSI name? Its iqn test wants a dot after the date's dot (so
 * `iqn.2026-12.mammatus:data` is refused), no space and no underscore; naa./eui. forms are hex.
 * Stricter than RFC 3720 (and than {@link isIqn} alone), which is why both are asked.
 */
export function rtslibAcceptsIscsiWwn(wwn: string): boolean {
  const w = wwn.trim().toLowerCase();
  if (/^naa\.[125][0-9a-f]{15}$/.test(w) || /^eui\.[0-9a-f]{16}$/.test(w)) return true;
  return /^iqn\.[0-9]{4}-[01][0-9]\..*\./.test(w) && !/[ _]/.test(w) && isIqn(w);
}

/** An rtslib portal address: IPv4, or IPv6 in brackets. */
function isPortalAddress(ip: unknown): boolean {
  if (typeof ip !== 'string') return false;
  if (isIPv4(ip)) return true;
  return /^\[[0-9a-fA-F:.]+\]$/.test(ip) && ip.includes(':');
}

/** A CHAP value configfs takes: printable, no spaces, at most 255 bytes. */
const isChapValue = (v: unknown): boolean => typeof v === 'string' && /^[\x21-\x7e]{1,255}$/.test(v);

/** Checks a saveconfig document; an empty list means rtslib would restore all of it. */
export function checkLioConfig(doc: unknown): LioProblem[] {
  const problems: LioProblem[] = [];
  const add = (path: string, message: string, target?: string) => problems.push({ path, message, ...(target ? { target } : {}) });
  if (!isObj(doc)) return [{ path: '$', message: 'must be a JSON object' }];
  for (const key of ['fabric_modules', 'storage_objects', 'targets'])
    if (doc[key] !== undefined && !Array.isArray(doc[key])) add(`$.${key}`, 'must be a list');
  const objects = checkStorageObjects(Array.isArray(doc.storage_objects) ? doc.storage_objects : [], add);
  const targets = Array.isArray(doc.targets) ? doc.targets : [];
  const seen = new Map<string, number>();
  targets.forEach((t, i) => {
    const path = `$.targets[${i}]`;
    if (!isObj(t)) return add(path, 'must be an object');
    const wwn = typeof t.wwn === 'string' ? t.wwn : undefined;
    if (!wwn) return add(`${path}.wwn`, "is required (rtslib skips a target without 'wwn')");
    if (typeof t.fabric !== 'string') add(`${path}.fabric`, "is required (rtslib skips a target without 'fabric')", wwn);
    else if (t.fabric === 'iscsi' && !rtslibAcceptsIscsiWwn(wwn))
      add(`${path}.wwn`, `${wwn} is not an iSCSI name rtslib accepts (iqn. with a dot after the date part, no '_'; or naa./eui.)`, wwn);
    const key = `${String(t.fabric)}/${wwn.trim().toLowerCase()}`;
    if (seen.has(key)) add(`${path}.wwn`, `duplicates $.targets[${seen.get(key)}] (rtslib would merge them into one target)`, wwn);
    else seen.set(key, i);
    if (!Array.isArray(t.tpgs)) return add(`${path}.tpgs`, 'must be a list', wwn);
    const tags = new Set<number>();
    t.tpgs.forEach((tpg, j) => checkTpg(tpg, `${path}.tpgs[${j}]`, wwn, objects, tags, add));
  });
  return problems;
}

type Add = (path: string, message: string, target?: string) => void;

/** Checks the storage objects; returns the `/backstores/<plugin>/<name>` paths LUNs may refer to. */
function checkStorageObjects(list: readonly unknown[], add: Add): Set<string> {
  const paths = new Set<string>();
  const byName = new Map<string, number>();
  list.forEach((so, i) => {
    const path = `$.storage_objects[${i}]`;
    if (!isObj(so)) return add(path, 'must be an object');
    if (typeof so.name !== 'string' || so.name === '') return add(`${path}.name`, "is required (rtslib skips an object without 'name')");
    if (/[/ \t\n]/.test(so.name)) add(`${path}.name`, 'may not hold /, spaces, tabs or newlines (rtslib refuses it)');
    const plugin = typeof so.plugin === 'string' ? PLUGINS[so.plugin] : undefined;
    if (!plugin)
      return add(`${path}.plugin`, `${JSON.stringify(so.plugin)} is not a backstore rtslib knows (${Object.keys(PLUGINS).join(', ')})`);
    const soPath = `/backstores/${plugin}/${so.name}`;
    if (paths.has(soPath)) add(path, `duplicates ${soPath} (rtslib cannot create it twice)`);
    // A one-object restore (storage_object=NAME) and its clear match by name alone, across plugins.
    else if (byName.has(so.name)) add(`${path}.name`, `${so.name} is also the name of $.storage_objects[${byName.get(so.name)}]`);
    paths.add(soPath);
    byName.set(so.name, i);
    const known = SO_KEYS[plugin];
    if (known) {
      for (const key of Object.keys(so))
        if (!known.includes(key)) add(`${path}.${key}`, `is not an argument of rtslib's ${plugin} object: creating it would fail`);
    }
    if (so.wwn !== undefined && (typeof so.wwn !== 'string' || !UNIT_SERIAL.test(so.wwn)))
      add(`${path}.wwn`, 'must be a unit serial in UUID form');
    if (so.attributes !== undefined && !isObj(so.attributes)) add(`${path}.attributes`, 'must be an object');
    if (plugin === 'fileio') {
      if (typeof so.dev !== 'string' || !so.dev.startsWith('/'))
        add(`${path}.dev`, 'must be an absolute path (without it rtslib looks the object up instead)');
      if (!isInt(so.size, 1, Number.MAX_SAFE_INTEGER))
        add(`${path}.size`, 'must be a positive whole number of bytes (rtslib needs it for a file)');
    }
    if (plugin === 'block' && (typeof so.dev !== 'string' || !so.dev.startsWith('/dev/')))
      add(`${path}.dev`, 'must be a device path under /dev/');
    for (const key of ['write_back', 'aio', 'readonly'])
      if (so[key] !== undefined && typeof so[key] !== 'boolean') add(`${path}.${key}`, 'must be true or false');
  });
  return paths;
}

/** Checks one TPG: its keys, attributes, portals, LUNs and node ACLs. */
function checkTpg(tpg: unknown, path: string, wwn: string, objects: Set<string>, tags: Set<number>, add: Add): void {
  if (!isObj(tpg)) return add(path, 'must be an object', wwn);
  if (!isInt(tpg.tag, 1, 65535)) add(`${path}.tag`, 'must be a whole number from 1', wwn);
  else if (tags.has(tpg.tag)) add(`${path}.tag`, `TPG ${tpg.tag} appears twice`, wwn);
  else tags.add(tpg.tag);
  for (const key of Object.keys(tpg))
    if (!TPG_KEYS.has(key) && !/chap|mutual/i.test(key))
      add(`${path}.${key}`, 'is not a TPG setting rtslib restores (it would be dropped)', wwn);
  if (tpg.enable !== undefined && typeof tpg.enable !== 'boolean') add(`${path}.enable`, 'must be true or false', wwn);
  for (const key of ['attributes', 'parameters']) {
    const v = tpg[key];
    if (v === undefined) continue;
    if (!isObj(v)) add(`${path}.${key}`, 'must be an object', wwn);
    else for (const [k, x] of Object.entries(v)) if (typeof x === 'object') add(`${path}.${key}.${k}`, 'must be a number or a string', wwn);
  }
  checkTpgChap(tpg, path, wwn, add);
  const portals = Array.isArray(tpg.portals) ? tpg.portals : [];
  if (tpg.portals !== undefined && !Array.isArray(tpg.portals)) add(`${path}.portals`, 'must be a list', wwn);
  const seenPortals = new Set<string>();
  portals.forEach((p, k) => {
    const at = `${path}.portals[${k}]`;
    if (!isObj(p)) return add(at, 'must be an object', wwn);
    if (!isPortalAddress(p.ip_address)) add(`${at}.ip_address`, 'must be an IPv4 address or an IPv6 one in brackets', wwn);
    if (!isInt(p.port, 1, 65535)) add(`${at}.port`, 'must be a port number (rtslib skips a portal without one)', wwn);
    const key = `${String(p.ip_address)}:${String(p.port)}`;
    if (seenPortals.has(key)) add(at, `portal ${key} appears twice`, wwn);
    seenPortals.add(key);
  });
  const lunIndexes = new Set<number>();
  const luns = Array.isArray(tpg.luns) ? tpg.luns : [];
  if (tpg.luns !== undefined && !Array.isArray(tpg.luns)) add(`${path}.luns`, 'must be a list', wwn);
  luns.forEach((lun, k) => {
    const at = `${path}.luns[${k}]`;
    if (!isObj(lun)) return add(at, 'must be an object', wwn);
    if (!isInt(lun.index, 0, 65535)) add(`${at}.index`, 'must be a LUN number 0–65535', wwn);
    else if (lunIndexes.has(lun.index)) add(`${at}.index`, `LUN ${lun.index} appears twice`, wwn);
    else lunIndexes.add(lun.index);
    const ref = lun.storage_object;
    if (typeof ref !== 'string' || !/^\/backstores\/[^/]+\/[^/]+$/.test(ref))
      add(`${at}.storage_object`, 'must be /backstores/<plugin>/<name>', wwn);
    else if (!objects.has(ref)) add(`${at}.storage_object`, `${ref} is not among the storage objects`, wwn);
  });
  const acls = Array.isArray(tpg.node_acls) ? tpg.node_acls : [];
  if (tpg.node_acls !== undefined && !Array.isArray(tpg.node_acls)) add(`${path}.node_acls`, 'must be a list', wwn);
  const initiators = new Set<string>();
  acls.forEach((acl, k) => checkAcl(acl, `${path}.node_acls[${k}]`, wwn, lunIndexes, initiators, add));
}

/** CHAP keys come in pairs (user and password); a half pair makes every login fail. */
function checkTpgChap(node: Obj, path: string, wwn: string, add: Add): void {
  for (const key of Object.keys(node))
    if (/chap|mutual/i.test(key) && !(CHAP_KEYS as readonly string[]).includes(key))
      add(`${path}.${key}`, `is not a CHAP key rtslib knows (${CHAP_KEYS.join(', ')}): it would be ignored`, wwn);
  for (const [user, pass] of [
    ['chap_userid', 'chap_password'],
    ['chap_mutual_userid', 'chap_mutual_password'],
  ] as const) {
    for (const key of [user, pass])
      if (node[key] !== undefined && !isChapValue(node[key]))
        add(`${path}.${key}`, 'must be 1–255 printable characters without spaces', wwn);
    if ((node[user] === undefined) !== (node[pass] === undefined))
      add(`${path}.${node[user] === undefined ? user : pass}`, `is missing: ${user} and ${pass} go together`, wwn);
  }
  if (node.chap_mutual_userid !== undefined && node.chap_userid === undefined) add(`${path}.chap_userid`, 'is needed for mutual CHAP', wwn);
}

/** Checks one node ACL: the initiator's name, its keys, CHAP and mapped LUNs. */
function checkAcl(acl: unknown, path: string, wwn: string, lunIndexes: Set<number>, initiators: Set<string>, add: Add): void {
  if (!isObj(acl)) return add(path, 'must be an object', wwn);
  if (typeof acl.node_wwn !== 'string') return add(`${path}.node_wwn`, "is required (rtslib skips an ACL without 'node_wwn')", wwn);
  if (!rtslibAcceptsIscsiWwn(acl.node_wwn)) add(`${path}.node_wwn`, `${acl.node_wwn} is not an initiator name rtslib accepts`, wwn);
  const who = acl.node_wwn.trim().toLowerCase();
  if (initiators.has(who)) add(`${path}.node_wwn`, `${acl.node_wwn} has two ACLs in one TPG`, wwn);
  initiators.add(who);
  for (const key of Object.keys(acl))
    if (!ACL_KEYS.has(key) && !/chap|mutual/i.test(key))
      add(`${path}.${key}`, 'is not a node ACL setting rtslib restores (it would be dropped)', wwn);
  checkTpgChap(acl, path, wwn, add);
  if (acl.attributes !== undefined && !isObj(acl.attributes)) add(`${path}.attributes`, 'must be an object', wwn);
  if (!Array.isArray(acl.mapped_luns)) return add(`${path}.mapped_luns`, 'must be a list', wwn);
  const mapped = new Set<number>();
  acl.mapped_luns.forEach((m, k) => {
    const at = `${path}.mapped_luns[${k}]`;
    if (!isObj(m)) return add(at, 'must be an object', wwn);
    if (!isInt(m.index, 0, 255)) add(`${at}.index`, 'must be a mapped LUN number 0–255', wwn);
    else if (mapped.has(m.index)) add(`${at}.index`, `mapped LUN ${m.index} appears twice`, wwn);
    else mapped.add(m.index);
    if (!isInt(m.tpg_lun, 0, 65535) || !lunIndexes.has(m.tpg_lun))
      add(`${at}.tpg_lun`, `must be the index of a LUN of this TPG (rtslib skips it otherwise)`, wwn);
    if (m.write_protect !== undefined && typeof m.write_protect !== 'boolean') add(`${at}.write_protect`, 'must be true or false', wwn);
  });
}

/**
 * mammatus's own rules on top of rtslib's, for the targets it renders: every TPG enforces CHAP,
 * makes up no ACLs, and every ACL has CHAP credentials. A target breaking them could be reached
 * without the volume's secret.
 */
export function lioPolicyProblems(doc: unknown): LioProblem[] {
  const problems: LioProblem[] = [];
  if (!isObj(doc) || !Array.isArray(doc.targets)) return problems;
  doc.targets.forEach((t, i) => {
    if (!isObj(t) || !Array.isArray(t.tpgs)) return;
    const wwn = typeof t.wwn === 'string' ? t.wwn : undefined;
    t.tpgs.forEach((tpg, j) => {
      const path = `$.targets[${i}].tpgs[${j}]`;
      if (!isObj(tpg)) return;
      const attrs = isObj(tpg.attributes) ? tpg.attributes : {};
      for (const [key, want] of [
        ['authentication', 1],
        ['generate_node_acls', 0],
        ['demo_mode_write_protect', 1],
      ] as const)
        if (attrs[key] !== want)
          problems.push({ path: `${path}.attributes.${key}`, message: `must be ${want}`, ...(wwn ? { target: wwn } : {}) });
      (Array.isArray(tpg.node_acls) ? tpg.node_acls : []).forEach((acl, k) => {
        if (isObj(acl) && (acl.chap_userid === undefined || acl.chap_password === undefined))
          problems.push({ path: `${path}.node_acls[${k}]`, message: 'has no CHAP credentials', ...(wwn ? { target: wwn } : {}) });
      });
    });
  });
  return problems;
}
