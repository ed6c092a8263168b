/** The volume record's checks, for the fields the registry added (observed, state, attachment). */
import { describe, expect, it } from 'vitest';
import { checkVolumeRecord, type VolumeRecord } from '../../core/volume-record.js';

const base: VolumeRecord = {
  name: 'data',
  size_bytes: 1 << 30,
  node: 'st1',
  backing: { kind: 'file', path: '/var/lib/mammatus/volumes/data.img' },
  state: 'available',
  chap: { user: 'mammatus-abcdefgh', secret: 'A1b2C3d4E5f6G7h8' },
  created_at: '2026-12-06T16:00:00.000Z',
  updated_at: '2026-12-06T16:00:00.000Z',
};

describe('checkVolumeRecord', () => {
  it('takes a record with an observed block and an attachment', () => {
    const v = {
      ...base,
      observed: { state: 'serving', lun: 1, at: '2026-12-06T16:00:01.000Z' },
      attached: { instance: 'web', node: 'cn1', initiator: 'iqn.1993-08.org.debian:01:cn1', path: '/mnt/data' },
    } as const;
    expect(checkVolumeRecord(v)).toBe(v);
  });

  it('names the field at fault', () => {
    const bad = (v: object) => () => checkVolumeRecord({ ...base, ...v });
    expect(bad({ observed: { state: 'fine' } })).toThrow(/observed.state/);
    expect(bad({ observed: { state: 'serving', portal: '10.0.0.300' } })).toThrow(/observed.portal: must be an IPv4/);
    expect(bad({ state: 'gone' })).toThrow(/state: must be/);
    expect(bad({ attached: { instance: 'web', node: '', initiator: 'iqn.1993-08.org.debian:01:cn1' } })).toThrow(/attached.node/);
    expect(bad({ attached: { instance: 'web', node: 'cn1', initiator: 'iqn.1993-08.org.debian:01:cn1', path: 'mnt' } })).toThrow(
      /attached.path/,
    );
  });
});
