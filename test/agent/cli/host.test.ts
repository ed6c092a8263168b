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
import { parseHostFlags } from '../../../agent/cli/host.js';
import { hostPlanProblem } from '../../../core/host-record.js';
import { validateRecord } from '../../../core/instance-record.js';
import { connectNats } from '../../../core/nats.js';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../../scripts/lib/nats-server.js';
import { Hosts } from '../../../src/hosts/hosts.js';
import { JoinRefused, JoinSecrets } from '../../../src/hosts/joins.js';
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
    // The same MAC cannot be planned twice (the registry's claims).
    expect((await run('host', 'register', 'metal2', '--mac', MAC, '--role', 'compute')).code).toBe(1);
  });

  it('a secret is taken once, only with its MAC and before it expires', async () => {
    const rec = await registry.get('metal1');
    const { secret } = (await joins.get(rec.id))!;
    const now = new Date();
    await expect(joins.consume(rec.id, 'A'.repeat(43), MAC, now)).rejects.toThrow(/wrong join secret/);
    await expect(joins.consume(rec.id, secret, '52:54:00:00:00:01', now)).rejects.toThrow(/bound to 52:54:00:12:34:56/);
    await expect(joins.consume(rec.id, secret, MAC, new Date(Date.parse(rec.host!.join_expires_at) + 1))).rejects.toThrow(/expired/);
    // Two joins racing with the right secret: exactly one wins.
    const results = await Promise.allSettled([joins.consume(rec.id, secret, MAC, now), joins.consume(rec.id, secret, MAC, now)]);
    expect(results.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
    expect((results.find((x) => x.status === 'rejected') as PromiseRejectedResult).reason).toBeInstanceOf(JoinRefused);
    await expect(joins.consume(rec.id, secret, MAC, now)).rejects.toThrow(/no join secret is waiting/);
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
    expect((await run('host', 'rm', 'metal1')).code).toBe(0);
    expect(await registry.find('metal1')).toBeUndefined();
    expect(await joins.get(fresh.id)).toBeUndefined();
    // An instance is not a host.
    await registry.register({ name: 'web', node: 'cn1', macs: ['02:00:00:00:00:09'] });
    expect((await run('host', 'show', 'web')).err).toMatch(/not a planned host/);
  });
});
