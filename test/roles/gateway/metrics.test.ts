import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { exposition } from '../../../core/metrics.js';
import { parseGatewayConfig } from '../../../roles/gateway/config.js';
import type { DnsmasqStats } from '../../../roles/gateway/dns-chaos.js';
import { buildGatewayRole } from '../../../roles/gateway/index.js';
import { startGatewayMetrics } from '../../../roles/gateway/metrics.js';
import { memoryFiles } from '../../helpers/memory-files.js';
import { recordingRun } from '../../helpers/recording-run.js';
import { seriesValues } from '../../helpers/metrics.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-gw-metrics-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const sys = path.join(tmp, 'sys');
/** Writes the ports' byte counters where the collector reads them. */
function setBytes(iface: string, rx: number, tx: number): void {
  mkdirSync(path.join(sys, iface, 'statistics'), { recursive: true });
  writeFileSync(path.join(sys, iface, 'statistics', 'rx_bytes'), `${rx}\n`);
  writeFileSync(path.join(sys, iface, 'statistics', 'tx_bytes'), `${tx}\n`);
}
const leaseFile = path.join(tmp, 'dnsmasq.leases');
const settings = { lan: { interface: 'lan0', address: '10.88.0.1/24' }, wan: { interface: 'wan0' }, paths: { leases: leaseFile } };
const cfg = parseGatewayConfig(settings);

const save = (forwarded: number) =>
  [
    '*filter',
    ':FORWARD DROP [1:40]',
    `[${forwarded}:${forwarded * 100}] -A FORWARD -i lan0 -o wan0 -j ACCEPT`,
    'COMMIT',
    '*nat',
    ':POSTROUTING ACCEPT [0:0]',
    `[2:120] -A POSTROUTING -s 10.88.0.0/24 -o wan0 -j MASQUERADE`,
    'COMMIT',
    '',
  ].join('\n');

const values = seriesValues;
const errors = (collector: string) => `mammatus_metrics_collector_errors_total{collector="${collector}"}`;

let stop: (() => void) | undefined;
afterEach(() => {
  stop?.();
  stop = undefined;
});

describe('the gateway metrics', () => {
  it('reads dnsmasq counters into counters that follow them, and keeps the last values when dnsmasq does not answer', async () => {
    let stats: DnsmasqStats | Error = {
      cacheSize: 150,
      hits: 40,
      misses: 10,
      insertions: 8,
      evictions: 0,
      servers: [{ server: '1.1.1.1#53', queries: 10, failures: 1 }],
    };
    const asked: string[] = [];
    stop = startGatewayMetrics({
      config: () => cfg,
      run: recordingRun(),
      dnsmasqRunning: () => true,
      sysClassNet: sys,
      dnsStats: async (server, port) => {
        asked.push(`${server}:${port}`);
        if (stats instanceof Error) throw stats;
        return stats;
      },
    });
    const series = [
      'mammatus_gateway_dns_cache_size',
      'mammatus_gateway_dns_cache_hits_total',
      'mammatus_gateway_dns_cache_misses_total',
      'mammatus_gateway_dns_cache_insertions_total',
      'mammatus_gateway_dns_cache_evictions_total',
      'mammatus_gateway_dns_upstream_queries_total{server="1.1.1.1#53"}',
      'mammatus_gateway_dns_upstream_failures_total{server="1.1.1.1#53"}',
      'mammatus_gateway_dns_upstream_queries_total{server="9.9.9.9#53"}',
    ];
    expect(await values(...series)).toEqual([150, 40, 10, 8, 0, 10, 1, undefined]);
    expect(asked).toEqual(['10.88.0.1:53']);
    const [failedBefore] = await values(errors('gateway_dns'));
    stats = new Error('no answer');
    expect(await values(...series)).toEqual([150, 40, 10, 8, 0, 10, 1, undefined]);
    expect((await values(errors('gateway_dns')))[0]).toBe((failedBefore ?? 0) + 2);
    // dnsmasq restarted (counts from zero) with another upstream.
    stats = { cacheSize: 150, hits: 5, misses: 2, servers: [{ server: '9.9.9.9#53', queries: 3, failures: 0 }] };
    expect(await values(...series)).toEqual([150, 45, 12, 8, 0, undefined, undefined, 3]);
    // servers.bind not answered this time: the upstream counts stay as they were.
    stats = { cacheSize: 150, hits: 6, misses: 2 };
    expect(await values(...series)).toEqual([150, 46, 12, 8, 0, undefined, undefined, 3]);
  });

  it('does not ask dnsmasq while it does not run', async () => {
    let asked = 0;
    stop = startGatewayMetrics({
      config: () => cfg,
      run: recordingRun(),
      dnsmasqRunning: () => false,
      sysClassNet: sys,
      dnsStats: () => {
        asked++;
        return Promise.reject(new Error('not running'));
      },
    });
    await exposition();
    expect(asked).toBe(0);
  });
});

describe('the gateway role exports its metrics while it runs', () => {
  it('leases, pool, port bytes and forwarding rules after start; none after stop', async () => {
    const now = Math.floor(Date.now() / 1000);
    writeFileSync(
      leaseFile,
      [
        `${now + 3600} 02:00:00:00:00:01 10.88.0.100 a *`,
        `${now - 10} 02:00:00:00:00:02 10.88.0.101 b *`,
        `0 02:00:00:00:00:03 10.88.0.21 c *`,
      ].join('\n'),
    );
    setBytes('lan0', 1000, 2000);
    setBytes('wan0', 3000, 4000);
    let forwarded = 10;
    const run = recordingRun((argv) => (argv[0] === 'iptables-save' ? { stdout: save(forwarded), stderr: '', exitCode: 0 } : undefined));
    const noSpawn = () => {
      throw new Error('no spawn in this test');
    };
    const role = buildGatewayRole({ spawn: noSpawn, metrics: { sysClassNet: sys } });
    const desired = { node: 'gw', config: settings, members: [] };
    await role.start!({ run, files: memoryFiles(), log: pino({ level: 'silent' }), desired, reconcile: () => undefined });
    const series = [
      'mammatus_gateway_dhcp_leases',
      'mammatus_gateway_dhcp_pool_size',
      'mammatus_gateway_interface_bytes_total{interface="lan0",direction="rx"}',
      'mammatus_gateway_interface_bytes_total{interface="wan0",direction="tx"}',
      'mammatus_gateway_forward_bytes_total{rule="forward:lan>wan:accept"}',
      'mammatus_gateway_forward_packets_total{rule="forward:lan>wan:accept"}',
      'mammatus_gateway_forward_packets_total{rule="forward:policy:drop"}',
      'mammatus_gateway_forward_bytes_total{rule="postrouting:wan:10.88.0.0/24:masquerade"}',
    ];
    expect(await values(...series)).toEqual([2, 100, 1000, 4000, 1000, 10, 1, 120]);
    // One iptables-save per scrape, through the role's runner, bounded.
    const saves = () => run.calls.filter((c) => c[0] === 'iptables-save');
    expect(saves()).toEqual([['iptables-save', '-c']]);
    forwarded = 15;
    setBytes('lan0', 1500, 2000);
    expect(await values(...series)).toEqual([2, 100, 1500, 4000, 1500, 15, 1, 120]);
    expect(saves()).toHaveLength(2);
    // A port that is gone: the read fails and is counted, the last values stay.
    rmSync(path.join(sys, 'wan0'), { recursive: true });
    const [before] = await values(errors('gateway_interfaces'));
    expect((await values(...series.slice(2, 4), errors('gateway_interfaces'))).slice(0, 2)).toEqual([1500, 4000]);
    expect((await values(errors('gateway_interfaces')))[0]).toBe((before ?? 0) + 2);
    const scraped = saves().length;
    await role.stop!();
    const text = await exposition();
    expect(text).not.toMatch(/^mammatus_gateway_forward_bytes_total\{/m);
    expect(text).not.toMatch(/^mammatus_gateway_interface_bytes_total\{/m);
    expect(text).not.toMatch(/^mammatus_gateway_dhcp_leases /m);
    expect(saves()).toHaveLength(scraped);
  });
});
