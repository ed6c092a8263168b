/**
 * dnsmasq's counters read with the gateway's own CHAOS TXT client (roles/gateway/dns-stats.ts)
 * from a real dnsmasq on a free loopback port: the cache size it was given, its upstream servers,
 * and counts that move when a query is forwarded. No root and no namespace needed: only loopback.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readDnsmasqStats } from '../../roles/gateway/dns-stats.js';
import { freePort, waitForPort } from '../../scripts/lib/ports.js';
import { missingTools } from '../../scripts/lib/netns-bed.js';

const skip = missingTools(['dnsmasq']);
if (skip) console.warn(`dnsmasq counter tests skipped: ${skip}`);

describe.skipIf(Boolean(skip))('dnsmasq counters over CHAOS TXT', () => {
  let dnsmasq: ChildProcess | undefined;
  let port = 0;
  /** Upstreams nobody answers on: forwarded queries fail, and are counted. */
  let upstreams: string[] = [];

  beforeAll(async () => {
    port = await freePort();
    upstreams = [`127.0.0.1#${await freePort()}`, `127.0.0.1#${await freePort()}`];
    dnsmasq = spawn(
      'dnsmasq',
      [
        '--keep-in-foreground',
        '--conf-file=/dev/null',
        '--pid-file=',
        `--port=${port}`,
        '--listen-address=127.0.0.1',
        '--bind-interfaces',
        '--no-resolv',
        '--no-hosts',
        '--cache-size=77',
        ...upstreams.map((u) => `--server=${u}`),
      ],
      { stdio: 'ignore' },
    );
    await waitForPort(port);
  });

  afterAll(() => {
    if (dnsmasq?.pid && dnsmasq.exitCode === null) dnsmasq.kill();
  });

  it('answers the cache size, the counters and its upstream servers', async () => {
    const stats = await readDnsmasqStats('127.0.0.1', port);
    expect(stats.cacheSize).toBe(77);
    for (const key of ['hits', 'misses', 'insertions', 'evictions', 'auth'] as const) expect(stats[key]).toBeGreaterThanOrEqual(0);
    expect(stats.servers?.map((s) => s.server).sort()).toEqual([...upstreams].sort());
  });

  it('counts a forwarded query as a miss and an upstream query', async () => {
    const before = await readDnsmasqStats('127.0.0.1', port);
    const resolver = new Resolver({ timeout: 300, tries: 1 });
    resolver.setServers([`127.0.0.1:${port}`]);
    await resolver.resolve4('forwarded.example').catch(() => undefined);
    const after = await readDnsmasqStats('127.0.0.1', port);
    expect(after.misses).toBeGreaterThan(before.misses ?? 0);
    const sent = (s: typeof before) => (s.servers ?? []).reduce((n, u) => n + u.queries, 0);
    expect(sent(after)).toBeGreaterThan(sent(before));
  });

  it('gives up within its time bound when nothing answers', async () => {
    const silent = await freePort();
    const started = Date.now();
    await expect(readDnsmasqStats('127.0.0.1', silent, 300)).rejects.toThrow(/did not answer within 300 ms|ECONNREFUSED/);
    expect(Date.now() - started).toBeLessThan(1500);
  });
});
