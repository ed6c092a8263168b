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
import { lbInput } from '../../helpers/lb.js';
import { withoutConflicts } from '../../../core/lb-conflicts.js';
import { makeLoadBalancerRecord } from '../../../src/lb/record.js';
import {
  LB_BUCKET,
  LbConflictError,
  LbNotFoundError,
  LbRegistry,
  LbWithdrawError,
  lbKey,
  parseLbEntry,
  withdraw,
} from '../../../src/lb/registry.js';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../../scripts/lib/nats-server.js';

const skip = natsServerAvailable() ? undefined : 'nats-server is missing';
if (skip) console.warn(`lb registry tests skipped: ${skip}`);

const input = lbInput;

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

  it("races by the readers' rule: the older record stays, whatever the write order and clocks", async () => {
    // Each racer's clock a second apart, the latest clock first: write order and age disagree.
    const racers = [4, 3, 2, 1].map((i) => ({ i, input: input(`s${i}`, { listen: { port: 9001 }, mode: 'tcp', hosts: [] }) }));
    const results = await Promise.allSettled(
      racers.map(async ({ i, input: x }) => {
        const r = await LbRegistry.open(nc, { now: () => new Date(Date.UTC(2026, 11, 7, 0, 0, i)), settleMs: 1000 });
        return r.create(x);
      }),
    );
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won.length).toBeLessThanOrEqual(1);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(LbConflictError);
    const stored = (await registry.list()).filter((r) => r.listen.port === 9001);
    // What the bucket keeps is exactly what readers serve, and what the CLI said was created.
    expect(stored).toHaveLength(won.length);
    expect(withoutConflicts(stored).dropped).toEqual([]);
    if (won[0]?.status === 'fulfilled') expect(stored[0].name).toBe(won[0].value.name);
    for (const r of stored) await registry.remove(r.name);
  });

  it('withdraws only the revision it wrote, and reports a withdrawal that keeps failing', async () => {
    const kv = registry.kv;
    const rev = await kv.put(
      lbKey('stuck'),
      JSON.stringify(makeLoadBalancerRecord(input('stuck', { listen: { port: 9002 } }), new Date())),
    );
    await kv.put(lbKey('stuck'), JSON.stringify(makeLoadBalancerRecord(input('stuck', { listen: { port: 9003 } }), new Date())));
    const err = await withdraw(kv, 'stuck', rev, 'lb x listens on *:9002 already').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LbWithdrawError);
    expect(String(err)).toMatch(/lb stuck: lb x listens on \*:9002 already .*; written but could not withdraw; run `lb rm stuck`/);
    expect(await registry.findEntry('stuck')).toBeDefined();
    await withdraw(kv, 'stuck', (await kv.get(lbKey('stuck')))!.revision, 'test');
    expect(await registry.findEntry('stuck')).toBeUndefined();
  });

  it('removes a malformed value under a name, saying why it was not a record', async () => {
    await registry.kv.put(lbKey('broken'), '{"name":"broken"}');
    await registry.kv.put(lbKey('notjson'), 'x{');
    await registry.kv.put(lbKey('alias'), JSON.stringify(await registry.get('web')));
    expect(await registry.remove('broken')).toEqual({ malformed: expect.stringMatching(/^record|^listen|^[a-z_]+: /) });
    expect(await registry.remove('notjson')).toEqual({ malformed: expect.stringMatching(/^not JSON/) });
    expect(await registry.remove('alias')).toEqual({ malformed: "it holds lb web's record" });
    for (const k of ['broken', 'notjson', 'alias']) expect((await registry.kv.get(lbKey(k)))?.operation).not.toBe('PUT');
    await expect(registry.remove('broken')).rejects.toThrow(LbNotFoundError);
    expect(await registry.findEntry('web')).toBeDefined();
  });

  it('removes, reports a missing name, and a removed name can be taken again', async () => {
    expect((await registry.remove('api')).record?.name).toBe('api');
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
