/**
 * `mammatus lb …`: usage errors (exit 2) before anything is written, and create/list/show/rm
 * against a real nats-server (exit 1 on a taken name, a conflict, a missing balancer).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNats } from '../../../core/nats.js';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../../scripts/lib/nats-server.js';
import { LbRegistry } from '../../../src/lb/registry.js';
import { openLbHealthBucket } from '../../../src/lb/health.js';
import type { NatsConnection } from '@nats-io/transport-node';
import { cliRunner } from '../../helpers/run-cli.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-lb-cli-'));
let credentials: string[] = [];
const run = cliRunner(() => credentials);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('lb commands: usage', () => {
  it('has --help on every subcommand', async () => {
    for (const sub of ['create', 'list', 'show', 'rm']) {
      const r = await run('lb', sub, '--help');
      expect(r, sub).toMatchObject({ code: 0, out: expect.stringContaining(`Usage: mammatus lb ${sub}`) });
    }
  });

  it.each([
    [['--listen', '80', '--mode', 'http'], /--target is required/],
    [['--listen', '80', '--target', 'instance:a:80'], /--mode/],
    [['--listen', '80', '--mode', 'udp', '--target', 'instance:a:80'], /Allowed choices are http, tcp/],
    [['--listen', '80', '--mode', 'http', '--target', 'web:80'], /--target: not instance:NAME, tag:KEY=VALUE or member:NAME: "web"/],
    [['--listen', '80', '--mode', 'http', '--target', 'instance:a'], /--target: not a port/],
    [['--listen', 'gw:80', '--mode', 'http', '--target', 'instance:a:80'], /--listen: "gw" is not an IPv4 address/],
    [['--listen', '22', '--mode', 'tcp', '--target', 'instance:a:22'], /--listen: port 22 belongs to ssh on every gateway/],
    [['--listen', '80', '--mode', 'http', '--target', 'instance:a:80', '--health', 'up'], /--health: not a path/],
    [['--listen', '80', '--mode', 'http', '--target', 'instance:a:80', '--tls', 'tls'], /Allowed choices are none, acme, passthrough/],
    [['--listen', '127.0.0.1:80', '--mode', 'http', '--target', 'instance:a:80'], /--listen: 127.0.0.1 is loopback/],
    [
      ['--listen', '[::ffff:10.0.0.1]:80', '--mode', 'http', '--target', 'instance:a:80'],
      /--listen: .*IPv6 listen addresses are not supported/,
    ],
    [
      ['--listen', '80', '--mode', 'http', '--target', 'instance:a:80', '--health', '/"${SECRET}"'],
      /--health: .* must start with \/ and hold only/,
    ],
    [['--listen', '80', '--mode', 'http', '--target', 'instance:a:80', '--health', '/x\\r\\nX: 1'], /--health: /],
    // The record rules, checked before NATS is dialled.
    [['--listen', '80', '--mode', 'http', '--target', 'instance:a:80', '--path', "/a'b"], /^error: path: "\/a'b" must start with \//],
    [['--listen', '80', '--mode', 'http', '--target', 'instance:a:80', '--path', '/${HOME}'], /^error: path: /],
    [['--listen', '80', '--mode', 'tcp', '--target', 'instance:a:80', '--path', '/api'], /^error: path: a path prefix needs mode http/],
    [['--listen', '8443', '--mode', 'http', '--tls', 'passthrough', '--host', 'x.example', '--target', 'instance:a:80'], /^error: tls: /],
    [
      ['--listen', '443', '--mode', 'http', '--tls', 'acme', '--host', 'intranet', '--target', 'instance:a:80'],
      /acme cannot get a certificate/,
    ],
  ])('exits 2 on %j, before reaching NATS', async (flags, why) => {
    const r = await run('lb', 'create', 'web', ...flags, '--nats', 'nats://127.0.0.1:1');
    expect(r.code, r.err).toBe(2);
    expect(r.err).toMatch(why);
  });
});

if (!natsServerAvailable()) console.warn('lb CLI tests against a registry skipped: nats-server is missing (apt-get install nats-server)');

describe.skipIf(!natsServerAvailable())('lb commands against a registry', () => {
  let nats: NatsServer;
  let registry: LbRegistry;
  let close: () => Promise<void>;
  let admin: NatsConnection;
  beforeAll(async () => {
    nats = await startNatsServer({ name: 'lbcli', dir: path.join(tmp, 'nats') });
    const nc = await connectNats(nats.url, { name: 'test', credentials: nats.credentials });
    credentials = ['--credentials', nats.credentialsFile];
    registry = await LbRegistry.open(nc);
    admin = nc;
    close = () => nc.close();
  }, 30_000);
  afterAll(async () => {
    await close?.();
    await nats?.stop();
  });
  const nats_ = () => ['--nats', nats.url];
  const create = (name: string, ...flags: string[]) => run('lb', 'create', name, ...flags, ...nats_());

  it('creates balancers and prints what it stored', async () => {
    const r = await create(
      'web',
      '--listen',
      '80',
      '--mode',
      'http',
      '--host',
      'WWW.example.com',
      '--host',
      'example.com',
      '--target',
      'tag:app=web:8080',
      '--health',
      '/healthz',
    );
    expect(r, r.err).toMatchObject({ code: 0, out: 'created web: http on *:80 for www.example.com,example.com, 1 target' });
    expect(await registry.get('web')).toMatchObject({
      hosts: ['www.example.com', 'example.com'],
      health: { kind: 'http', path: '/healthz' },
      balance: 'roundrobin',
    });
    const db = await create(
      'db',
      '--listen',
      '192.0.2.1:5432',
      '--mode',
      'tcp',
      '--target',
      'instance:pg1:5432',
      '--target',
      'instance:pg2:5432',
      '--balance',
      'leastconn',
      '--json',
    );
    expect(db.code, db.err).toBe(0);
    expect(JSON.parse(db.out)).toMatchObject({
      name: 'db',
      listen: { addr: '192.0.2.1', port: 5432 },
      mode: 'tcp',
      balance: 'leastconn',
      targets: [{}, {}],
    });
    const tls = await create(
      'mq',
      '--listen',
      '443',
      '--mode',
      'tcp',
      '--tls',
      'passthrough',
      '--host',
      'mq.example.com',
      '--target',
      'member:st1:5671',
    );
    expect(tls, tls.err).toMatchObject({ code: 0, out: 'created mq: tcp+tls passthrough on *:443 for mq.example.com, 1 target' });
  });

  it('exits 2 on a record the check refuses, 1 on a taken name or a conflict', async () => {
    const badTls = await create(
      'x',
      '--listen',
      '8443',
      '--mode',
      'http',
      '--tls',
      'passthrough',
      '--host',
      'x.example',
      '--target',
      'instance:a:80',
    );
    expect(badTls).toMatchObject({
      code: 2,
      err: 'error: tls: passthrough needs mode tcp (the gateway does not look inside the TLS stream)',
    });
    expect((await create('Bad_Name', '--listen', '8080', '--mode', 'http', '--target', 'instance:a:80')).code).toBe(2);
    expect(await create('web', '--listen', '8080', '--mode', 'http', '--target', 'instance:a:80')).toMatchObject({
      code: 1,
      err: 'error: lb web already exists',
    });
    const clash = await create('www', '--listen', '80', '--mode', 'http', '--host', 'example.com', '--target', 'instance:a:80');
    expect(clash).toMatchObject({ code: 1, err: expect.stringContaining('lb web listens on *:80 for example.com already') });
    expect(await registry.findEntry('www')).toBeUndefined();
  });

  it("lists as a table and as JSON, shows one, with the gateways' target health", async () => {
    // What gateways published (src/lb/health.ts): gw1 fresh about db, gw2 long silent about mq.
    const kv = await openLbHealthBucket(admin, { create: true });
    const srv = (n: string, status: string, check?: string) => ({
      server: `i-${n}-5432`,
      target: `instance:${n}:5432`,
      machine: n,
      addr: '10.0.0.5',
      port: 5432,
      status,
      ...(check ? { check } : {}),
    });
    const at = (agoMs: number) => new Date(Date.now() - agoMs).toISOString();
    await kv.put(
      'gw1.db',
      JSON.stringify({
        gateway: 'gw1',
        balancer: 'db',
        at: at(1000),
        servers: [srv('pg1', 'up', 'L4OK'), srv('pg2', 'down', 'L4CON Connection refused')],
      }),
    );
    await kv.put('gw2.mq', JSON.stringify({ gateway: 'gw2', balancer: 'mq', at: at(45_000), servers: [] }));
    const list = await run('lb', 'list', ...nats_());
    expect(list.code).toBe(0);
    expect(list.out.split('\n')).toEqual([
      expect.stringMatching(/^NAME\s+LISTEN\s+MODE\s+TLS\s+HOSTS\s+PATH\s+TARGETS\s+HEALTH$/),
      expect.stringMatching(/^db\s+192\.0\.2\.1:5432\s+tcp\s+none\s+\*\s+-\s+2\s+1\/2 up$/),
      expect.stringMatching(/^mq\s+\*:443\s+tcp\s+passthrough\s+mq\.example\.com\s+-\s+1\s+stale: 0\/0 up \(4[5-9]s\)$/),
      expect.stringMatching(/^web\s+\*:80\s+http\s+none\s+www\.example\.com,example\.com\s+-\s+1\s+no gateway reports$/),
    ]);
    const json = JSON.parse((await run('lb', 'list', '--json', ...nats_())).out) as { name: string; target_health: { summary: string } }[];
    expect(json.map((r) => [r.name, r.target_health.summary.replace(/\(\d+s\)/, '(Ns)')])).toEqual([
      ['db', '1/2 up'],
      ['mq', 'stale: 0/0 up (Ns)'],
      ['web', 'no gateway reports'],
    ]);
    const show = await run('lb', 'show', 'db', ...nats_());
    expect(show.out).toMatch(/^targets: {3}instance:pg1:5432\n {11}instance:pg2:5432$/m);
    expect(show.out).toMatch(/^health: {4}tcp connect$/m);
    expect(show.out).toMatch(/^ {2}gateway gw1: 1\/2 up, reported [12]s ago$/m);
    expect(show.out).toMatch(/^ {4}instance:pg1:5432\s+pg1\s+10\.0\.0\.5:5432\s+up\s+-\s+L4OK$/m);
    expect(show.out).toMatch(/^ {4}instance:pg2:5432\s+pg2\s+10\.0\.0\.5:5432\s+down\s+-\s+L4CON Connection refused$/m);
    expect((await run('lb', 'show', 'mq', ...nats_())).out).toMatch(/^ {2}gateway gw2: 0\/0 up, reported 4\ds ago \(STALE/m);
    expect((await run('lb', 'show', 'web', ...nats_())).out).toMatch(/^target health: no gateway reports$/m);
    const shown = JSON.parse((await run('lb', 'show', 'db', '--json', ...nats_())).out) as {
      target_health: { reports: { gateway: string; stale: boolean }[] };
    };
    expect(shown.target_health.reports.map((r) => [r.gateway, r.stale])).toEqual([['gw1', false]]);
    expect(JSON.parse((await run('lb', 'show', 'web', '--json', ...nats_())).out).health).toEqual({ kind: 'http', path: '/healthz' });
    expect(await run('lb', 'show', 'nope', ...nats_())).toMatchObject({ code: 1, err: 'error: no lb nope' });
  });

  it('rm deletes a malformed value under a name, with a warning, so the name is not blocked', async () => {
    await registry.kv.put('lb.junk', '{"name":"junk","listen":{"port":"80"}}');
    expect(await run('lb', 'rm', 'junk', ...nats_())).toMatchObject({
      code: 0,
      out: 'removed junk',
      err: expect.stringMatching(/^warning: lb junk held a malformed value \(.*\); deleted it$/),
    });
    expect((await create('junk', '--listen', '8088', '--mode', 'http', '--target', 'instance:a:80')).code).toBe(0);
    expect((await run('lb', 'rm', 'junk', ...nats_())).code).toBe(0);
  });

  it('removes, then the name is free again', async () => {
    expect(await run('lb', 'rm', 'db', ...nats_())).toMatchObject({ code: 0, out: 'removed db' });
    expect(await run('lb', 'rm', 'db', ...nats_())).toMatchObject({ code: 1, err: 'error: no lb db' });
    expect((await create('db', '--listen', '5432', '--mode', 'tcp', '--target', 'instance:pg1:5432')).code).toBe(0);
  });

  it('exits 1 when NATS cannot be reached', async () => {
    expect(await run('lb', 'list', '--nats', 'nats://127.0.0.1:1')).toMatchObject({
      code: 1,
      err: expect.stringContaining('cannot reach NATS'),
    });
  });
});
