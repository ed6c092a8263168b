/**
 * Volume records for the LIO tests: the fixture cases of the golden files (no volume; one
 * unattached; one attached with CHAP; file and LVM mixed) on storage node `store-1`.
 */
import type { VolumeRecord } from '../../../core/volume-record.js';
import type { LioSettings } from '../../../roles/storage/lio-render.js';

export const SETTINGS: LioSettings = {
  node: 'store-1',
  portal: '10.0.0.5',
  backingDir: '/var/lib/mammatus/volumes',
  volumeGroups: ['vg0'],
};
const GIB = 1024 ** 3;

/** A volume record with sensible defaults; `over` replaces fields. */
export function volume(name: string, over: Partial<VolumeRecord> = {}): VolumeRecord {
  return {
    name,
    size_bytes: GIB,
    node: 'store-1',
    backing: { kind: 'file', path: `/var/lib/mammatus/volumes/${name}.img` },
    state: 'available',
    chap: { user: `vol-${name}`, secret: `s3cret-${name}`.padEnd(12, 'x').slice(0, 16) },
    created_at: '2026-12-01T10:00:00Z',
    updated_at: '2026-12-01T10:00:00Z',
    ...over,
  };
}

export const ATTACHED = { instance: 'web-1', node: 'compute-1', initiator: 'iqn.1993-08.org.debian:01:c0ffee01' } as const;

/** Case name → the registry's volumes (other nodes' and deleting ones included, to be left out). */
export const CASES: Record<string, VolumeRecord[]> = {
  'no-volume': [volume('elsewhere', { node: 'store-2' })],
  'one-unattached': [volume('data')],
  'one-attached-chap': [volume('data', { attached: ATTACHED }), volume('old', { state: 'deleting' })],
  'mixed-file-lvm': [
    volume('logs', {
      size_bytes: 5 * GIB,
      attached: { ...ATTACHED, instance: 'web-2', node: 'compute-2', initiator: 'iqn.1993-08.org.debian:01:c0ffee02' },
    }),
    volume('db', {
      size_bytes: 20 * GIB,
      backing: { kind: 'lvm', vg: 'vg0', pool: 'thin0', lv: 'mammatus-db' },
      attached: ATTACHED,
      created_at: '2026-11-30T23:59:59Z',
    }),
    volume('spare', { backing: { kind: 'lvm', vg: 'vg0', pool: 'thin0', lv: 'mammatus-spare' } }),
  ],
};
