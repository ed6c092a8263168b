/**
 * `mammatus host …` and the join secrets, against a real nats-server: a planned host is an
 * instance record with a `host` block and a secret in the controllers' own bucket; the secret is
 * taken once, only with its MAC, only before it expires; `rejoin` makes a new one; `rm` removes both.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nameInUse, parseHostFlags } from '../../../agent/cli/host.js';
import { hostProgress } from '../../../agent/cli/host-progress.js';
import { plannedHostLines } from '../../../agent/cli/status-hosts.js';
import { Roster } from '../../../src/trust/roster.js';
import { hostPlanProblem } from '../../../core/host-record.js';
import { validateRecord } from '../../../core/instance-record.js';
import { connectNats } from '../../../core/nats.js';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../../scripts/lib/nats-server.js';
import { Hosts } from '../../../src/hosts/hosts.js';
import { JoinRefused, JoinSecrets, REPEAT_WINDOW_MS, type JoinAttempt } from '../../../src/hosts/joins.js';
import { createUser } from '@nats-io/nkeys';
import { InstanceRegistry } from '../../../src/registry/registry.js';
import { cliRunner } from '../../helpers/run-cli.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-host-cli-'));
let credentials: string[] = [];
const cli = cliRunner(() => credentials);
let natsUrl = '';
/** The CLI with this test's NATS (a flag of each subcommand). */
const run = (...argv: string[]) => cli(...argv, '--nats', natsUrl);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const MAC = '52:54:00:12:34:56';

describe('host flags and records', () => {
  it('checks the flags: MAC, roles, firmware, disk, expiry', () => {
    expect(parseHostFlags({ mac: '52-54-00-12-34-56', role: 'compute,storage' })).toMatchObject({
      mac: MAC,
      roles: ['compute', 'storage'],
      arch: 'bios',
    });
    expect(() => parseHostFlags({ mac: 'nope', role: 'compute' })).toThrow(/--mac/);
    expect(() => parseHostFlags({ mac: MAC, role: 'compute,db' })).toThrow(/unknown role db/);
    expect(() => parseHostFlags({ mac: MAC, role: '' })).toThrow(/--role/);
    expect(() => parseHostFlags({ mac: MAC, role: 'compute', arch: 'sparc' })).toThrow(/--arch/);
    // A Raspberry Pi 4/5 booting from its EEPROM (docs/baremetal.md, "Raspberry Pi and ARM boards").
    expect(parseHostFlags({ mac: 'DC:A6:32:01:36:C2', role: 'compute', arch: 'rpi' })).toMatchObject({ arch: 'rpi' });
    expect(() => parseHostFlags({ mac: MAC, role: 'compute', installDisk: '/dev/sda1' })).toThrow(/--install-disk/);
    expect(() => parseHostFlags({ mac: MAC, role: 'compute', installDisk: '/dev/../etc/passwd' })).toThrow(/--install-disk/);
    expect(parseHostFlags({ mac: MAC, role: 'compute', installDisk: '/dev/nvme0n1', expires: '2h' }).ttlMs).toBe(7_200_000);
    expect(() => parseHostFlags({ mac: MAC, role: 'compute', expires: '5s' })).toThrow(/at least 1m/);
  });

  it('refuses malformed host blocks, and a host with a node', () => {
    const ok = { roles: ['compute'], arch: 'efi64', join_expires_at: '2026-12-07T00:00:00.000Z', progress: {} };
    expect(hostPlanProblem(ok)).toBeUndefined();
    expect(hostPlanProblem({ ...ok, roles: [] })).toMatch(/host.roles/);
    expect(hostPlanProblem({ ...ok, secret: 'x' })).toMatch(/host.secret: unknown field/);
    expect(hostPlanProblem({ ...ok, progress: { booted: 'soon' } })).toMatch(/host.progress.booted/);
    expect(hostPlanProblem({ ...ok, progress: { flashed: '2026-12-06T00:00:00Z' } })).toMatch(/unknown step/);
    const record = {
      id: 'i-0123456789abcdef0',
      name: 'metal1',
      macs: [MAC],
      ips: [],
      ssh_keys: [],
      vendor_data: {},
      tags: {},
      state: 'registered',
      host: ok,
      created_at: '2026-12-06T00:00:00.000Z',
      updated_at: '2026-12-06T00:00:00.000Z',
    };
    expect(validateRecord(record).host).toEqual(ok);
    expect(() => validateRecord({ ...record, node: 'cn1' })).toThrow(/node: a planned host runs on no node/);
    expect(() => validateRecord({ ...record, host: { ...ok, arch: 'x' } })).toThrow(/host.arch/);
    expect(validateRecord({ ...record, host: { ...ok, arch: 'rpi' } }).host?.arch).toBe('rpi');
  });
});

describe.skipIf(!natsServerAvailable())('host commands and join secrets on JetStream', () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let registry: InstanceRegistry;
  let joins: JoinSecrets;

  beforeAll(async () => {
    nats = await startNatsServer({ name: 'hostcli', dir: path.join(tmp, 'nats') });
    natsUrl = nats.url;
    nc = await connectNats(nats.url, { name: 'test', credentials: nats.credentials });
    credentials = ['--credentials', nats.credentialsFile];
    registry = await InstanceRegistry.open(nc);
    joins = await JoinSecrets.open(nc);
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('register records the host and a secret bound to its MAC; list and show say registered; instance list leaves it out', async () => {
    writeFileSync(path.join(tmp, 'key.pub'), 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJb0uK0cq6m0fNq9Jdly7ZkqVfFh4m3C6yWQ1W0l2o3x admin\n');
    const r = await run(
      'host',
      'register',
      'metal1',
      '--mac',
      MAC,
      '--role',
      'compute',
      '--arch',
      'efi64',
      '--ssh-key',
      path.join(tmp, 'key.pub'),
    );
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^registered host metal1 \(i-[0-9a-f]{17}\), MAC 52:54:00:12:34:56, roles compute, efi64, diskless; it joins/);
    const rec = await registry.get('metal1');
    expect(rec.host).toMatchObject({ roles: ['compute'], arch: 'efi64', progress: { registered: expect.any(String) } });
    expect(rec.ssh_keys).toHaveLength(1);
    expect(JSON.stringify(rec)).not.toMatch(/secret/);
    const secret = await joins.get(rec.id);
    expect(secret).toMatchObject({ mac: MAC, secret: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) });
    expect((await run('host', 'list')).out).toMatch(/^metal1\s+52:54:00:12:34:56\s+compute\s+efi64\s+-\s+registered\s/m);
    expect((await run('host', 'show', 'metal1')).out).toMatch(/registered/);
    expect((await run('instance', 'list')).out).not.toMatch(/metal1/);
    // `status --hosts` lists it below the members, with its progress (the members table needs serf).
    const g = { rpcAddr: '127.0.0.1:1', credentials: nats.credentialsFile };
    expect(await plannedHostLines(g, nats.url, new Map())).toEqual([
      'planned hosts:',
      expect.stringMatching(/^ {2}metal1 \(52:54:00:12:34:56, compute\): registered since 20\d\d-/),
    ]);
    expect(await plannedHostLines(g, nats.url, new Map([['metal1', 'alive']]))).toEqual([
      'planned hosts:',
      '  metal1 (52:54:00:12:34:56, compute): registered since ' + rec.host!.progress.registered,
    ]);
    expect(await plannedHostLines(g, 'nats://127.0.0.1:1', new Map())).toEqual([
      expect.stringMatching(/^ {2}! planned hosts: cannot read the registry: /),
    ]);
    // The same MAC cannot be planned twice (the registry's claims).
    expect((await run('host', 'register', 'metal2', '--mac', MAC, '--role', 'compute')).code).toBe(1);
  });

  it('a secret is taken once, only with its MAC and before it expires; the same join may repeat for a few minutes', async () => {
    const rec = await registry.get('metal1');
    const { secret } = (await joins.get(rec.id))!;
    const now = new Date();
    const nkey = createUser().getPublicKey();
    const box = Buffer.alloc(32, 7).toString('base64');
    const join = (over: Partial<JoinAttempt> = {}, at = now, repeatOnly = false) =>
      joins.consume(rec.id, { secret, mac: MAC, nkey, box, ...over }, at, repeatOnly);
    await expect(join({ secret: 'A'.repeat(43) })).rejects.toThrow(/wrong join secret/);
    await expect(join({ mac: '52:54:00:00:00:01' })).rejects.toThrow(/bound to 52:54:00:12:34:56/);
    await expect(join({}, new Date(Date.parse(rec.host!.join_expires_at) + 1))).rejects.toThrow(/expired/);
    await expect(join({}, now, true)).rejects.toThrow(/joined already/);
    expect(await joins.repeatable(rec.id, now)).toBe(false);
    // Two joins racing with the right secret: exactly one wins.
    const results = await Promise.allSettled([join(), join()]);
    expect(results.filter((x) => x.status === 'fulfilled').map((x) => (x as PromiseFulfilledResult<string>).value)).toEqual(['first']);
    expect((results.find((x) => x.status === 'rejected') as PromiseRejectedResult).reason).toBeInstanceOf(JoinRefused);
    // The spent secret is no longer served as a seed; the same join (same nkey, same box) repeats
    // within the window, anything else is refused.
    expect(await joins.get(rec.id)).toBeUndefined();
    expect(await joins.repeatable(rec.id, now)).toBe(true);
    expect(await join()).toBe('repeat');
    expect(await join({}, now, true)).toBe('repeat');
    await expect(join({ box: Buffer.alloc(32, 8).toString('base64') })).rejects.toThrow(/used already/);
    await expect(join({ nkey: createUser().getPublicKey(), box: Buffer.alloc(32, 9).toString('base64') })).rejects.toThrow(/used already/);
    const later = new Date(now.getTime() + REPEAT_WINDOW_MS + 1000);
    await expect(join({}, later)).rejects.toThrow(/used already/);
    expect(await joins.repeatable(rec.id, later)).toBe(false);
  });

  it('progress is recorded once per step; rejoin gives a new secret and starts over; rm removes record and secret', async () => {
    const hosts = new Hosts(registry, joins);
    const rec = await registry.get('metal1');
    const booted = await hosts.progress(rec.id, 'booted');
    const again = await hosts.progress(rec.id, 'booted');
    expect(again.host!.progress.booted).toBe(booted.host!.progress.booted);
    expect((await run('host', 'list')).out).toMatch(/\sbooted\s/);
    expect((await run('host', 'rejoin', 'metal1', '--expires', '2h')).code).toBe(0);
    const fresh = await registry.get('metal1');
    expect(Object.keys(fresh.host!.progress)).toEqual(['registered']);
    expect(await joins.get(fresh.id)).toBeDefined();
    // `instance rm` would leave the host's join secret behind: it refuses planned hosts.
    const viaInstance = await run('instance', 'rm', 'metal1');
    expect([viaInstance.code, viaInstance.err]).toEqual([1, expect.stringContaining('metal1 is a planned host: mammatus host rm metal1')]);
    expect(await registry.find('metal1')).toBeDefined();
    expect((await run('host', 'rm', 'metal1')).code).toBe(0);
    expect(await registry.find('metal1')).toBeUndefined();
    expect(await joins.get(fresh.id)).toBeUndefined();
    // An instance is not a host.
    await registry.register({ name: 'web', node: 'cn1', macs: ['02:00:00:00:00:09'] });
    expect((await run('host', 'show', 'web')).err).toMatch(/not a planned host/);
  });

  it("refuses to plan a host under an admitted node's name or an alive member's", async () => {
    const roster = await Roster.open(nc);
    await roster.put({ node: 'cn-7', roles: ['compute'], nkey: createUser().getPublicKey(), admitted_at: new Date().toISOString() });
    const r = await run('host', 'register', 'cn-7', '--mac', '52:54:00:12:34:77', '--role', 'compute');
    expect([r.code, r.err]).toEqual([
      1,
      expect.stringContaining('a node named cn-7 is already admitted: choose another name or mammatus node remove cn-7'),
    ]);
    expect(await registry.find('cn-7')).toBeUndefined();
    expect(await nameInUse(nc, 'ghost', new Map([['ghost', 'alive']]))).toBe('ghost is an alive Serf member: choose another name');
    expect(await nameInUse(nc, 'ghost', new Map([['ghost', 'left']]))).toBeUndefined();
    expect(await nameInUse(nc, 'ghost', undefined)).toBeUndefined();
  });

  it('says ok only for an alive member whose trust tag verifies (hostMembers), else the last step', () => {
    const at = new Date().toISOString();
    const record = {
      name: 'h1',
      host: {
        roles: ['compute' as const],
        arch: 'bios' as const,
        join_expires_at: new Date(Date.now() + 60_000).toISOString(),
        progress: { registered: at, booted: at, seeded: at, joined: at },
      },
    } as unknown as Parameters<typeof hostProgress>[0];
    expect(hostProgress(record, new Map([['h1', 'alive']]))).toBe('ok');
    // Serf restarted by the join is alive before the agent has set its trust tag.
    expect(hostProgress(record, new Map([['h1', 'alive, untrusted']]))).toBe('joined');
    expect(hostProgress(record, new Map([['h1', 'failed']]))).toBe('joined');
    expect(hostProgress(record, undefined)).toBe('joined');
  });
});
