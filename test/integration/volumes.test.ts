/**
 * The volume registry against a real nats-server -js: unique names under racing writers,
 * revision-checked changes, attach/detach/resize rules, the controllers' volume API (a storage
 * node sees and reports only its own volumes, a compute node sees only volumes attached to it),
 * the storage node's feed, and the NATS permissions that keep nodes off the bucket.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { jetstream } from '@nats-io/jetstream';
import { InstanceRegistry } from '../../src/registry/registry.js';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNats } from '../../core/nats.js';
import type { VolumeRecord } from '../../core/volume-record.js';
import { openAttachedVolumeFeed, openVolumeFeed } from '../../src/registry/volume-feed.js';
import { registryWritesHostedService } from '../../src/registry/hosted.js';
import { requestVolumes, serveVolumeRequests } from '../../src/registry/volume-writes.js';
import { VOLUME_BUCKET, VolumeConflictError, VolumeRegistry, volumeKey } from '../../src/registry/volumes.js';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../scripts/lib/nats-server.js';
import { eventually } from '../../scripts/lib/wait.js';

const skip = natsServerAvailable() ? undefined : 'nats-server is missing';
if (skip) console.warn(`volume registry tests skipped: ${skip}`);
const GiB = 1024 ** 3;
const IQN = 'iqn.2026-12.org.debian:01:cn1';

describe.skipIf(Boolean(skip))('volume registry on JetStream KV', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-vol-'));
  const log = pino({ level: 'silent' });
  let nats: NatsServer;
  let nc: NatsConnection;
  let registry: VolumeRegistry;
  let api: { close(): void };
  const opened: NatsConnection[] = [];
  const as = async (name: string, roles: ('storage' | 'compute' | 'gateway')[]) => {
    const creds = await nats.admit(name, roles);
    const c = await connectNats(nats.url, { name, credentials: creds });
    opened.push(c);
    return { nc: c, creds };
  };

  beforeAll(async () => {
    nats = await startNatsServer({ name: 'vol', dir: path.join(tmp, 'nats') });
    nc = await connectNats(nats.url, { name: 'test', credentials: nats.credentials });
    registry = await VolumeRegistry.open(nc);
    api = serveVolumeRequests(nc, () => VolumeRegistry.open(nc), log);
  });
  afterAll(async () => {
    api?.close();
    await Promise.allSettled(opened.map((c) => c.close()));
    await nc?.close();
    await nats?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('creates with fresh shell-safe CHAP credentials, finds, lists, and refuses a taken name', async () => {
    const v = await registry.create({ name: 'data1', size_bytes: 10 * GiB, node: 'st1' });
    expect(v).toMatchObject({ state: 'creating', node: 'st1', backing: { kind: 'file', path: '/var/lib/mammatus/volumes/data1.img' } });
    expect(v.chap.secret).toMatch(/^[A-Za-z0-9]{16}$/);
    expect(v.chap.user).toMatch(/^mammatus-[A-Za-z0-9]{8}$/);
    const other = await registry.create({ name: 'data2', size_bytes: GiB, node: 'st1' });
    expect(other.chap.secret).not.toBe(v.chap.secret);
    expect((await registry.get('data1')).chap).toEqual(v.chap);
    expect((await registry.list()).map((x) => x.name)).toEqual(['data1', 'data2']);
    await expect(registry.create({ name: 'data1', size_bytes: GiB, node: 'st2' })).rejects.toThrow(/data1 already exists/);
    await expect(registry.create({ name: 'Bad_Name', size_bytes: GiB, node: 'st1' })).rejects.toThrow(/DNS label/);
    await expect(registry.get('nope')).rejects.toThrow(/no volume nope/);
  });

  it('lets exactly one of many racing writers have a name', async () => {
    const attempts = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => registry.create({ name: 'race', size_bytes: GiB, node: `st${i}` })),
    );
    expect(attempts.filter((a) => a.status === 'fulfilled')).toHaveLength(1);
    expect(attempts.filter((a) => a.status === 'rejected' && a.reason instanceof VolumeConflictError)).toHaveLength(7);
  });

  it('changes only the revision it read, and keeps name and CHAP whatever a change returns', async () => {
    const e = (await registry.findEntry('data2'))!;
    await registry.update('data2', (v) => ({ ...v, size_bytes: 2 * GiB }), e.revision);
    await expect(registry.update('data2', (v) => ({ ...v, size_bytes: 3 * GiB }), e.revision)).rejects.toThrow(/changed since it was read/);
    const forged = await registry.update('data2', (v) => ({ ...v, name: 'other', chap: { user: 'x', secret: 'AAAAAAAAAAAAAAAA' } }));
    expect(forged.name).toBe('data2');
    expect(forged.chap).toEqual(e.record.chap);
    expect(forged.size_bytes).toBe(2 * GiB);
  });

  it('attaches to one instance at a time, detaches, grows only, and deletes only detached volumes', async () => {
    const at = { instance: 'web', node: 'cn1', initiator: IQN, path: '/mnt/data' };
    await registry.attach('data1', at);
    await registry.attach('data1', at); // the same attachment again is no change
    await expect(registry.attach('data1', { ...at, instance: 'db' })).rejects.toThrow(/attached to web; detach it first/);
    await expect(registry.attach('data1', { ...at, initiator: 'not-an-iqn' })).rejects.toThrow(/initiator/);
    await expect(registry.markDeleting('data1')).rejects.toThrow(/detach it first/);
    await expect(registry.resize('data1', GiB)).rejects.toThrow(/only grow/);
    expect((await registry.resize('data1', 20 * GiB)).size_bytes).toBe(20 * GiB);
    expect((await registry.detach('data1')).attached).toBeUndefined();
    expect((await registry.markDeleting('data1')).state).toBe('deleting');
    await expect(registry.attach('data1', at)).rejects.toThrow(/being deleted/);
  });

  it('keeps storage and compute nodes off the bucket: no read, no write', async () => {
    for (const role of ['storage', 'compute'] as const) {
      const { nc: c } = await as(`${role}-probe`, [role]);
      const kv = new Kvm(c).open(VOLUME_BUCKET);
      await expect(kv.then((k) => k.get(volumeKey('data2')))).rejects.toThrow(/Permissions Violation/);
      // Nor write past the KV client: a publish straight to the key's subject is refused too.
      await expect(jetstream(c).publish(`$KV.${VOLUME_BUCKET}.${volumeKey('data2')}`, '{}', { timeout: 2000 })).rejects.toThrow(
        /Permissions Violation|timeout|no responders/i,
      );
      // The instance registry is readable to compute (as before), never to a storage-only node.
      if (role === 'storage')
        await expect(InstanceRegistry.open(c, { bind: true }).then((r) => r.list())).rejects.toThrow(/Permissions Violation/);
    }
    expect((await registry.get('data2')).size_bytes).toBe(2 * GiB);
  });

  it('gives a storage node only its volumes and takes reports only for them; absent ends a deleting volume', async () => {
    await registry.create({ name: 'st2vol', size_bytes: GiB, node: 'st2' });
    const { nc: st1 } = await as('st1', ['storage']);
    const list = await requestVolumes(st1, 'st1', { op: 'list' });
    expect(list.volumes!.map((v) => v.name)).toEqual(['data1', 'data2']);
    await expect(requestVolumes(st1, 'st1', { op: 'observed', name: 'st2vol', observed: { state: 'serving' } })).rejects.toThrow(
      /not served by st1/,
    );
    // Posing as st2 on the wire: the server refuses the subject.
    await expect(requestVolumes(st1, 'st2', { op: 'list' }, 2000)).rejects.toThrow(/Permissions Violation|timeout/i);
    await requestVolumes(st1, 'st1', {
      op: 'observed',
      name: 'data2',
      observed: { state: 'serving', lun: 1, portal: '10.88.0.31', at: 'forged' },
    });
    const d2 = await registry.get('data2');
    expect(d2).toMatchObject({ state: 'available', lun: 1, observed: { state: 'serving', lun: 1, portal: '10.88.0.31' } });
    expect(d2.observed!.at).not.toBe('forged');
    await requestVolumes(st1, 'st1', { op: 'observed', name: 'data2', observed: { state: 'absent' } });
    expect(await registry.find('data2')).toBeDefined(); // absent of a volume not being deleted is a report
    await requestVolumes(st1, 'st1', { op: 'observed', name: 'data1', observed: { state: 'absent' } });
    expect(await registry.find('data1')).toBeUndefined(); // deleting + absent: gone
    const raw = await st1.request('mammatus.volumes.node.st1', JSON.stringify({ op: 'observed', name: 'data2', observed: { state: 'x' } }));
    expect(raw.string()).toMatch(/serving, error or absent/);
    // A portal that is not an IPv4 address (a host name, a shell word) is refused, not stored.
    await expect(
      requestVolumes(st1, 'st1', { op: 'observed', name: 'data2', observed: { state: 'serving', portal: 'evil.example;rm' } }),
    ).rejects.toThrow(/observed.portal must be an IPv4 address/);
  });

  it('gives a compute node only the volumes attached to its instances', async () => {
    await registry.attach('st2vol', { instance: 'db', node: 'cn7', initiator: IQN });
    const { nc: cn7 } = await as('cn7', ['compute']);
    expect((await requestVolumes(cn7, 'cn7', { op: 'list' })).volumes!.map((v) => v.name)).toEqual(['st2vol']);
    await expect(requestVolumes(cn7, 'cn7', { op: 'observed', name: 'st2vol', observed: { state: 'serving' } })).rejects.toThrow(
      /not served by cn7/,
    );
    // Its feed follows them: a detach takes the volume out of its list.
    const seen: (readonly VolumeRecord[])[] = [];
    const feed = await openAttachedVolumeFeed([nats.url], 'cn7', (v) => seen.push(v), log, await nats.admit('cn7', ['compute']));
    try {
      await eventually(() => expect(seen.at(-1)?.map((v) => v.name)).toEqual(['st2vol']), 5000, 20);
      await registry.detach('st2vol');
      await eventually(() => expect(seen.at(-1)).toEqual([]), 5000, 20);
      await expect(feed.report('st2vol', { state: 'serving' })).rejects.toThrow(/not served by cn7/);
    } finally {
      await feed.close();
    }
    const { nc: gw } = await as('gw9', ['gateway']);
    await expect(requestVolumes(gw, 'gw9', { op: 'list' }, 2000)).rejects.toThrow(/Permissions Violation|timeout/i);
  });

  it("follows a storage node's volumes: the feed sees create, change and delete, and reports", async () => {
    const { creds } = await as('st5', ['storage']);
    const seen: (readonly VolumeRecord[])[] = [];
    const feed = await openVolumeFeed([nats.url], 'st5', (v) => seen.push(v), log, creds);
    try {
      await eventually(() => expect(seen).toHaveLength(1));
      expect(seen[0]).toEqual([]);
      await registry.create({ name: 'fed', size_bytes: GiB, node: 'st5' });
      await eventually(() => expect(seen.at(-1)!.map((v) => v.name)).toEqual(['fed']), 5000, 20);
      await feed.report('fed', { state: 'serving', lun: 1 });
      await eventually(() => expect(seen.at(-1)![0]).toMatchObject({ state: 'available', observed: { state: 'serving' } }), 5000, 20);
      await registry.resize('fed', 2 * GiB);
      await eventually(() => expect(seen.at(-1)![0].size_bytes).toBe(2 * GiB), 5000, 20);
      await expect(feed.report('st2vol', { state: 'serving' })).rejects.toThrow(/not served by st5/);
      await registry.markDeleting('fed');
      await feed.report('fed', { state: 'absent' });
      await eventually(() => expect(seen.at(-1)).toEqual([]), 5000, 20);
    } finally {
      await feed.close();
    }
  });

  it("is served by the controllers' registry-writes service, which creates the bucket", async () => {
    const dir = path.join(tmp, 'nats2');
    const fresh = await startNatsServer({ name: 'vol2', dir });
    const service = registryWritesHostedService(() => 1);
    try {
      await service.start({ node: 'ctl', natsUrl: fresh.url, members: [], credentials: fresh.credentials, log });
      const admin = await connectNats(fresh.url, { name: 'admin', credentials: fresh.credentials });
      opened.push(admin);
      const vols = await eventually(() => VolumeRegistry.open(admin, { bind: true }).then(async (r) => (await r.list(), r)));
      await vols.create({ name: 'hosted', size_bytes: GiB, node: 'st9' });
      const st9 = await connectNats(fresh.url, { name: 'st9', credentials: await fresh.admit('st9', ['storage']) });
      opened.push(st9);
      const answer = await requestVolumes(st9, 'st9', { op: 'list' });
      expect(answer.volumes!.map((v) => v.name)).toEqual(['hosted']);
    } finally {
      await service.stop();
      await fresh.stop();
    }
  });
});
