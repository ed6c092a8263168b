/**
 * The LIO apply sequence against a simulated targetcli/targetctl (test/roles/storage/lio-sim.ts):
 * the exact commands, one target at a time, the read-back after every step, and what happens
 * when a step fails, silently skips something, or touches a neighbour.
 */
import { describe, expect, it } from 'vitest';
import { applyLio, LioApplyError, type LioApplyOptions } from '../../../roles/storage/lio-apply.js';
import { renderLio, type LioRender } from '../../../roles/storage/lio-render.js';
import { targetDifference } from '../../../roles/storage/lio-state.js';
import { parseLioConfig } from '../../../roles/storage/lio-state.js';
import { commandFailed } from '../../helpers/recording-run.js';
import { ATTACHED, CASES, SETTINGS, volume } from './lio-fixtures.js';
import { lioSim, type LioSim } from './lio-sim.js';

const WORK = '/run/mammatus/lio';
const opts = (sim: LioSim, over: Partial<LioApplyOptions> = {}): LioApplyOptions => ({
  run: sim.run,
  files: sim.files,
  workDir: WORK,
  ...over,
});
const liveConfig = (sim: LioSim) => parseLioConfig(JSON.stringify(sim.live), 'sim');
/** A target an operator made by hand: mammatus must never touch it. */
const FOREIGN = {
  storage_objects: [{ dev: '/srv/scratch.img', name: 'scratch', plugin: 'fileio', size: 1 << 20, write_back: false }],
  targets: [
    {
      fabric: 'iscsi',
      tpgs: [
        {
          attributes: {},
          luns: [{ index: 0, storage_object: '/backstores/fileio/scratch' }],
          node_acls: [],
          portals: [{ ip_address: '0.0.0.0', port: 3260 }],
          tag: 1,
        },
      ],
      wwn: 'iqn.2003-01.org.linux-iscsi.lab:scratch',
    },
  ],
};

/** A node already serving `render` (applied once), with the foreign target beside it. */
async function serving(render: LioRender): Promise<LioSim> {
  const sim = lioSim(FOREIGN);
  const r = await applyLio(render, opts(sim));
  expect(r.errors).toEqual([]);
  sim.run.calls.length = 0;
  return sim;
}

describe('applyLio', () => {
  it('creates each target with its own restore, backing file first, then saves the boot file', async () => {
    const sim = lioSim();
    const render = renderLio(CASES['mixed-file-lvm'], SETTINGS);
    const r = await applyLio(render, opts(sim));
    expect(r).toEqual({
      restored: ['iqn.2026-11.mammatus:volume.db', 'iqn.2026-12.mammatus:volume.logs', 'iqn.2026-12.mammatus:volume.spare'],
      deleted: [],
      unchanged: [],
      errors: [],
      stopped: false,
    });
    const save = ['targetctl', 'save', `${WORK}/live.json`];
    const restore = (v: string, iqn: string) => [
      'targetcli',
      'restoreconfig',
      `savefile=${WORK}/target-${v}.json`,
      `target=${iqn}`,
      `storage_object=mammatus-${v}`,
      'clear_existing=true',
    ];
    expect(sim.run.calls).toEqual([
      save,
      restore('db', 'iqn.2026-11.mammatus:volume.db'),
      save,
      ['stat', '-c', '%s', '--', '/var/lib/mammatus/volumes/logs.img'],
      ['mkdir', '-p', '/var/lib/mammatus/volumes'],
      ['truncate', '--size=>5368709120', '/var/lib/mammatus/volumes/logs.img'],
      ['chmod', '0600', '/var/lib/mammatus/volumes/logs.img'],
      restore('logs', 'iqn.2026-12.mammatus:volume.logs'),
      save,
      restore('spare', 'iqn.2026-12.mammatus:volume.spare'),
      save,
      ['targetctl', 'save', '/etc/rtslib-fb-target/saveconfig.json'],
    ]);
    for (const t of render.targets) expect(targetDifference(t, liveConfig(sim))).toBeUndefined();
    // Scratch files held CHAP secrets: none is left; the desired config stays, private.
    expect([...sim.files.entries.keys()].sort()).toEqual([
      '/etc/rtslib-fb-target/saveconfig.json',
      `${WORK}/desired.json`,
      '/var/lib/mammatus/volumes/logs.img',
      '/var/lib/mammatus/volumes/logs.img.id',
    ]);
    // The file's identity (backing-id.ts): the record's creation time, root's only.
    expect(sim.files.entries.get('/var/lib/mammatus/volumes/logs.img.id')).toEqual({
      content: `${CASES['mixed-file-lvm'].find((v) => v.name === 'logs')!.created_at}\n`,
      mode: 0o600,
    });
    expect(sim.files.entries.get(`${WORK}/desired.json`)!.mode).toBe(0o600);
    expect(sim.files.ops.filter((o) => o.startsWith('write'))).toContain(`write ${WORK}/target-logs.json`);
  });

  it('never restores a target on a leftover backing file of an earlier volume of that name', async () => {
    const logs = CASES['mixed-file-lvm'].find((v) => v.name === 'logs')!;
    const fresh = { ...logs, state: 'creating' as const };
    const path = '/var/lib/mammatus/volumes/logs.img';
    for (const [sidecar, why] of [
      ['2026-01-01T00:00:00.000Z\n', 'its .id says "2026-01-01T00:00:00.000Z"'],
      [undefined, `no ${path}.id`],
    ] as const) {
      const sim = lioSim();
      sim.sizes.set(path, 5 * 2 ** 30);
      if (sidecar) sim.files.entries.set(`${path}.id`, { content: sidecar, mode: 0o600 });
      const r = await applyLio(renderLio([fresh], SETTINGS), opts(sim));
      expect(r.restored).toEqual([]);
      expect(r.errors).toEqual([
        {
          target: 'iqn.2026-12.mammatus:volume.logs',
          message: expect.stringContaining(`could not prepare its restore (${path} is a leftover of an earlier volume named logs (${why}`),
        },
      ]);
      expect(sim.run.calls.filter((c) => c[0] !== 'targetctl' && c[0] !== 'stat')).toEqual([]);
      expect(sim.files.entries.get(`${path}.id`)?.content).toBe(sidecar);
    }
  });

  it('runs nothing but the read-back when nothing changed', async () => {
    const render = renderLio(CASES['mixed-file-lvm'], SETTINGS);
    const sim = await serving(render);
    const r = await applyLio(render, opts(sim));
    expect(sim.run.calls).toEqual([['targetctl', 'save', `${WORK}/live.json`]]);
    expect(r.unchanged).toHaveLength(3);
    expect(r.restored).toEqual([]);
  });

  it('restores only the target that changed (a new attachment) and leaves the others as they were', async () => {
    const sim = await serving(renderLio(CASES['mixed-file-lvm'], SETTINGS));
    const before = structuredClone(sim.live);
    const next = CASES['mixed-file-lvm'].map((v) => (v.name === 'spare' ? { ...v, attached: ATTACHED } : v));
    const r = await applyLio(renderLio(next, SETTINGS), opts(sim));
    expect(r.restored).toEqual(['iqn.2026-12.mammatus:volume.spare']);
    expect(sim.changes().filter((c) => c[0] === 'targetcli')).toEqual([
      [
        'targetcli',
        'restoreconfig',
        `savefile=${WORK}/target-spare.json`,
        'target=iqn.2026-12.mammatus:volume.spare',
        'storage_object=mammatus-spare',
        'clear_existing=true',
      ],
    ]);
    const others = (l: LioSim['live']) => l.targets.filter((t) => !String(t.wwn).endsWith('spare'));
    expect(others(sim.live)).toEqual(others(before));
  });

  it('grows a backing file and re-creates its object; never shrinks one', async () => {
    const sim = await serving(renderLio([volume('data')], SETTINGS));
    const grown = await applyLio(renderLio([volume('data', { size_bytes: 2 * 1024 ** 3 })], SETTINGS), opts(sim));
    expect(grown.restored).toEqual(['iqn.2026-12.mammatus:volume.data']);
    expect(sim.sizes.get('/var/lib/mammatus/volumes/data.img')).toBe(2 * 1024 ** 3);
    sim.run.calls.length = 0;
    const shrunk = await applyLio(renderLio([volume('data')], SETTINGS), opts(sim));
    expect(shrunk.errors).toEqual([
      { target: 'iqn.2026-12.mammatus:volume.data', message: expect.stringContaining('refusing to shrink') as string },
    ]);
    expect(sim.run.calls).toEqual([['targetctl', 'save', `${WORK}/live.json`]]);
  });

  it('deletes targets no longer wanted one at a time with their objects, and never a foreign one', async () => {
    const sim = await serving(renderLio(CASES['mixed-file-lvm'], SETTINGS));
    const r = await applyLio(renderLio([CASES['mixed-file-lvm'][0]], SETTINGS), opts(sim));
    expect(r.deleted).toEqual([
      '/backstores/block/mammatus-db',
      '/backstores/block/mammatus-spare',
      'iqn.2026-11.mammatus:volume.db',
      'iqn.2026-12.mammatus:volume.spare',
    ]);
    expect(sim.changes()).toEqual([
      ['targetcli', '/iscsi', 'delete', 'iqn.2026-11.mammatus:volume.db'],
      ['targetcli', '/backstores/block', 'delete', 'mammatus-db'],
      ['targetcli', '/iscsi', 'delete', 'iqn.2026-12.mammatus:volume.spare'],
      ['targetcli', '/backstores/block', 'delete', 'mammatus-spare'],
      ['targetctl', 'save', '/etc/rtslib-fb-target/saveconfig.json'],
    ]);
    expect(sim.live.targets.map((t) => String(t.wwn))).toEqual([
      'iqn.2003-01.org.linux-iscsi.lab:scratch',
      'iqn.2026-12.mammatus:volume.logs',
    ]);
    expect(sim.live.storage_objects.map((so) => String(so.name))).toEqual(['scratch', 'mammatus-logs']);
    expect(sim.run.calls.flat()).not.toContain('clearconfig');
  });

  it('a delete that fails names its target, keeps its object, and goes on with the next', async () => {
    const sim = await serving(renderLio(CASES['mixed-file-lvm'], SETTINGS));
    sim.faults.fail = (argv) =>
      argv[3] === 'iqn.2026-11.mammatus:volume.db' ? commandFailed(argv, 1, 'Device or resource busy') : undefined;
    const r = await applyLio(renderLio([CASES['mixed-file-lvm'][0]], SETTINGS), opts(sim));
    expect(r.errors).toEqual([
      {
        target: 'iqn.2026-11.mammatus:volume.db',
        message: expect.stringMatching(
          /delete failed \(.*busy\); still there: iqn\.2026-11\.mammatus:volume\.db, \/backstores\/block\/mammatus-db/,
        ) as string,
      },
    ]);
    expect(r.deleted).toEqual(['/backstores/block/mammatus-spare', 'iqn.2026-12.mammatus:volume.spare']);
    expect(sim.live.targets.map((t) => String(t.wwn))).toContain('iqn.2026-11.mammatus:volume.db');
  });

  it('a failure mid-sequence names its target and leaves every other target alone', async () => {
    const sim = lioSim(FOREIGN);
    const before = structuredClone(sim.live);
    sim.faults.fail = (argv) =>
      argv.includes('target=iqn.2026-12.mammatus:volume.logs')
        ? commandFailed(argv, 1, 'Could not create StorageObject mammatus-logs: No space left on device')
        : undefined;
    const r = await applyLio(renderLio(CASES['mixed-file-lvm'], SETTINGS), opts(sim));
    expect(r.errors).toEqual([
      {
        target: 'iqn.2026-12.mammatus:volume.logs',
        message: expect.stringMatching(/iqn\.2026-12\.mammatus:volume\.logs.*No space left/) as string,
      },
    ]);
    // The one before and the one after still went in; the foreign target is untouched; no boot save.
    expect(r.restored).toEqual(['iqn.2026-11.mammatus:volume.db', 'iqn.2026-12.mammatus:volume.spare']);
    expect(sim.live.targets.find((t) => t.wwn === FOREIGN.targets[0].wwn)).toEqual(before.targets[0]);
    expect(sim.run.calls.some((c) => c[2] === '/etc/rtslib-fb-target/saveconfig.json')).toBe(false);
  });

  it('catches a restore that exited 0 but silently dropped the CHAP secret, and removes the half-made target', async () => {
    const sim = await serving(renderLio([volume('data')], SETTINGS));
    const before = structuredClone(sim.live.targets.find((t) => t.wwn === FOREIGN.targets[0].wwn));
    sim.faults.skip = (what) => what === 'chap:iqn.2026-12.mammatus:volume.data';
    const r = await applyLio(renderLio([volume('data', { attached: ATTACHED })], SETTINGS), opts(sim));
    expect(r.errors).toEqual([
      {
        target: 'iqn.2026-12.mammatus:volume.data',
        message: expect.stringMatching(
          /exited 0 but left it different from the render \(target differs at tpgs\[0\]\.node_acls\[0\]\.chap_password\); removed it/,
        ) as string,
      },
    ]);
    expect(r.errors[0].message).not.toContain('s3cret');
    expect(sim.live.targets.map((t) => String(t.wwn))).toEqual([FOREIGN.targets[0].wwn]);
    expect(sim.live.targets[0]).toEqual(before);
  });

  it('catches a restore that skipped the TPG attributes (CHAP not enforced) even when targetcli exits 0', async () => {
    const sim = lioSim();
    sim.faults.skip = (what) => what.startsWith('attributes:');
    const r = await applyLio(renderLio([volume('data', { attached: ATTACHED })], SETTINGS), opts(sim));
    expect(r.errors[0].message).toMatch(/tpgs\[0\]\.attributes\.authentication/);
    expect(sim.live.targets).toEqual([]);
  });

  it('stops when a step changed another target, and says which', async () => {
    const sim = await serving(renderLio([volume('data')], SETTINGS));
    sim.faults.after = (argv, live) => {
      if (argv[1] === 'restoreconfig') live.targets.find((t) => t.wwn === FOREIGN.targets[0].wwn)!.tpgs[0].enable = false;
    };
    const r = await applyLio(
      renderLio([volume('data', { attached: ATTACHED }), volume('more', { attached: ATTACHED })], SETTINGS),
      opts(sim),
    );
    expect(r.stopped).toBe(true);
    expect(r.errors).toEqual([
      {
        target: 'iqn.2026-12.mammatus:volume.data',
        message: expect.stringContaining('also changed target:iqn.2003-01.org.linux-iscsi.lab:scratch') as string,
      },
    ]);
    // Nothing after the stop: the second volume was not restored.
    expect(sim.changes().filter((c) => c.includes('target=iqn.2026-12.mammatus:volume.more'))).toEqual([]);
  });

  it('refuses a target whose storage object another target uses (its clear would cut that LUN)', async () => {
    const shared = {
      storage_objects: [{ dev: '/srv/x.img', name: 'mammatus-data', plugin: 'fileio', size: 1 << 20 }],
      targets: [
        {
          ...FOREIGN.targets[0],
          tpgs: [{ ...FOREIGN.targets[0].tpgs[0], luns: [{ index: 0, storage_object: '/backstores/fileio/mammatus-data' }] }],
        },
      ],
    };
    const sim = lioSim(shared);
    const r = await applyLio(renderLio([volume('data')], SETTINGS), opts(sim));
    expect(r.errors[0].message).toMatch(/also used by target iqn\.2003-01\.org\.linux-iscsi\.lab:scratch; left as it is/);
    expect(sim.changes()).toEqual([]);
  });

  it('runs nothing for a target the checker refuses, and still applies the others', async () => {
    const sim = lioSim();
    const render = renderLio([volume('data'), volume('good')], SETTINGS);
    const broken: LioRender = {
      ...render,
      targets: render.targets.map((t) =>
        t.volume === 'data' ? { ...t, config: { ...t.config, storage_objects: [{ ...t.config.storage_objects[0], size: 0 }] } } : t,
      ),
    };
    const r = await applyLio(broken, opts(sim));
    expect(r.errors).toEqual([
      { target: 'iqn.2026-12.mammatus:volume.data', message: expect.stringContaining('$.storage_objects[0].size') as string },
    ]);
    expect(r.restored).toEqual(['iqn.2026-12.mammatus:volume.good']);
    expect(sim.changes().some((c) => c.some((a) => a.includes('volume.data')))).toBe(false);
  });

  it('cleans up an object of ours left without its target, and reports a live config it cannot read', async () => {
    const sim = lioSim({
      storage_objects: [{ dev: '/var/lib/mammatus/volumes/gone.img', name: 'mammatus-gone', plugin: 'fileio', size: 1 << 20 }],
    });
    const r = await applyLio(renderLio([], SETTINGS), opts(sim));
    expect(r.deleted).toEqual(['/backstores/fileio/mammatus-gone']);
    sim.faults.fail = (argv) =>
      argv[0] === 'targetctl'
        ? commandFailed(argv, 1, "FileNotFoundError: [Errno 2] No such file or directory: '/proc/modules'")
        : undefined;
    await expect(applyLio(renderLio([], SETTINGS), opts(sim))).rejects.toThrow(LioApplyError);
    await expect(applyLio(renderLio([], SETTINGS), opts(sim))).rejects.toThrow(/cannot read LIO's live config.*proc\/modules/);
  });
});
