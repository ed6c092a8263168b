/** The compute node's iSCSI side: parsers (real-format fixtures), the pure plan, and its executor with a recording runner. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { VolumeRecord } from '../../../core/volume-record.js';
import {
  byPathDevice,
  nodeRecordPath,
  parseInitiatorName,
  parseIscsiNodes,
  parseIscsiSessions,
  planIscsi,
  type IscsiPlanInput,
  type IscsiState,
} from '../../../roles/compute/iscsi-plan.js';
import { applyIscsiPlan, readInitiatorName, readIscsiState, syncIscsi } from '../../../roles/compute/iscsi-apply.js';
import { CommandFailedError } from '../../../core/exec.js';
import { commandFailed, recordingRun } from '../../helpers/recording-run.js';
import { memoryFiles } from '../../helpers/memory-files.js';
import { vol as volumeAt } from '../../helpers/iscsi-fakes.js';

const fixture = (name: string) => readFileSync(path.join(import.meta.dirname, 'fixtures', name), 'utf8');
const IQN = 'iqn.2026-12.mammatus:volume.data';
const SECRET = 'Zq8Rr2Lm5Tt1Kp9W';

const vol = (name: string, extra: Partial<VolumeRecord> = {}) => volumeAt(name, 'web1', undefined, extra);

const portals = new Map([['st1', '10.88.0.31']]);
const EMPTY: IscsiState = { sessions: [], nodes: [] };
const input = (volumes: VolumeRecord[], state: IscsiState = EMPTY): IscsiPlanInput => ({ node: 'cn1', volumes, portals, state });

/** A runner that plays open-iscsi: sessions and records as state, iscsiadm's exit codes. */
function fakeIscsi(opts: { failLogin?: string; sessions?: string[]; nodes?: string[] } = {}) {
  const sessions = new Set(opts.sessions ?? []);
  const nodes = new Set(opts.nodes ?? []);
  const run = recordingRun((argv) => {
    const [, ...a] = argv;
    if (a.join(' ') === '-m session') {
      if (!sessions.size) return commandFailed(argv, 21, 'iscsiadm: No active sessions.');
      return {
        stdout: [...sessions].map((k, i) => `tcp: [${i + 1}] ${k.split(' ')[1]},1 ${k.split(' ')[0]} (non-flash)`).join('\n'),
        stderr: '',
        exitCode: 0,
      };
    }
    if (a.join(' ') === '-m node') {
      if (!nodes.size) return commandFailed(argv, 21, 'iscsiadm: No records found');
      return { stdout: [...nodes].map((k) => `${k.split(' ')[1]},1 ${k.split(' ')[0]}`).join('\n'), stderr: '', exitCode: 0 };
    }
    const key = `${a[a.indexOf('-T') + 1]} ${a[a.indexOf('-p') + 1]}`;
    if (a.includes('--login')) {
      if (opts.failLogin && key.startsWith(opts.failLogin))
        return commandFailed(
          argv,
          24,
          'iscsiadm: Could not login to [iface: default, target: x, portal: y].\niscsiadm: initiator reported error (24 - iSCSI login failed due to authorization failure)',
        );
      if (sessions.has(key)) return commandFailed(argv, 15, 'iscsiadm: default: 1 session requested, but 1 already present.');
      sessions.add(key);
    }
    if (a.includes('--logout')) if (!sessions.delete(key)) return commandFailed(argv, 21, 'iscsiadm: No matching sessions found');
    if (a.includes('delete')) if (!nodes.delete(key)) return commandFailed(argv, 21, 'iscsiadm: No records found');
    return undefined;
  });
  return { run, sessions, nodes };
}

describe('parsers', () => {
  it('reads iscsiadm -m session, with and without (non-flash), IPv6 bracketed', () => {
    const s = parseIscsiSessions(fixture('iscsiadm-session.txt'));
    expect(s).toHaveLength(4);
    expect(s[0]).toEqual({ transport: 'tcp', sid: 1, address: '10.88.0.31', port: 3260, tpgt: 1, target: IQN });
    expect(s[3]).toMatchObject({ address: 'fd00::31', target: 'iqn.2026-12.mammatus:volume.six' });
    expect(parseIscsiSessions('iscsiadm: No active sessions.\n')).toEqual([]);
  });
  it('reads iscsiadm -m node, tpgt -1 included', () => {
    const n = parseIscsiNodes(fixture('iscsiadm-node.txt'));
    expect(n).toHaveLength(4);
    expect(n[2]).toEqual({ address: '10.88.0.99', port: 3260, tpgt: -1, target: 'iqn.2026-10.mammatus:volume.gone' });
  });
  it('reads the initiator name; none before iscsid made one', async () => {
    expect(parseInitiatorName(fixture('initiatorname.iscsi'))).toBe('iqn.1993-08.org.debian:01:5a1b2c3d4e5f');
    expect(parseInitiatorName(fixture('initiatorname-unset.iscsi'))).toBeUndefined();
    const files = memoryFiles({ '/etc/iscsi/initiatorname.iscsi': fixture('initiatorname.iscsi') });
    expect(await readInitiatorName(files)).toEqual({ iqn: 'iqn.1993-08.org.debian:01:5a1b2c3d4e5f' });
    expect(await readInitiatorName(memoryFiles())).toMatchObject({ reason: expect.stringContaining('does not exist') });
    expect(await readInitiatorName(memoryFiles({ '/etc/iscsi/initiatorname.iscsi': 'InitiatorName=not an iqn\n' }))).toMatchObject({
      reason: expect.stringContaining('names no initiator'),
    });
    expect(
      await readInitiatorName(memoryFiles({ '/etc/iscsi/initiatorname.iscsi': 'InitiatorName=eui.02004567A425678D\n' })),
    ).toMatchObject({
      reason: expect.stringContaining('not an iqn.'),
    });
  });
});

describe('planIscsi', () => {
  it('a first attach: the record file (CHAP inside), a login, the by-path device', () => {
    const plan = planIscsi(
      input([vol('data', { attached: { instance: 'web1', node: 'cn1', initiator: 'iqn.1993-08.org.debian:01:ab', path: '/mnt/data' } })]),
    );
    expect(plan.steps.map((s) => s.kind)).toEqual(['record', 'login']);
    const rec = plan.steps[0];
    expect(rec.kind === 'record' && rec.file).toBe(`/etc/iscsi/nodes/${IQN}/10.88.0.31,3260,1/default`);
    expect(rec.kind === 'record' && rec.content).toContain(`node.session.auth.password = ${SECRET}`);
    expect(rec.kind === 'record' && rec.content).toContain('node.startup = automatic');
    expect(plan.attach).toEqual([
      { volume: 'data', instance: 'web1', device: `/dev/disk/by-path/ip-10.88.0.31:3260-iscsi-${IQN}-lun-1`, path: '/mnt/data' },
    ]);
  });
  it('logged in already: no login; volumes of other nodes ignored', () => {
    const state = { sessions: parseIscsiSessions(`tcp: [1] 10.88.0.31:3260,1 ${IQN} (non-flash)`), nodes: [] };
    const other = vol('x', { attached: { instance: 'db', node: 'cn2', initiator: 'iqn.1993-08.org.debian:01:cd' } });
    const plan = planIscsi(input([vol('data'), other], state));
    expect(plan.steps.map((s) => s.kind)).toEqual(['record']);
    expect(plan.attach.map((a) => a.volume)).toEqual(['data']);
  });
  it('waits for a volume not served yet, or without a portal, and keeps its session', () => {
    const state = {
      sessions: parseIscsiSessions(`tcp: [1] 10.88.0.31:3260,1 ${IQN} (non-flash)`),
      nodes: parseIscsiNodes(`10.88.0.31:3260,1 ${IQN}`),
    };
    const plan = planIscsi(input([vol('data', { observed: { state: 'error', error: 'busy' } }), vol('far', { node: 'st9' })], state));
    expect(plan.steps).toEqual([]);
    expect(plan.waiting).toEqual([
      { volume: 'data', reason: 'storage node st1 does not serve it yet (error)' },
      { volume: 'far', reason: 'no portal address known for storage node st9' },
    ]);
  });
  it('detached or deleted: logout and record delete of ours only, the operator’s targets untouched', () => {
    const state = { sessions: parseIscsiSessions(fixture('iscsiadm-session.txt')), nodes: parseIscsiNodes(fixture('iscsiadm-node.txt')) };
    const plan = planIscsi(input([vol('data'), vol('six', { state: 'deleting' })], state));
    expect(plan.steps.map((s) => `${s.kind} ${s.volume} ${s.ip}`)).toEqual([
      'record data 10.88.0.31',
      'logout old 10.88.0.31',
      'logout six fd00::31',
      'delete old 10.88.0.31',
      'delete gone 10.88.0.99',
    ]);
  });
  it('a moved portal: log in on the new one, out of the old one', () => {
    const state = { sessions: parseIscsiSessions(`tcp: [1] 10.88.0.30:3260,1 ${IQN}`), nodes: parseIscsiNodes(`10.88.0.30:3260,1 ${IQN}`) };
    const plan = planIscsi(input([vol('data')], state));
    expect(plan.steps.map((s) => `${s.kind} ${s.ip}`)).toEqual([
      'record 10.88.0.31',
      'login 10.88.0.31',
      'logout 10.88.0.30',
      'delete 10.88.0.30',
    ]);
  });
  it('names the by-path device and the record path as open-iscsi and udev do', () => {
    expect(byPathDevice('10.0.0.1', IQN, 0)).toBe(`/dev/disk/by-path/ip-10.0.0.1:3260-iscsi-${IQN}-lun-0`);
    expect(nodeRecordPath(IQN, '10.0.0.1', '/x')).toBe(`/x/${IQN}/10.0.0.1,3260,1/default`);
  });
});

describe('applyIscsiPlan / syncIscsi', () => {
  const deps = (run: ReturnType<typeof fakeIscsi>['run'], files = memoryFiles()) => ({ run, files });

  it('first attach logs in; the second pass runs nothing but the two reads', async () => {
    const iscsi = fakeIscsi();
    const files = memoryFiles();
    const first = await syncIscsi(input([vol('data')]), deps(iscsi.run, files));
    expect(first.failed).toEqual([]);
    expect(first.done).toEqual(['record data', 'login data']);
    expect(first.ready.map((a) => a.volume)).toEqual(['data']);
    expect(files.entries.get(`/etc/iscsi/nodes/${IQN}/10.88.0.31,3260,1/default`)?.mode).toBe(0o600);
    expect(iscsi.run.calls).toEqual([
      ['iscsiadm', '-m', 'session'],
      ['iscsiadm', '-m', 'node'],
      ['iscsiadm', '-m', 'node', '-T', IQN, '-p', '10.88.0.31:3260', '--login'],
    ]);
    iscsi.nodes.add(`${IQN} 10.88.0.31:3260`);
    iscsi.run.calls.length = 0;
    const second = await syncIscsi(input([vol('data')]), deps(iscsi.run, files));
    expect(second.done).toEqual([]);
    expect(second.ready.map((a) => a.volume)).toEqual(['data']);
    expect(iscsi.run.calls).toEqual([
      ['iscsiadm', '-m', 'session'],
      ['iscsiadm', '-m', 'node'],
    ]);
  });

  it('"session exists" (exit 15) on login is success', async () => {
    const iscsi = fakeIscsi({ sessions: [`${IQN} 10.88.0.31:3260`] });
    const plan = planIscsi(input([vol('data')])); // planned as if no session: a race with boot-time login
    const result = await applyIscsiPlan(plan, deps(iscsi.run));
    expect(result.failed).toEqual([]);
    expect(result.done).toEqual(['record data']);
    expect(result.ready).toHaveLength(1);
  });

  it('detach: logout, then the record goes', async () => {
    const iscsi = fakeIscsi({ sessions: [`${IQN} 10.88.0.31:3260`], nodes: [`${IQN} 10.88.0.31:3260`] });
    const result = await syncIscsi(input([]), deps(iscsi.run));
    expect(result.failed).toEqual([]);
    expect(result.done).toEqual(['logout data', 'delete data']);
    expect(iscsi.run.calls.slice(2)).toEqual([
      ['iscsiadm', '-m', 'node', '-T', IQN, '-p', '10.88.0.31:3260', '--logout'],
      ['iscsiadm', '-m', 'node', '-o', 'delete', '-T', IQN, '-p', '10.88.0.31:3260'],
    ]);
    expect(iscsi.sessions.size + iscsi.nodes.size).toBe(0);
  });

  it('a failed logout keeps the record (no delete under a live session) and is reported', async () => {
    const run = recordingRun((argv) => {
      if (argv.includes('--logout')) return commandFailed(argv, 8, 'iscsiadm: Could not logout: device busy');
      if (argv.join(' ') === 'iscsiadm -m session')
        return { stdout: `tcp: [1] 10.88.0.31:3260,1 ${IQN} (non-flash)`, stderr: '', exitCode: 0 };
      if (argv.join(' ') === 'iscsiadm -m node') return { stdout: `10.88.0.31:3260,1 ${IQN}`, stderr: '', exitCode: 0 };
      return undefined;
    });
    const result = await syncIscsi(input([]), { run, files: memoryFiles() });
    expect(result.failed).toEqual([{ volume: 'data', step: 'logout', error: 'iscsiadm: Could not logout: device busy (exit 8)' }]);
    expect(run.calls.some((c) => c.includes('delete'))).toBe(false);
  });

  it('the CHAP secret is never on a command line, only in the 0600 record', async () => {
    const iscsi = fakeIscsi({
      sessions: [`iqn.2026-12.mammatus:volume.old 10.88.0.31:3260`],
      nodes: [`iqn.2026-12.mammatus:volume.old 10.88.0.31:3260`],
    });
    const files = memoryFiles();
    await syncIscsi(input([vol('data'), vol('logs')]), deps(iscsi.run, files));
    expect(iscsi.run.calls.length).toBeGreaterThan(3);
    for (const argv of iscsi.run.calls) expect(argv.join(' ')).not.toContain(SECRET);
    const records = [...files.entries.values()];
    expect(records).toHaveLength(2);
    for (const r of records) expect(r).toMatchObject({ mode: 0o600, content: expect.stringContaining(SECRET) });
  });

  it('a failing login of one volume does not stop another', async () => {
    const iscsi = fakeIscsi({ failLogin: 'iqn.2026-12.mammatus:volume.bad ' });
    const result = await syncIscsi(input([vol('bad'), vol('good')]), deps(iscsi.run));
    expect(result.failed).toEqual([{ volume: 'bad', step: 'login', error: 'login refused: CHAP authentication failed (exit 24)' }]);
    expect(result.done).toContain('login good');
    expect(result.ready.map((a) => a.volume)).toEqual(['good']);
  });

  it('a record that cannot be written is that volume’s failure only', async () => {
    const iscsi = fakeIscsi();
    const files = memoryFiles();
    files.failWrite(`/etc/iscsi/nodes/iqn.2026-12.mammatus:volume.bad/10.88.0.31,3260,1/default`);
    const result = await syncIscsi(input([vol('bad'), vol('good')]), deps(iscsi.run, files));
    expect(result.failed.map((f) => `${f.step} ${f.volume}`)).toEqual(['record bad']);
    expect(result.failed[0].error).not.toContain(SECRET);
    expect(iscsi.run.calls.filter((c) => c.includes('--login')).map((c) => c[4])).toEqual(['iqn.2026-12.mammatus:volume.good']);
  });

  it('waits (bounded) for the by-path device and says when it never came', async () => {
    const iscsi = fakeIscsi();
    let checks = 0;
    const result = await syncIscsi(input([vol('data')]), {
      ...deps(iscsi.run),
      deviceExists: async () => ++checks >= 3 && false,
      deviceWaitMs: 1000,
      sleep: async () => undefined,
    });
    expect(checks).toBe(4);
    expect(result.ready).toEqual([]);
    expect(result.failed[0].error).toMatch(/did not appear/);
  });

  it('iscsiadm missing: a clear error', async () => {
    const run = recordingRun(
      (argv) =>
        new CommandFailedError('Command failed with ENOENT: iscsiadm -m session', {
          cmd: [...argv],
          exitCode: undefined,
          stderr: '',
          timedOut: false,
        }),
    );
    await expect(readIscsiState(run)).rejects.toThrow(/open-iscsi installed/);
  });
});
