/**
 * The HAProxy supervisor's commands through the injected runner and file writer: the placeholder
 * certificate made once, `haproxy -c` with HAProxy's alerts as the error, and the master-worker
 * argv. Starting, reloading and the sockets run against the real haproxy in
 * test/integration/lb-haproxy.test.ts.
 */
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
    expect(run.calls.at(-1)).toEqual(['haproxy', '-c', '-f', '/etc/mammatus/haproxy/haproxy.cfg']);
  });

  it('runs haproxy in master-worker mode with a private master socket', async () => {
    const spawn = fakeSpawn();
    const sup = build(recordingRun(), memoryFiles({ '/etc/mammatus/haproxy/placeholder.pem': PEM }), spawn);
    // No sockets answer here: the start times out, but the argv is what matters.
    const started = sup.ensureRunning().catch((err: unknown) => err);
    await new Promise((r) => setTimeout(r, 50));
    expect(spawn.started[0]).toMatchObject({
      file: 'haproxy',
      args: ['-W', '-S', '/run/mammatus/haproxy-master.sock,mode,600', '-f', '/etc/mammatus/haproxy/haproxy.cfg'],
    });
    await sup.stop();
    expect(await started).toBeInstanceOf(Error);
  });
});
