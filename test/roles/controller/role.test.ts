/**
 * The controller role through the apply framework, with fakes for every effect: a recording
 * runner, in-memory files, a fake spawner and a scripted monitor probe. Covers validate → reload →
 * health, SIGHUP versus restart, rollback, and the hosted services' lifecycle.
 */
import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { Member } from '../../../core/contracts.js';
import { applyRole } from '../../../roles/apply.js';
import { buildControllerRole, type ControllerDeps, type HostedService } from '../../../roles/controller/index.js';
import type { NatsUserDeps } from '../../../roles/controller/nats-user.js';
import type { DesiredState, Role } from '../../../roles/types.js';
import { fixedCredentials } from '../../helpers/trust.js';
import { fakeSpawn } from '../../helpers/fake-spawn.js';
import { memoryFiles } from '../../helpers/memory-files.js';
import { commandFailed, recordingRun } from '../../helpers/recording-run.js';

const log = pino({ level: 'silent' });
const CONF = '/etc/mammatus/controller/nats-server.conf';
const MEMBERS = '/var/lib/mammatus/controller/members';

const ctl = (name: string, addr: string, status: Member['status'] = 'alive'): Member => ({
  name,
  addr,
  port: 7946,
  tags: { role: 'controller' },
  status,
});
const desired = (members: Member[], config: Record<string, unknown> = {}): DesiredState => ({
  node: 'c1',
  // The firewall and the CA have tests of their own; elsewhere they would only add files and commands to every apply.
  config: { firewall: { enabled: false }, ca: { enabled: false }, ...config },
  members,
  credentials: fixedCredentials('c1', ['controller']),
});
const one = [ctl('c1', '10.0.0.1')];
const two = [...one, ctl('c2', '10.0.0.2')];
const three = [...two, ctl('c3', '10.0.0.3')];

/** A monitor probe answering from `state`, recording every URL. */
function scriptedProbe() {
  const state = { running: true, jetstream: true, urls: [] as string[] };
  const probe: ControllerDeps['probe'] = async (url) => {
    state.urls.push(url);
    const ok = url.includes('js-server-only') ? state.running && state.jetstream : state.running;
    return ok
      ? { status: 200, body: '{"status":"ok"}' }
      : { status: 503, body: '{"status":"unavailable","error":"JetStream has not established contact with a meta leader"}' };
  };
  return { probe, state };
}

/** The role as a non-root agent runs it, whoever runs the tests: nats-server keeps the agent's user. */
const NOT_ROOT: Partial<NatsUserDeps> = { euid: () => 1000 };

function setup(opts: { services?: HostedService[]; failTest?: boolean; natsUser?: Partial<NatsUserDeps> } = {}) {
  const spawn = fakeSpawn();
  const run = recordingRun((argv) =>
    opts.failTest && argv.includes('-t') ? commandFailed(argv, 1, 'nats-server: x.conf:3:1: unknown field "bogus"') : undefined,
  );
  const files = memoryFiles();
  const { probe, state } = scriptedProbe();
  const role: Role = buildControllerRole({
    spawn,
    probe,
    services: opts.services,
    healthTimeoutMs: 100,
    readyTimeoutMs: 100,
    minRestartMs: 5,
    natsUser: opts.natsUser ?? NOT_ROOT,
  });
  let owned: string[] = [];
  const apply = async (d: DesiredState) => {
    const report = await applyRole(role, d, { run, files, log, previous: owned });
    owned = report.owned;
    return report;
  };
  const start = (d: DesiredState) => role.start!({ run, files, log, desired: d });
  return { spawn, run, files, probe: state, role, apply, start };
}

describe('the controller role', () => {
  it('first apply: writes the files, checks them with nats-server -t, starts the server and waits for /healthz', async () => {
    const t = setup();
    const report = await t.apply(desired(one));
    expect(report).toMatchObject({ ok: true, changed: [CONF, MEMBERS] });
    expect(t.run.calls).toEqual([['nats-server', '-c', CONF, '-t']]);
    expect(t.spawn.started.map((p) => [p.file, ...p.args])).toEqual([['nats-server', '-c', CONF]]);
    expect(t.probe.urls).toEqual(['http://127.0.0.1:8222/healthz?js-enabled-only=true']);
    await t.start(desired(one)); // running already, no services: nothing more
    expect(t.spawn.started.length).toBe(1);
    await t.role.stop!();
    expect(t.spawn.started[0].signals).toEqual(['SIGTERM']);
  });

  it('as root: runs nats-server as nats, hands it the store and the config file (after every write)', async () => {
    const dirs: Record<string, { uid: number; gid: number; mode: number }> = {};
    const t = setup({
      natsUser: {
        euid: () => 0,
        passwd: async () => 'root:x:0:0:root:/root:/bin/bash\nnats:x:104:107:NATS:/nonexistent:/usr/sbin/nologin\n',
        // Every directory on the way searchable; the store root-owned, as a server run by root left it.
        stat: async (p) => dirs[p] ?? { uid: 0, gid: 0, mode: p === '/var/lib/mammatus/nats' ? 0o700 : 0o755 },
      },
    });
    expect((await t.apply(desired(one))).ok).toBe(true);
    expect(t.spawn.started.map((p) => p.user)).toEqual(['nats']);
    expect(t.run.calls).toEqual([
      ['nats-server', '-c', CONF, '-t'],
      ['mkdir', '-p', '/var/lib/mammatus/nats'],
      ['chown', '-R', '104:107', '/var/lib/mammatus/nats'],
      ['chown', '104:107', CONF],
    ]);
    // The store is the user's now: a route change rewrites the file, which is handed over again before the SIGHUP.
    dirs['/var/lib/mammatus/nats'] = { uid: 104, gid: 107, mode: 0o700 };
    t.run.calls.length = 0;
    expect((await t.apply(desired(two))).ok).toBe(true);
    expect(t.run.calls.filter((c) => c[0] === 'chown')).toEqual([['chown', '104:107', CONF]]);
    expect(t.spawn.started.length).toBe(2); // standalone -> clustered restarts
    expect(t.spawn.started[1].user).toBe('nats');
    await t.role.stop!();
  });

  it("as root: keeps the agent's user when nats cannot enter the store's directory, and says why", async () => {
    const warnings: string[] = [];
    const spyLog = pino({ level: 'warn' }, { write: (line: string) => void warnings.push((JSON.parse(line) as { msg: string }).msg) });
    const role = buildControllerRole({
      spawn: fakeSpawn(),
      probe: scriptedProbe().probe,
      healthTimeoutMs: 100,
      natsUser: {
        euid: () => 0,
        passwd: async () => 'nats:x:104:107:NATS:/nonexistent:/usr/sbin/nologin\n',
        stat: async (p) => ({ uid: 0, gid: 0, mode: p === '/var/lib/mammatus' ? 0o700 : 0o755 }),
      },
    });
    const report = await applyRole(role, desired(one), { run: recordingRun(), files: memoryFiles(), log: spyLog, previous: [] });
    expect(report.ok).toBe(true);
    expect(warnings).toContain("nats-server runs as the agent's user, not nats: nats may not enter /var/lib/mammatus (mode 0700)");
    await role.stop!();
  });

  it('reloads routes with SIGHUP (same process) and restarts when cluster mode or a port changes', async () => {
    const t = setup();
    await t.apply(desired(two)); // clustered from the start
    expect((await t.apply(desired(three))).ok).toBe(true);
    expect(t.spawn.started.length).toBe(1);
    expect(t.spawn.started[0].signals).toEqual(['SIGHUP']);
    expect(await t.files.read(CONF)).toMatch(/"nats-route:\/\/mammatus-route:[^@"]+@10\.0\.0\.3:6222"/);
    // Both peers reaped: standalone again, which needs a restart.
    await t.apply(desired(one));
    expect(t.spawn.started.length).toBe(2);
    expect(t.spawn.started[0].signals).toEqual(['SIGHUP', 'SIGTERM']);
    await t.apply(desired(one, { nats: { listen: '0.0.0.0:4333' } }));
    expect(t.spawn.started.length).toBe(3);
    await t.role.stop!();
  });

  it('a non-controller joining changes only the membership file: no check, no signal', async () => {
    const t = setup();
    await t.apply(desired(one));
    const report = await t.apply(
      desired([...one, { name: 'gw', addr: '10.0.0.9', port: 7946, tags: { role: 'gateway' }, status: 'alive' }]),
    );
    expect(report).toMatchObject({ ok: true, changed: [MEMBERS] });
    expect(t.run.calls.length).toBe(1);
    expect(t.spawn.started[0].signals).toEqual([]);
    await t.role.stop!();
  });

  it('a config nats-server -t rejects is rolled back before anything runs, with its message', async () => {
    const t = setup({ failTest: true });
    const report = await t.apply(desired(one));
    expect(report).toMatchObject({ ok: false, rolledBack: true });
    expect(report.error).toBe(`validate: nats-server -t rejected ${CONF}: nats-server: x.conf:3:1: unknown field "bogus"`);
    expect(t.files.contents()).toEqual({});
    expect(t.spawn.started).toEqual([]);
  });

  it('a server that dies at start fails health with its last words, and the old config comes back', async () => {
    const t = setup();
    await t.apply(desired(one));
    t.probe.running = false;
    const applying = t.apply(desired(one, { nats: { listen: '0.0.0.0:4333' } }));
    // The restarted server (the second process) crashes on its port.
    await vi.waitFor(() => expect(t.spawn.started.length).toBe(2), { timeout: 1000, interval: 2 });
    t.spawn.started[1].say('[FTL] Error listening on port: 0.0.0.0:4333, "address already in use"');
    t.spawn.started[1].exit(1);
    const report = await applying;
    expect(report).toMatchObject({ ok: false, rolledBack: true });
    expect(report.error).toMatch(/^health: nats-server exited: \[FTL\] Error listening on port: 0\.0\.0\.0:4333/);
    expect(await t.files.read(CONF)).toContain('"listen": "0.0.0.0:4222"');
    // The rollback reloaded the old file: a fresh process on the old config.
    const last = t.spawn.started.at(-1)!;
    expect(last.exitedYet).toBe(false);
    t.probe.running = true;
    await t.role.stop!();
  });

  it('follows a moved config file, and goes back to the old one when the move is rolled back', async () => {
    const t = setup();
    await t.apply(desired(one));
    const moved = { paths: { nats_conf: '/srv/c/nats.conf' } };
    expect((await t.apply(desired(one, moved))).ok).toBe(true);
    expect(t.spawn.started.map((p) => p.args[1])).toEqual([CONF, '/srv/c/nats.conf']);
    t.probe.running = false;
    const report = await t.apply(desired(one, { paths: { nats_conf: '/srv/d/nats.conf' } }));
    expect(report).toMatchObject({ ok: false, rolledBack: true });
    expect(t.spawn.started.at(-1)!.args[1]).toBe('/srv/c/nats.conf');
    expect(t.spawn.started.at(-1)!.exitedYet).toBe(false);
    t.probe.running = true;
    await t.role.stop!();
  });

  it('a first apply whose health times out removes the files and stops the server', async () => {
    const t = setup();
    t.probe.running = false;
    const report = await t.apply(desired(one));
    expect(report.error).toMatch(/^health: http:\/\/127\.0\.0\.1:8222\/healthz\?js-enabled-only=true not healthy after 0s: HTTP 503/);
    expect(t.files.contents()).toEqual({});
    expect(t.spawn.started[0].signals).toEqual(['SIGTERM']);
  });

  it('starts the nats-server an agent restart left unstarted (files unchanged)', async () => {
    const t = setup();
    await t.files.write(CONF, '# managed by mammatus role=controller\n{"listen":"127.0.0.2:4222","http":"127.0.0.2:8222"}\n');
    await t.start(desired(one, { nats: { listen: '127.0.0.2:4222', monitor_listen: '127.0.0.2:8222' } }));
    expect(t.spawn.started.length).toBe(1);
    expect(t.probe.urls).toEqual(['http://127.0.0.2:8222/healthz?js-enabled-only=true']);
    await t.role.stop!();
  });
});

describe('the controller role hosting services', () => {
  function service(name: string, events: string[], fail = 0) {
    let failures = fail;
    const s: HostedService = {
      name,
      async start(ctx) {
        events.push(`start ${name} ${ctx.node} ${ctx.natsUrl} ${ctx.members.length}`);
        if (failures-- > 0) throw new Error('listen EADDRINUSE 0.0.0.0:9324');
      },
      membersChanged: (members) => void events.push(`members ${name} ${members.length}`),
      async stop() {
        events.push(`stop ${name}`);
      },
    };
    return s;
  }

  it('starts them once JetStream is ready, tells them about membership, stops them before nats-server', async () => {
    const events: string[] = [];
    const t = setup({ services: [service('metadata', events), service('messaging', events)] });
    await t.apply(desired(one));
    await t.start(desired(one));
    expect(t.probe.urls.at(-1)).toBe('http://127.0.0.1:8222/healthz?js-server-only=true');
    expect(events).toEqual(['start metadata c1 nats://127.0.0.1:4222 1', 'start messaging c1 nats://127.0.0.1:4222 1']);
    await t.apply(desired(two));
    expect(events.slice(2)).toEqual(['members metadata 2', 'members messaging 2']);
    const nats = t.spawn.started.at(-1)!;
    const stop = t.role.stop!();
    // Services first: nats-server has not been signalled while they stop.
    expect(nats.signals).toEqual([]);
    await stop;
    expect(events.slice(4)).toEqual(['stop messaging', 'stop metadata']);
    expect(nats.signals).toEqual(['SIGTERM']);
  });

  it('does not start them while JetStream has no meta leader, and says why', async () => {
    const events: string[] = [];
    const t = setup({ services: [service('metadata', events)] });
    await t.apply(desired(two));
    t.probe.jetstream = false;
    await expect(t.start(desired(two))).rejects.toThrow(
      /^JetStream not ready, hosted services not started \(retried at the next reconcile\): .*meta leader/,
    );
    expect(events).toEqual([]);
    t.probe.jetstream = true;
    await t.start(desired(two));
    expect(events).toEqual(['start metadata c1 nats://127.0.0.1:4222 2']);
    await t.role.stop!();
  });

  it('reports a failing service as an error of start, and starts it on the next try', async () => {
    const events: string[] = [];
    const t = setup({ services: [service('metadata', events, 1), service('messaging', events)] });
    await t.apply(desired(one));
    await expect(t.start(desired(one))).rejects.toThrow('hosted service failed to start: metadata: listen EADDRINUSE 0.0.0.0:9324');
    await t.start(desired(one));
    expect(events.filter((e) => e.startsWith('start')).length).toBe(3);
    await t.role.stop!();
    expect(events.slice(-2)).toEqual(['stop messaging', 'stop metadata']);
  });

  it('moves the services to a new client port once the restarted server is healthy', async () => {
    const events: string[] = [];
    const t = setup({ services: [service('metadata', events)] });
    await t.apply(desired(one));
    await t.start(desired(one));
    expect((await t.apply(desired(one, { nats: { listen: '127.0.0.1:4333' } }))).ok).toBe(true);
    expect(events).toEqual(['start metadata c1 nats://127.0.0.1:4222 1', 'stop metadata', 'start metadata c1 nats://127.0.0.1:4333 1']);
    await t.role.stop!();
  });

  it('stops services and server when the role leaves the node (its files are removed)', async () => {
    const events: string[] = [];
    const t = setup({ services: [service('metadata', events)] });
    await t.apply(desired(one));
    await t.start(desired(one));
    const removal = await applyRole({ ...t.role, render: () => [] }, desired([]), {
      run: t.run,
      files: t.files,
      log,
      previous: [CONF, MEMBERS],
    });
    expect(removal.ok).toBe(true);
    expect(events.at(-1)).toBe('stop metadata');
    expect(t.spawn.started[0].signals).toEqual(['SIGTERM']);
  });

  it('also stops a server whose file sat at a custom path (removal renders with empty settings)', async () => {
    const t = setup();
    const custom = { paths: { nats_conf: '/srv/c/nats.conf', members: '/srv/c/members' } };
    await t.apply(desired(one, custom));
    expect(t.spawn.started[0].args).toEqual(['-c', '/srv/c/nats.conf']);
    await applyRole({ ...t.role, render: () => [] }, desired([]), {
      run: t.run,
      files: t.files,
      log,
      previous: ['/srv/c/members', '/srv/c/nats.conf'],
    });
    expect(t.spawn.started[0].signals).toEqual(['SIGTERM']);
  });
});

describe('the controller host firewall', () => {
  const FW = '/etc/mammatus/controller/firewall.rules';
  const on = { firewall: { enabled: true } };
  const iptables = (calls: string[][]) => calls.filter((c) => c.some((a) => a.startsWith('iptables')));

  it('validates the chain in a scratch namespace, installs it with --noflush and jumps to it once', async () => {
    const t = setup();
    const report = await t.apply(desired(one, on));
    expect(report).toMatchObject({ ok: true, changed: [FW, CONF, MEMBERS] });
    expect(iptables(t.run.calls)).toEqual([
      ['unshare', '--net', '--', 'iptables-restore', '--noflush', FW],
      ['iptables-restore', '--noflush', FW],
      ['iptables', '-t', 'mangle', '-C', 'INPUT', '-j', 'MAMMATUS-CTL'],
    ]);
    expect(await t.files.read(FW)).toMatch(/^-A MAMMATUS-CTL -p tcp -m multiport --dports 4222,6222 -j DROP$/m);
  });

  it('rolls back a chain iptables rejects before anything changes, and takes the chain away when the role leaves', async () => {
    const spawn = fakeSpawn();
    const run = recordingRun((argv) => (argv[0] === 'unshare' ? commandFailed(argv, 2, 'iptables-restore: line 5 failed') : undefined));
    const files = memoryFiles();
    const role = buildControllerRole({ spawn, probe: scriptedProbe().probe, healthTimeoutMs: 100, natsUser: NOT_ROOT });
    const bad = await applyRole(role, desired(one, on), { run, files, log, previous: [] });
    expect(bad).toMatchObject({ ok: false, error: expect.stringMatching(/iptables-restore rejected .*line 5 failed/) });
    expect(run.calls.some((c) => c[0] === 'iptables-restore')).toBe(false);
    expect(await files.read(FW)).toBeUndefined();

    const t = setup();
    const first = await t.apply(desired(one, on));
    const removal = await applyRole({ ...t.role, render: () => [] }, desired([], on), {
      run: t.run,
      files: t.files,
      log,
      previous: first.owned,
    });
    expect(removal.ok).toBe(true);
    expect(t.run.calls.slice(-3)).toEqual([
      ['iptables', '-t', 'mangle', '-D', 'INPUT', '-j', 'MAMMATUS-CTL'],
      ['iptables', '-t', 'mangle', '-F', 'MAMMATUS-CTL'],
      ['iptables', '-t', 'mangle', '-X', 'MAMMATUS-CTL'],
    ]);
  });
});

describe('the roster', () => {
  it('is followed on the client port once started: a change asks for a reconcile, its nodes become users, stop ends it', async () => {
    const opened: { servers: readonly string[]; onChange: () => void; stopped: boolean }[] = [];
    const nodes = [
      { node: 'gw', roles: ['gateway' as const], nkey: fixedCredentials('gw', ['gateway'], 1).tag.split('.')[1], admitted_at: '' },
    ];
    const role = buildControllerRole({
      spawn: fakeSpawn(),
      probe: scriptedProbe().probe,
      healthTimeoutMs: 100,
      natsUser: NOT_ROOT,
      roster: (servers, _creds, onChange) => {
        const feed = { servers, onChange, stopped: false };
        opened.push(feed);
        return { snapshot: () => nodes, stop: async () => void (feed.stopped = true) };
      },
    });
    const run = recordingRun();
    const files = memoryFiles();
    await applyRole(role, desired(one), { run, files, log, previous: [] });
    const asked: string[] = [];
    await role.start!({ run, files, log, desired: desired(one), reconcile: (why) => asked.push(why) });
    expect(opened.map((o) => o.servers)).toEqual([['nats://127.0.0.1:4222']]);
    opened[0].onChange();
    expect(asked).toEqual(['roster changed']);
    expect(role.admitted!()).toEqual(nodes);
    await role.stop!();
    expect(opened[0].stopped).toBe(true);
  });
});
