/**
 * The tgt backend's render against golden files (test/roles/storage/golden/tgt/<case>.conf) plus, as
 * assertions, the traps it exists for. Regenerate with `npx vitest run test/roles/storage -u` and
 * review the golden diff like code.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { VolumeRecord } from '../../../core/volume-record.js';
import { HEADER, renderTgt, TGT_LUN, TGT_NOBODY_ADDRESS, tgtBlocks, type TgtSettings } from '../../../roles/storage/tgt-render.js';

const goldenDir = join(import.meta.dirname, 'golden', 'tgt');
const SETTINGS: TgtSettings = { path: '/var/lib/mammatus/volumes', volumeGroups: ['vg0'] };

function volume(name: string, over: Partial<VolumeRecord> = {}): VolumeRecord {
  return {
    name,
    size_bytes: 10 * 2 ** 30,
    node: 'storage-1',
    backing: { kind: 'file', path: `/var/lib/mammatus/volumes/${name}.img` },
    state: 'available',
    chap: { user: `${name}-chap`, secret: 'Aa1-aaaabbbbcccc' },
    created_at: '2026-11-30T23:59:59Z',
    updated_at: '2026-12-01T00:00:00Z',
    ...over,
  };
}

const attached = volume('db', {
  attached: { instance: 'web-1', node: 'compute-1', initiator: 'iqn.2026-12.mammatus:compute-1', path: '/mnt/db' },
});
const CASES: Record<string, VolumeRecord[]> = {
  empty: [],
  'attached-and-unattached': [volume('spare', { size_bytes: 2 ** 20 }), attached],
  lvm: [volume('fast', { backing: { kind: 'lvm', vg: 'vg0', pool: 'thin', lv: 'fast' } })],
  mixed: [
    attached,
    volume('elsewhere', { node: 'storage-2' }),
    volume('gone', { state: 'deleting' }),
    volume('shell', { chap: { user: 'shell', secret: 'abc$(reboot)xyz1' } }),
    volume('escape', { backing: { kind: 'file', path: '/etc/shadow' } }),
    volume('dup', { chap: { user: 'db-chap', secret: 'Aa1-aaaabbbbcccc' } }),
  ],
};

describe('renderTgt goldens', () => {
  it.each(Object.keys(CASES))('%s renders the golden conf', async (name) => {
    await expect(renderTgt('storage-1', CASES[name], SETTINGS).content).toMatchFileSnapshot(join(goldenDir, `${name}.conf`));
  });
});

describe('renderTgt', () => {
  it('is deterministic and sorted by volume name, whatever the input order', () => {
    const volumes = CASES['attached-and-unattached'];
    const a = renderTgt('storage-1', volumes, SETTINGS);
    expect(renderTgt('storage-1', [...volumes].reverse(), SETTINGS)).toEqual(a);
    expect(a.targets.map((t) => t.volume)).toEqual(['db', 'spare']);
    expect(a.content.startsWith(HEADER)).toBe(true);
  });

  it('names the target by the volume IQN and serves it as LUN 1 (LUN 0 is the controller)', () => {
    const [t] = renderTgt('storage-1', [attached], SETTINGS).targets;
    expect(TGT_LUN).toBe(1);
    expect(t).toMatchObject({
      volume: 'db',
      iqn: 'iqn.2026-11.mammatus:volume.db',
      lun: 1,
      backing: '/var/lib/mammatus/volumes/db.img',
      kind: 'file',
    });
    expect(t.block).toContain('<backing-store /var/lib/mammatus/volumes/db.img>\n        lun 1\n    </backing-store>');
  });

  it('never renders a name ACL without the no-one address (tgt-admin would bind ALL), nor the node address (tgtd ORs them)', () => {
    const { targets } = renderTgt('storage-1', CASES['attached-and-unattached'], SETTINGS);
    for (const t of targets) {
      const addresses = t.block.split('\n').filter((l) => l.trim().startsWith('initiator-address'));
      expect(addresses).toEqual([`    initiator-address ${TGT_NOBODY_ADDRESS}`]);
    }
    const db = targets.find((t) => t.volume === 'db')!;
    expect(db.block).toContain('    initiator-name iqn.2026-12.mammatus:compute-1\n');
    expect(db.initiator).toBe('iqn.2026-12.mammatus:compute-1');
    const spare = targets.find((t) => t.volume === 'spare')!;
    expect(spare.block).not.toContain('initiator-name');
    expect(spare.initiator).toBeUndefined();
  });

  it('skips, with a reason, what tgt-admin would run through a shell, files outside the volume path, shared CHAP users and foreign VGs', () => {
    const r = renderTgt('storage-1', CASES.mixed, SETTINGS);
    expect(r.targets.map((t) => t.volume)).toEqual(['db']);
    expect(r.deleting).toEqual([
      {
        volume: 'gone',
        iqn: 'iqn.2026-11.mammatus:volume.gone',
        backing: '/var/lib/mammatus/volumes/gone.img',
        identity: { volume: 'gone', id: '2026-11-30T23:59:59Z', adopt: true },
      },
    ]);
    expect(r.skipped).toEqual([
      { volume: 'dup', iqn: 'iqn.2026-11.mammatus:volume.dup', error: expect.stringMatching(/chap\.user db-chap is also volume db's/) },
      {
        volume: 'escape',
        iqn: 'iqn.2026-11.mammatus:volume.escape',
        error: expect.stringMatching(/backing\.path: \/etc\/shadow must be a plain path under \/var\/lib\/mammatus\/volumes\//),
      },
      { volume: 'shell', iqn: 'iqn.2026-11.mammatus:volume.shell', error: expect.stringMatching(/through a shell/) },
    ]);
    const lvm = renderTgt('storage-1', CASES.lvm, { path: '/srv' });
    expect(lvm.skipped[0].error).toMatch(/vg0 is not a volume group this node exports/);
    expect(renderTgt('storage-1', CASES.lvm, SETTINGS).targets[0]).toMatchObject({ backing: '/dev/vg0/fast', kind: 'lvm' });
  });

  it('refuses .. in a backing path and a malformed record, without throwing', () => {
    const r = renderTgt(
      'storage-1',
      [volume('up', { backing: { kind: 'file', path: '/var/lib/mammatus/volumes/../../../etc/passwd' } }), volume('Bad_Name')],
      SETTINGS,
    );
    expect(r.targets).toEqual([]);
    expect(r.skipped.map((s) => s.volume)).toEqual(['Bad_Name', 'up']);
    expect(r.skipped[0].error).toMatch(/name: must be a DNS label/);
  });

  it('splits its own conf back into blocks by IQN', () => {
    const r = renderTgt('storage-1', CASES['attached-and-unattached'], SETTINGS);
    const blocks = tgtBlocks(r.content);
    expect([...blocks.keys()]).toEqual(['iqn.2026-11.mammatus:volume.db', 'iqn.2026-11.mammatus:volume.spare']);
    for (const t of r.targets) expect(blocks.get(t.iqn)).toBe(t.block);
    expect(tgtBlocks(undefined).size).toBe(0);
  });
});
