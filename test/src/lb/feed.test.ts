/**
 * The gateway's balancer feed against a real nats-server with real permissions: a gateway's
 * credentials read it (a compute node's get nothing), records and instance changes reach the
 * snapshot within a bounded time and call `onChange` only when the resolved servers can change,
 * malformed, foreign and conflicting entries are skipped with a warning, and a controller outage
 * keeps the last snapshot until updates resume after the restart.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LbFeed } from '../../../core/contracts.js';
import type { ResolvedBalancer } from '../../../core/lb-record.js';
import type { InstanceRecord } from '../../../core/instance-record.js';
import { connectNats } from '../../../core/nats.js';
import { lbInstance, openLbFeed } from '../../../src/lb/feed.js';
import { lbInput } from '../../helpers/lb.js';
import { LbRegistry, lbKey } from '../../../src/lb/registry.js';
import { InstanceRegistry } from '../../../src/registry/registry.js';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../../scripts/lib/nats-server.js';

const skip = natsServerAvailable() ? undefined : 'nats-server is missing';
if (skip) console.warn(`lb feed tests skipped: ${skip}`);

/** The bound every change must reach the snapshot in (the debounce is 50 ms here). */
const BOUND_MS = 3000;

const lb = lbInput;

/** Resolved balancers as `balancer: server@addr …` lines. */
function served(s: readonly ResolvedBalancer[] | undefined): string[] | undefined {
  return s?.map((b) => `${b.record.name}:${b.servers.map((v) => ` ${v.name}@${v.addr}`).join('')}`);
}

/** Polls `check` until it holds; returns how long that took, or fails after `ms`. */
async function until(what: string, check: () => boolean, ms = BOUND_MS): Promise<number> {
  const start = performance.now();
  while (!check()) {
    if (performance.now() - start > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return performance.now() - start;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(Boolean(skip))('the gateway balancer feed', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-lbfeed-'));
  const logged: { level: number; msg: string; key?: string; lb?: string }[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void logged.push(JSON.parse(l) as (typeof logged)[number]) });
  const latencies: Record<string, number> = {};
  let nats: NatsServer;
  let admin: NatsConnection;
  let instances: InstanceRegistry;
  let feed: LbFeed;
  let changes = 0;
  let web1: InstanceRecord;

  const running = (r: InstanceRecord) => ({
    ...r,
    state: 'running' as const,
    observed: { status: 'running', at: new Date().toISOString() },
  });
  /** Makes a change and waits until the snapshot shows `expected`; records the latency under `what`. */
  async function change(what: string, act: () => Promise<unknown>, expected: string[]): Promise<void> {
    const before = changes;
    await act();
    latencies[what] = await until(what, () => JSON.stringify(served(feed.snapshot([]))) === JSON.stringify(expected));
    await until(`${what}: onChange`, () => changes > before);
  }

  beforeAll(async () => {
    nats = await startNatsServer({ name: 'lbfeed', dir: path.join(tmp, 'nats') });
    admin = await connectNats(nats.url, { name: 'test', credentials: nats.credentials });
    instances = await InstanceRegistry.open(admin);
    web1 = await instances.register({ name: 'web1', macs: ['02:00:00:00:00:01'], ips: ['10.0.0.11'], tags: { app: 'web' } });
    const gw = await nats.admit('gw1', ['gateway']);
    feed = openLbFeed([nats.url], () => changes++, log, { credentials: gw, debounceMs: 50, resyncMs: 1000 });
  }, 30_000);
  afterAll(async () => {
    await feed?.stop();
    await admin?.close();
    await nats?.stop();
    rmSync(tmp, { recursive: true, force: true });
    console.log(
      'lb feed latencies (ms, change → snapshot):',
      JSON.stringify(latencies, (_k, v: unknown) => (typeof v === 'number' ? Math.round(v) : v)),
    );
  });

  it('reads as empty before any balancer was created, and calls onChange once', async () => {
    await until('first snapshot', () => feed.snapshot([]) !== undefined);
    expect(feed.snapshot([])).toEqual([]);
    expect(lbInstance(web1)).toEqual({ name: 'web1', ips: ['10.0.0.11'], tags: { app: 'web' }, state: 'registered' });
    await until('onChange', () => changes === 1);
    expect(logged.some((l) => /no balancer bucket yet/.test(l.msg))).toBe(true);
  });

  it('follows a create, and instances starting, stopping, moving and changing tags', async () => {
    const registry = await LbRegistry.open(admin);
    await change('create', () => registry.create(lb('web')), ['web:']);
    await change('instance running', () => instances.update('web1', running), ['web: i-web1-8080@10.0.0.11']);
    await change(
      'observed stopped',
      () => instances.update('web1', (r) => ({ ...r, observed: { status: 'stopped', at: '2026-12-07T00:00:00Z' } })),
      ['web:'],
    );
    await change('observed running', () => instances.update('web1', running), ['web: i-web1-8080@10.0.0.11']);
    await change('ips', () => instances.update('web1', (r) => ({ ...r, ips: ['10.0.0.12'] })), ['web: i-web1-8080@10.0.0.12']);
    // Registered, not running yet: no server, no onChange.
    const before = changes;
    await instances.register({ name: 'web2', macs: ['02:00:00:00:00:02'], ips: ['10.0.0.21'], tags: { app: 'web' } });
    await sleep(300);
    expect(changes).toBe(before);
    await change('tag added', () => instances.update('web2', running), ['web: i-web1-8080@10.0.0.12 i-web2-8080@10.0.0.21']);
    await change('tag changed', () => instances.update('web1', (r) => ({ ...r, tags: { app: 'blog' } })), ['web: i-web2-8080@10.0.0.21']);
    await change('state stopped', () => instances.update('web2', (r) => ({ ...r, state: 'stopped' })), ['web:']);
  });

  it('calls onChange only when the servers can change, not for a report that changes nothing', async () => {
    const before = changes;
    await instances.update('web1', (r) => ({ ...r, observed: { status: 'running', at: new Date().toISOString() } }));
    await instances.update('web1', (r) => ({ ...r, tags: { app: 'blog', team: 'x' } }));
    await sleep(500);
    expect(changes).toBe(before);
  });

  it('follows an rm', async () => {
    const registry = await LbRegistry.open(admin);
    await registry.create(lb('blog', { targets: [{ selector: { kind: 'instance', name: 'web1' }, port: 80 }] }));
    await until('blog', () => served(feed.snapshot([]))?.join() === 'blog: i-web1-80@10.0.0.12,web:');
    await change('rm', () => registry.remove('web'), ['blog: i-web1-80@10.0.0.12']);
  });

  it('resolves member targets with the members it is asked with, an instance and a member of one name as two servers', async () => {
    const registry = await LbRegistry.open(admin);
    const targets = [
      { selector: { kind: 'member', name: 'st1' }, port: 5671 },
      { selector: { kind: 'member', name: 'web1' }, port: 5671 },
      { selector: { kind: 'instance', name: 'web1' }, port: 5671 },
    ] as const;
    await change('member lb', () => registry.create(lb('mq', { listen: { port: 8443 }, targets })), [
      'blog: i-web1-80@10.0.0.12',
      'mq: i-web1-5671@10.0.0.12',
    ]);
    const members = [
      { name: 'st1', addr: '10.0.0.99', status: 'alive' as const },
      { name: 'web1', addr: '10.0.0.50', status: 'alive' as const },
      { name: 'gone', addr: '10.0.0.98', status: 'failed' as const },
    ];
    expect(served(feed.snapshot(members))).toEqual([
      'blog: i-web1-80@10.0.0.12',
      'mq: i-web1-5671@10.0.0.12 m-st1-5671@10.0.0.99 m-web1-5671@10.0.0.50',
    ]);
    expect(served(feed.snapshot([{ ...members[0], status: 'failed' }]))).toEqual([
      'blog: i-web1-80@10.0.0.12',
      'mq: i-web1-5671@10.0.0.12',
    ]);
    await change('member lb rm', () => registry.remove('mq'), ['blog: i-web1-80@10.0.0.12']);
  });

  it('skips a malformed and a foreign entry with a warning, passes a conflicting one to the gateway, and keeps serving the rest', async () => {
    const registry = await LbRegistry.open(admin);
    const blog = await registry.get('blog');
    const before = changes;
    await registry.kv.put(lbKey('junk'), '{"name":"junk"}');
    await registry.kv.put(lbKey('notjson'), 'not json at all');
    await registry.kv.put(lbKey('alias'), JSON.stringify(blog));
    // Written beside the CLI: the same route as `blog`, newer, so `blog` (the older) stays.
    const later = new Date(Date.parse(blog.created_at) + 1000).toISOString();
    await registry.kv.put(lbKey('thief'), JSON.stringify({ ...blog, name: 'thief', created_at: later, updated_at: later }));
    await until('warnings', () => ['junk', 'notjson', 'alias'].every((k) => logged.some((l) => l.key === lbKey(k) && l.level === 40)));
    // The conflict is the gateway's plan to settle and report (it leaves `thief`, the younger, out).
    await until('thief passed on', () => (served(feed.snapshot([])) ?? []).some((s) => s.startsWith('thief:')));
    await sleep(300);
    expect(served(feed.snapshot([]))).toEqual(['blog: i-web1-80@10.0.0.12', 'thief: i-web1-80@10.0.0.12']);
    expect(changes).toBe(before + 1);
    for (const k of ['junk', 'notjson', 'alias']) expect(logged.filter((l) => l.key === lbKey(k))).toHaveLength(1);
    for (const k of ['junk', 'notjson', 'alias', 'thief']) await registry.kv.delete(lbKey(k));
  });

  it("a compute node's credentials read nothing", async () => {
    const cn = await nats.admit('cn1', ['compute']);
    let called = 0;
    const denied = openLbFeed([nats.url], () => called++, pino({ level: 'silent' }), { credentials: cn, debounceMs: 50 });
    try {
      await sleep(1500);
      expect(denied.snapshot([])).toBeUndefined();
      expect(called).toBe(0);
    } finally {
      await denied.stop();
    }
  });

  it('keeps the last snapshot while the controllers are down, and follows changes again after they are back', async () => {
    const kept = served(feed.snapshot([]));
    await nats.stop();
    await sleep(1500);
    expect(served(feed.snapshot([]))).toEqual(kept);
    nats = await startNatsServer({ ...nats.spec, port: nats.port });
    await admin.close();
    admin = await connectNats(nats.url, { name: 'test', credentials: nats.credentials });
    instances = await InstanceRegistry.open(admin);
    const registry = await LbRegistry.open(admin);
    const bound = 10_000; // the client's reconnect wait, and the server's JetStream recovery
    const start = performance.now();
    await registry.create(lb('shop', { targets: [{ selector: { kind: 'tag', key: 'app', value: 'blog' }, port: 9000 }] }));
    await until('lb after restart', () => served(feed.snapshot([]))?.some((l) => l.startsWith('shop:')) ?? false, bound);
    expect(served(feed.snapshot([]))).toEqual(['blog: i-web1-80@10.0.0.12', 'shop: i-web1-9000@10.0.0.12']);
    latencies['lb after restart'] = performance.now() - start;
    await change('instance after restart', () => instances.update('web1', (r) => ({ ...r, ips: ['10.0.0.13'] })), [
      'blog: i-web1-80@10.0.0.13',
      'shop: i-web1-9000@10.0.0.13',
    ]);
  }, 30_000);

  it('keeps the last snapshot when the bucket it has seen disappears, and follows it once it is back', async () => {
    const kept = served(feed.snapshot([]));
    const before = changes;
    const jsm = await jetstreamManager(admin);
    await jsm.streams.delete('KV_mammatus-lb');
    await sleep(2500); // stream checks that find no bucket
    expect(served(feed.snapshot([]))).toEqual(kept);
    expect(changes).toBe(before);
    const registry = await LbRegistry.open(admin);
    await change('bucket back', () => registry.create(lb('again')), ['again:']);
  }, 15_000);
});
