/**
 * The netns gateway test bed itself (scripts/lib/netns-bed.ts): topology, fake
 * upstream DNS/HTTP, DHCP client hook and clean teardown — with no gateway code involved.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildGatewayBed, canUseNetns, missingTools, waitForFile, type GatewayBed, type Upstream } from '../../scripts/lib/netns-bed.js';

const skip = canUseNetns() ?? missingTools(['busybox', 'dig', 'curl', 'dnsmasq']);
if (skip) console.warn(`netns bed tests skipped: ${skip}`);

describe.skipIf(skip !== undefined)('netns gateway test bed', () => {
  let bed: GatewayBed;
  let upstream: Upstream;
  beforeAll(async () => {
    bed = await buildGatewayBed({ prefix: 'nbt' });
    upstream = await bed.startUpstream();
  });
  afterAll(() => bed?.destroy());

  it('the fake upstream DNS answers example.test to gw', async () => {
    expect(await bed.dig('example.test', 'A', '203.0.113.1', 'gw')).toMatchObject({ status: 'NOERROR', answers: ['203.0.113.80'] });
    expect(upstream.dnsLog()).toMatch(/query\[A\] example\.test from 203\.0\.113\.2/);
  });

  it('the upstream HTTP server answers gw and logs its WAN address', async () => {
    expect(await bed.curl('gw', 'http://203.0.113.1/')).toMatchObject({ code: 0, status: 200, body: 'upstream ok\n' });
    expect(upstream.httpLog()).toMatch(/^203\.0\.113\.2 GET \/$/m);
  });

  it('leaves routing to the code under test: cl unaddressed, ip_forward off, ctl reaches gw', async () => {
    expect((await bed.exec('cl', ['ip', '-4', '-o', 'addr', 'show', 'dev', 'cl-lan'])).stdout).toBe('');
    expect((await bed.exec('gw', ['cat', '/proc/sys/net/ipv4/ip_forward'])).stdout.trim()).toBe('0');
    expect((await bed.exec('ctl', ['busybox', 'ping', '-c', '1', '-W', '2', '10.88.0.1'])).code).toBe(0);
  });

  it('cl gets a lease from a throw-away dnsmasq in gw (DHCP only, no DNS)', async () => {
    const leases = path.join(bed.dir, 'manual.leases');
    const dnsmasq = bed.spawn('gw', [
      'dnsmasq',
      '--no-daemon',
      '--conf-file=/dev/null',
      '--log-facility=-',
      '--interface=gw-lan',
      '--bind-interfaces',
      '--port=0',
      '--dhcp-range=10.88.0.100,10.88.0.110,12h',
      `--dhcp-leasefile=${leases}`,
      `--pid-file=${path.join(bed.dir, 'manual.pid')}`,
    ]);
    await waitForFile(dnsmasq.logFile, /DHCP, IP range/);
    const lease = await bed.dhcp({ hostname: 'client1' });
    expect(lease.code, lease.stderr).toBe(0);
    expect(lease.ip).toMatch(/^10\.88\.0\.(10\d|110)$/);
    expect((await bed.exec('cl', ['ip', '-4', '-o', 'addr', 'show', 'dev', 'cl-lan'])).stdout).toContain(`${lease.ip}/24`);
    await waitForFile(leases, /client1/);
    await bed.kill(dnsmasq);
  });

  it('destroy removes every namespace of the bed and is idempotent', async () => {
    await bed.destroy();
    await bed.destroy();
    const list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    expect(list.split('\n').filter((l) => l.startsWith(bed.id))).toEqual([]);
  });
});
