/**
 * The instance registry against a real nats-server: uniqueness of names, MACs and IPs under racing
 * writers, revision-checked updates, half-finished registrations, and the `mammatus instance` CLI.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../agent/cli/program.js';
import { InstanceRegistry, registryKeys, RegistryConflictError } from '../../src/registry/registry.js';
import { connectNats } from '../../core/nats.js';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../scripts/lib/nats-server.js';

const skip = natsServerAvailable() ? undefined : 'nats-server is missing';
if (skip) console.warn(`registry tests skipped: ${skip}`);
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExampl op@ctl';

describe.skipIf(Boolean(skip))('instance registry on JetStream KV', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-reg-'));
  let nats: NatsServer;
  let nc: NatsConnection;
  let registry: InstanceRegistry;

  beforeAll(async () => {
    nats = await startNatsServer({ name: 'reg', dir: path.join(tmp, 'nats') });
    nc = await connectNats(nats.url, { name: 'test', credentials: nats.credentials });
    registry = await InstanceRegistry.open(nc);
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('registers, finds by name and id, lists, removes and frees the claims', async () => {
    const r = await registry.register({ name: 'a1', macs: ['02-00-00-00-00-A1'], ips: ['10.1.0.1'] });
    expect(r.macs).toEqual(['02:00:00:00:00:a1']);
    expect((await registry.get('a1')).id).toBe(r.id);
    expect((await registry.get(r.id)).name).toBe('a1');
    expect((await registry.list()).map((x) => x.name)).toContain('a1');
    await registry.remove('a1');
    expect(await registry.find('a1')).toBeUndefined();
    // Everything it held is free again.
    await registry.register({ name: 'a1', macs: ['02:00:00:00:00:a1'], ips: ['10.1.0.1'] });
  });

  it('refuses a taken name, MAC or IP and leaves no claim behind', async () => {
    await registry.register({ name: 'b1', macs: ['02:00:00:00:00:b1'], ips: ['10.1.0.11'] });
    await expect(registry.register({ name: 'b1', macs: ['02:00:00:00:00:b2'] })).rejects.toThrow(/name b1 is already used/);
    await expect(registry.register({ name: 'b2', macs: ['02:00:00:00:00:b1'] })).rejects.toThrow(/MAC 02:00:00:00:00:b1 is already used/);
    await expect(registry.register({ name: 'b3', macs: ['02:00:00:00:00:b3'], ips: ['10.1.0.11'] })).rejects.toThrow(RegistryConflictError);
    // The failed attempts released what they had claimed: b2 and b3's MAC are free.
    await registry.register({ name: 'b2', macs: ['02:00:00:00:00:b2'] });
    await registry.register({ name: 'b3', macs: ['02:00:00:00:00:b3'] });
  });

  it('lets exactly one of many racing writers have a name', async () => {
    const attempts = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => registry.register({ name: 'race', macs: [`02:00:00:00:01:${(i + 16).toString(16)}`] })),
    );
    expect(attempts.filter((a) => a.status === 'fulfilled')).toHaveLength(1);
    expect(attempts.filter((a) => a.status === 'rejected').every((a) => a.reason instanceof RegistryConflictError)).toBe(true);
  });

  it('refuses malformed records at write time', async () => {
    await expect(registry.register({ name: 'Bad_Name', macs: ['02:00:00:00:00:c1'] })).rejects.toThrow(/name: must be a DNS label/);
    await expect(registry.register({ name: 'c1', macs: ['nope'] })).rejects.toThrow(/not a MAC address/);
    await expect(registry.register({ name: 'c1', macs: ['01:00:5e:00:00:01'] })).rejects.toThrow(/multicast/);
    await expect(registry.register({ name: 'c1', macs: ['02:00:00:00:00:c1'], ips: ['10.0.0.300'] })).rejects.toThrow(/not an IP address/);
    await expect(registry.register({ name: 'c1', macs: ['02:00:00:00:00:c1'], ssh_keys: ['hello'] })).rejects.toThrow(/OpenSSH public key/);
    await expect(registry.register({ name: 'c1', macs: [] })).rejects.toThrow(/at least one MAC/);
    expect(await registry.find('c1')).toBeUndefined();
  });

  it('updates with revision checks: concurrent changes both land, claims follow', async () => {
    const r = await registry.register({ name: 'd1', macs: ['02:00:00:00:00:d1'] });
    await Promise.all([
      registry.update('d1', (x) => ({ ...x, tags: { ...x.tags, a: '1' } })),
      registry.update('d1', (x) => ({ ...x, tags: { ...x.tags, b: '2' } })),
    ]);
    expect((await registry.get('d1')).tags).toEqual({ a: '1', b: '2' });
    await registry.update(r.id, (x) => ({ ...x, name: 'd2', ips: ['10.1.0.42'], state: 'running' }));
    expect(await registry.find('d1')).toBeUndefined();
    expect((await registry.get('d2')).state).toBe('running');
    await registry.register({ name: 'd1', macs: ['02:00:00:00:00:d9'] }); // the old name is free
    await expect(registry.register({ name: 'd3', macs: ['02:00:00:00:00:da'], ips: ['10.1.0.42'] })).rejects.toThrow(/IP 10.1.0.42/);
  });

  it('takes over a claim left by a registration that died half way, once it is stale', async () => {
    await registry.kv.create(registryKeys.name('ghost'), 'i-0000000000000dead');
    await expect(registry.register({ name: 'ghost', macs: ['02:00:00:00:00:e1'] })).rejects.toThrow(/being registered/);
    const later = await InstanceRegistry.open(nc, { now: () => new Date(Date.now() + 60_000) });
    expect((await later.register({ name: 'ghost', macs: ['02:00:00:00:00:e1'] })).name).toBe('ghost');
  });

  it('skips a malformed value a foreign writer put in the bucket', async () => {
    await registry.kv.put('instance.i-0000000000000bad1', '{"id": 1}');
    expect((await registry.list()).some((r) => r.id === 'i-0000000000000bad1')).toBe(false);
  });

  describe('mammatus instance (CLI)', () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
    const cli = (...args: string[]) => {
      out.length = 0;
      err.length = 0;
      return runCli(['--credentials', nats.credentialsFile, ...args, '--nats', nats.url], io, {});
    };

    it('register, list, show, rm', async () => {
      const keyFile = path.join(tmp, 'key.pub');
      writeFileSync(keyFile, `${KEY}\n`);
      const ud = path.join(tmp, 'ud');
      writeFileSync(ud, '#cloud-config\n');
      expect(
        await cli(
          'instance',
          'register',
          'pxe-1',
          '--mac',
          '52:54:00:12:34:56',
          '--ip',
          '10.2.0.5',
          '--ssh-key',
          keyFile,
          '--user-data',
          ud,
          '--tag',
          'rack=r1',
        ),
      ).toBe(0);
      expect(out[0]).toMatch(/^registered pxe-1 as i-[0-9a-f]{17}$/);
      expect(await cli('instance', 'list')).toBe(0);
      expect(out.find((l) => l.startsWith('pxe-1'))).toContain('52:54:00:12:34:56');
      expect(await cli('instance', 'show', 'pxe-1', '--json')).toBe(0);
      expect(JSON.parse(out.join('\n'))).toMatchObject({
        name: 'pxe-1',
        ssh_keys: [KEY],
        tags: { rack: 'r1' },
        user_data: Buffer.from('#cloud-config\n').toString('base64'),
      });
      expect(await cli('instance', 'show', 'pxe-1')).toBe(0);
      expect(out).toContain('user-data:   14 bytes');
      expect(await cli('instance', 'rm', 'pxe-1')).toBe(0);
      expect(await cli('instance', 'show', 'pxe-1')).toBe(1);
      expect(err[0]).toMatch(/no instance pxe-1/);
    });

    it('exit 1 on a conflict, 2 on bad input, with the reason', async () => {
      expect(await cli('instance', 'register', 'q1', '--mac', '52:54:00:00:00:01')).toBe(0);
      expect(await cli('instance', 'register', 'q1', '--mac', '52:54:00:00:00:02')).toBe(1);
      expect(err.join('\n')).toMatch(/name q1 is already used/);
      expect(await cli('instance', 'register', 'q2', '--mac', 'zz')).toBe(2);
      expect(err.join('\n')).toMatch(/not a MAC address/);
      expect(await cli('instance', 'register', 'q3', '--mac', '52:54:00:00:00:03', '--user-data', '/nonexistent')).toBe(2);
      expect(await cli('instance', 'register', 'q4')).toBe(2);
    });

    it('exit 1 with a clear message when NATS is unreachable', async () => {
      expect(await runCli(['instance', 'list', '--nats', 'nats://127.0.0.1:1'], io, {})).toBe(1);
      expect(err.join('\n')).toMatch(/cannot reach NATS at nats:\/\/127.0.0.1:1/);
    });
  });
});
