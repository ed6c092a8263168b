/**
 * The storage role for real (issue 18): fed two volume records by a fake feed, it picks tgt,
 * serves them from a real tgtd in a network namespace through the real tgt-admin/tgtadm, reports
 * each as served on LUN 1, and libiscsi's initiator in the compute namespace discovers both and
 * reads their size. Then a record turns `deleting`: the role removes its target and file and
 * reports it absent. Root only: namespaces and tgtd need it.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
});
