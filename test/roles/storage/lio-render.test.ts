/**
 * The LIO render against golden saveconfig files (regenerate with `npx vitest run
 * test/roles/storage -u` and review the diff like code), and the checker refusing each broken case.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { checkLioConfig, lioPolicyProblems, rtslibAcceptsIscsiWwn } from '../../../roles/storage/lio-check.js';
import { lioConfigText, renderLio, storageObjectWwn, type LioConfig } from '../../../roles/storage/lio-render.js';
import { ATTACHED, CASES, SETTINGS, volume } from './lio-fixtures.js';

const GOLDEN = join(import.meta.dirname, 'golden', 'lio');

describe('renderLio goldens', () => {
  it.each(Object.keys(CASES))('%s renders the golden saveconfig and per-target files', async (name) => {
    const out = renderLio(CASES[name], SETTINGS);
    // Pure: the same input renders the same output, whatever the order of the registry.
    expect(renderLio([...CASES[name]].reverse(), SETTINGS)).toEqual(out);
    expect(checkLioConfig(out.config)).toEqual([]);
    expect(lioPolicyProblems(out.config)).toEqual([]);
    await expect(lioConfigText(out.config)).toMatchFileSnapshot(join(GOLDEN, `${name}.json`));
    for (const t of out.targets) {
      expect(checkLioConfig(t.config)).toEqual([]);
      await expect(lioConfigText(t.config)).toMatchFileSnapshot(join(GOLDEN, `${name}.target-${t.volume}.json`));
    }
  });

  it('locks every target down: CHAP enforced, no generated ACLs, one ACL for the attached initiator', () => {
    const out = renderLio(CASES['one-attached-chap'], SETTINGS);
    expect(out.targets.map((t) => [t.volume, t.iqn, t.lun])).toEqual([['data', 'iqn.2026-12.mammatus:volume.data', 0]]);
    const tpg = out.config.targets[0].tpgs[0];
    expect(tpg.attributes).toMatchObject({ authentication: 1, generate_node_acls: 0, demo_mode_write_protect: 1 });
    expect(tpg.portals).toEqual([{ ip_address: '10.0.0.5', iser: false, offload: false, port: 3260 }]);
    expect(tpg.node_acls).toEqual([
      {
        chap_password: 's3cret-datax',
        chap_userid: 'vol-data',
        mapped_luns: [{ index: 0, tpg_lun: 0, write_protect: false }],
        node_wwn: ATTACHED.initiator,
      },
    ]);
    expect(out.targets[0].backingFile).toEqual({
      path: '/var/lib/mammatus/volumes/data.img',
      size: 1024 ** 3,
      identity: { volume: 'data', id: '2026-12-01T10:00:00Z', adopt: true },
    });
  });

  it('gives an unattached volume a target nobody can log in to', () => {
    const tpg = renderLio(CASES['one-unattached'], SETTINGS).config.targets[0].tpgs[0];
    expect(tpg.node_acls).toEqual([]);
    expect(tpg.attributes).toMatchObject({ generate_node_acls: 0 });
  });

  it('leaves out a malformed record, names it, and still serves the others', () => {
    const out = renderLio([volume('good'), volume('bad', { chap: { user: 'u', secret: 'short' } })], SETTINGS);
    expect(out.targets.map((t) => t.volume)).toEqual(['good']);
    expect(out.skipped).toEqual([{ volume: 'bad', reason: expect.stringContaining('chap.secret') as string }]);
  });

  it.each([
    [
      'a file outside the backing directory',
      volume('x', { backing: { kind: 'file', path: '/etc/shadow' } }),
      /backing\.path: \/etc\/shadow is not a file under \/var\/lib\/mammatus\/volumes\//,
    ],
    [
      'a path climbing out with ..',
      volume('x', { backing: { kind: 'file', path: '/var/lib/mammatus/volumes/../../../etc/shadow' } }),
      /backing\.path/,
    ],
    ['the backing directory itself', volume('x', { backing: { kind: 'file', path: '/var/lib/mammatus/volumes' } }), /backing\.path/],
    [
      'a volume group not configured',
      volume('x', { backing: { kind: 'lvm', vg: 'system', pool: 'p', lv: 'root' } }),
      /backing\.vg: system is not among/,
    ],
  ])('refuses to serve %s (the agent is root: the record must not pick what LIO exports)', (_what, v, reason) => {
    const out = renderLio([v, volume('ok')], SETTINGS);
    expect(out.targets.map((t) => t.volume)).toEqual(['ok']);
    expect(out.skipped).toEqual([{ volume: 'x', reason: expect.stringMatching(reason) as string }]);
  });

  it('keeps the unit serial stable and in the UUID form rtslib wants', () => {
    const a = storageObjectWwn('iqn.2026-12.mammatus:volume.data');
    expect(a).toBe(storageObjectWwn('iqn.2026-12.mammatus:volume.data'));
    expect(a).not.toBe(storageObjectWwn('iqn.2026-12.mammatus:volume.date'));
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});

describe('rtslibAcceptsIscsiWwn', () => {
  it('takes what rtslib takes and refuses what it refuses', () => {
    expect(rtslibAcceptsIscsiWwn('iqn.2026-12.mammatus:volume.data')).toBe(true);
    expect(rtslibAcceptsIscsiWwn('iqn.1993-08.org.debian:01:c0ffee01')).toBe(true);
    expect(rtslibAcceptsIscsiWwn('naa.5001405abcdef012')).toBe(true);
    // No dot after the date part: the IQN form the issue first named, which targetcli refuses.
    expect(rtslibAcceptsIscsiWwn('iqn.2026-12.mammatus:data')).toBe(false);
    expect(rtslibAcceptsIscsiWwn('iqn.2026-12.org.example:my_vol')).toBe(false);
  });
});

type Mut = any; // eslint-disable-line @typescript-eslint/no-explicit-any
/** The mixed case's config as mutable JSON, for breaking. */
const mixed = (): Mut => JSON.parse(lioConfigText(renderLio(CASES['mixed-file-lvm'], SETTINGS).config));
const fileSo = (c: Mut): Mut => c.storage_objects.find((so: Mut) => so.plugin === 'fileio');
const tpg0 = (c: Mut): Mut => c.targets[0].tpgs[0];

/** Each broken case: how to break the mixed config, and the path and message the checker must give. */
const BROKEN: [string, (c: Mut) => unknown, string, RegExp][] = [
  ['a document that is not an object', () => [], '$', /object/],
  ['storage objects that are not a list', (c) => void (c.storage_objects = {}), '$.storage_objects', /list/],
  [
    'two storage objects of one name and plugin',
    (c) => void c.storage_objects.push({ ...fileSo(c) }),
    '$.storage_objects[3]',
    /duplicates \/backstores\/fileio\/mammatus-logs/,
  ],
  [
    'one name under two plugins',
    (c) => void c.storage_objects.push({ ...c.storage_objects[0], plugin: 'fileio', size: 1 << 20 }),
    '$.storage_objects[3].name',
    /also the name/,
  ],
  ['a storage object name with a space', (c) => void (fileSo(c).name = 'my vol'), '$.storage_objects[2].name', /spaces/],
  ['an unknown plugin', (c) => void (fileSo(c).plugin = 'nbd'), '$.storage_objects[2].plugin', /not a backstore/],
  ['a key the object class does not take', (c) => void (fileSo(c).sizee = 5), '$.storage_objects[2].sizee', /not an argument/],
  ['a zero size', (c) => void (fileSo(c).size = 0), '$.storage_objects[2].size', /positive/],
  ['a negative size', (c) => void (fileSo(c).size = -4096), '$.storage_objects[2].size', /positive/],
  ['a fileio object without a size', (c) => delete fileSo(c).size, '$.storage_objects[2].size', /positive/],
  ['a relative backing path', (c) => void (fileSo(c).dev = 'volumes/logs.img'), '$.storage_objects[2].dev', /absolute/],
  ['a block object outside /dev', (c) => void (c.storage_objects[0].dev = '/srv/db'), '$.storage_objects[0].dev', /\/dev\//],
  ['a unit serial not in UUID form', (c) => void (fileSo(c).wwn = 'abc'), '$.storage_objects[2].wwn', /UUID/],
  [
    'a LUN pointing at no storage object',
    (c) => void (tpg0(c).luns[0].storage_object = '/backstores/block/nothing'),
    '$.targets[0].tpgs[0].luns[0].storage_object',
    /not among/,
  ],
  [
    'a LUN naming the iblock alias (rtslib matches plugin names exactly)',
    (c) => void (tpg0(c).luns[0].storage_object = '/backstores/iblock/mammatus-db'),
    '$.targets[0].tpgs[0].luns[0].storage_object',
    /not among/,
  ],
  [
    'a malformed storage_object path',
    (c) => void (tpg0(c).luns[0].storage_object = '/backstores/block'),
    '$.targets[0].tpgs[0].luns[0].storage_object',
    /\/backstores\/<plugin>\/<name>/,
  ],
  ['two LUNs of one index', (c) => void tpg0(c).luns.push({ ...tpg0(c).luns[0] }), '$.targets[0].tpgs[0].luns[1].index', /twice/],
  [
    'a mapped LUN pointing at no TPG LUN',
    (c) => void (tpg0(c).node_acls[0].mapped_luns[0].tpg_lun = 7),
    '$.targets[0].tpgs[0].node_acls[0].mapped_luns[0].tpg_lun',
    /LUN of this TPG/,
  ],
  [
    'a mapped LUN number above 255',
    (c) => void (tpg0(c).node_acls[0].mapped_luns[0].index = 256),
    '$.targets[0].tpgs[0].node_acls[0].mapped_luns[0].index',
    /0–255/,
  ],
  [
    'a misspelled CHAP key',
    (c) => void (tpg0(c).node_acls[0].chap_user = 'x'),
    '$.targets[0].tpgs[0].node_acls[0].chap_user',
    /not a CHAP key/,
  ],
  [
    'mutual CHAP spelled the wrong way round',
    (c) => void (tpg0(c).node_acls[0].mutual_chap_userid = 'x'),
    '$.targets[0].tpgs[0].node_acls[0].mutual_chap_userid',
    /not a CHAP key/,
  ],
  [
    'a CHAP user without its password',
    (c) => delete tpg0(c).node_acls[0].chap_password,
    '$.targets[0].tpgs[0].node_acls[0].chap_password',
    /go together/,
  ],
  [
    'a CHAP password with a space',
    (c) => void (tpg0(c).node_acls[0].chap_password = 'two words here'),
    '$.targets[0].tpgs[0].node_acls[0].chap_password',
    /printable/,
  ],
  ['an ACL key rtslib drops', (c) => void (tpg0(c).node_acls[0].auth = {}), '$.targets[0].tpgs[0].node_acls[0].auth', /dropped/],
  [
    'two ACLs for one initiator',
    (c) => void tpg0(c).node_acls.push({ ...tpg0(c).node_acls[0], node_wwn: tpg0(c).node_acls[0].node_wwn.toUpperCase() }),
    '$.targets[0].tpgs[0].node_acls[1].node_wwn',
    /two ACLs/,
  ],
  [
    'an initiator name rtslib refuses',
    (c) => void (tpg0(c).node_acls[0].node_wwn = 'iqn.2026-12.mammatus:compute1'),
    '$.targets[0].tpgs[0].node_acls[0].node_wwn',
    /initiator name/,
  ],
  [
    'a target IQN without a dot after the date',
    (c) => void (c.targets[0].wwn = 'iqn.2026-12.mammatus:db'),
    '$.targets[0].wwn',
    /not an iSCSI name rtslib accepts/,
  ],
  [
    'a target IQN with an underscore',
    (c) => void (c.targets[0].wwn = 'iqn.2026-12.mammatus:volume.my_db'),
    '$.targets[0].wwn',
    /not an iSCSI name/,
  ],
  ['a target without a wwn', (c) => delete c.targets[0].wwn, '$.targets[0].wwn', /required/],
  ['a target without a fabric', (c) => delete c.targets[0].fabric, '$.targets[0].fabric', /required/],
  [
    'two targets of one IQN (case aside)',
    (c) => void (c.targets[1].wwn = c.targets[0].wwn.toUpperCase()),
    '$.targets[1].wwn',
    /duplicates \$\.targets\[0\]/,
  ],
  ['two TPGs of one tag', (c) => void c.targets[0].tpgs.push({ ...tpg0(c) }), '$.targets[0].tpgs[1].tag', /twice/],
  ['TPG tag 0', (c) => void (tpg0(c).tag = 0), '$.targets[0].tpgs[0].tag', /from 1/],
  ['a TPG key rtslib drops', (c) => void (tpg0(c).portal = 'x'), '$.targets[0].tpgs[0].portal', /dropped/],
  [
    'an attribute that is an object',
    (c) => void (tpg0(c).attributes.authentication = { on: 1 }),
    '$.targets[0].tpgs[0].attributes.authentication',
    /number or a string/,
  ],
  [
    'a portal address that is not an address',
    (c) => void (tpg0(c).portals[0].ip_address = '10.0.0.300'),
    '$.targets[0].tpgs[0].portals[0].ip_address',
    /IPv4/,
  ],
  [
    'an IPv6 portal without brackets',
    (c) => void (tpg0(c).portals[0].ip_address = 'fd00::5'),
    '$.targets[0].tpgs[0].portals[0].ip_address',
    /brackets/,
  ],
  ['a portal without a port', (c) => delete tpg0(c).portals[0].port, '$.targets[0].tpgs[0].portals[0].port', /port/],
  ['port 0', (c) => void (tpg0(c).portals[0].port = 0), '$.targets[0].tpgs[0].portals[0].port', /port/],
  ['one portal twice', (c) => void tpg0(c).portals.push({ ...tpg0(c).portals[0] }), '$.targets[0].tpgs[0].portals[1]', /twice/],
];

describe('checkLioConfig refuses', () => {
  it('nothing in the rendered fixtures (and an empty document is fine)', () => {
    expect(checkLioConfig(mixed())).toEqual([]);
    expect(checkLioConfig({})).toEqual([]);
  });

  it.each(BROKEN)('%s', (_what, breakIt, path, message) => {
    let doc = mixed();
    const replaced = breakIt(doc);
    if (Array.isArray(replaced)) doc = replaced;
    const problems = checkLioConfig(doc);
    expect(problems).toContainEqual(expect.objectContaining({ path, message: expect.stringMatching(message) as string }));
  });

  it('names the target a problem belongs to', () => {
    const doc = mixed();
    tpg0(doc).node_acls[0].chap_user = 'x';
    expect(checkLioConfig(doc)[0].target).toBe(doc.targets[0].wwn);
  });
});

describe('lioPolicyProblems', () => {
  it.each([
    ['CHAP not enforced', (c: Mut) => void (tpg0(c).attributes.authentication = 0), /authentication/],
    ['ACLs made up for any initiator', (c: Mut) => void (tpg0(c).attributes.generate_node_acls = 1), /generate_node_acls/],
    ['demo mode writable', (c: Mut) => void (tpg0(c).attributes.demo_mode_write_protect = 0), /demo_mode_write_protect/],
    [
      'an ACL without CHAP',
      (c: Mut) => (delete tpg0(c).node_acls[0].chap_userid, delete tpg0(c).node_acls[0].chap_password),
      /node_acls\[0\]/,
    ],
  ])('refuses %s', (_what, breakIt, path) => {
    const doc: Mut = mixed();
    breakIt(doc);
    expect(lioPolicyProblems(doc as LioConfig).map((p) => p.path)).toContainEqual(expect.stringMatching(path));
  });
});
