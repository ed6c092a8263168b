/**
 * Thin LVs for volumes (`roles.storage.lvm.thin_pool`): the `lvs` parser, the pool's space, the
 * plan, and the role's pass against a simulated LVM and tgtd (lvm-sim.ts): the LV is made before
 * the target, grown on resize, removed after the target on delete, and every LVM failure is that
 * volume's error while the others are served. Plus the volume CLI's backing choice.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Run } from '../../../core/contracts.js';
import type { VolumeRecord } from '../../../core/volume-record.js';
import { backingFor, chooseStorageNode } from '../../../agent/cli/volume-placement.js';
import { parseStorageConfig, thinPoolOf } from '../../../roles/storage/config.js';
import { buildStorageRole, STORAGE_CAPACITY_QUERY, type VolumeFeed, type VolumeObserved } from '../../../roles/storage/index.js';
import { identityTag, LVM_TAG, parseLvs, planThinVolumes, thinPoolSpace, thinRemovals, type LvInfo } from '../../../roles/storage/lvm.js';
import { memoryFiles } from '../../helpers/memory-files.js';
import { commandFailed } from '../../helpers/recording-run.js';
import { lioSim } from './lio-sim.js';
import { confTgt, EXTENT, lvmSim } from './lvm-sim.js';

const log = pino({ level: 'silent' });
const MiB = 2 ** 20;
const GiB = 2 ** 30;
const CP = 'iqn.1993-08.org.debian:01:c0ffee01';
const POOL = { vg: 'vg0', pool: 'pool0' };

function volume(name: string, over: Partial<VolumeRecord> = {}): VolumeRecord {
  return {
    name,
    size_bytes: 10 * MiB,
    node: 'st1',
    backing: { kind: 'lvm', vg: 'vg0', pool: 'pool0', lv: `mammatus-${name}` },
    state: 'available',
    chap: { user: `${name}-chap`, secret: 'Aa1-aaaabbbbcccc' },
    created_at: '2026-12-01T00:00:00Z',
    updated_at: '2026-12-01T00:00:00Z',
    ...over,
  };
}

// What lvm2 2.03.16 (Debian 12) prints for `lvs --reportformat json --units b --nosuffix -o …`.
const LVS_JSON = `  {
      "report": [
          {
              "lv": [
                  {"vg_name":"vg0", "lv_name":"mammatus-data", "lv_size":"12582912", "lv_attr":"Vwi-aotz--", "pool_lv":"pool0", "lv_tags":"mammatus", "data_percent":"4.17", "metadata_percent":""},
                  {"vg_name":"vg0", "lv_name":"pool0", "lv_size":"1073741824", "lv_attr":"twi-aotz--", "pool_lv":"", "lv_tags":"", "data_percent":"37.50", "metadata_percent":"11.04"},
                  {"vg_name":"vg0", "lv_name":"root", "lv_size":"8589934592", "lv_attr":"-wi-ao----", "pool_lv":"", "lv_tags":"", "data_percent":"", "metadata_percent":""}
              ]
          }
      ]
  }
`;

describe('lvs and the plan (pure)', () => {
  it('parses the JSON report, strings or numbers, and refuses what is not one', () => {
    const lvs = parseLvs(LVS_JSON);
    expect(lvs).toEqual([
      { vg: 'vg0', lv: 'mammatus-data', sizeBytes: 12 * MiB, attr: 'Vwi-aotz--', pool: 'pool0', tags: ['mammatus'], dataPercent: 4.17 },
      { vg: 'vg0', lv: 'pool0', sizeBytes: GiB, attr: 'twi-aotz--', pool: '', tags: [], dataPercent: 37.5, metadataPercent: 11.04 },
      { vg: 'vg0', lv: 'root', sizeBytes: 8 * GiB, attr: '-wi-ao----', pool: '', tags: [] },
    ]);
    // json_std prints numbers; a size with its unit is read too.
    expect(parseLvs('{"report":[{"lv":[{"vg_name":"v","lv_name":"l","lv_size":"1048576B","data_percent":2.5}]}]}')[0]).toMatchObject({
      sizeBytes: MiB,
      dataPercent: 2.5,
    });
    expect(() => parseLvs('  Volume group "vg9" not found')).toThrow(/no JSON report/);
    expect(() => parseLvs('{"report":[{"lv":[{"vg_name":"v"}]}]}')).toThrow(/without vg_name, lv_name or lv_size/);
  });

  it('the free space is what data_percent leaves of the pool', () => {
    const lvs = parseLvs(LVS_JSON);
    expect(thinPoolSpace(lvs, POOL)).toEqual({ free: GiB * 0.625, total: GiB });
    expect(thinPoolSpace(lvs, { vg: 'vg0', pool: 'thin' })).toMatch(/^thin pool vg0\/thin does not exist/);
    expect(thinPoolSpace(lvs, { vg: 'vg0', pool: 'root' })).toBe('vg0/root is not a thin pool (lv_attr -wi-ao----)');
  });

  it('plans creates, grows (never shrinks, LVM rounds up), activations, and refuses LVs that are not the agent’s', () => {
    const own = (name: string, tags = [LVM_TAG, identityTag(volume(name))]) => tags;
    const lvs: LvInfo[] = [
      ...parseLvs(LVS_JSON).map((l) => (l.lv === 'mammatus-data' ? { ...l, tags: own('data') } : l)),
      { vg: 'vg0', lv: 'mammatus-big', sizeBytes: 12 * MiB, attr: 'Vwi-a-tz--', pool: 'pool0', tags: own('big') },
      { vg: 'vg0', lv: 'mammatus-idle', sizeBytes: 12 * MiB, attr: 'Vwi---tz-k', pool: 'pool0', tags: own('idle') },
      { vg: 'vg0', lv: 'mammatus-stolen', sizeBytes: 12 * MiB, attr: 'Vwi-a-tz--', pool: 'pool0', tags: [] },
      { vg: 'vg0', lv: 'mine', sizeBytes: 12 * MiB, attr: 'Vwi-a-tz--', pool: 'pool0', tags: [] },
    ];
    const plan = planThinVolumes(
      [
        volume('data'), // 10 MiB recorded, 12 MiB LV (rounded): nothing
        volume('big', { size_bytes: 20 * MiB }),
        volume('new'),
        volume('idle'),
        volume('stolen'),
        volume('mine', { backing: { kind: 'lvm', vg: 'vg0', pool: 'pool0', lv: 'mine' } }),
        volume('root', { backing: { kind: 'lvm', vg: 'vg0', pool: 'other', lv: 'root' } }),
        volume('elsewhere', { backing: { kind: 'lvm', vg: 'vg1', pool: 'p', lv: 'x' } }),
        volume('gone', { state: 'deleting' }),
        volume('file', { backing: { kind: 'file', path: '/var/lib/mammatus/volumes/file.img' } }),
      ],
      POOL,
      lvs,
      [],
    );
    const steps = (l: readonly { volume: string; lv: string; sizeBytes: number }[]) => l.map((s) => [s.volume, s.lv, s.sizeBytes / MiB]);
    expect(steps(plan.create)).toEqual([['new', 'mammatus-new', 10]]);
    expect(plan.create[0].tag).toBe('mammatus-created-20261201T000000Z');
    expect(steps(plan.extend)).toEqual([['big', 'mammatus-big', 20]]);
    expect(steps(plan.activate)).toEqual([['idle', 'mammatus-idle', 10]]);
    expect(plan.tag).toEqual([]);
    expect([...plan.refused.keys()]).toEqual(['stolen', 'mine', 'root']);
    expect(plan.refused.get('stolen')).toMatch(
      /vg0\/mammatus-stolen exists but is not a thin volume of vg0\/pool0 tagged mammatus .*lvchange --addtag mammatus --addtag mammatus-created-20261201T000000Z vg0\/mammatus-stolen/,
    );
    expect(plan.refused.get('mine')).toBe(
      'backing.lv: mine is not mammatus-mine: a volume in the thin pool vg0/pool0 is served only from its own LV',
    );
    expect(plan.refused.get('root')).toMatch(/not in the thin pool vg0\/pool0 and vg0 is not in roles\.storage\.lvm\.volume_groups/);
    // Listing the VG makes its other LVs exportable again, as before the thin pool.
    expect(
      planThinVolumes([volume('root', { backing: { kind: 'lvm', vg: 'vg0', pool: 'x', lv: 'root' } })], POOL, lvs, ['vg0']).refused.size,
    ).toBe(0);
  });

  it('serves an LV only to the record it was made for: name and identity tag', () => {
    const old = volume('data', { created_at: '2026-11-02T08:00:00.000Z' });
    const lv = (tags: string[]): LvInfo[] => [
      ...parseLvs(LVS_JSON).filter((l) => l.lv !== 'mammatus-data'),
      { vg: 'vg0', lv: 'mammatus-data', sizeBytes: 12 * MiB, attr: 'Vwi-a-tz--', pool: 'pool0', tags },
    ];
    expect(identityTag(old)).toBe('mammatus-created-20261102T080000000Z');
    // `volume rm --force` left the LV; a new volume of that name is refused, whatever its state.
    for (const state of ['creating', 'available'] as const) {
      const plan = planThinVolumes([volume('data', { state })], POOL, lv([LVM_TAG, identityTag(old)]), []);
      expect(plan.create.length + plan.extend.length + plan.activate.length + plan.tag.length).toBe(0);
      expect(plan.refused.get('data')).toBe(
        'vg0/mammatus-data is a leftover of an earlier volume named data (no tag mammatus-created-20261201T000000Z): left alone. ' +
          'Check its data is not needed, then lvremove vg0/mammatus-data (docs/storage.md, "Leftovers")',
      );
    }
    // An LV made before identity tags: adopted by a record that was served, refused for a new one.
    const before = lv([LVM_TAG]);
    expect(planThinVolumes([volume('data')], POOL, before, []).tag).toMatchObject([{ volume: 'data', tag: identityTag(volume('data')) }]);
    expect(planThinVolumes([volume('data', { state: 'creating' })], POOL, before, []).refused.get('data')).toMatch(/is a leftover/);
    // Record a naming b's LV, in the pool or (with the VG listed) beside it: refused, and never removed.
    const a = volume('a', { backing: { kind: 'lvm', vg: 'vg0', pool: 'pool0', lv: 'mammatus-data' } });
    const beside = volume('a', { backing: { kind: 'lvm', vg: 'vg0', pool: 'other', lv: 'mammatus-data' } });
    const theirs = lv([LVM_TAG, identityTag(old)]);
    expect(planThinVolumes([a], POOL, theirs, ['vg0']).refused.get('a')).toMatch(/^backing\.lv: mammatus-data is not mammatus-a/);
    expect(planThinVolumes([beside], POOL, theirs, ['vg0']).refused.get('a')).toBe(
      "backing: vg0/mammatus-data is named like the agent's thin LVs but the record is not in the thin pool vg0/pool0",
    );
    expect(
      thinRemovals(
        [
          { ...a, state: 'deleting' },
          { ...volume('data'), state: 'deleting' },
        ],
        POOL,
        theirs,
      ),
    ).toEqual({
      remove: [],
      refused: new Map([['data', expect.stringMatching(/^target removed; vg0\/mammatus-data is a leftover of an earlier volume/)]]),
    });
    expect(thinRemovals([{ ...old, state: 'deleting' }], POOL, theirs).remove).toMatchObject([{ volume: 'data', lv: 'mammatus-data' }]);
  });

  it('creates nothing in a pool that does not zero new blocks, or that is missing', () => {
    const noZero = parseLvs(LVS_JSON.replace('"twi-aotz--"', '"twi-aot---"'));
    expect(planThinVolumes([volume('new')], POOL, noZero, []).refused.get('new')).toMatch(
      /does not zero new blocks, so a new volume could read a deleted one's data: lvchange -Z y vg0\/pool0/,
    );
    expect(planThinVolumes([volume('new')], POOL, [], []).refused.get('new')).toMatch(/thin pool vg0\/pool0 does not exist/);
  });
});

describe('roles.storage.lvm.thin_pool', () => {
  it('is VG/POOL, named in errors', () => {
    expect(thinPoolOf(parseStorageConfig({ lvm: { thin_pool: 'vg0/pool0' } }))).toEqual(POOL);
    expect(parseStorageConfig({ lvm: { thin_pool: 'vg0/pool0' } }).lvm).toEqual({ thin_pool: 'vg0/pool0', volume_groups: [] });
    expect(thinPoolOf(parseStorageConfig({}))).toBeUndefined();
    for (const bad of ['vg0', 'vg0/pool0/x', 'vg 0/p', '../p', 'vg0/']) {
      expect(() => parseStorageConfig({ lvm: { thin_pool: bad } })).toThrow(/^roles\.storage\.lvm\.thin_pool: must be VG\/POOL/);
    }
  });
});

/** The role on the simulated LVM and tgtd, fed by a fake registry. */
async function started(sim = lvmSim()) {
  const files = memoryFiles();
  const tgt = confTgt(files, (p) => sim.size(p), sim.answer);
  let push: (v: readonly VolumeRecord[]) => void = () => undefined;
  const reports: [string, VolumeObserved][] = [];
  const feed: VolumeFeed = async (_s, _n, onChange) => {
    push = onChange;
    return { close: async () => undefined, report: async (name, o) => void reports.push([name, o]) };
  };
  const role = buildStorageRole({ volumeFeed: feed, now: () => new Date('2026-12-06T12:00:00Z') });
  const desired = {
    node: 'st1',
    config: { backend: 'tgt', lvm: { thin_pool: 'vg0/pool0' }, registry: { nats: ['nats://10.0.0.10:4222'] } },
    members: [{ name: 'st1', addr: '10.0.0.5', port: 7946, tags: {}, status: 'alive' as const }],
  };
  await role.start!({ run: tgt.run, files, log, desired });
  const pass = async (v: readonly VolumeRecord[]) => {
    const from = tgt.run.calls.length;
    push(v);
    await role.serveNow();
    return tgt.run.calls.slice(from).filter((c) => c[0].startsWith('lv') || c[0] === 'tgt-admin');
  };
  return { sim, tgt, role, reports, pass, desired, files };
}

describe('the storage role with a thin pool', () => {
  const data = volume('data', { attached: { instance: 'web-1', node: 'cn1', initiator: CP } });
  const LVS = ['lvs', '--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', expect.any(String), '--', 'vg0'];
  const IQN = 'iqn.2026-12.mammatus:volume.data';

  it('creates the thin LV before its target, serves it, and does nothing on a second pass', async () => {
    const { sim, tgt, role, reports, pass } = await started();
    // The registry change runs a pass and serveNow one more (the second finds nothing to do).
    expect(await pass([data])).toEqual([
      LVS,
      [
        'lvcreate',
        '-V',
        `${10 * MiB}B`,
        '-T',
        'vg0/pool0',
        '-n',
        'mammatus-data',
        '--addtag',
        'mammatus',
        '--addtag',
        'mammatus-created-20261201T000000Z',
      ],
      LVS,
      ['tgt-admin', '-c', '/etc/tgt/targets.conf', '--update', IQN],
      LVS, // the node's space, after the pass
      LVS,
      LVS,
    ]);
    expect(tgt.live.get(IQN)).toMatchObject({ path: '/dev/vg0/mammatus-data', size: 12 * MiB });
    expect(reports).toEqual([['data', { state: 'serving', lun: 1, portal: '10.0.0.5', at: '2026-12-06T12:00:00.000Z' }]]);
    expect(sim.lvs.get('vg0/mammatus-data')?.tags).toEqual(['mammatus', 'mammatus-created-20261201T000000Z']);
    expect(await pass([data])).toEqual([LVS, LVS, LVS, LVS]);
    expect(reports).toHaveLength(1);
    // The pool is the node's capacity, and the answer says new volumes go there.
    expect(role.queries![STORAGE_CAPACITY_QUERY](Buffer.alloc(0), undefined)).toMatchObject({
      ready: true,
      free_bytes: 7.5 * GiB,
      total_bytes: 10 * GiB,
      thin_pool: 'vg0/pool0',
      path: '/var/lib/mammatus/volumes',
    });
    expect(role.facts().summary).toBe('1 volumes, 0 of 10 GiB, 1 attached (tgt)');
  });

  it('grows the LV on resize (then the LUN), and removes it after the target on delete', async () => {
    const { sim, tgt, reports, pass } = await started();
    await pass([data]);
    const grown = { ...data, size_bytes: 30 * MiB, attached: undefined };
    const calls = await pass([grown]);
    expect(calls).toContainEqual(['lvextend', '-L', `${30 * MiB}B`, 'vg0/mammatus-data']);
    expect(calls.findIndex((c) => c[0] === 'lvextend')).toBeLessThan(calls.findIndex((c) => c.includes('--update')));
    expect(tgt.live.get(IQN)?.size).toBe(32 * MiB);
    expect(reports.at(-1)).toEqual(['data', { state: 'serving', lun: 1, portal: '10.0.0.5', at: '2026-12-06T12:00:00.000Z' }]);
    // A smaller record (or the same) never shrinks it.
    expect((await pass([{ ...grown, size_bytes: 20 * MiB }])).some((c) => c[0] === 'lvextend' || c[0] === 'lvreduce')).toBe(false);

    const deleting = await pass([{ ...grown, state: 'deleting' }]);
    expect(deleting.filter((c) => c[0] !== 'lvs')).toEqual([
      ['tgt-admin', '--delete', IQN],
      ['lvremove', '-y', 'vg0/mammatus-data'],
    ]);
    expect(sim.lvs.has('vg0/mammatus-data')).toBe(false);
    expect(reports.at(-1)).toEqual(['data', { state: 'absent', at: '2026-12-06T12:00:00.000Z' }]);
  });

  it('an LVM failure is that volume’s error; the others are served and a served one keeps its target', async () => {
    const sim = lvmSim();
    const { tgt, reports, pass, files } = await started(sim);
    const logs = volume('logs');
    await pass([data]);
    // The pool is full: the new volume cannot be made, the grow of the served one fails.
    sim.faults.fail = (argv) =>
      argv[0] === 'lvcreate' || argv[0] === 'lvextend'
        ? commandFailed(
            argv,
            5,
            '  WARNING: Sum of all thin volume sizes exceeds the size of thin pool.\n  Insufficient free space: 3 extents needed, but only 0 available',
          )
        : undefined;
    await pass([{ ...data, size_bytes: 40 * MiB }, logs]);
    expect(reports.slice(1).map(([n, o]) => [n, o.state, o.error])).toEqual([
      ['data', 'error', expect.stringMatching(/^lvextend vg0\/mammatus-data: .*exit code 5: Insufficient free space/)],
      ['logs', 'error', expect.stringMatching(/^lvcreate vg0\/mammatus-logs: .*Insufficient free space/)],
    ]);
    // data still serves its LV at the size it had; logs has no target.
    expect(tgt.live.get(IQN)?.size).toBe(12 * MiB);
    expect(tgt.live.has('iqn.2026-12.mammatus:volume.logs')).toBe(false);

    // LVM cannot even be read: nothing is created or removed, the target stays, each thin volume says why.
    sim.faults.fail = (argv) =>
      argv[0] === 'lvs' ? commandFailed(argv, 5, '  /dev/mapper/control: open failed: No such device') : undefined;
    const calls = await pass([data, { ...logs, state: 'deleting' }]);
    // data (10 MiB recorded, a 12 MiB LV) is held: rendered at its record, tgt would re-create it.
    expect(calls.filter((c) => c[0] !== 'lvs')).toEqual([]);
    expect(reports.slice(3).map(([n, o]) => [n, o.state, o.error])).toEqual([
      [
        'data',
        'error',
        expect.stringMatching(/^cannot read LVM \(lvs\): .*No such device.*; its target is left as it was until LVM can be read$/),
      ],
      ['logs', 'error', 'target removed, but LVM cannot be read to remove its LV (lvs failed)'],
    ]);
    expect(tgt.live.get(IQN)).toMatchObject({ size: 12 * MiB, initiator: CP });
    expect(files.entries.get('/etc/tgt/conf.d/mammatus.conf')?.content).toContain(`# volume data, ${12 * MiB} bytes`);

    // LVM back: all is served again.
    sim.faults.fail = undefined;
    await pass([{ ...data, size_bytes: 40 * MiB }, logs]);
    expect(reports.slice(-2).map(([n, o]) => [n, o.state])).toEqual([
      ['data', 'serving'],
      ['logs', 'serving'],
    ]);
    expect(sim.lvs.get('vg0/mammatus-data')?.size).toBe(40 * MiB);
  });

  it('never removes or serves an LV it did not make, even when a record names it', async () => {
    const sim = lvmSim();
    sim.lvs.set('vg0/precious', { vg: 'vg0', lv: 'precious', size: EXTENT, attr: 'Vwi-a-tz--', pool: 'pool0', tags: [] });
    sim.lvs.set('vg0/mammatus-theirs', { vg: 'vg0', lv: 'mammatus-theirs', size: EXTENT, attr: 'Vwi-a-tz--', pool: 'pool0', tags: [] });
    const { reports, pass } = await started(sim);
    const named = volume('named', { backing: { kind: 'lvm', vg: 'vg0', pool: 'pool0', lv: 'precious' } });
    const theirs = volume('theirs');
    expect((await pass([named, theirs])).filter((c) => c[0] !== 'lvs')).toEqual([]);
    expect(reports.map(([n, o]) => [n, o.state, o.error])).toEqual([
      ['named', 'error', expect.stringMatching(/^backing\.lv: precious is not mammatus-named/)],
      ['theirs', 'error', expect.stringMatching(/vg0\/mammatus-theirs exists but is not a thin volume/)],
    ]);
    await pass([
      { ...named, state: 'deleting' },
      { ...theirs, state: 'deleting' },
    ]);
    expect(sim.lvs.has('vg0/precious')).toBe(true);
    expect(sim.lvs.has('vg0/mammatus-theirs')).toBe(true);
  });

  it('after `volume rm --force`, a new volume of that name never gets the old LV (nor another record’s)', async () => {
    const sim = lvmSim();
    const { tgt, reports, pass } = await started(sim);
    const old = volume('data', { created_at: '2026-11-02T08:00:00.000Z' });
    await pass([old]);
    expect(sim.lvs.get('vg0/mammatus-data')?.tags).toEqual(['mammatus', 'mammatus-created-20261102T080000000Z']);
    // rm --force: the record is gone at once, the node removes the target but not the LV.
    await pass([]);
    expect(tgt.live.size).toBe(0);
    const fresh = volume('data', { state: 'creating', attached: { instance: 'web-2', node: 'cn1', initiator: CP } });
    const other = volume('other', { backing: { kind: 'lvm', vg: 'vg0', pool: 'pool0', lv: 'mammatus-data' } });
    expect((await pass([fresh, other])).filter((c) => c[0] !== 'lvs')).toEqual([]);
    expect(tgt.live.size).toBe(0);
    expect(reports.slice(-2).map(([n, o]) => [n, o.state, o.error])).toEqual([
      [
        'data',
        'error',
        expect.stringMatching(/^vg0\/mammatus-data is a leftover of an earlier volume named data .*lvremove vg0\/mammatus-data/),
      ],
      ['other', 'error', expect.stringMatching(/^backing\.lv: mammatus-data is not mammatus-other/)],
    ]);
    // Deleting the new record leaves the old LV alone, and says so.
    await pass([{ ...fresh, state: 'deleting' }]);
    expect(sim.lvs.has('vg0/mammatus-data')).toBe(true);
    expect(reports.at(-1)![1]).toMatchObject({
      state: 'error',
      error: expect.stringMatching(/^target removed; vg0\/mammatus-data is a leftover/),
    });
    // The operator removes it (its data not needed): the new volume gets a new, empty LV.
    sim.lvs.delete('vg0/mammatus-data');
    expect((await pass([fresh])).filter((c) => c[0] === 'lvcreate')).toHaveLength(1);
    expect(sim.lvs.get('vg0/mammatus-data')?.tags).toEqual(['mammatus', 'mammatus-created-20261201T000000Z']);
    expect(reports.at(-1)![1]).toMatchObject({ state: 'serving' });
  });

  it('adopts an LV made before identity tags for a volume that was served, not for a new one', async () => {
    const sim = lvmSim();
    sim.lvs.set('vg0/mammatus-data', {
      vg: 'vg0',
      lv: 'mammatus-data',
      size: 12 * MiB,
      attr: 'Vwi-a-tz--',
      pool: 'pool0',
      tags: ['mammatus'],
    });
    const { reports, pass } = await started(sim);
    expect((await pass([volume('data', { state: 'creating' })])).filter((c) => c[0] !== 'lvs')).toEqual([]);
    expect(reports.at(-1)![1]).toMatchObject({ state: 'error', error: expect.stringMatching(/is a leftover of an earlier volume/) });
    const calls = await pass([volume('data')]);
    expect(calls.filter((c) => c[0] !== 'lvs')).toEqual([
      ['lvchange', '--addtag', 'mammatus-created-20261201T000000Z', 'vg0/mammatus-data'],
      ['tgt-admin', '-c', '/etc/tgt/targets.conf', '--update', 'iqn.2026-12.mammatus:volume.data'],
    ]);
    expect(reports.at(-1)![1]).toMatchObject({ state: 'serving' });
  });
});

describe('the storage role with a thin pool and LIO', () => {
  it('makes the LV before the one-target restore exports it as a block object, and removes it after the target', async () => {
    const sim = lvmSim();
    const lio = lioSim();
    const run: Run = (file, args, o) => {
      const lvm = sim.answer([file, ...args]);
      if (lvm) {
        lio.run.calls.push([file, ...args]);
        return lvm instanceof Error ? Promise.reject(lvm) : Promise.resolve(lvm);
      }
      return file === 'test' || file === 'ss' ? Promise.resolve({ stdout: '', stderr: '', exitCode: 0 }) : lio.run(file, args, o);
    };
    let push: (v: readonly VolumeRecord[]) => void = () => undefined;
    const reports: [string, VolumeObserved][] = [];
    const role = buildStorageRole({
      volumeFeed: async (_s, _n, onChange) => {
        push = onChange;
        return { close: async () => undefined, report: async (name, o) => void reports.push([name, o]) };
      },
    });
    const config = { backend: 'lio', portal: '10.0.0.5', lvm: { thin_pool: 'vg0/pool0' }, registry: { nats: ['nats://10.0.0.10:4222'] } };
    await role.start!({ run, files: lio.files, log, desired: { node: 'st1', config, members: [] } });
    push([volume('data')]);
    await role.serveNow();
    const order = lio.changes().map((c) => c[0] + (c[1] === 'restoreconfig' ? ' restoreconfig' : ''));
    expect(order.indexOf('lvcreate')).toBeLessThan(order.indexOf('targetcli restoreconfig'));
    expect(lio.live.storage_objects).toEqual([
      expect.objectContaining({ plugin: 'block', dev: '/dev/vg0/mammatus-data', name: 'mammatus-data' }),
    ]);
    expect(reports).toEqual([['data', expect.objectContaining({ state: 'serving', lun: 0 })]]);

    // LVM cannot be read: the attached volume's target stays as it is, the unattached one goes.
    const attached = volume('data', { attached: { instance: 'web-1', node: 'cn1', initiator: CP } });
    push([attached, volume('spare')]);
    await role.serveNow();
    expect(lio.live.targets.map((t) => String(t.wwn))).toEqual(['iqn.2026-12.mammatus:volume.data', 'iqn.2026-12.mammatus:volume.spare']);
    const before = lio.changes().length;
    sim.faults.fail = (argv) => (argv[0] === 'lvs' ? commandFailed(argv, 5, '  Volume group "vg0" not found') : undefined);
    push([attached, volume('spare')]);
    await role.serveNow();
    expect(lio.live.targets.map((t) => String(t.wwn))).toEqual(['iqn.2026-12.mammatus:volume.data']);
    expect(
      lio
        .changes()
        .slice(before)
        .filter((c) => c[0] !== 'lvs')
        .map((c) => c.slice(0, 3)),
    ).toEqual([
      ['targetcli', '/iscsi', 'delete'],
      ['targetcli', '/backstores/block', 'delete'],
      ['targetctl', 'save', '/etc/rtslib-fb-target/saveconfig.json'],
    ]);
    expect(reports.at(-2)).toEqual([
      'data',
      expect.objectContaining({ state: 'error', error: expect.stringMatching(/^cannot read LVM .*; its target is left as it was/) }),
    ]);
    sim.faults.fail = undefined;
    const order2 = lio.changes().length;

    push([volume('data', { state: 'deleting' })]);
    await role.serveNow();
    const tail = lio
      .changes()
      .slice(order2)
      .filter((c) => c[0] !== 'lvs');
    expect(tail.map((c) => c.slice(0, 3))).toEqual([
      ['targetcli', '/iscsi', 'delete'],
      ['targetcli', '/backstores/block', 'delete'],
      ['targetctl', 'save', '/etc/rtslib-fb-target/saveconfig.json'],
      ['lvremove', '-y', 'vg0/mammatus-data'],
    ]);
    expect(reports.at(-1)).toEqual(['data', expect.objectContaining({ state: 'absent' })]);

    // A file volume beside the pool: its identity is written with it and removed after it.
    const notes = volume('notes', { backing: { kind: 'file', path: '/var/lib/mammatus/volumes/notes.img' } });
    push([notes]);
    await role.serveNow();
    expect(reports.at(-1)).toEqual(['notes', expect.objectContaining({ state: 'serving' })]);
    expect(lio.files.entries.get('/var/lib/mammatus/volumes/notes.img.id')).toEqual({ content: `${notes.created_at}\n`, mode: 0o600 });
    push([{ ...notes, state: 'deleting' }]);
    await role.serveNow();
    expect(reports.at(-1)).toEqual(['notes', expect.objectContaining({ state: 'absent' })]);
    expect([...new Set(lio.files.ops.filter((o) => o.startsWith('remove /var/lib')))]).toEqual([
      'remove /var/lib/mammatus/volumes/notes.img',
      'remove /var/lib/mammatus/volumes/notes.img.id',
    ]);
    // A leftover of an earlier `notes` (rm --force): the new one is neither served nor allowed to remove it.
    lio.files.entries.set('/var/lib/mammatus/volumes/notes.img', { content: 'old tenant', mode: 0o600 });
    lio.files.entries.set('/var/lib/mammatus/volumes/notes.img.id', { content: '2026-01-01T00:00:00Z\n', mode: 0o600 });
    lio.sizes.set('/var/lib/mammatus/volumes/notes.img', 10 * MiB);
    const again = { ...notes, state: 'creating' as const, created_at: '2026-12-06T12:00:00.000Z' };
    push([again]);
    await role.serveNow();
    expect(reports.at(-1)).toEqual([
      'notes',
      expect.objectContaining({ state: 'error', error: expect.stringMatching(/is a leftover .*: not served/) }),
    ]);
    expect(lio.live.targets).toEqual([]);
    push([{ ...again, state: 'deleting' }]);
    await role.serveNow();
    expect(reports.at(-1)).toEqual([
      'notes',
      expect.objectContaining({ state: 'error', error: expect.stringMatching(/is a leftover .*: left alone/) }),
    ]);
    expect(lio.files.entries.get('/var/lib/mammatus/volumes/notes.img')?.content).toBe('old tenant');
  });
});

describe('volume create: the backing follows the chosen node’s answer', () => {
  it('a thin LV where the node serves from a thin pool, else a file under its path', () => {
    expect(backingFor('data', { thin_pool: 'vg0/pool0', path: '/srv/vol' })).toEqual({
      kind: 'lvm',
      vg: 'vg0',
      pool: 'pool0',
      lv: 'mammatus-data',
    });
    expect(backingFor('data', { path: '/srv/vol/' })).toEqual({ kind: 'file', path: '/srv/vol/data.img' });
    expect(backingFor('data', {})).toBeUndefined();
    expect(backingFor('data', { thin_pool: 'nonsense' })).toBeUndefined();
    const member = (name: string) => ({
      name,
      addr: '10.0.0.1',
      port: 7946,
      status: 'alive' as const,
      tags: { role: 'storage', mammatus: '1' },
    });
    const chosen = chooseStorageNode(
      {
        members: [member('st1'), member('st2')],
        answers: new Map([
          ['st1', { node: 'st1', ready: true, free_bytes: 50 * GiB, thin_pool: 'vg0/pool0', path: '/var/lib/mammatus/volumes' }],
          ['st2', { node: 'st2', ready: true, free_bytes: 10 * GiB, path: '/srv' }],
        ]),
      },
      GiB,
    );
    expect(chosen).toEqual({ node: 'st1', path: '/var/lib/mammatus/volumes', thin_pool: 'vg0/pool0' });
    expect(backingFor('data', chosen as { thin_pool: string })).toMatchObject({ kind: 'lvm', lv: 'mammatus-data' });
  });
});
