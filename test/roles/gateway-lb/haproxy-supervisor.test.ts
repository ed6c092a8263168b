/**
 * The HAProxy supervisor's commands through the injected runner and file writer: the placeholder
 * certificate made once, the workers' user include, `haproxy -c` with HAProxy's alerts as the
 * error, the master-worker argv, one drain deadline for all removals, and a master left from
 * before the agent restarted ended before ours starts. Starting, reloading and the sockets run
 * against the real haproxy in test/integration/lb-haproxy*.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { HaproxySupervisor } from '../../../roles/gateway/lb/haproxy-supervisor.js';
import { commandFailed, recordingRun } from '../../helpers/recording-run.js';
import { memoryFiles } from '../../helpers/memory-files.js';
import { fakeSpawn } from '../../helpers/fake-spawn.js';
import { fixtureSettings } from './fixtures.js';

const log = pino({ level: 'silent' });
const settings = fixtureSettings();
const PEM = '-----BEGIN PRIVATE KEY-----\n...\n-----BEGIN CERTIFICATE-----\n...\n';
const build = (run = recordingRun(), files = memoryFiles(), spawn = fakeSpawn()) =>
  new HaproxySupervisor({ spawn, run, files, log, settings, masterSocket: '/run/mammatus/haproxy-master.sock' });

describe('HaproxySupervisor', () => {
  it('prepare makes the directories, and the placeholder certificate only once, private', async () => {
    const run = recordingRun((argv) => (argv[0] === 'openssl' ? { stdout: PEM, stderr: '', exitCode: 0 } : undefined));
    const files = memoryFiles();
    const sup = build(run, files);
    await sup.prepare();
    await sup.prepare();
    expect(run.calls.filter((c) => c[0] === 'openssl')).toHaveLength(1);
    expect(run.calls[0]).toEqual(['install', '-d', '-m', '0755', '/etc/mammatus/haproxy', '/etc/mammatus/haproxy/certs', '/run/mammatus']);
    expect(run.calls[1]).toEqual(expect.arrayContaining(['-keyout', '-', '-out', '-', '/CN=placeholder.invalid']));
    expect(files.entries.get('/etc/mammatus/haproxy/placeholder.pem')).toEqual({ content: PEM, mode: 0o600 });
  });

  it('prepare drops the workers to the haproxy user from passwd, and drops nothing without one', async () => {
    const passwd = 'root:x:0:0::/root:/bin/bash\nhaproxy:x:106:109::/var/lib/haproxy:/usr/sbin/nologin\n';
    const files = memoryFiles({ '/etc/mammatus/haproxy/placeholder.pem': PEM, '/etc/passwd': passwd });
    await build(recordingRun(), files).prepare();
    const include = files.entries.get('/etc/mammatus/haproxy/haproxy-user.cfg')?.content;
    expect(include).toBe('# managed by mammatus role=gateway\n# the workers run as haproxy\nglobal\n  uid 106\n  gid 109\n');
    const bare = memoryFiles({ '/etc/mammatus/haproxy/placeholder.pem': PEM, '/etc/passwd': 'root:x:0:0::/root:/bin/bash\n' });
    await build(recordingRun(), bare).prepare();
    expect(bare.entries.get('/etc/mammatus/haproxy/haproxy-user.cfg')?.content).toMatch(/^# no haproxy user on this host.*\nglobal\n$/m);
  });

  it('validate runs haproxy -c and says what HAProxy refused', async () => {
    const stderr = [
      '[NOTICE]   (1217) : haproxy version is 2.6.12-1+deb12u4',
      "[ALERT]    (1217) : config : [/etc/mammatus/haproxy/haproxy.cfg:53] : 'server lb_web/bad' : could not resolve address '999.1.1.1'.",
      '[ALERT]    (1217) : config : Fatal errors found in configuration.',
    ].join('\n');
    const run = recordingRun((argv) =>
      argv[0] === 'haproxy' ? commandFailed(argv, 1, stderr) : argv[0] === 'openssl' ? { stdout: PEM, stderr: '', exitCode: 0 } : undefined,
    );
    await expect(build(run).validate()).rejects.toThrow(
      "haproxy -c refused the config: config : [/etc/mammatus/haproxy/haproxy.cfg:53] : 'server lb_web/bad' : could not resolve address '999.1.1.1'.",
    );
    expect(run.calls.at(-1)).toEqual([
      'haproxy',
      '-c',
      '-f',
      '/etc/mammatus/haproxy/haproxy-user.cfg',
      '-f',
      '/etc/mammatus/haproxy/haproxy.cfg',
    ]);
  });

  it('runs haproxy in master-worker mode with a private master socket', async () => {
    const spawn = fakeSpawn();
    const sup = build(recordingRun(), memoryFiles({ '/etc/mammatus/haproxy/placeholder.pem': PEM }), spawn);
    // No sockets answer here: the start times out, but the argv is what matters.
    const started = sup.ensureRunning().catch((err: unknown) => err);
    await new Promise((r) => setTimeout(r, 50));
    expect(spawn.started[0]).toMatchObject({
      file: 'haproxy',
      args: [
        '-W',
        '-S',
        '/run/mammatus/haproxy-master.sock,mode,600',
        '-f',
        '/etc/mammatus/haproxy/haproxy-user.cfg',
        '-f',
        '/etc/mammatus/haproxy/haproxy.cfg',
      ],
    });
    await sup.stop();
    expect(await started).toBeInstanceOf(Error);
  });

  it('removals share one drain deadline', async () => {
    const sup = build();
    const drains: number[] = [];
    // Each server keeps its connections as long as it may wait (the worst case).
    Object.assign(sup.runtime, {
      removeServer: async (_b: string, _s: string, drainMs: number) => {
        drains.push(drainMs);
        await new Promise((r) => setTimeout(r, drainMs));
        return 'maint';
      },
    });
    const started = Date.now();
    const removals = ['a', 'b', 'c'].map((server) => ({ op: 'remove', backend: 'lb_web', server }) as const);
    expect(await sup.applyChanges(removals, 300)).toEqual([]);
    expect(Date.now() - started).toBeLessThan(600);
    expect(drains[0]).toBeGreaterThan(250);
    expect(drains.slice(1).every((d) => d < 100)).toBe(true);
  });

  it('ends a master left from before the agent restarted (it answers on our master socket) before starting', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lb-orphan-'));
    const sock = join(dir, 'master.sock');
    const orphan = net.createServer((c) =>
      c.end(
        '#<PID>          <type>          <reloads>\n4242            master          0 [failed: 0]\n4243            worker          0\n',
      ),
    );
    await new Promise<void>((r) => orphan.listen(sock, r));
    try {
      const run = recordingRun();
      const spawn = fakeSpawn();
      // /proc/4242 is not in the memory files: gone once signalled.
      const files = memoryFiles({ '/etc/mammatus/haproxy/placeholder.pem': PEM });
      const sup = new HaproxySupervisor({ spawn, run, files, log, settings, masterSocket: sock, readyTimeoutMs: 100 });
      await expect(sup.ensureRunning()).rejects.toThrow(/did not come up/);
      expect(run.calls).toContainEqual(['kill', '-TERM', '4242', '4243']);
      expect(spawn.started).toHaveLength(1);
      await sup.stop();
    } finally {
      orphan.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a master that keeps crashing is restarted with a growing delay, never in a tight loop', async () => {
    const spawn = fakeSpawn();
    const files = memoryFiles({ '/etc/mammatus/haproxy/placeholder.pem': PEM });
    const sup = new HaproxySupervisor({
      spawn,
      run: recordingRun(),
      files,
      log,
      settings,
      masterSocket: '/nonexistent/m.sock',
      readyTimeoutMs: 100,
      minRestartMs: 50,
    });
    // Every master dies at once (a bind refused, a bad binary).
    const crash = setInterval(() => spawn.started.filter((p) => !p.exitedYet).forEach((p) => p.exit(1)), 5);
    try {
      await expect(sup.ensureRunning()).rejects.toThrow(/did not come up/);
      await new Promise((r) => setTimeout(r, 700));
      // Restarts after 50, 100, 200, 400 ms: at most 5 starts in this time, not hundreds.
      expect(spawn.started.length).toBeGreaterThanOrEqual(3);
      expect(spawn.started.length).toBeLessThanOrEqual(5);
    } finally {
      clearInterval(crash);
      await sup.stop();
    }
  });
});
