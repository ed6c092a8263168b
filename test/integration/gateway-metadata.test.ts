/**
 * The instance metadata path end to end, in network namespaces: a client gets its address from the
 * gateway's DHCP, asks 169.254.169.254; the gateway redirects to its metadata proxy (a child of the
 * gateway role), which adds the client's IP and MAC (from dnsmasq's leases) signed with the cluster
 * secret and forwards to the metadata service on a controller host (`ctl`, with its own nats-server).
 * cloud-init's own NoCloud reader runs inside the client namespace, as on a real instance.
 */
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/daemon.js';
import { BUNDLE } from '../../scripts/lib/mammatus-agent.js';
import { natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { InstanceRegistry } from '../../src/metadata/registry.js';
import { connectNats } from '../../src/nats.js';
import { serfAvailable } from '../../scripts/lib/serf-agent.js';
import { startBedGateway, startControllerHost, type BedGateway, type ControllerHost } from '../helpers/metadata-bed.js';
import { buildGatewayBed, canUseNetns, missingTools, type GatewayBed } from '../helpers/netns.js';

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
    nc = await connectNats(host.natsUrl, { name: 'test' });
    registry = await InstanceRegistry.open(nc);
    await registry.register({ name: 'vm-1', macs: [CLIENT_MAC], user_data: Buffer.from(USER_DATA) });
    gw = await startBedGateway(bed, p('gw'), host, pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) }));
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

  it('identity headers sent by the instance itself are dropped by the proxy', async () => {
    const got = await bed.curl('cl', 'http://169.254.169.254/latest/meta-data/local-hostname', {
      args: ['-H', 'X-Mammatus-Client-MAC: 02:00:00:00:00:99', '-H', 'X-Mammatus-Signature: 00'],
    });
    expect(got.body).toBe('vm-1');
  });

  it.skipIf(!hasCloudInit)('cloud-init\'s NoCloud datasource in the instance reads its seed through the gateway', async () => {
    const script =
      'import json,sys,tempfile; from cloudinit import helpers,distros; from cloudinit.sources import DataSourceNoCloud as N; t=tempfile.mkdtemp(); p=helpers.Paths({"cloud_dir":t,"run_dir":t}); d=N.DataSourceNoCloudNet({"datasource":{"NoCloud":{"seedfrom":"http://169.254.169.254/nocloud/","fs_label":None}}}, distros.fetch("debian")("debian",{},p), p); ok=d.get_data(); print(json.dumps({"ok":ok,"id":d.get_instance_id(),"host":d.get_hostname().hostname,"ud":d.get_userdata_raw().decode()}))';
    const res = await bed.exec('cl', [PY, '-c', script], { timeoutMs: 60_000 });
    expect(res.code, res.stderr).toBe(0);
    const out = JSON.parse(res.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    expect(out).toMatchObject({ ok: true, host: 'vm-1', ud: USER_DATA });
    expect(out.id).toMatch(/^i-[0-9a-f]{17}$/);
  });

  it('reserves a registered instance\'s address and name from the registry, and drops a removed one\'s name', async () => {
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
    for (let i = 0; i < 50 && (await bed.dig('vm-3.mammatus')).answers[0] !== '10.88.0.51'; i++) await new Promise((r) => setTimeout(r, 100));
    expect((await bed.dig('vm-3.mammatus')).answers).toEqual(['10.88.0.51']);
    await registry.remove('vm-3');
    let status = '';
    for (let i = 0; i < 50 && status !== 'NXDOMAIN'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = (await bed.dig('vm-3.mammatus')).status;
    }
    expect(status).toBe('NXDOMAIN');
  });

  it('a LAN host that bypasses the proxy is not identified (the service trusts signed callers only)', async () => {
    const got = await bed.curl('cl', 'http://10.88.0.10:8775/latest/meta-data/instance-id');
    expect(got.status).toBe(404);
  });
});
