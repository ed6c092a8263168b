/**
 * The gateway's HAProxy hooks (roles/gateway/lb/gateway-haproxy.ts) with a fake spawner and a fake
 * admin socket: the status line counts the balancers' own servers and asks one question at a
 * time, and other settings take effect in reload only (validate with them stops nothing, so a
 * refused config leaves the old HAProxy serving). The same against the real HAProxy:
 * test/integration/lb-haproxy-lifecycle.test.ts.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { parseGatewayConfig } from '../../../roles/gateway/config.js';
import { GatewayHaproxy } from '../../../roles/gateway/lb/gateway-haproxy.js';
import { fakeSpawn } from '../../helpers/fake-spawn.js';
import { resolvedBalancer } from '../../helpers/lb-resolved.js';
import { memoryFiles } from '../../helpers/memory-files.js';
import { commandFailed, recordingRun } from '../../helpers/recording-run.js';

const log = pino({ level: 'silent' });
const PEM = '-----BEGIN PRIVATE KEY-----\n...\n';
const root = mkdtempSync(join(tmpdir(), 'lb-hooks-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Settings rooted in `name` under the test's directory (the run dir exists: sockets go there). */
function settings(name: string) {
  const config = { lb: { dir: join(root, name, 'etc'), run_dir: join(root, name, 'run') } };
  mkdirSync(config.lb.run_dir, { recursive: true });
  return { config, cfg: parseGatewayConfig(config), cfgPath: join(config.lb.dir, 'haproxy.cfg') };
}

const web = resolvedBalancer('web', 80, [
  { name: 'i-a-80', addr: '10.0.0.1', port: 80 },
  { name: 'i-b-80', addr: '10.0.0.2', port: 80 },
]);

/** `show servers state` lines: a up, b down, and a removed server left in maintenance. */
const STATE = [
  '1',
  '# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_port',
  '3 lb_web 1 i-a-80 10.0.0.1 2 0 80',
  '3 lb_web 2 i-b-80 10.0.0.2 0 0 80',
  '3 lb_web 3 i-old-80 10.0.0.3 2 1 80',
  '',
].join('\n');

/** A GatewayHaproxy started (fake process) on `s`, and what it ran. */
function started(s: ReturnType<typeof settings>) {
  const spawn = fakeSpawn();
  const files = memoryFiles({ [s.cfgPath]: 'cfg A', [join(s.config.lb.dir, 'placeholder.pem')]: PEM });
  const haproxy = new GatewayHaproxy(spawn);
  const ctx = { run: recordingRun(), files, log, desired: { node: 'gw', config: s.config, members: [] } };
  // The fake never answers on the master socket: start waits, then logs that it did not come up.
  const done = haproxy.start(ctx, s.cfg);
  return { spawn, files, haproxy, done };
}

const until = async (ok: () => boolean) => {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
};

describe('GatewayHaproxy status line', () => {
  it('says not running without an HAProxy, and nothing without balancers', () => {
    const haproxy = new GatewayHaproxy(fakeSpawn());
    expect(haproxy.summary([])).toBeUndefined();
    expect(haproxy.summary([web])).toBe('1 balancer, haproxy: not running');
  });

  it("counts the balancers' servers that are up, with one question in flight", async () => {
    const s = settings('status');
    const { spawn, haproxy, done } = started(s);
    await until(() => spawn.started.length === 1);
    let connections = 0;
    const admin = net.createServer({ allowHalfOpen: true }, (c) => {
      connections++;
      c.on('data', () => setTimeout(() => c.end(STATE), 150));
    });
    await new Promise<void>((r) => admin.listen(join(s.config.lb.run_dir, 'admin.sock'), r));
    try {
      for (let i = 0; i < 5; i++) expect(haproxy.summary([web])).toBe('1 balancer, haproxy state not read yet');
      await until(() => !/not read yet/.test(haproxy.summary([web])!));
      expect(haproxy.summary([web])).toBe('1 balancer, 1/2 targets up');
      expect(connections).toBe(1);
      await haproxy.stop();
      await done;
    } finally {
      admin.close();
    }
  });
});

describe('GatewayHaproxy settings switch', () => {
  it('validate with other settings stops nothing (a refusal leaves the old master); reload switches', async () => {
    const a = settings('a');
    const b = settings('b');
    const { spawn, files, haproxy, done } = started(a);
    await until(() => spawn.started.length === 1);
    await files.write(b.cfgPath, 'cfg B');
    let refuse = true;
    const run = recordingRun((argv) => (argv[0] === 'haproxy' && refuse ? commandFailed(argv, 1, '[ALERT] (1) : bad') : undefined));
    const ctx = { run, files, log, changed: [b.cfgPath], prior: () => undefined, desired: { node: 'gw', config: b.config, members: [] } };
    await expect(haproxy.validate(ctx, b.cfg)).rejects.toThrow(/haproxy -c refused the config: bad/);
    refuse = false;
    await haproxy.validate(ctx, b.cfg);
    expect(run.calls.filter((c) => c[0] === 'haproxy')).toEqual(
      Array(2).fill(['haproxy', '-c', '-f', join(b.config.lb.dir, 'haproxy-user.cfg'), '-f', b.cfgPath]),
    );
    // Health with the new settings before reload: they run nothing yet.
    await expect(haproxy.health(ctx, b.cfg)).rejects.toThrow(/not running/);
    expect(spawn.started[0].signals).toEqual([]);
    expect(spawn.started).toHaveLength(1);
    const reloaded = haproxy.reload(ctx, b.cfg).catch((err: unknown) => err);
    await until(() => spawn.started.length === 2);
    expect(spawn.started[0].signals).toEqual(['SIGTERM']);
    expect(spawn.started[1].args).toContain(b.cfgPath);
    await haproxy.stop();
    expect(await reloaded).toBeInstanceOf(Error);
    await done;
  });
});
