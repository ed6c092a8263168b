/**
 * The instance metadata path end to end, in network namespaces: a client gets its address from the
 * gateway's DHCP, asks 169.254.169.254; the gateway redirects to its metadata proxy (a child of the
 * gateway role), which adds the client's IP and MAC (from dnsmasq's leases) signed with the cluster
 * secret and forwards to the metadata service on a controller host (`ctl`, with its own nats-server).
 * cloud-init's own NoCloud reader runs inside the client namespace, as on a real instance.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { execFile } from 'node:child_process';
import os from 'node:os';
import { promisify } from 'node:util';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/daemon.js';
import { BUNDLE } from '../../scripts/lib/mammatus-agent.js';
import { natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { InstanceRegistry } from '../../src/registry/registry.js';
import { connectNats } from '../../core/nats.js';
import { serfAvailable } from '../../scripts/lib/serf-agent.js';
import { startBedGateway, startControllerHost, type BedGateway, type ControllerHost } from '../../scripts/lib/metadata-bed.js';
import { until } from '../../scripts/lib/wait.js';
import { ensureSystemUser, procArgsAndEnv, procIdentity } from '../../scripts/lib/proc.js';
import { buildGatewayBed, canUseNetns, missingTools, type GatewayBed } from '../../scripts/lib/netns-bed.js';

const PY = '/usr/bin/python3';
const skip =
  canUseNetns() ??
  missingTools(['busybox', 'curl', 'dnsmasq', 'iptables-restore']) ??
  (serfAvailable() ? undefined : 'serf is missing') ??
  (natsServerAvailable() ? undefined : 'nats-server is missing') ??
  (existsSync(BUNDLE) ? undefined : `${BUNDLE} is missing (npm run build)`);
if (skip) console.warn(`gateway metadata tests skipped: ${skip}`);
const hasCloudInit = existsSync('/usr/lib/python3/dist-packages/cloudinit');

const CLIENT_MAC = '02:00:00:00:00:44';
const execFileAsync = promisify(execFile);

const USER_DATA = '#cloud-config\nhostname: from-user-data\n';

describe.skipIf(Boolean(skip))('instance metadata through the gateway', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-gwmd-'));
  let bed: GatewayBed;
  let host: ControllerHost;
  let gw: BedGateway;
  let agent: Agent;
  // ctl's registry, through the bridge: the one the metadata service and the gateway's feed read.
  let registry: InstanceRegistry;
  let nc: Awaited<ReturnType<typeof connectNats>>;
  const logs: Record<string, unknown>[] = [];
  const p = (name: string) => path.join(tmp, name);

  beforeAll(async () => {
    chmodSync(tmp, 0o755); // dnsmasq drops to nobody
    bed = await buildGatewayBed({ prefix: 'gmd' });
    host = await startControllerHost(bed, p('ctl'));
    nc = await connectNats(host.natsUrl, { name: 'test', credentials: host.credentials });
    registry = await InstanceRegistry.open(nc);
    await registry.register({ name: 'vm-1', macs: [CLIENT_MAC], user_data: Buffer.from(USER_DATA) });
    gw = await startBedGateway(
      bed,
      p('gw'),
      host,
      pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) }),
    );
    agent = gw.agent;
    const lease = await bed.dhcp({ mac: CLIENT_MAC, hostname: 'vm-1' });
    expect(lease.ip).toMatch(/^10\.88\.0\.\d+$/);
  }, 90_000);

  afterAll(async () => {
    await gw?.stop();
    await nc?.close();
    await host?.close();
    await bed?.destroy();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('the gateway role runs the proxy', () => {
    expect(agent.view.roleStatus().gateway, JSON.stringify(logs.filter((l) => Number(l.level) >= 50))).toMatchObject({ state: 'ok' });
  });

  it('an instance reads its own metadata at 169.254.169.254, identified by its leased MAC', async () => {
    let got = await bed.curl('cl', 'http://169.254.169.254/latest/meta-data/local-hostname');
    for (let i = 0; i < 30 && got.body !== 'vm-1'; i++) {
      await new Promise((r) => setTimeout(r, 200));
      got = await bed.curl('cl', 'http://169.254.169.254/latest/meta-data/local-hostname');
    }
    expect(got.body).toBe('vm-1');
    expect((await bed.curl('cl', 'http://169.254.169.254/latest/user-data')).body).toBe(USER_DATA);
  });

  it("the proxy's answers reach the instance with TTL 1 (the hop limit): one router further they would die", async () => {
    // Counting rules in the instance's namespace (no target: they only count what arrives).
    const rule = (op: string, ttl: string[]) => [
      'iptables',
      op,
      'INPUT',
      '-s',
      '169.254.169.254',
      '-p',
      'tcp',
      '--sport',
      '80',
      '-m',
      'ttl',
      ...ttl,
    ];
    const eq1 = ['--ttl-eq', '1'];
    const gt1 = ['--ttl-gt', '1'];
    for (const ttl of [eq1, gt1]) expect((await bed.exec('cl', rule('-I', ttl))).code).toBe(0);
    try {
      expect((await bed.curl('cl', 'http://169.254.169.254/latest/meta-data/local-hostname')).body).toBe('vm-1');
      const listed = (await bed.exec('cl', ['iptables', '-L', 'INPUT', '-v', '-x', '-n'])).stdout.split('\n');
      const packets = (match: string) =>
        Number(
          listed
            .find((l) => l.includes(match))
            ?.trim()
            .split(/\s+/)[0] ?? -1,
        );
      expect(packets('TTL match TTL == 1')).toBeGreaterThan(0);
      expect(packets('TTL match TTL > 1')).toBe(0);
    } finally {
      for (const ttl of [eq1, gt1]) await bed.exec('cl', rule('-D', ttl));
    }
  });

  it('identity headers sent by the instance itself are dropped by the proxy', async () => {
    const got = await bed.curl('cl', 'http://169.254.169.254/latest/meta-data/local-hostname', {
      args: ['-H', 'X-Mammatus-Client-MAC: 02:00:00:00:00:99', '-H', 'X-Mammatus-Signature: 00'],
    });
    expect(got.body).toBe('vm-1');
  });

  it('the proxy runs as the mammatus user without capabilities or the secret in /proc, and comes back when killed', async () => {
    const uid = ensureSystemUser('mammatus');
    const pids = () =>
      logs.filter((l) => l.msg === 'metadata-proxy ready' && typeof l.child_pid === 'number').map((l) => l.child_pid as number);
    const [first] = pids();
    expect(first, 'the proxy said ready').toBeTypeOf('number');
    const id = procIdentity(first);
    expect(id.uids).toEqual([uid, uid, uid, uid]);
    expect(id.groups).toEqual([]);
    expect([id.capEff, id.capPrm]).toEqual(['0000000000000000', '0000000000000000']);
    console.log(`gateway bed: metadata proxy RSS ${id.rssKb} KiB`);
    const { cmdline, environ } = procArgsAndEnv(first);
    expect(cmdline).toContain('service run metadata-proxy');
    const secret = readFileSync(host.secretFile, 'utf8').trim();
    expect(cmdline + environ).not.toContain(secret);

    process.kill(first, 'SIGKILL');
    await until('the proxy restarted', () => pids().length > 1, { timeoutMs: 15_000 });
    const second = pids().at(-1)!;
    expect(second).not.toBe(first);
    expect(procIdentity(second).uids[1]).toBe(uid);
    await until('metadata through the restarted proxy', async () => {
      return (await bed.curl('cl', 'http://169.254.169.254/latest/meta-data/local-hostname')).body === 'vm-1';
    });
  });

  it.skipIf(!hasCloudInit)("cloud-init's NoCloud datasource in the instance reads its seed through the gateway", async () => {
    const script =
      'import json,sys,tempfile; from cloudinit import helpers,distros; from cloudinit.sources import DataSourceNoCloud as N; t=tempfile.mkdtemp(); p=helpers.Paths({"cloud_dir":t,"run_dir":t}); d=N.DataSourceNoCloudNet({"datasource":{"NoCloud":{"seedfrom":"http://169.254.169.254/nocloud/","fs_label":None}}}, distros.fetch("debian")("debian",{},p), p); ok=d.get_data(); print(json.dumps({"ok":ok,"id":d.get_instance_id(),"host":d.get_hostname().hostname,"ud":d.get_userdata_raw().decode()}))';
    const res = await bed.exec('cl', [PY, '-c', script], { timeoutMs: 60_000 });
    expect(res.code, res.stderr).toBe(0);
    const out = JSON.parse(res.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    expect(out).toMatchObject({ ok: true, host: 'vm-1', ud: USER_DATA });
    expect(out.id).toMatch(/^i-[0-9a-f]{17}$/);
  });

  it("reserves a registered instance's address and name from the registry, and drops a removed one's name", async () => {
    await registry.register({ name: 'vm-2', macs: ['02:00:00:00:00:45'], ips: ['10.88.0.50'] });
    let answers: string[] = [];
    for (let i = 0; i < 50 && answers[0] !== '10.88.0.50'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      answers = (await bed.dig('vm-2.mammatus')).answers;
    }
    expect(answers).toEqual(['10.88.0.50']);
    const lease = await bed.dhcp({ mac: '02:00:00:00:00:45' });
    expect(lease.ip).toBe('10.88.0.50');
    // A removed instance's name goes (one that holds a lease keeps it, by that lease, until it ends).
    await registry.register({ name: 'vm-3', macs: ['02:00:00:00:00:46'], ips: ['10.88.0.51'] });
    for (let i = 0; i < 50 && (await bed.dig('vm-3.mammatus')).answers[0] !== '10.88.0.51'; i++)
      await new Promise((r) => setTimeout(r, 100));
    expect((await bed.dig('vm-3.mammatus')).answers).toEqual(['10.88.0.51']);
    await registry.remove('vm-3');
    let status = '';
    for (let i = 0; i < 50 && status !== 'NXDOMAIN'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = (await bed.dig('vm-3.mammatus')).status;
    }
    expect(status).toBe('NXDOMAIN');
  });

  it.skipIf(Boolean(missingTools(['dhcp_release'])))(
    "releases a removed instance's lease: its name is gone within 1 s, and the next holder of the address is the only name on it",
    async () => {
      const mac4 = '02:00:00:00:00:47';
      await registry.register({ name: 'vm-4', macs: [mac4] });
      await until('the reservation of vm-4', () => existsSync(p('gw/dhcp-hosts.d/vm-4')));
      const lease = await bed.dhcp({ mac: mac4, hostname: 'vm-4' });
      const ip = lease.ip!;
      await until('vm-4.mammatus from its lease', async () => (await bed.dig('vm-4.mammatus')).answers[0] === ip);

      await registry.remove('vm-4');
      const removed = Date.now();
      await until('vm-4.mammatus gone', async () => (await bed.dig('vm-4.mammatus')).status === 'NXDOMAIN', {
        timeoutMs: 5000,
        everyMs: 20,
      });
      const took = Date.now() - removed;
      console.log(`gateway bed: vm-4.mammatus gone ${took} ms after its record`);
      expect(took, `name gone ${took} ms after the record`).toBeLessThan(1000);
      expect(readFileSync(p('gw/leases/dnsmasq.leases'), 'utf8')).not.toContain(mac4);
      expect(logs.some((l) => l.msg === 'DHCP lease released' && l.mac === mac4)).toBe(true);

      // Another instance on the very address: only its own name points there.
      await registry.register({ name: 'vm-5', macs: ['02:00:00:00:00:48'], ips: [ip] });
      await until('vm-5.mammatus', async () => (await bed.dig('vm-5.mammatus')).answers[0] === ip);
      expect((await bed.dhcp({ mac: '02:00:00:00:00:48', hostname: 'vm-5' })).ip).toBe(ip);
      const reverse = await bed.dig(`${ip.split('.').reverse().join('.')}.in-addr.arpa`, 'PTR');
      expect(reverse.answers).toEqual(['vm-5.mammatus.']);
      expect((await bed.dig('vm-4.mammatus')).status).toBe('NXDOMAIN');
    },
  );

  it("says why an instance is left out: at register, in instance list and show, and in the gateway's status", async () => {
    const cli = async (...args: string[]) => {
      const r = await execFileAsync(
        process.execPath,
        [BUNDLE, '--rpc-addr', gw.serf.rpcAddr, '--credentials', host.credentialsFile, ...args],
        { timeout: 30_000 },
      ).catch((e: { code: number; stdout: string; stderr: string }) => e);
      return { code: 'code' in r && typeof r.code === 'number' ? r.code : 0, stdout: r.stdout, stderr: r.stderr };
    };
    const reg = await cli('instance', 'register', 'on-gw', '--mac', '02:00:00:00:00:51', '--ip', '10.88.0.1', '--nats', host.natsUrl);
    expect(reg.code).toBe(0);
    expect(reg.stderr).toContain("warning: gw1 leaves on-gw out: address 10.88.0.1 is the gateway's own address");
    const named = await cli('instance', 'register', 'gw1', '--mac', '02:00:00:00:00:52', '--nats', host.natsUrl);
    expect(named.stderr).toContain("warning: gw1 leaves gw1 out: name gw1 is member gw1's name");
    const fine = await cli('instance', 'register', 'fine-1', '--mac', '02:00:00:00:00:53', '--ip', '10.88.0.53', '--nats', host.natsUrl);
    expect(fine.stderr).not.toContain('warning');

    await until('the gateway applied them', () => agent.view.roleStatus().gateway?.detail?.includes('2 left out') === true);
    const list = await cli('instance', 'list', '--nats', host.natsUrl);
    expect(list.stdout).toContain("  ! gw1 leaves on-gw out: address 10.88.0.1 is the gateway's own address");
    expect(list.stdout).toContain("  ! gw1 leaves gw1 out: name gw1 is member gw1's name");
    const json = JSON.parse((await cli('instance', 'list', '--nats', host.natsUrl, '--json')).stdout) as {
      name: string;
      gateways?: unknown;
    }[];
    expect(json.find((r) => r.name === 'on-gw')?.gateways).toEqual([
      { gateway: 'gw1', served: false, reason: "address 10.88.0.1 is the gateway's own address" },
    ]);
    expect(json.find((r) => r.name === 'fine-1')?.gateways).toBeUndefined();
    const show = await cli('instance', 'show', 'on-gw', '--nats', host.natsUrl);
    expect(show.stdout).toContain("gateway:     gw1 leaves on-gw out: address 10.88.0.1 is the gateway's own address");
    expect((await cli('instance', 'show', 'fine-1', '--nats', host.natsUrl)).stdout).toContain('gateway:     gw1 serves fine-1');
    const status = await cli('status', '--json');
    expect(JSON.stringify(JSON.parse(status.stdout))).toMatch(/instances served, 2 left out \((gw1|on-gw): /);
    expect(logs.some((l) => l.msg === 'registered instance left out' && l.instance === 'on-gw')).toBe(true);
    for (const name of ['on-gw', 'gw1', 'fine-1']) await registry.remove(name);
  });

  it('a LAN host that bypasses the proxy is not identified (the service trusts signed callers only)', async () => {
    const got = await bed.curl('cl', 'http://10.88.0.10:8775/latest/meta-data/instance-id');
    expect(got.status).toBe(404);
  });
});
