/**
 * The tgt backend's show parser and its apply sequence against a recording runner: which
 * tgt-admin/tgtadm commands run, in which order, and what is reported, for the cases a real tgtd
 * is awkward to bring into (test/integration/storage-tgt.test.ts drives the real one).
 */
import { describe, expect, it } from 'vitest';
import type { VolumeRecord } from '../../../core/volume-record.js';
import { applyTgt } from '../../../roles/storage/tgt-apply.js';
import { renderTgt, type TgtSettings } from '../../../roles/storage/tgt-render.js';
import { parseTgtPortals, parseTgtShow, tgtMismatches, tgtSizeMb } from '../../../roles/storage/tgt-show.js';
import { memoryFiles } from '../../helpers/memory-files.js';
import { commandFailed, recordingRun } from '../../helpers/recording-run.js';

const CONF = '/etc/tgt/conf.d/mammatus.conf';
const SETTINGS: TgtSettings = { path: '/var/lib/mammatus/volumes' };
const MiB = 2 ** 20;
const CP = 'iqn.2026-12.mammatus:compute-1';

function volume(name: string, over: Partial<VolumeRecord> = {}): VolumeRecord {
  return {
    name,
    size_bytes: 16 * MiB,
    node: 's1',
    backing: { kind: 'file', path: `/var/lib/mammatus/volumes/${name}.img` },
    state: 'available',
    chap: { user: `${name}-chap`, secret: 'Aa1-aaaabbbbcccc' },
    created_at: '2026-12-01T00:00:00Z',
    updated_at: '2026-12-01T00:00:00Z',
    ...over,
  };
}
const db = volume('db', { attached: { instance: 'web-1', node: 'compute-1', initiator: CP } });
const DB = '/var/lib/mammatus/volumes/db.img';

/** tgtd's `--mode target --op show` for one target, as 1.0.85 prints it. */
function showTarget(
  tid: number,
  iqn: string,
  o: { lun?: { path: string; bytes: number }; account?: string; acl?: string[]; session?: string } = {},
): string {
  const session = o.session
    ? `        I_T nexus: 7\n            Initiator: ${o.session} alias: none\n            Connection: 0\n                IP Address: 10.87.0.2\n`
    : '';
  const lun = o.lun
    ? `        LUN: 1\n            Type: disk\n            SCSI ID: IET     00010001\n            Size: ${tgtSizeMb(o.lun.bytes)} MB, Block size: 512\n            Backing store type: rdwr\n            Backing store path: ${o.lun.path}\n            Backing store flags: \n`
    : '';
  return (
    `Target ${tid}: ${iqn}\n    System information:\n        Driver: iscsi\n        State: ready\n    I_T nexus information:\n${session}` +
    `    LUN information:\n        LUN: 0\n            Type: controller\n            Size: 0 MB, Block size: 1\n            Backing store type: null\n            Backing store path: None\n${lun}` +
    `    Account information:\n${o.account ? `        ${o.account}\n` : ''}    ACL information:\n${(o.acl ?? []).map((a) => `        ${a}\n`).join('')}`
  );
}
const dbLive = (extra: { session?: string; bytes?: number } = {}) =>
  showTarget(1, 'iqn.2026-12.mammatus:volume.db', {
    lun: { path: '/var/lib/mammatus/volumes/db.img', bytes: extra.bytes ?? 16 * MiB },
    account: 'db-chap',
    acl: ['255.255.255.255', CP],
    ...(extra.session ? { session: extra.session } : {}),
  });

/** A runner whose tgtd shows `shows` in turn (the last one repeats); files are `sizes`. */
function tgt(shows: string[], sizes: Record<string, number> = {}) {
  let n = 0;
  return recordingRun((argv) => {
    if (argv[0] === 'stat')
      return sizes[argv.at(-1)!] === undefined ? commandFailed(argv) : { stdout: `${sizes[argv.at(-1)!]} 600\n`, stderr: '', exitCode: 0 };
    if (argv.includes('target') && argv.includes('show'))
      return { stdout: shows[Math.min(n++, shows.length - 1)], stderr: '', exitCode: 0 };
    return undefined;
  });
}
const cmds = (calls: string[][]) =>
  calls.filter((c) => c[0] !== 'stat' && !(c.includes('show') && c.includes('target'))).map((c) => c.join(' '));

describe('parseTgtShow', () => {
  it('reads targets, sessions with their connections, LUNs, accounts and ACLs', () => {
    const [t] = parseTgtShow(dbLive({ session: CP }));
    expect(t).toEqual({
      tid: 1,
      iqn: 'iqn.2026-12.mammatus:volume.db',
      state: 'ready',
      sessions: [{ sid: 7, initiator: CP, connections: [{ cid: 0, address: '10.87.0.2' }] }],
      luns: [
        { lun: 0, type: 'controller', sizeMb: 0, path: 'None' },
        { lun: 1, type: 'disk', sizeMb: 17, path: '/var/lib/mammatus/volumes/db.img' },
      ],
      accounts: ['db-chap'],
      acl: ['255.255.255.255', CP],
    });
    expect(parseTgtShow('')).toEqual([]);
    expect(parseTgtPortals('Portal: 10.0.0.5:3260,1\nPortal: [::]:3260,1\n')).toEqual(['10.0.0.5:3260', '[::]:3260']);
  });

  it('sizes as tgtd prints them (its own MB: 16 MiB is 17, 10 GiB is 10737)', () => {
    expect([tgtSizeMb(16 * MiB), tgtSizeMb(10 * 2 ** 30), tgtSizeMb(MiB)]).toEqual([17, 10737, 1]);
  });

  it('names each difference from the render, the LUN-less target first', () => {
    const [want] = renderTgt('s1', [db], SETTINGS).targets;
    expect(tgtMismatches(want, undefined)).toEqual(['target missing']);
    expect(tgtMismatches(want, parseTgtShow(dbLive())[0])).toEqual([]);
    const bare = parseTgtShow(showTarget(1, 'iqn.2026-12.mammatus:volume.db', { account: 'x', acl: ['ALL', CP] }))[0];
    expect(tgtMismatches(want, bare)).toEqual([
      'no LUN 1 (is the backing store /var/lib/mammatus/volumes/db.img missing or in use?)',
      'CHAP accounts [x], not [db-chap]',
      `ACL [ALL, ${CP}], not [255.255.255.255, ${CP}]`,
    ]);
  });
});

describe('applyTgt', () => {
  it('creates the file, writes the conf 0600, updates only that target, and reads back', async () => {
    const run = tgt(['', dbLive()]);
    const files = memoryFiles();
    const r = await applyTgt(renderTgt('s1', [db], SETTINGS), { run, files, portal: '10.0.0.5:3260' });
    expect(r).toEqual({
      updated: ['iqn.2026-12.mammatus:volume.db'],
      deleted: [],
      grown: ['/var/lib/mammatus/volumes/db.img'],
      removedFiles: [],
      errors: [],
      luns: { db: 1 },
    });
    expect(files.entries.get(CONF)?.mode).toBe(0o600);
    expect(cmds(run.calls)).toEqual([
      'mkdir -p -- /var/lib/mammatus/volumes',
      `truncate -s >${16 * MiB} -- /var/lib/mammatus/volumes/db.img`,
      'chmod 600 -- /var/lib/mammatus/volumes/db.img',
      'tgtadm --lld iscsi --mode account --op show',
      'tgt-admin -c /etc/tgt/targets.conf --update iqn.2026-12.mammatus:volume.db',
      'tgtadm --lld iscsi --mode portal --op show',
      'tgtadm --lld iscsi --mode portal --op new --param portal=10.0.0.5:3260',
    ]);
  });

  it('runs nothing when the conf and tgtd already match, and never --update ALL', async () => {
    const render = renderTgt('s1', [db], SETTINGS);
    const run = tgt([dbLive()], { '/var/lib/mammatus/volumes/db.img': 16 * MiB });
    const files = memoryFiles({
      [CONF]: { content: render.content, mode: 0o600 },
      [`${DB}.id`]: { content: `${db.created_at}\n`, mode: 0o600 },
    });
    const r = await applyTgt(render, { run, files });
    expect(r).toMatchObject({ updated: [], deleted: [], grown: [], errors: [], luns: { db: 1 } });
    expect(cmds(run.calls)).toEqual([]);
    expect(files.ops).toEqual([]);
  });

  it('makes a backing file of the right size private again (an agent died between truncate and chmod)', async () => {
    const render = renderTgt('s1', [db], SETTINGS);
    const run = recordingRun((argv) =>
      argv[0] === 'stat'
        ? { stdout: `${16 * MiB} 644\n`, stderr: '', exitCode: 0 }
        : argv.includes('target') && argv.includes('show')
          ? { stdout: dbLive(), stderr: '', exitCode: 0 }
          : undefined,
    );
    const r = await applyTgt(render, { run, files: memoryFiles({ [CONF]: { content: render.content, mode: 0o600 } }) });
    expect(r).toMatchObject({ updated: [], grown: [], errors: [] });
    expect(cmds(run.calls)).toEqual(['chmod 600 -- /var/lib/mammatus/volumes/db.img']);
  });

  it('re-creates a target tgtd lost (restart) even though the conf did not change', async () => {
    const render = renderTgt('s1', [db], SETTINGS);
    const run = tgt(['', dbLive()], { '/var/lib/mammatus/volumes/db.img': 16 * MiB });
    const r = await applyTgt(render, { run, files: memoryFiles({ [CONF]: { content: render.content, mode: 0o600 } }) });
    expect(r.updated).toEqual(['iqn.2026-12.mammatus:volume.db']);
  });

  it('reports a target tgt-admin left without its LUN (exit 0) as that volume error', async () => {
    const bare = showTarget(1, 'iqn.2026-12.mammatus:volume.db', { account: 'db-chap', acl: ['255.255.255.255', CP] });
    const r = await applyTgt(renderTgt('s1', [db], SETTINGS), { run: tgt(['', bare]), files: memoryFiles() });
    expect(r.errors).toEqual([{ volume: 'db', iqn: 'iqn.2026-12.mammatus:volume.db', error: expect.stringMatching(/^no LUN 1/) }]);
    expect(r.luns).toEqual({});
  });

  it('leaves a busy target alone when its change is not a detach', async () => {
    const run = tgt([dbLive({ session: CP })], { '/var/lib/mammatus/volumes/db.img': 16 * MiB });
    const r = await applyTgt(renderTgt('s1', [{ ...db, size_bytes: 32 * MiB }], SETTINGS), { run, files: memoryFiles() });
    expect(r.errors).toEqual([
      {
        volume: 'db',
        iqn: 'iqn.2026-12.mammatus:volume.db',
        error: expect.stringMatching(/^busy: .*compute-1 from 10\.87\.0\.2.*waits for a detach/),
      },
    ]);
    expect(cmds(run.calls).filter((c) => c.startsWith('tgt-admin'))).toEqual([]);
  });

  it('detaches a logged-in initiator: unbinds its name, ends its connection, then re-creates the target', async () => {
    const { attached: _a, ...detached } = db;
    const gone = showTarget(1, 'iqn.2026-12.mammatus:volume.db', {
      lun: { path: '/var/lib/mammatus/volumes/db.img', bytes: 16 * MiB },
      account: 'db-chap',
      acl: ['255.255.255.255'],
    });
    const run = tgt([dbLive({ session: CP }), '', gone], { '/var/lib/mammatus/volumes/db.img': 16 * MiB });
    const r = await applyTgt(renderTgt('s1', [detached], SETTINGS), { run, files: memoryFiles(), controlPort: 4711 });
    expect(r.errors).toEqual([]);
    expect(cmds(run.calls)).toEqual([
      `tgtadm -C 4711 --lld iscsi --mode target --op unbind --tid 1 --initiator-name ${CP}`,
      'tgtadm -C 4711 --lld iscsi --mode conn --op delete --tid 1 --sid 7 --cid 0',
      'tgt-admin -C 4711 --delete iqn.2026-12.mammatus:volume.db',
      'tgtadm -C 4711 --lld iscsi --mode account --op delete --user db-chap',
      'tgt-admin -C 4711 -c /etc/tgt/targets.conf --update iqn.2026-12.mammatus:volume.db',
    ]);
  });

  it('deletes only its own removed targets, refuses a busy one, and removes a deleting volume file after its target', async () => {
    const other = showTarget(2, 'iqn.2001-04.com.example:operator', { account: 'op', acl: ['ALL'] });
    const old = showTarget(3, 'iqn.2026-12.mammatus:volume.old', { account: 'old-chap', acl: ['255.255.255.255'] });
    const busy = showTarget(4, 'iqn.2026-12.mammatus:volume.busy', { account: 'busy-chap', acl: ['255.255.255.255', CP], session: CP });
    const run = tgt([other + old + busy, other + busy]);
    const render = renderTgt('s1', [volume('old', { state: 'deleting' })], SETTINGS);
    const files = memoryFiles({
      '/var/lib/mammatus/volumes/old.img': 'data',
      '/var/lib/mammatus/volumes/old.img.id': '2026-12-01T00:00:00Z\n',
    });
    const r = await applyTgt(render, { run, files });
    expect(r.deleted).toEqual(['iqn.2026-12.mammatus:volume.old']);
    expect(r.removedFiles).toEqual(['/var/lib/mammatus/volumes/old.img']);
    expect(r.errors).toEqual([
      { iqn: 'iqn.2026-12.mammatus:volume.busy', error: expect.stringMatching(/^busy: .*not deleted \(detach the volume first\)/) },
    ]);
    expect(cmds(run.calls)).toEqual([
      'tgt-admin --delete iqn.2026-12.mammatus:volume.old',
      'tgtadm --lld iscsi --mode account --op delete --user old-chap',
    ]);
    expect(files.entries.has('/var/lib/mammatus/volumes/old.img')).toBe(false);
    expect(files.entries.has('/var/lib/mammatus/volumes/old.img.id')).toBe(false);
    // The record stays `deleting` until reported gone: the next apply finds nothing left to remove.
    const again = await applyTgt(render, { run: tgt([other]), files });
    expect(again).toMatchObject({ deleted: [], removedFiles: [], errors: [] });
  });

  it('serves a backing file only to the record that made it (its .id sidecar), adopting older files of served records', async () => {
    const fresh = { ...db, state: 'creating' as const, created_at: '2026-12-06T12:00:00.000Z' };
    // A new file: its identity (0600) first, then the file.
    let files = memoryFiles();
    let r = await applyTgt(renderTgt('s1', [fresh], SETTINGS), { run: tgt([''], {}), files });
    expect(files.entries.get(`${DB}.id`)).toEqual({ content: '2026-12-06T12:00:00.000Z\n', mode: 0o600 });
    expect(r.grown).toEqual([DB]);

    // `volume rm --force` left the old volume's file and sidecar: the new record is refused, nothing runs.
    const leftover = () => memoryFiles({ [`${DB}.id`]: { content: `${db.created_at}\n`, mode: 0o600 } });
    for (const v of [fresh, { ...fresh, state: 'available' as const }]) {
      const run = tgt([''], { [DB]: 16 * MiB });
      files = leftover();
      r = await applyTgt(renderTgt('s1', [v], SETTINGS), { run, files });
      expect(r.errors).toEqual([
        {
          volume: 'db',
          iqn: 'iqn.2026-12.mammatus:volume.db',
          error:
            `${DB} is a leftover of an earlier volume named db (its .id says "2026-12-01T00:00:00Z", not 2026-12-06T12:00:00.000Z): ` +
            `not served. Check its data is not needed, then rm ${DB} ${DB}.id (docs/storage.md, "Leftovers")`,
        },
      ]);
      expect(cmds(run.calls).filter((c) => !c.includes('portal'))).toEqual([]);
      expect(files.entries.get(`${DB}.id`)?.content).toBe(`${db.created_at}\n`);
    }

    // A file without a sidecar (made before sidecars): a served record adopts it, a new one does not.
    files = memoryFiles();
    r = await applyTgt(renderTgt('s1', [fresh], SETTINGS), { run: tgt([''], { [DB]: 16 * MiB }), files });
    expect(r.errors[0].error).toMatch(new RegExp(`^${DB} is a leftover of an earlier volume named db \\(no ${DB}\\.id\\)`));
    expect(files.entries.has(`${DB}.id`)).toBe(false);
    r = await applyTgt(renderTgt('s1', [db], SETTINGS), { run: tgt([dbLive()], { [DB]: 16 * MiB }), files });
    expect(r.errors).toEqual([]);
    expect(files.entries.get(`${DB}.id`)).toEqual({ content: `${db.created_at}\n`, mode: 0o600 });

    // Deleting the refused record leaves the leftover alone (its target, if any, goes).
    files = leftover();
    files.entries.set(DB, { content: 'old tenant', mode: 0o600 });
    r = await applyTgt(renderTgt('s1', [{ ...fresh, state: 'deleting' }], SETTINGS), { run: tgt(['']), files });
    expect(r.removedFiles).toEqual([]);
    expect(r.errors).toEqual([
      {
        volume: 'db',
        iqn: 'iqn.2026-12.mammatus:volume.db',
        error: expect.stringMatching(/is a leftover of an earlier volume named db .*: left alone\./),
      },
    ]);
    expect(files.entries.has(DB) && files.entries.has(`${DB}.id`)).toBe(true);

    // A sidecar whose file is gone means nothing: the new volume gets a new file.
    files = leftover();
    r = await applyTgt(renderTgt('s1', [fresh], SETTINGS), { run: tgt([''], {}), files });
    expect(r.grown).toEqual([DB]);
    expect(files.entries.get(`${DB}.id`)?.content).toBe('2026-12-06T12:00:00.000Z\n');
  });

  it('grows a file but never shrinks one, and then does not re-create its target', async () => {
    const run = tgt([dbLive({ bytes: 32 * MiB })], { '/var/lib/mammatus/volumes/db.img': 32 * MiB });
    const r = await applyTgt(renderTgt('s1', [db], SETTINGS), { run, files: memoryFiles() });
    expect(r.errors).toEqual([
      {
        volume: 'db',
        iqn: 'iqn.2026-12.mammatus:volume.db',
        error: expect.stringMatching(/is 33554432 bytes, more than the record's 16777216: volumes never shrink/),
      },
    ]);
    expect(cmds(run.calls)).toEqual([]);
  });

  it('keeps a skipped volume block from the last conf and its live target', async () => {
    const good = renderTgt('s1', [db], SETTINGS);
    const bad = renderTgt('s1', [{ ...db, chap: { user: 'db-chap', secret: 'a;reboot;bbbbbbb' } }], SETTINGS);
    const files = memoryFiles({ [CONF]: { content: good.content, mode: 0o600 } });
    const run = tgt([dbLive()], { '/var/lib/mammatus/volumes/db.img': 16 * MiB });
    const r = await applyTgt(bad, { run, files });
    expect(r.errors).toEqual([{ volume: 'db', iqn: 'iqn.2026-12.mammatus:volume.db', error: expect.stringMatching(/through a shell/) }]);
    expect(r.deleted).toEqual([]);
    expect(files.entries.get(CONF)?.content).toContain(good.targets[0].block);
    expect(cmds(run.calls)).toEqual([]);
  });

  it('reports a tgtd that does not answer, after writing the conf it will start from', async () => {
    const run = recordingRun((argv) =>
      argv[0] === 'tgtadm' ? commandFailed(argv, 107, 'tgtadm: can not connect to the tgt daemon') : undefined,
    );
    const files = memoryFiles();
    const r = await applyTgt(renderTgt('s1', [db], SETTINGS), { run, files });
    expect(r.errors).toEqual([{ error: expect.stringMatching(/^tgtd does not answer \(is it running\?\)/) }]);
    expect(files.entries.has(CONF)).toBe(true);
  });
});
