/**
 * Target health reports (src/lb/health.ts): what a reader accepts (malformed, oversized and
 * misfiled reports refused), and against a real nats-server with the cluster's permissions: the
 * bucket's bounds, a gateway writing its own reports, and the attacks a gateway credential could
 * try (another gateway's key, a key that reads as a dotted gateway name, a balancer record, reading
 * the bucket) refused by the server.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LB_HEALTH_MAX_BYTES, LB_HEALTH_MAX_SERVERS, LB_HEALTH_TTL_MS, type LbHealthReport } from '../../../core/lb-health.js';
import { connectNats } from '../../../core/nats.js';
import { openLbHealthBucket, openLbHealthSink, parseLbHealthReport, readLbHealth } from '../../../src/lb/health.js';
import { LbRegistry } from '../../../src/lb/registry.js';
import { lbInput } from '../../helpers/lb.js';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../../scripts/lib/nats-server.js';

const server = { server: 'i-web1-80', target: 'instance:web1:80', machine: 'web1', addr: '10.0.0.5', port: 80, status: 'up' as const };
const report = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  gateway: 'gw1',
  balancer: 'web',
  at: '2026-12-07T00:00:00.000Z',
  servers: [server],
  ...over,
});

describe('parseLbHealthReport', () => {
  it('accepts a report under its own key (dotted gateway names too)', () => {
    expect(parseLbHealthReport('gw1.web', JSON.stringify(report()))).toEqual(report());
    const withCheck = report({
      gateway: 'gw.lab',
      servers: [{ ...server, status: 'down', check: 'L4CON Connection refused', since_s: 3 }],
    });
    expect(parseLbHealthReport('gw.lab.web', JSON.stringify(withCheck))).toEqual(withCheck);
  });

  it.each([
    ['not JSON', 'gw1.web', '{', /not JSON/],
    ['a list', 'gw1.web', '[]', /not an object/],
    ['another key', 'gw2.web', JSON.stringify(report()), /stored under gw2.web/],
    ['a dotted balancer', 'gw1.a.b', JSON.stringify(report({ balancer: 'a.b' })), /balancer/],
    ['a bad gateway', '*.web', JSON.stringify(report({ gateway: '*' })), /gateway/],
    ['a bad time', 'gw1.web', JSON.stringify(report({ at: 'yesterday' })), /at: /],
    ['a bad status', 'gw1.web', JSON.stringify(report({ servers: [{ ...server, status: 'fine' }] })), /status/],
    ['a bad port', 'gw1.web', JSON.stringify(report({ servers: [{ ...server, port: 70000 }] })), /port/],
    ['a missing field', 'gw1.web', JSON.stringify(report({ servers: [{ ...server, addr: undefined }] })), /addr/],
    ['a long check', 'gw1.web', JSON.stringify(report({ servers: [{ ...server, check: 'x'.repeat(301) }] })), /check/],
    ['a negative age', 'gw1.web', JSON.stringify(report({ servers: [{ ...server, since_s: -1 }] })), /since_s/],
    [
      'too many servers',
      'gw1.web',
      JSON.stringify(report({ servers: Array.from({ length: LB_HEALTH_MAX_SERVERS + 1 }, () => ({ ...server, target: 't' })) })),
      /servers/,
    ],
    ['oversized', 'gw1.web', JSON.stringify(report({ pad: 'x'.repeat(LB_HEALTH_MAX_BYTES) })), /larger than/],
  ])('refuses %s', (_, key, raw, why) => expect(() => parseLbHealthReport(key, raw)).toThrow(why));
});

const skip = natsServerAvailable() ? undefined : 'nats-server is missing';
if (skip) console.warn(`lb health bucket tests skipped: ${skip}`);

describe.skipIf(Boolean(skip))('lb health bucket on JetStream KV', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-lb-health-'));
  const log = pino({ level: process.env.TEST_LOG ?? 'silent' });
  let nats: NatsServer;
  let admin: NatsConnection;

  beforeAll(async () => {
    nats = await startNatsServer({ name: 'lbh', dir: path.join(tmp, 'nats') });
    admin = await connectNats(nats.url, { name: 'admin', credentials: nats.credentials });
  }, 30_000);
  afterAll(async () => {
    await admin?.close();
    await nats?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('is made with a TTL, one revision per key and a value size bound; made again it is the same', async () => {
    const kv = await openLbHealthBucket(admin, { create: true });
    const status = await kv.status();
    expect([status.ttl, status.history, status.maxValueSize]).toEqual([LB_HEALTH_TTL_MS, 1, LB_HEALTH_MAX_BYTES]);
    await openLbHealthBucket(admin, { create: true });
    await expect(kv.put('gw9.big', 'x'.repeat(LB_HEALTH_MAX_BYTES + 1))).rejects.toThrow();
  });

  it("a gateway's sink writes and deletes its own reports; readers skip malformed values", async () => {
    const sink = openLbHealthSink([nats.url], log, { node: 'gw1', credentials: await nats.admit('gw1', ['gateway']) });
    try {
      const { gateway: _, ...body } = report() as unknown as LbHealthReport;
      for (let i = 0; ; i++) {
        try {
          await sink.publish(body);
          break;
        } catch (err) {
          if (i > 50) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      const kv = await openLbHealthBucket(admin);
      await kv.put('gw2.web', JSON.stringify(report())); // misfiled: says gw1
      const read = await readLbHealth(kv);
      expect(read.reports).toEqual([report()]);
      expect(read.skipped).toBe(1);
      await sink.remove('web');
      expect((await readLbHealth(kv)).reports).toEqual([]);
      await kv.delete('gw2.web');
    } finally {
      await sink.stop();
    }
  }, 30_000);

  it("a gateway's credential cannot write another gateway's key, a dotted alias, a balancer, or read the bucket", async () => {
    const gw = await connectNats(nats.url, { name: 'gw1', credentials: await nats.admit('gw1', ['gateway']) });
    try {
      const admins = await openLbHealthBucket(admin);
      const registry = await LbRegistry.open(admin);
      await registry.create(lbInput('web'));
      await admins.put('gw2.web', JSON.stringify(report({ gateway: 'gw2' })));
      const kv = await new Kvm(gw).open('mammatus-lb-health');
      await kv.put('gw1.web', JSON.stringify(report()));
      // Another gateway's report, overwritten or deleted.
      await expect(kv.put('gw2.web', JSON.stringify(report({ gateway: 'gw2' })))).rejects.toThrow(/permission/i);
      await expect(kv.delete('gw2.web')).rejects.toThrow(/permission/i);
      // A key readers would take for gateway "gw1.evil" (its name starts with ours and a dot).
      await expect(kv.put('gw1.evil.web', JSON.stringify(report({ gateway: 'gw1.evil' })))).rejects.toThrow(/permission/i);
      // Reading the reports (its own included): nothing it needs.
      await expect(kv.get('gw2.web')).rejects.toThrow();
      // A balancer record: the registry stays read-only.
      const lb = await new Kvm(gw).open('mammatus-lb');
      await expect(lb.put('lb.evil', JSON.stringify(lbInput('evil')))).rejects.toThrow(/permission/i);
      const after = await readLbHealth(admins);
      expect(after.reports.map((r) => [r.gateway, r.balancer])).toEqual([
        ['gw1', 'web'],
        ['gw2', 'web'],
      ]);
      expect(await registry.findEntry('evil')).toBeUndefined();
    } finally {
      await gw.close();
    }
  }, 30_000);
});
