/**
 * The storage role for real (issue 18): fed two volume records by a fake feed, it picks tgt,
 * serves them from a real tgtd in a network namespace through the real tgt-admin/tgtadm, reports
 * each as served on LUN 1, and libiscsi's initiator in the compute namespace discovers both and
 * reads their size. Then a record turns `deleting`: the role removes its target and file and
 * reports it absent. Then a crash mid-create: an agent whose pass dies after making the backing
 * file and writing the conf, before tgt-admin ran, is replaced by a new one on the same state,
 * which finishes the job; data written through iSCSI survives a restart of the agent and reads
 * back the same through iSCSI (libiscsi, test/helpers/iscsi-blocks.py). Root only: namespaces and
 * tgtd need it.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FileOps, Run } from '../../core/contracts.js';
import { buildRun } from '../../core/exec.js';
import { buildFileOps } from '../../core/files.js';
import type { VolumeRecord } from '../../core/volume-record.js';
import { buildStorageRole, type StorageRole, type VolumeFeed, type VolumeObserved } from '../../roles/storage/index.js';
import { canUseNetns, missingTools } from '../../scripts/lib/netns-bed.js';
import { buildTgtBed, TGT_BED_ADDRS, type TgtBed } from '../../scripts/lib/tgt-bed.js';

const TOOLS = ['tgtd', 'tgtadm', 'tgt-admin', 'iscsi-ls', 'iscsi-readcapacity16', 'truncate', 'ss'];
const skip = canUseNetns() ?? missingTools(TOOLS);
if (skip) console.warn(`storage role tests skipped: ${skip} (apt-get install tgt libiscsi-bin iproute2, run as root)`);

const CP = 'iqn.2026-12.mammatus:compute-1';
const MiB = 1 << 20;

describe.skipIf(skip !== undefined)('the storage role with a real tgtd', { timeout: 120_000 }, () => {
  let bed: TgtBed;
  let role: StorageRole;
  let push: (v: readonly VolumeRecord[]) => void = () => undefined;
  const reports: [string, VolumeObserved][] = [];
  let records: VolumeRecord[];
  const iqn = (v: VolumeRecord) => `iqn.2026-12.mammatus:volume.${v.name}`;
  const file = (v: VolumeRecord) => (v.backing as { path: string }).path;

  const volume = (name: string, instance: string, size: number): VolumeRecord => ({
    name,
    size_bytes: size,
    node: 'storage-1',
    backing: { kind: 'file', path: path.join(bed.dir, 'volumes', `${name}.img`) },
    state: 'available',
    attached: { instance, node: 'compute-1', initiator: CP },
    chap: { user: `${name}-user`, secret: `${name}-Secret-12`.slice(0, 16) },
    created_at: '2026-12-01T10:00:00Z',
    updated_at: '2026-12-01T10:00:00Z',
  });

  beforeAll(async () => {
    bed = await buildTgtBed();
    await bed.startTgtd();
    records = [volume('data', 'web-1', 16 * MiB), volume('logs', 'web-2', 32 * MiB)];
    const feed: VolumeFeed = async (_servers, _node, onChange) => {
      push = onChange;
      return { close: async () => undefined, report: async (name, o) => void reports.push([name, o]) };
    };
    const conf = path.join(bed.dir, 'conf.d', 'mammatus.conf');
    role = buildStorageRole({ volumeFeed: feed, tgt: { confPath: conf, tgtConfig: conf, controlPort: bed.controlPort } });
    await role.start!({
      run: buildRun(),
      files: buildFileOps(),
      log: pino({ level: 'silent' }),
      desired: {
        node: 'storage-1',
        config: { backend: 'tgt', path: path.join(bed.dir, 'volumes'), registry: { nats: ['nats://127.0.0.1:1'] } },
        members: [{ name: 'storage-1', addr: TGT_BED_ADDRS.st, port: 7946, tags: {}, status: 'alive' }],
      },
    });
  });
  afterAll(async () => {
    await role?.stop?.();
    await bed?.destroy();
  });

  it('serves the two volumes it is fed, reports them on LUN 1, and the initiator sees both', async () => {
    push(records);
    await role.serveNow();
    expect(reports.map(([n, o]) => [n, o.state, o.lun, o.error])).toEqual([
      ['data', 'serving', 1, undefined],
      ['logs', 'serving', 1, undefined],
    ]);
    const ls = await bed.exec('cp', ['iscsi-ls', '-i', CP, `iscsi://${TGT_BED_ADDRS.portal}`]);
    for (const v of records) expect(ls.stdout, ls.stderr).toContain(iqn(v));
    for (const v of records) {
      const url = `iscsi://${v.chap.user}%${v.chap.secret}@${TGT_BED_ADDRS.portal}/${iqn(v)}/1`;
      const cap = await bed.exec('cp', ['iscsi-readcapacity16', '-s', '-i', CP, url]);
      expect(cap.stdout.trim(), cap.stderr).toBe(String(v.size_bytes));
      expect(statSync(file(v)).mode & 0o777).toBe(0o600);
    }
    expect(role.facts()).toMatchObject({ ready: true, backend: 'tgt', volumes: 2, attached: 2, failing: 0 });
  });

  it('a second pass reports nothing new; a deleting record loses its target and file and is reported absent', async () => {
    push(records);
    await role.serveNow();
    expect(reports).toHaveLength(2);
    push([records[0], { ...records[1], state: 'deleting', attached: undefined }]);
    await role.serveNow();
    expect(reports.slice(2).map(([n, o]) => [n, o.state])).toEqual([['logs', 'absent']]);
    expect(existsSync(file(records[1]))).toBe(false);
    const ls = await bed.exec('cp', ['iscsi-ls', '-i', CP, `iscsi://${TGT_BED_ADDRS.portal}`]);
    expect(ls.stdout).toContain(iqn(records[0]));
    expect(ls.stdout).not.toContain(iqn(records[1]));
  });

  it('after `volume rm --force`, a new volume of the same name is refused the old file until it is removed', async () => {
    const old = records[0];
    expect(readFileSync(`${file(old)}.id`, 'utf8')).toBe(`${old.created_at}\n`);
    expect(statSync(`${file(old)}.id`).mode & 0o777).toBe(0o600);
    writeFileSync(file(old), 'the old tenant', { flag: 'r+' });
    // rm --force: the record is gone, the node drops the target and leaves file and .id behind.
    push([]);
    await role.serveNow();
    expect(existsSync(file(old))).toBe(true);
    const fresh: VolumeRecord = { ...old, state: 'creating', created_at: '2026-12-06T12:00:00.000Z' };
    const from = reports.length;
    push([fresh]);
    await role.serveNow();
    expect(reports.slice(from).map(([n, o]) => [n, o.state, o.error])).toEqual([
      ['data', 'error', expect.stringMatching(/is a leftover of an earlier volume named data .*: not served/)],
    ]);
    const ls = await bed.exec('cp', ['iscsi-ls', '-i', CP, `iscsi://${TGT_BED_ADDRS.portal}`]);
    expect(ls.stdout).not.toContain(iqn(old));
    // Deleting the refused record leaves the old file alone too.
    push([{ ...fresh, state: 'deleting' }]);
    await role.serveNow();
    expect(reports.at(-1)).toEqual(['data', expect.objectContaining({ state: 'error', error: expect.stringMatching(/: left alone\./) })]);
    expect(readFileSync(file(old), 'utf8').startsWith('the old tenant')).toBe(true);
    push([fresh]);
    await role.serveNow();
    // The operator checks the data is not needed and removes both: the new volume gets an empty file.
    rmSync(file(old));
    rmSync(`${file(old)}.id`);
    await role.serveNow();
    expect(reports.at(-1)).toEqual(['data', expect.objectContaining({ state: 'serving' })]);
    expect(readFileSync(file(old), 'utf8').includes('the old tenant')).toBe(false);
    expect(readFileSync(`${file(old)}.id`, 'utf8')).toBe('2026-12-06T12:00:00.000Z\n');
  });
});

const BLOCKS = path.resolve(import.meta.dirname, '../helpers/iscsi-blocks.py');
// python3 drives libiscsi to write and read blocks (libiscsi-bin has no dd-like tool).
const skipCrash = skip ?? missingTools(['iscsi-inq', 'python3']);
if (!skip && skipCrash) console.warn(`storage role crash test skipped: ${skipCrash}`);

describe.skipIf(skipCrash !== undefined)('the storage role stopped mid-create, with a real tgtd', { timeout: 120_000 }, () => {
  let bed: TgtBed;
  const roles: StorageRole[] = [];
  let vol: VolumeRecord = {
    name: 'mid',
    size_bytes: 16 * MiB,
    node: 'storage-1',
    backing: { kind: 'file', path: '' },
    state: 'creating',
    attached: { instance: 'web-1', node: 'compute-1', initiator: CP },
    chap: { user: 'mid-user', secret: 'mid-Secret-1234' },
    created_at: '2026-12-01T10:00:00Z',
    updated_at: '2026-12-01T10:00:00Z',
  };
  const iqn = 'iqn.2026-12.mammatus:volume.mid';
  const file = () => (vol.backing as { path: string }).path;
  const url = (secret = vol.chap.secret) => `iscsi://${vol.chap.user}%${secret}@${TGT_BED_ADDRS.portal}/${iqn}/1`;
  const blocks = (argv: string[]) =>
    bed.exec(
      'cp',
      [
        'env',
        `ISCSI_USER=${vol.chap.user}`,
        `ISCSI_SECRET=${vol.chap.secret}`,
        'python3',
        BLOCKS,
        argv[0],
        CP,
        TGT_BED_ADDRS.portal,
        iqn,
        '1',
        ...argv.slice(1),
      ],
      30_000,
    );

  /** A storage agent on the bed's tgtd and files: its runner, what it reported, and its role. */
  async function agent(run: Run, files: FileOps = buildFileOps()) {
    const reports: [string, VolumeObserved][] = [];
    let push: (v: readonly VolumeRecord[]) => void = () => undefined;
    const conf = path.join(bed.dir, 'conf.d', 'mammatus.conf');
    const role = buildStorageRole({
      volumeFeed: async (_s, _n, onChange) => {
        push = onChange;
        return { close: async () => undefined, report: async (name, o) => void reports.push([name, o]) };
      },
      tgt: { confPath: conf, tgtConfig: conf, controlPort: bed.controlPort },
    });
    roles.push(role);
    await role.start!({
      run,
      files,
      log: pino({ level: 'silent' }),
      desired: {
        node: 'storage-1',
        config: { backend: 'tgt', path: path.join(bed.dir, 'volumes'), registry: { nats: ['nats://127.0.0.1:1'] } },
        members: [{ name: 'storage-1', addr: TGT_BED_ADDRS.st, port: 7946, tags: {}, status: 'alive' }],
      },
    });
    push([vol]);
    await role.serveNow();
    return { role, reports };
  }

  beforeAll(async () => {
    bed = await buildTgtBed();
    await bed.startTgtd();
    vol = { ...vol, backing: { kind: 'file', path: path.join(bed.dir, 'volumes', 'mid.img') } };
  });
  afterAll(async () => {
    for (const r of roles) await r.stop?.();
    await bed?.destroy();
  });

  // Where the old agent dies: right after making the backing file (before its chmod and the conf),
  // or after the conf, when it reaches tgt-admin. That call and every later one never happen.
  it.each([
    ['chmod', 'after the backing file was made'],
    ['tgt-admin', 'after the file and the conf, before tgt-admin ran'],
  ])('a new agent finishes a create the old one died in at %s (%s)', async (at) => {
    if (vol.backing.kind === 'file') rmSync(vol.backing.path, { force: true });
    rmSync(path.join(bed.dir, 'conf.d', 'mammatus.conf'), { force: true });
    await bed.exec('st', ['tgt-admin', '-C', String(bed.controlPort), '--delete', iqn]);
    await bed.exec('st', [
      'tgtadm',
      '-C',
      String(bed.controlPort),
      '--lld',
      'iscsi',
      '--mode',
      'account',
      '--op',
      'delete',
      '--user',
      vol.chap.user,
    ]);
    const real = buildRun();
    let dead = false;
    const ran: string[][] = [];
    const dying: Run = (cmd, args, o) => {
      if (cmd === at) dead = true;
      if (dead) return Promise.reject(new Error('the agent was killed'));
      ran.push([cmd, ...args]);
      return real(cmd, args, o);
    };
    // Its file writer dies with it: the conf is written only if the process got that far.
    const realFiles = buildFileOps();
    const dyingFiles: FileOps = {
      read: (p) => realFiles.read(p),
      write: (p, c, m) => (dead ? Promise.reject(new Error('the agent was killed')) : realFiles.write(p, c, m)),
      remove: (p) => (dead ? Promise.reject(new Error('the agent was killed')) : realFiles.remove(p)),
      mode: (p) => realFiles.mode!(p),
    };
    const first = await agent(dying, dyingFiles);
    await first.role.stop!();
    expect(dead).toBe(true);
    expect(ran.some((c) => c[0] === 'truncate')).toBe(true);
    expect(statSync(file()).size).toBe(16 * MiB);
    const conf = path.join(bed.dir, 'conf.d', 'mammatus.conf');
    if (at === 'tgt-admin') expect(readFileSync(conf, 'utf8')).toContain(`<target ${iqn}>`);
    else expect(existsSync(conf)).toBe(false);
    expect((await bed.exec('cp', ['iscsi-inq', '-i', CP, url()], 20_000)).stderr).toMatch(/Target not found|failed/i);

    const second = await agent(buildRun());
    expect(second.reports.map(([n, o]) => [n, o.state, o.lun, o.error])).toEqual([['mid', 'serving', 1, undefined]]);
    const ls = await bed.exec('cp', ['iscsi-ls', '-i', CP, `iscsi://${TGT_BED_ADDRS.portal}`]);
    expect(ls.stdout, ls.stderr).toContain(iqn);
    expect((await bed.exec('cp', ['iscsi-inq', '-i', CP, url()], 20_000)).stdout).toMatch(/DIRECT_ACCESS/);
    expect((await bed.exec('cp', ['iscsi-inq', '-i', CP, url('wrong-Secret-99')], 20_000)).stderr).toMatch(/Authentication failure/);
    // Tenant data: the file is root's alone, even when the old agent died before its chmod.
    expect(statSync(file()).mode & 0o777).toBe(0o600);
    await second.role.stop!();
  });

  it('data written through iSCSI survives a restart of the agent and reads back the same through iSCSI', async () => {
    const head = randomBytes(32 * 1024);
    const tail = randomBytes(4 * 1024);
    const last = (16 * MiB) / 512 - 8;
    expect(await blocks(['write', '0', head.toString('hex')])).toMatchObject({ code: 0 });
    expect(await blocks(['write', String(last), tail.toString('hex')])).toMatchObject({ code: 0 });
    expect(readFileSync(file()).subarray(0, head.length).equals(head)).toBe(true);

    // A new agent on the same state: it finds everything in place and changes nothing.
    const real = buildRun();
    const ran: string[][] = [];
    const third = await agent((cmd, args, o) => {
      ran.push([cmd, ...args]);
      return real(cmd, args, o);
    });
    expect(third.reports.map(([n, o]) => [n, o.state])).toEqual([['mid', 'serving']]);
    expect(ran.filter((c) => ['truncate', 'tgt-admin', 'chmod'].includes(c[0]))).toEqual([]);
    const readHead = await blocks(['read', '0', String(head.length / 512)]);
    expect(readHead.stderr).toBe('');
    expect(readHead.stdout).toBe(head.toString('hex'));
    expect((await blocks(['read', String(last), '8'])).stdout).toBe(tail.toString('hex'));
    expect(statSync(file()).size).toBe(16 * MiB);
  });
});
