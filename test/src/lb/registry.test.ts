/**
 * The load balancer registry against a real nats-server: create as the claim of a name, conflicts
 * with stored balancers (also between racing creates), list/get/remove, and what a gateway's
 * credentials allow (read and watch, never write).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNats } from '../../../core/nats.js';
import type { LoadBalancerInput } from '../../../src/lb/record.js';
import { LB_BUCKET, LbConflictError, LbNotFoundError, LbRegistry, lbKey, parseLbEntry } from '../../../src/lb/registry.js';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../../scripts/lib/nats-server.js';

const skip = natsServerAvailable() ? undefined : 'nats-server is missing';
if (skip) console.warn(`lb registry tests skipped: ${skip}`);

const input = (name: string, over: Partial<LoadBalancerInput> = {}): LoadBalancerInput => ({
  name,
  listen: { port: 80 },
  mode: 'http',
  hosts: [`${name}.example`],
  targets: [{ selector: { kind: 'tag', key: 'app', value: name }, port: 8080 }],
  ...over,
});

describe.skipIf(Boolean(skip))('lb registry on JetStream KV', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-lb-'));
  let nats: NatsServer;
  let nc: NatsConnection;
  let registry: LbRegistry;

  beforeAll(async () => {
    nats = await startNatsServer({ name: 'lb', dir: path.join(tmp, 'nats') });
    nc = await connectNats(nats.url, { name: 'test', credentials: nats.credentials });
    registry = await LbRegistry.open(nc, { now: () => new Date('2026-12-07T00:00:00Z') });
  }, 30_000);
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('creates under lb.<name>, gets, lists sorted, refuses a taken name', async () => {
    const web = await registry.create(input('web'));
    expect(web).toMatchObject({ name: 'web', tls: 'none', health: { kind: 'tcp' }, created_at: '2026-12-07T00:00:00.000Z' });
    expect(parseLbEntry((await registry.kv.get(lbKey('web')))!)).toEqual(web);
    expect((await registry.kv.status()).bucket).toBe(LB_BUCKET);
    await registry.create(input('api', { hosts: ['web.example'], path: '/api' }));
    expect((await registry.list()).map((r) => r.name)).toEqual(['api', 'web']);
    expect(await registry.get('web')).toEqual(web);
    await expect(registry.create(input('web', { listen: { port: 8080 } }))).rejects.toThrow(new LbConflictError('lb web already exists'));
  });

  it('refuses a balancer that clashes with a stored one, naming it, and stores nothing', async () => {
    await expect(registry.create(input('www', { hosts: ['web.example'] }))).rejects.toThrow(
      /lb www: lb web listens on \*:80 for web.example already/,
    );
    await expect(registry.create(input('raw', { mode: 'tcp', hosts: [] }))).rejects.toThrow(/lb api listens on \*:80 in mode http/);
    expect(await registry.kv.get(lbKey('www'))).toBeNull();
    expect((await registry.list()).map((r) => r.name)).toEqual(['api', 'web']);
  });

  it('lets one of two racing creates for the same route win', async () => {
    const racers = ['r1', 'r2', 'r3', 'r4'].map((n) => input(n, { listen: { port: 9000 }, mode: 'tcp', hosts: [] }));
    const results = await Promise.allSettled(racers.map((r) => registry.create(r)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(LbConflictError);
    // All four read the bucket before any wrote: the later writers found the earlier record after their write and withdrew.
    expect(results.some((r) => r.status === 'rejected' && /written at the same time/.test(String(r.reason)))).toBe(true);
    expect((await registry.list()).filter((r) => r.listen.port === 9000)).toHaveLength(1);
  });

  it('removes, reports a missing name, and a removed name can be taken again', async () => {
    expect((await registry.remove('api')).name).toBe('api');
    await expect(registry.get('api')).rejects.toThrow(LbNotFoundError);
    await expect(registry.remove('api')).rejects.toThrow('no lb api');
    expect((await registry.create(input('api', { hosts: ['api.example'] }))).name).toBe('api');
  });

  it('skips values that are not valid records', async () => {
    await registry.kv.put(lbKey('junk'), '{"name":"junk"}');
    await registry.kv.put(lbKey('alias'), JSON.stringify(await registry.get('web')));
    expect((await registry.list()).map((r) => r.name)).not.toContain('junk');
    expect(await registry.findEntry('junk')).toBeUndefined();
    // A record stored under another name's key is not that name's balancer.
    expect(await registry.findEntry('alias')).toBeUndefined();
    expect((await registry.list()).filter((r) => r.name === 'web')).toHaveLength(1);
    await registry.kv.delete(lbKey('junk'));
    await registry.kv.delete(lbKey('alias'));
  });

  it("a gateway's credentials read and watch the bucket but cannot write it", async () => {
    const gw = await connectNats(nats.url, { name: 'gw1', credentials: await nats.admit('gw1', ['gateway']) });
    const cn = await connectNats(nats.url, { name: 'cn1', credentials: await nats.admit('cn1', ['compute']) });
    try {
      const ro = await LbRegistry.open(gw, { bind: true });
      expect((await ro.list()).map((r) => r.name)).toContain('web');
      expect((await ro.get('web')).hosts).toEqual(['web.example']);
      const seen: string[] = [];
      const watch = await ro.kv.watch({ key: 'lb.>' });
      const done = (async () => {
        for await (const e of watch) {
          seen.push(`${e.operation} ${e.key}`);
          if (e.key === lbKey('late')) break;
        }
      })();
      await registry.create(input('late', { hosts: ['late.example'] }));
      await done;
      expect(seen).toContain('PUT lb.late');
      await expect(ro.create(input('gwmade', { listen: { port: 8081 } }))).rejects.toThrow(/permission/i);
      await expect(ro.remove('web')).rejects.toThrow(/permission/i);
      expect(await registry.findEntry('gwmade')).toBeUndefined();
      expect(await registry.findEntry('web')).toBeDefined();
      // A compute node sees nothing of it.
      await expect(LbRegistry.open(cn, { bind: true }).then((r) => r.list())).rejects.toThrow();
    } finally {
      await gw.close();
      await cn.close();
    }
  }, 30_000);
});
