/**
 * The storage role's tgt backend for real (issue 18): a real tgtd in a network namespace, the real
 * tgt-admin/tgtadm driven by roles/storage/tgt-apply.ts, and libiscsi's userspace initiator
 * (iscsi-ls, iscsi-inq, iscsi-readcapacity16, iscsi-test-cu, iscsi-perf) from a compute namespace
 * and a foreign one. Root only: namespaces and tgtd need it.
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildFileOps } from '../../core/files.js';
import { buildRun } from '../../core/exec.js';
import type { Run } from '../../core/contracts.js';
import type { VolumeRecord } from '../../core/volume-record.js';
import { applyTgt, type TgtApplyResult } from '../../roles/storage/tgt-apply.js';
import { renderTgt, type TgtSettings } from '../../roles/storage/tgt-render.js';
import { parseTgtPortals, parseTgtShow } from '../../roles/storage/tgt-show.js';
import { canUseNetns, missingTools } from '../../scripts/lib/netns-bed.js';
import { buildTgtBed, TGT_BED_ADDRS, type TgtBed } from '../../scripts/lib/tgt-bed.js';
import { sleep } from '../../scripts/lib/wait.js';

const TOOLS = ['tgtd', 'tgtadm', 'tgt-admin', 'iscsi-ls', 'iscsi-inq', 'iscsi-readcapacity16', 'iscsi-test-cu', 'iscsi-perf', 'truncate'];
const skip = canUseNetns() ?? missingTools(TOOLS);
if (skip) console.warn(`storage tgt tests skipped: ${skip} (apt-get install tgt libiscsi-bin, run as root)`);

const CP = 'iqn.2026-12.mammatus:compute-1';
const FOREIGN = 'iqn.2026-12.mammatus:intruder';
const MiB = 1 << 20;

function volume(name: string, dir: string, over: Partial<VolumeRecord> = {}): VolumeRecord {
  return {
    name,
    size_bytes: 16 * MiB,
    node: 'storage-1',
    backing: { kind: 'file', path: path.join(dir, 'volumes', `${name}.img`) },
    state: 'available',
    chap: { user: `${name}-user`, secret: `${name}-Secret-12`.slice(0, 16) },
    created_at: '2026-12-01T10:00:00Z',
    updated_at: '2026-12-01T10:00:00Z',
    ...over,
  };
}

describe.skipIf(skip !== undefined)('storage role, tgt backend, against a real tgtd', { timeout: 120_000 }, () => {
  let bed: TgtBed;
  let settings: TgtSettings;
  let run: Run;
  let calls: string[][];
  let data: VolumeRecord;
  let spare: VolumeRecord;
  const iqn = (v: VolumeRecord) => `iqn.2026-12.mammatus:volume.${v.name}`;
  const url = (v: VolumeRecord, secret = v.chap.secret) => `iscsi://${v.chap.user}%${secret}@${TGT_BED_ADDRS.portal}/${iqn(v)}/1`;
  const apply = (volumes: VolumeRecord[]): Promise<TgtApplyResult> =>
    applyTgt(renderTgt('storage-1', volumes, settings), {
      run,
      files: buildFileOps(),
      confPath: path.join(bed.dir, 'conf.d', 'mammatus.conf'),
      tgtConfig: path.join(bed.dir, 'conf.d', 'mammatus.conf'),
      controlPort: bed.controlPort,
      portal: TGT_BED_ADDRS.portal,
    });
  /** Whether the first 128 KiB of the data volume's file hold what Write10.Simple wrote (0xa6). */
  const written = () =>
    readFileSync((data.backing as { path: string }).path)
      .subarray(0, 128 * 1024)
      .every((b) => b === 0xa6);
  const tgtAdminCalls = () => calls.filter((c) => c[0] === 'tgt-admin');
  const inq = (from: 'cp' | 'fx', initiator: string, target: string) => bed.exec(from, ['iscsi-inq', '-i', initiator, target], 20_000);
  const show = async () =>
    parseTgtShow(
      (await bed.exec('st', ['tgtadm', '-C', String(bed.controlPort), '--lld', 'iscsi', '--mode', 'target', '--op', 'show'])).stdout,
    );

  beforeAll(async () => {
    bed = await buildTgtBed();
    await bed.startTgtd();
    settings = { path: path.join(bed.dir, 'volumes'), volumeGroups: ['mammatus-test-no-such-vg'] };
    const real = buildRun();
    calls = [];
    run = (file, args, o) => {
      calls.push([file, ...args]);
      return real(file, args, o);
    };
    data = volume('data', bed.dir, { attached: { instance: 'web-1', node: 'compute-1', initiator: CP } });
    spare = volume('spare', bed.dir);
  });
  afterAll(() => bed?.destroy());

  it('creates sparse private backing files, one target per volume and the portal, and reads them back', async () => {
    const result = await apply([data, spare]);
    expect(result.errors).toEqual([]);
    expect(result.updated).toEqual([iqn(data), iqn(spare)]);
    expect(result.luns).toEqual({ data: 1, spare: 1 });
    for (const v of [data, spare]) {
      const st = statSync((v.backing as { path: string }).path);
      expect(st.size).toBe(16 * MiB);
      expect(st.blocks * 512).toBeLessThan(MiB); // sparse
      expect(st.mode & 0o777).toBe(0o600);
    }
    expect(statSync(path.join(bed.dir, 'conf.d', 'mammatus.conf')).mode & 0o777).toBe(0o600);
    const portals = await bed.exec('st', ['tgtadm', '-C', String(bed.controlPort), '--lld', 'iscsi', '--mode', 'portal', '--op', 'show']);
    expect(parseTgtPortals(portals.stdout)).toEqual([TGT_BED_ADDRS.portal]);
  });

  it('serves the attached volume to its initiator with its CHAP secret, and discovery shows only it', async () => {
    const ok = await inq('cp', CP, url(data));
    expect(ok.stdout, ok.stderr).toMatch(/Peripheral Device Type:DIRECT_ACCESS/);
    const cap = await bed.exec('cp', ['iscsi-readcapacity16', '-s', '-i', CP, url(data)]);
    expect(cap.stdout.trim(), cap.stderr).toBe(String(16 * MiB));
    const ls = await bed.exec('cp', ['iscsi-ls', '-i', CP, `iscsi://${TGT_BED_ADDRS.portal}`]);
    expect(ls.stdout).toContain(iqn(data));
    expect(ls.stdout).not.toContain(iqn(spare));
  });

  it('refuses a wrong CHAP secret, a foreign initiator name, and everyone on an unattached volume', async () => {
    expect((await inq('cp', CP, url(data, 'wrong-Secret-99'))).stderr).toMatch(/Authentication failure/);
    expect((await inq('cp', FOREIGN, url(data))).stderr).toMatch(/Target not found/);
    expect((await inq('fx', FOREIGN, url(data))).stderr).toMatch(/Target not found/);
    for (const who of [CP, FOREIGN]) expect((await inq('cp', who, url(spare))).stderr).toMatch(/Target not found/);
  });

  it('the admitted initiator name is the identity, wherever it connects from (tgt has no name-AND-address ACL)', async () => {
    // Documented in docs/storage.md: the CHAP secret, not the address, is what a stranger lacks.
    expect((await inq('fx', CP, url(data))).stdout).toMatch(/DIRECT_ACCESS/);
    expect((await inq('fx', CP, url(data, 'wrong-Secret-99'))).stderr).toMatch(/Authentication failure/);
  });

  it('writes data through iSCSI into the backing file and reads it back', async () => {
    // WRITE SAME then READ and compare, 1–256 blocks at both ends of the LUN (1536 comparisons).
    const check = await bed.exec('cp', ['iscsi-test-cu', '--dataloss', '-i', CP, '-t', 'ALL.WriteSame10.Check', url(data)], 60_000);
    expect(check.stdout, check.stderr).toMatch(/tests\s+1\s+1\s+1\s+0/);
    expect(check.stdout).toMatch(/asserts\s+(\d+)\s+\1\s+\1\s+0/);
    // WRITE(10) of 0xa6 over the first 256 blocks: there it is, in the volume's file.
    const write = await bed.exec('cp', ['iscsi-test-cu', '--dataloss', '-i', CP, '-t', 'ALL.Write10.Simple', url(data)], 60_000);
    expect(write.stdout, write.stderr).toMatch(/tests\s+1\s+1\s+1\s+0/);
    expect(written()).toBe(true);
    const perf = await bed.exec('cp', ['timeout', '-s', 'INT', '2', 'iscsi-perf', '-i', CP, url(data)], 15_000);
    expect(perf.stdout).toMatch(/iops average \d+/);
  });

  it('a second apply of the same state runs no tgt-admin at all', async () => {
    calls.length = 0;
    const result = await apply([data, spare]);
    expect(result).toMatchObject({ errors: [], updated: [], deleted: [], grown: [] });
    expect(tgtAdminCalls()).toEqual([]);
  });

  it('leaves a busy target alone (an error for it), but a detach drops the session', async () => {
    const perf = bed.spawn('cp', ['iscsi-perf', '-i', CP, '-x', '0', url(data)]);
    try {
      for (let i = 0; i < 50 && !(await show()).find((t) => t.iqn === iqn(data))?.sessions.length; i++) await sleep(100);
      const grown = { ...data, size_bytes: 32 * MiB };
      const busy = await apply([grown, spare]);
      expect(busy.errors).toEqual([
        { volume: 'data', iqn: iqn(data), error: expect.stringMatching(/^busy: iqn\.2026-12\.mammatus:compute-1 from 10\.87\.0\.2/) },
      ]);
      expect(tgtAdminCalls()).toEqual([]);
      calls.length = 0;
      const { attached: _gone, ...detached } = grown;
      const result = await apply([detached, spare]);
      expect(result.errors).toEqual([]);
      expect(result.updated).toEqual([iqn(data)]);
      expect(calls.some((c) => c.includes('unbind') && c.includes(CP))).toBe(true);
      expect(calls.some((c) => c.includes('conn') && c.includes('delete'))).toBe(true);
      expect(tgtAdminCalls()[0]).toEqual(['tgt-admin', '-C', String(bed.controlPort), '--delete', iqn(data)]);
      expect((await inq('cp', CP, url(data))).stderr).toMatch(/Target not found/);
      expect(written()).toBe(true);
    } finally {
      await bed.stop(perf, 'SIGINT');
    }
  });

  it('re-attaching serves the file grown to 32 MiB at that size; a shrink is refused', async () => {
    data = { ...data, size_bytes: 32 * MiB };
    const result = await apply([data, spare]);
    expect(result.errors).toEqual([]);
    expect(statSync((data.backing as { path: string }).path).size).toBe(32 * MiB);
    const cap = await bed.exec('cp', ['iscsi-readcapacity16', '-s', '-i', CP, url(data)]);
    expect(cap.stdout.trim(), cap.stderr).toBe(String(32 * MiB));
    const shrink = await apply([{ ...data, size_bytes: 16 * MiB }, spare]);
    expect(shrink.errors[0]?.error).toMatch(/volumes never shrink/);
  });

  it('a new CHAP secret takes effect (tgt-admin alone would keep the old account)', async () => {
    const old = data.chap.secret;
    data = { ...data, chap: { user: data.chap.user, secret: 'rotated-Secret-1' } };
    const result = await apply([data, spare]);
    expect(result.errors).toEqual([]);
    expect(result.updated).toEqual([iqn(data)]);
    expect((await inq('cp', CP, url(data, old))).stderr).toMatch(/Authentication failure/);
    expect((await inq('cp', CP, url(data))).stdout).toMatch(/DIRECT_ACCESS/);
  });

  it('after tgtd dies the backing file survives and the next apply serves it again', async () => {
    const [tgtd] = [...(await bed.exec('st', ['pidof', 'tgtd'])).stdout.trim().split(/\s+/)];
    expect(tgtd).toBeTruthy();
    process.kill(Number(tgtd), 'SIGKILL');
    await sleep(200);
    await bed.startTgtd();
    expect(await show()).toEqual([]);
    calls.length = 0;
    const result = await apply([data, spare]);
    expect(result.errors).toEqual([]);
    expect(result.updated).toEqual([iqn(data), iqn(spare)]);
    expect(written()).toBe(true);
    expect((await inq('cp', CP, url(data))).stdout).toMatch(/DIRECT_ACCESS/);
  });

  it('detects a target that tgt-admin created without its LUN (backing store missing, exit 0)', async () => {
    const lv = volume('lv', bed.dir, { backing: { kind: 'lvm', vg: 'mammatus-test-no-such-vg', pool: 'pool', lv: 'lv' } });
    const result = await apply([data, spare, lv]);
    expect(result.errors).toEqual([{ volume: 'lv', iqn: iqn(lv), error: expect.stringMatching(/no LUN 1/) }]);
    expect(result.luns).toEqual({ data: 1, spare: 1 });
  });

  it('deletes removed targets; a deleting volume loses its file, a merely absent one keeps it', async () => {
    const result = await apply([{ ...spare, state: 'deleting' }]);
    expect(result.errors).toEqual([]);
    expect([...result.deleted].sort()).toEqual([iqn(data), 'iqn.2026-12.mammatus:volume.lv', iqn(spare)]);
    expect(result.removedFiles).toEqual([(spare.backing as { path: string }).path]);
    expect(await show()).toEqual([]);
    expect(statSync((data.backing as { path: string }).path).size).toBe(32 * MiB);
    expect(() => statSync((spare.backing as { path: string }).path)).toThrow(/ENOENT/);
    const accounts = await bed.exec('st', ['tgtadm', '-C', String(bed.controlPort), '--lld', 'iscsi', '--mode', 'account', '--op', 'show']);
    for (const v of [data, spare]) expect(accounts.stdout).not.toContain(v.chap.user);
  });
});
