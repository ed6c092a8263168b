/**
 * The executor side of `node add` over a recording fake RemoteHost (the real one is tested against
 * Debian's sshd in test/packaging/node-add.test.ts): only differing files are written, services
 * are (re)started only when needed, and the progress lines and JSON summary read as documented.
 */
import { describe, expect, it } from 'vitest';
import { ensureServices, syncFiles } from '../../../agent/cli/node-remote.js';
import { StepRunner } from '../../../agent/cli/node-steps.js';
import type { PlannedFile } from '../../../agent/cli/node-plan.js';
import { fakeHost as fake } from '../../helpers/fake-remote.js';

const fakeHost = (
  files: Map<string, { content: string; mode: number }>,
  running: Set<string>,
  systemd = false,
  enabled = new Set(['serf.service', 'mammatus-agent.service']),
) => fake({ files, running, systemd, enabled });

const planned = (path: string, content: string, mode = 0o600): PlannedFile => ({ path, content, mode, restarts: ['serf'] });

describe('node add over a host', () => {
  it('writes only files whose content differs, and fixes a mode without rewriting', async () => {
    const files = new Map([
      ['/etc/a', { content: 'same\n', mode: 0o600 }],
      ['/etc/b', { content: 'old\n', mode: 0o600 }],
      ['/etc/c', { content: 'same\n', mode: 0o644 }],
    ]);
    const { host, calls } = fakeHost(files, new Set());
    const plan = [planned('/etc/a', 'same\n'), planned('/etc/b', 'new\n'), planned('/etc/c', 'same\n'), planned('/etc/d/e', 'fresh\n')];
    const changed = await syncFiles(host, plan);
    expect(changed.map((f) => f.path)).toEqual(['/etc/b', '/etc/d/e', '/etc/c']);
    expect(calls.filter((c) => c[0] === 'write').map((c) => c[1])).toEqual(['/etc/b', '/etc/d/e']);
    expect(calls).toContainEqual(['mkdir', '-p', '--', '/etc', '/etc/d']);
    expect(files.get('/etc/c')?.mode).toBe(0o600);
    // The second time nothing is left to do.
    calls.length = 0;
    expect(await syncFiles(host, plan)).toEqual([]);
    expect(calls.map((c) => c[0])).toEqual(['sha256sum', 'stat']);
  });

  it('starts what is not running and restarts only what changed (without systemd: pid files)', async () => {
    const { host, calls } = fakeHost(new Map(), new Set(['/run/mammatus-node/serf.pid']));
    expect(await ensureServices(host, new Set())).toEqual(['started agent']);
    expect(calls.filter((c) => c[1] === '--start').map((c) => c.at(-1))).toEqual(['agent']);
    const again = fakeHost(new Map(), new Set(['/run/mammatus-node/serf.pid', '/run/mammatus-node/agent.pid']));
    expect(await ensureServices(again.host, new Set())).toEqual([]);
    expect(await ensureServices(again.host, new Set(['serf']))).toEqual(['restarted serf']);
    expect(again.calls.filter((c) => c[1] === '--stop').length).toBe(1);
  });

  it('uses systemctl where systemd runs', async () => {
    const { host, calls } = fakeHost(new Map(), new Set(['serf.service']), true);
    expect(await ensureServices(host, new Set(['serf']))).toEqual(['restarted serf', 'started agent']);
    expect(calls.filter((c) => c[0] === 'systemctl' && c[1] === 'restart').map((c) => c[2])).toEqual([
      'serf.service',
      'mammatus-agent.service',
    ]);
  });

  it('checks each unit on its own and enables only the disabled ones (is-enabled a b is 0 if either is)', async () => {
    const { host, calls } = fakeHost(new Map(), new Set(['serf.service', 'mammatus-agent.service']), true, new Set(['serf.service']));
    expect(await ensureServices(host, new Set())).toEqual(['enabled mammatus-agent.service']);
    expect(calls.filter((c) => c[0] === 'systemctl' && c[1] === 'enable')).toEqual([['systemctl', 'enable', 'mammatus-agent.service']]);
    calls.length = 0;
    expect(await ensureServices(host, new Set())).toEqual([]);
    expect(calls.some((c) => c[1] === 'enable')).toBe(false);
  });

  it('prints one line per step, names the failed one, and sums up (JSON on stdout with --json)', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (l: string) => void out.push(l), err: (l: string) => void err.push(l) };
    const steps = new StepRunner(2, io, false);
    await steps.run('install', () =>
      Promise.resolve({ changed: false, what: 'serf, mammatus-agent 0.1.0', unchangedText: 'already installed' }),
    );
    await steps.run('wait', () => Promise.resolve({ changed: false, what: 'n1 answers', note: 'n1  ok' }));
    steps.summary('n1', 'n1: nothing to change');
    expect(out[0]).toMatch(/^\[1\/2\] install: serf, mammatus-agent 0\.1\.0 … already installed, unchanged \(0\.\d s\)$/);
    expect(out.slice(2)).toEqual([
      '  n1  ok',
      expect.stringMatching(/^n1: nothing to change in 0\.\d s \(install 0\.\d s, wait 0\.\d s\)$/),
    ]);

    const json = new StepRunner(2, io, true);
    await json.run('ssh', () => Promise.resolve({ changed: true, what: 'x' }));
    await expect(json.run('credentials', () => Promise.reject(new Error('NATS down')))).rejects.toThrow('NATS down');
    json.fail(new Error('NATS down'));
    expect(err.at(-1)).toBe('error: [2/2] credentials failed: NATS down');
    expect(JSON.parse(out.at(-1)!)).toMatchObject({
      steps: [{ name: 'ssh', changed: true }],
      error: '[2/2] credentials failed: NATS down',
    });
  });
});
