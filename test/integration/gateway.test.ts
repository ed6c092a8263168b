/**
 * The gateway role end to end: the agent (in-process, with a real serf) applies the role into the
 * gateway namespace of a netns test bed — its runner and spawner prefix `ip netns exec` — and real
 * clients check DHCP, PXE, TFTP, DNS, NAT, the firewall and lease events.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../agent/config/load.js';
import { runCli } from '../../agent/cli/program.js';
import { createAgent, type Agent } from '../../agent/daemon.js';
import { buildFileOps } from '../../core/files.js';
import { SerfClient } from '../../agent/serf/client.js';
import { buildGatewayRole } from '../../roles/gateway/index.js';
import { serfAvailable, startSerfAgent, type SerfAgent } from '../../scripts/lib/serf-agent.js';
import { gatewayEffects } from '../../scripts/lib/gateway-ns.js';
import { until } from '../../scripts/lib/wait.js';
import { seriesValues } from '../helpers/metrics.js';
import { buildGatewayBed, canUseNetns, missingTools, type GatewayBed } from '../../scripts/lib/netns-bed.js';

const exec = promisify(execFile);
const skip =
  canUseNetns() ??
  missingTools(['busybox', 'dig', 'curl', 'dnsmasq', 'iptables-restore']) ??
  (serfAvailable() ? undefined : 'serf is missing');
if (skip) console.warn(`gateway tests skipped: ${skip}`);

const RESERVED_MAC = '02:00:00:00:00:21';

describe.skipIf(Boolean(skip))('the gateway role in a network namespace', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-gw-'));
  let bed: GatewayBed;
  let serf: SerfAgent;
  let agent: Agent;
  let upstream: Awaited<ReturnType<GatewayBed['startUpstream']>>;
  const logs: Record<string, unknown>[] = [];
  const configPath = path.join(tmp, 'agent.yaml');
  // The operator whose signed asks mammatus.leases answers (its key made by the real ssh-keygen).
  const operatorKey = path.join(tmp, 'operator');

  beforeAll(async () => {
    // dnsmasq drops to `nobody`: it must be able to read the hosts dir and TFTP files below tmp.
    chmodSync(tmp, 0o755);
    bed = await buildGatewayBed({ prefix: 'gwr' });
    upstream = await bed.startUpstream();
    // The role copies the boot loaders from pxe.ipxe_dir into the TFTP root (not the host's /usr/lib/ipxe).
    const tftp = path.join(tmp, 'tftp');
    const loaders = path.join(tmp, 'ipxe');
    mkdirSync(loaders);
    writeFileSync(path.join(loaders, 'undionly.kpxe'), 'fake bios loader\n');
    serf = await startSerfAgent({ name: 'gw1', dir: path.join(tmp, 'serf'), tags: { role: 'gateway' } });
    await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ops@test', '-f', operatorKey]);
    const p = (name: string) => path.join(tmp, name);
    writeFileSync(
      configPath,
      [
        `state_dir: ${p('state')}`,
        `serf: { rpc_addr: "${serf.rpcAddr}" }`,
        'watch_config: false',
        `trust: { operators: ["${readFileSync(`${operatorKey}.pub`, 'utf8').trim()}"] }`,
        'roles:',
        '  gateway:',
        `    lan: { interface: ${bed.ifaces.gwLan}, address: 10.88.0.1/24 }`,
        `    wan: { interface: ${bed.ifaces.gwWan} }`,
        '    upstream_dns: [203.0.113.1]',
        `    dhcp: { reservations: [{ mac: "${RESERVED_MAC}", ip: 10.88.0.21, name: storage1 }] }`,
        `    pxe: { ipxe_script: "http://10.88.0.10:8080/boot.ipxe", ipxe_dir: ${loaders} }`,
        `    tftp: { root: ${tftp} }`,
        '    firewall: { port_forwards: [{ proto: tcp, port: 8080, to: "10.88.0.10:80" }] }',
        `    paths: { dnsmasq_conf: ${p('dnsmasq.conf')}, hosts_dir: ${p('hosts.d')}, leases: ${p('leases/dnsmasq.leases')}, iptables: ${p('iptables.rules')}, sysctl: ${p('sysctl.conf')}, lease_hook: ${p('lease-hook')}, dhcp_hosts_dir: ${p('dhcp-hosts.d')}, members: ${p('members')}, left_out: ${p('left-out')} }`,
      ].join('\n') + '\n',
    );
    // Every command and daemon of the role runs inside the gateway's namespace.
    const { run: inNs, spawn: spawnInNs, probe } = await gatewayEffects(bed);
    const opts = { path: configPath, env: {} };
    agent = createAgent({
      loaded: await loadConfig(opts),
      reloadConfig: () => loadConfig(opts),
      log: pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) }),
      run: inNs,
      files: buildFileOps(),
      roles: { gateway: buildGatewayRole({ spawn: spawnInNs, probe }) },
      version: '0.0.0-test',
    });
    await agent.start();
    for (let i = 0; i < 100 && agent.view.roleStatus().gateway?.state !== 'ok'; i++) await new Promise((r) => setTimeout(r, 100));
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    await serf?.stop();
    await bed?.destroy();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('applies: dnsmasq answers, forwarding is on, the ruleset is in force', async () => {
    expect(agent.view.roleStatus().gateway, JSON.stringify(logs.filter((l) => Number(l.level) >= 50))).toMatchObject({ state: 'ok' });
    expect((await bed.exec('gw', ['sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim()).toBe('1');
    expect((await bed.exec('gw', ['iptables', '-S', 'INPUT'])).stdout).toContain('-P INPUT DROP');
    expect((await bed.exec('gw', ['iptables', '-t', 'nat', '-S'])).stdout).toContain('169.254.169.254/32');
  });

  it('leases an address with router, DNS and domain; a reservation gets its address', async () => {
    const lease = await bed.dhcp({ hostname: 'client1' });
    expect(lease.ip).toMatch(/^10\.88\.0\.1\d\d$/);
    expect(lease).toMatchObject({ router: '10.88.0.1', dns: '10.88.0.1', domain: 'mammatus' });
    const reserved = await bed.dhcp({ mac: RESERVED_MAC });
    expect(reserved.ip).toBe('10.88.0.21');
  });

  it('hands out boot files per client architecture and an HTTP script to iPXE (no loop)', async () => {
    expect((await bed.dhcp({ options: ['-x', '0x5d:0000'] })).bootFile).toBe('undionly.kpxe');
    expect((await bed.dhcp({ options: ['-x', '0x5d:0007'] })).bootFile).toBe('snponly.efi');
    expect((await bed.dhcp({ options: ['-x', '0x5d:000b'] })).bootFile).toBe('ipxe-arm64.efi');
    expect((await bed.dhcp({ options: ['-x', '0x5d:0007', '-x', '0x4d:69505845'] })).bootFile).toBe('http://10.88.0.10:8080/boot.ipxe');
  });

  it('serves TFTP read-only', async () => {
    const got = await bed.curl('cl', 'tftp://10.88.0.1/undionly.kpxe');
    expect(got.body).toBe('fake bios loader\n');
    writeFileSync(path.join(bed.dir, 'upload.txt'), 'x');
    const put = await bed.curl('cl', 'tftp://10.88.0.1/upload.txt', { args: ['-T', path.join(bed.dir, 'upload.txt')] });
    expect(put.code).not.toBe(0);
  });

  it('answers *.mammatus locally (members, the gateway, NXDOMAIN) and forwards the rest', async () => {
    expect((await bed.dig('gateway.mammatus')).answers).toEqual(['10.88.0.1']);
    expect((await bed.dig('gw1.mammatus')).answers).toEqual(['127.0.0.1']);
    expect((await bed.dig('nothere.mammatus')).status).toBe('NXDOMAIN');
    expect((await bed.dig('example.test')).answers).toEqual(['203.0.113.80']);
    expect(upstream.dnsLog()).toContain('example.test');
    expect(upstream.dnsLog()).not.toContain('nothere.mammatus');
  });

  it('adds a member’s name when it joins and removes it when it leaves, without restarting dnsmasq', async () => {
    const logMark = logs.length;
    const other = await startSerfAgent({ name: 'compute7', dir: path.join(tmp, 'serf7') });
    const client = await SerfClient.connect({ addr: serf.rpcAddr });
    try {
      await client.join([other.bindAddr]);
      for (let i = 0; i < 50 && (await bed.dig('compute7.mammatus')).answers.length === 0; i++)
        await new Promise((r) => setTimeout(r, 100));
      expect((await bed.dig('compute7.mammatus')).answers).toEqual(['127.0.0.1']);
      await other.stop(); // graceful leave
      for (let i = 0; i < 80 && (await bed.dig('compute7.mammatus')).status !== 'NXDOMAIN'; i++)
        await new Promise((r) => setTimeout(r, 100));
      expect((await bed.dig('compute7.mammatus')).status).toBe('NXDOMAIN');
    } finally {
      await other.kill();
      client.close();
    }
    const confChanges = logs.slice(logMark).filter((l) => l.msg === 'role applied' && JSON.stringify(l.changed).includes('dnsmasq.conf'));
    expect(confChanges).toEqual([]);
  });

  it.skipIf(Boolean(missingTools(['dhcp_release'])))(
    'releases the DHCP lease named after a member that left: its name goes with it',
    async () => {
      // A PXE-booted node leases its address (with its hostname) before its agent joins Serf.
      const lease = await bed.dhcp({ mac: '02:00:00:00:00:77', hostname: 'compute8' });
      expect(lease.ip).toMatch(/^10\.88\.0\.\d+$/);
      await until('compute8.mammatus from its lease', async () => (await bed.dig('compute8.mammatus')).answers[0] === lease.ip, 3000);
      // Stopped (if it still runs) when this test ends, whatever happens.
      await using other = await startSerfAgent({ name: 'compute8', dir: path.join(tmp, 'serf8') });
      const client = await SerfClient.connect({ addr: serf.rpcAddr });
      try {
        await client.join([other.bindAddr]);
        await until('compute8 in the members file', () => readFileSync(path.join(tmp, 'members'), 'utf8').includes('compute8'), 5000);
        await other.stop(); // graceful leave
        await until('compute8.mammatus gone', async () => (await bed.dig('compute8.mammatus')).status === 'NXDOMAIN', 8000);
        expect(readFileSync(path.join(tmp, 'leases/dnsmasq.leases'), 'utf8')).not.toContain('02:00:00:00:00:77');
      } finally {
        client.close();
      }
    },
  );

  it('NATs the LAN to the WAN, blocks WAN to LAN, and forwards a declared port', async () => {
    await bed.dhcp({ hostname: 'client1' });
    const out = await bed.curl('cl', 'http://203.0.113.1/');
    expect(out.body).toBe('upstream ok\n');
    expect(upstream.httpLog()).toMatch(/^203\.0\.113\.2 /m);
    bed.spawn('ctl', [process.execPath, '-e', "require('http').createServer((q,s)=>s.end('ctl ok\\n')).listen(80,'10.88.0.10')"]);
    await new Promise((r) => setTimeout(r, 300));
    await bed.addUpstreamRouteToLan();
    expect((await bed.curl('up', 'http://10.88.0.10/', { timeoutS: 2 })).code).toBe(28);
    expect((await bed.curl('up', 'http://203.0.113.2:8080/')).body).toBe('ctl ok\n');
  });

  it('exports its leases, its pool and the counters of the forwarding rules in force (iptables-save -c in the namespace)', async () => {
    const rule = (name: string) => `mammatus_gateway_forward_packets_total{rule="${name}"}`;
    const [leases, pool, lanToWan, portForward, refused] = await seriesValues(
      'mammatus_gateway_dhcp_leases',
      'mammatus_gateway_dhcp_pool_size',
      rule('forward:lan>wan:accept'),
      rule('prerouting:wan:tcp/8080:dnat'),
      rule('forward:policy:drop'),
    );
    expect(leases).toBeGreaterThanOrEqual(2); // client1 and the reservation
    expect(pool).toBe(100);
    // The NAT test's traffic: out through the masquerade, in through the port forward, and the
    // WAN host's try at the LAN refused.
    expect(lanToWan).toBeGreaterThan(0);
    expect(portForward).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
  });

  it('records lease events and answers mammatus.leases', async () => {
    const spool = readFileSync(path.join(tmp, 'leases', 'lease-events'), 'utf8');
    expect(spool).toMatch(/^add\t[0-9a-f:]{17}\t10\.88\.0\.\d+\tclient1\t/m);
    // Addresses go only to an operator: an unsigned ask gets the refusal, a signed one the lease.
    const { stdout } = await exec('serf', ['query', `-rpc-addr=${serf.rpcAddr}`, '-format=json', 'mammatus.leases', '10.88.0.21']);
    expect((JSON.parse(stdout) as { Responses: Record<string, string> }).Responses.gw1).toMatch(/^\{"error":"refused: unsigned/);
    const out: string[] = [];
    const args = [
      '--rpc-addr',
      serf.rpcAddr,
      'query',
      'mammatus.leases',
      '10.88.0.21',
      '--identity',
      operatorKey,
      '--json',
      '--timeout',
      '1s',
    ];
    expect(await runCli(args, { out: (l) => out.push(l), err: (l) => out.push(l) }, {})).toBe(0);
    const answer = JSON.parse((JSON.parse(out.join('\n')) as { responses: Record<string, string> }).responses.gw1) as {
      leases: string[][];
    };
    expect(answer.leases[0]).toEqual([RESERVED_MAC, '10.88.0.21', expect.any(String), expect.any(Number)]);
  });

  it('restarts dnsmasq when it is killed', async () => {
    // Only the gateway namespace's dnsmasq: network namespaces share the PID space, and a `pkill -x
    // dnsmasq` would take down every other test's dnsmasq on the machine too.
    const pids = (await exec('ip', ['netns', 'pids', bed.ns.gw])).stdout.split('\n').filter(Boolean);
    const ours = pids.filter((pid) => readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'dnsmasq');
    expect(ours.length).toBeGreaterThan(0);
    for (const pid of ours) process.kill(Number(pid), 'SIGTERM');
    await new Promise((r) => setTimeout(r, 1500));
    expect((await bed.dig('gateway.mammatus')).answers).toEqual(['10.88.0.1']);
    expect(logs.some((l) => l.msg === 'dnsmasq exited; restarting it')).toBe(true);
  });

  it('refuses a config naming a port the node does not have, keeping the working setup', async () => {
    const before = (await bed.exec('gw', ['iptables-save'])).stdout.replace(/^#.*\n/gm, '');
    const good = readFileSync(configPath, 'utf8');
    writeFileSync(configPath, good.replace(`interface: ${bed.ifaces.gwWan}`, 'interface: nosuch0'));
    expect(await agent.reload()).toBe(true);
    expect(agent.view.roleStatus().gateway).toMatchObject({
      state: 'error',
      error: expect.stringContaining('network interface nosuch0 not found'),
    });
    expect((await bed.exec('gw', ['iptables-save'])).stdout.replace(/^#.*\n/gm, '')).toBe(before);
    expect((await bed.dig('gateway.mammatus')).answers).toEqual(['10.88.0.1']);
    writeFileSync(configPath, good);
    await agent.reload();
    expect(agent.view.roleStatus().gateway?.state).toBe('ok');
  });
});
