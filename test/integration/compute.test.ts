/**
 * The compute role end to end, in network namespaces: the gateway bed (dnsmasq for DHCP/DNS and the
 * metadata proxy, run by the gateway role in-process), the controller host `ctl` (nats-server and
 * the metadata service), and a compute node namespace with its own LXD whose macvlan parent is a
 * veth on the bed's switch. The compute role runs in-process (applied with the framework, then
 * started) and follows the same registry as the metadata service: `ctl`'s NATS, reached from this
 * (root) namespace through a unix-socket bridge, since unix sockets cross network namespaces.
 *
 * `mammatus instance launch` → the role creates and starts the container with its MAC fixed → it
 * gets an address from the gateway's DHCP → the role writes that address back → cloud-init inside
 * reports NoCloud with our user-data applied → the instance reads its id at 169.254.169.254;
 * `mammatus instance delete` → the container and the record are gone.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../agent/cli/program.js';
import { imageImportCommand } from '../../agent/cli/image.js';
import { buildRun } from '../../core/exec.js';
import { buildFileOps } from '../../core/files.js';
import { applyRole } from '../../roles/apply.js';
import { buildComputeRole, type ComputeRole } from '../../roles/compute/index.js';
import { openComputeRegistry } from '../../src/registry/compute-link.js';
import { LxdClient } from '../../src/lxd/client.js';
import type { DesiredState } from '../../roles/types.js';
import type { Run } from '../../core/contracts.js';
import { BUNDLE } from '../../scripts/lib/mammatus-agent.js';
import { natsServerAvailable } from '../../scripts/lib/nats-server.js';
import { serfAvailable } from '../../scripts/lib/serf-agent.js';
import { InstanceRegistry } from '../../src/registry/registry.js';
import { connectNats } from '../../core/nats.js';
import { startBedGateway, startControllerHost, type BedGateway, type ControllerHost } from '../../scripts/lib/metadata-bed.js';
import { buildGatewayBed, canUseNetns, missingTools, type GatewayBed } from '../../scripts/lib/netns-bed.js';
import { startLxdNode, type LxdNode } from '../../scripts/lib/lxd-netns.js';
import { until } from '../../scripts/lib/wait.js';
import { volumeIqn, type VolumeRecord } from '../../core/volume-record.js';
import type { AttachedVolumeFeed } from '../../roles/compute/volumes.js';
import { iscsiStandIn, type IscsiStandIn } from '../helpers/iscsi-standin.js';

const IMAGE_SCRIPT = path.join(import.meta.dirname, '../../scripts/build-image.sh');
const skip =
  canUseNetns() ??
  missingTools(['lxd', 'lxc', 'unshare', 'busybox', 'curl', 'dig', 'dnsmasq', 'iptables-restore']) ??
  (serfAvailable() ? undefined : 'serf is missing') ??
  (natsServerAvailable() ? undefined : 'nats-server is missing') ??
  (existsSync(BUNDLE) ? undefined : `${BUNDLE} is missing (npm run build)`);
if (skip) console.warn(`compute end-to-end test skipped: ${skip}`);

const USER_DATA = '#cloud-config\nruncmd:\n  - [sh, -c, "echo user-data-applied > /run/mammatus-e2e"]\n';

describe.skipIf(Boolean(skip))('compute: launch a container on a compute node, end to end', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-compute-'));
  const p = (name: string) => path.join(tmp, name);
  const logs: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) });
  let bed: GatewayBed;
  let node: LxdNode;
  let host: ControllerHost;
  let gw: BedGateway;
  let compute: ComputeRole;
  let natsUrl = '';
  // The volume side: the attached-volume feed as the test sets it (the registry's side is
  // volumes.test.ts), open-iscsi stood in (no iscsi_tcp here), loop devices as the volumes' disks.
  let attached: readonly VolumeRecord[] = [];
  let pushVolumes: (v: readonly VolumeRecord[]) => void = () => undefined;
  const volumeFeed: AttachedVolumeFeed = async (_servers, _node, onChange) => {
    pushVolumes = onChange;
    onChange(attached);
    return { close: async () => void (pushVolumes = () => undefined) };
  };
  const loopDevices = new Map<string, string>();
  let iscsi: IscsiStandIn | undefined;
  let registry: InstanceRegistry;
  let nc: Awaited<ReturnType<typeof connectNats>>;
  const cli = async (...argv: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(
      ['--rpc-addr', '127.0.0.1:1', '--credentials', host.credentialsFile, ...argv],
      { out: (l) => void out.push(l), err: (l) => void err.push(l) },
      {},
    );
    return { code, out: out.join('\n'), err: err.join('\n') };
  };

  beforeAll(async () => {
    chmodSync(tmp, 0o755); // dnsmasq drops to nobody
    // Built once and cached (a cache hit answers at once; a build takes minutes).
    const image = execFileSync(IMAGE_SCRIPT, [], { encoding: 'utf8', timeout: 900_000, stdio: ['ignore', 'pipe', 'inherit'] }).trim();
    bed = await buildGatewayBed({ prefix: 'cmp' });
    // The controller host in `ctl` (reached through a bridge) and the gateway following its registry.
    host = await startControllerHost(bed, p('ctl'));
    natsUrl = host.natsUrl;
    nc = await until(
      'NATS through the bridge',
      () => connectNats(natsUrl, { name: 'test', timeoutMs: 2000, credentials: host.credentials }),
      20_000,
    );
    registry = await InstanceRegistry.open(nc);
    gw = await startBedGateway(bed, p('gw'), host, log.child({ node: 'gw1' }));
    expect(gw.agent.view.roleStatus().gateway?.state).toBe('ok');

    // The compute node: its own LXD in its own namespace; the image imported through our CLI code.
    node = await startLxdNode(bed, p('cn'));
    const imported = await imageImportCommand(
      image,
      { alias: 'mammatus-test', lxdSocket: node.socket },
      { out: () => undefined, err: (l) => console.error(l) },
    );
    expect(imported).toBe(0);
    compute = await startCompute();
  }, 900_000);

  /** The compute node's agent, as far as this test needs it: the role applied, then started. */
  async function startCompute(): Promise<ComputeRole> {
    const inner = buildRun();
    iscsi ??= iscsiStandIn((file, args, o) => inner('ip', ['netns', 'exec', node.ns, file, ...args], o), loopDevices);
    const run2: Run = iscsi.run;
    const identity = { node: 'cn1', credentials: host.node('cn1') };
    const role = buildComputeRole({
      instanceFeed: (servers, onChange, l) => openComputeRegistry(servers, onChange, l, identity),
      volumeFeed,
      deviceWaitMs: 2000,
      pollMs: 1000,
    });
    const desired: DesiredState = {
      node: 'cn1',
      members: [],
      config: {
        parent: node.lan,
        lxd: { socket: node.socket },
        registry: { nats: [natsUrl] },
        paths: { preseed: p('compute/preseed.yaml') },
      },
    };
    const clog = log.child({ node: 'cn1' });
    const report = await applyRole(role, desired, { run: run2, files: buildFileOps(), log: clog });
    expect(report.ok, report.error).toBe(true);
    await role.start!({ run: run2, files: buildFileOps(), log: clog, desired, reconcile: () => undefined });
    return role;
  }

  afterAll(async () => {
    await compute?.stop?.();
    iscsi?.cleanup();
    for (const loop of loopDevices.values()) execFileSync('losetup', ['-d', loop]);
    await gw?.stop();
    await nc?.close().catch(() => undefined);
    await host?.close();
    await node?.destroy();
    await bed?.destroy();
    rmSync(tmp, { recursive: true, force: true });
  }, 120_000);

  it('set LXD up from the preseed: pool, profiles, no managed network', async () => {
    expect((await node.lxc(['storage', 'list', '--format', 'csv'])).stdout).toMatch(/^mammatus,dir,/m);
    expect((await node.lxc(['profile', 'device', 'get', 'mammatus', 'eth0', 'parent'])).stdout.trim()).toBe('cn-lan');
    expect((await node.lxc(['network', 'list', '--format', 'csv'])).stdout).not.toMatch(/managed|YES/);
  });

  it('launch → the container runs with its MAC, gets a DHCP address written back, cloud-init applies our user-data, metadata answers its id', async () => {
    writeFileSync(p('user-data'), USER_DATA);
    // --wait returns once the node reports it running with the address it got from the gateway.
    const launched = await cli(
      'instance',
      'launch',
      'c1',
      '--image',
      'mammatus-test',
      '--node',
      'cn1',
      '--user-data',
      p('user-data'),
      '--nats',
      natsUrl,
      '--wait',
      '3m',
    );
    expect(launched.code, launched.err).toBe(0);
    const rec = await registry.get('c1');
    const ip = rec.ips[0];
    expect(launched.out).toBe(`c1 (${rec.id}) runs on cn1 at ${ip}`);
    expect(ip).toMatch(/^10\.88\.0\.\d+$/);
    expect((await node.lxc(['config', 'get', 'c1', 'volatile.eth0.hwaddr'])).stdout.trim()).toBe(rec.macs[0]);
    const status = await node.lxc(['exec', 'c1', '--', 'cloud-init', 'status', '--wait', '--long'], 180_000);
    expect(status.stdout).toMatch(/status: done/);
    expect(status.stdout).toMatch(/DataSourceNoCloudNet.*169\.254\.169\.254/);
    expect((await node.lxc(['exec', 'c1', '--', 'cat', '/run/mammatus-e2e'])).stdout.trim()).toBe('user-data-applied');
    const id = await node.lxc(['exec', 'c1', '--', 'curl', '-s', '-m', '5', 'http://169.254.169.254/latest/meta-data/instance-id']);
    expect(id.stdout.trim()).toBe(rec.id);
    const dns = await until(
      'c1.mammatus at the gateway',
      async () => {
        const r = await bed.dig('c1.mammatus', 'A', bed.addrs.gwLan, 'ctl');
        return r.answers[0] === ip ? r : undefined;
      },
      30_000,
    );
    expect(dns.status).toBe('NOERROR');
    // The live side: the node recorded what LXD shows, and `instance list` says so.
    expect((await registry.get('c1')).observed?.status).toBe('running');
    expect((await cli('instance', 'list', '--nats', natsUrl)).out).toMatch(/^c1\s.*\srunning\s+running$/m);
  }, 400_000);

  it('the agent restarted mid-launch: LXD finishes what it started and the new agent completes the launch', async () => {
    expect((await cli('instance', 'launch', 'c2', '--image', 'mammatus-test', '--node', 'cn1', '--nats', natsUrl)).code).toBe(0);
    // The moment LXD has the container (its create may still be unpacking the image), the agent dies.
    await until(
      'c2 in LXD',
      async () => ((await node.lxc(['list', 'c2', '--format', 'csv', '-c', 'n'])).stdout.trim() === 'c2' ? true : undefined),
      60_000,
    );
    await compute.stop!();
    compute = await startCompute();
    const ip = await until(
      'c2 running with its address',
      async () => {
        const r = await registry.get('c2');
        return r.observed?.status === 'running' && r.ips[0] ? r.ips[0] : undefined;
      },
      180_000,
    );
    expect(ip).toMatch(/^10\.88\.0\.\d+$/);
    expect((await node.lxc(['list', 'c2', '--format', 'csv', '-c', 's'])).stdout.trim()).toBe('RUNNING');
    expect((await cli('instance', 'delete', 'c2', '--nats', natsUrl)).code).toBe(0);
    await until('c2 gone', async () => ((await registry.find('c2')) ? undefined : true), 60_000);
  }, 300_000);

  it('stop and start follow the recorded state', async () => {
    expect((await cli('instance', 'stop', 'c1', '--nats', natsUrl)).code).toBe(0);
    await until(
      'c1 stopped',
      async () => ((await node.lxc(['list', 'c1', '--format', 'csv', '-c', 's'])).stdout.trim() === 'STOPPED' ? true : undefined),
      60_000,
    );
    expect((await cli('instance', 'start', 'c1', '--nats', natsUrl)).code).toBe(0);
    await until(
      'c1 running',
      async () => ((await node.lxc(['list', 'c1', '--format', 'csv', '-c', 's'])).stdout.trim() === 'RUNNING' ? true : undefined),
      60_000,
    );
  }, 150_000);

  it('attached volumes reach the running container (mounted at a path, or a raw block device), survive an agent restart, and go on detach', async () => {
    // Four disks, each on a loop device: an ext4 image holding a file, raw bytes (no mount point),
    // a blank one to mount (formatted first) and one holding data but no filesystem (never formatted).
    mkdirSync(p('vol-root'));
    writeFileSync(p('vol-root/marker'), 'hello from a volume\n');
    execFileSync('mkfs.ext4', ['-q', '-F', '-d', p('vol-root'), p('data.img'), '16M']);
    writeFileSync(p('raw.img'), Buffer.concat([Buffer.from('RAWVOLUME'), Buffer.alloc(1 << 20)]));
    writeFileSync(p('blank.img'), Buffer.alloc(16 << 20));
    writeFileSync(p('junk.img'), Buffer.concat([Buffer.alloc(4096), Buffer.from('precious, no filesystem'), Buffer.alloc(1 << 20)]));
    const T = '2026-12-01T00:00:00.000Z';
    const record = (name: string, mountAt?: string): VolumeRecord => ({
      name,
      size_bytes: 16 << 20,
      node: 'st9',
      backing: { kind: 'file', path: `/var/lib/mammatus/volumes/${name}.img` },
      state: 'available',
      attached: { instance: 'c1', node: 'cn1', initiator: 'iqn.1993-08.org.debian:01:c0ffee', ...(mountAt ? { path: mountAt } : {}) },
      chap: { user: `mammatus-${name}`, secret: 'Zq8Rr2Lm5Tt1Kp9W' },
      lun: 1,
      observed: { state: 'serving', lun: 1, portal: '10.88.0.250' },
      created_at: T,
      updated_at: T,
    });
    const data = record('e2e-data', '/mnt/data');
    const raw = record('e2e-raw');
    const blank = record('e2e-blank', '/mnt/blank');
    const junk = record('e2e-junk', '/mnt/junk');
    for (const [v, img] of [
      [data, 'data.img'],
      [raw, 'raw.img'],
      [blank, 'blank.img'],
      [junk, 'junk.img'],
    ] as const)
      loopDevices.set(volumeIqn(v), execFileSync('losetup', ['--find', '--show', p(img)], { encoding: 'utf8' }).trim());

    attached = [blank, data, junk, raw];
    pushVolumes(attached);
    const marker = () => node.lxc(['exec', 'c1', '--', 'cat', '/mnt/data/marker']);
    await until(
      'the volume mounted in c1',
      async () => ((await marker()).stdout.trim() === 'hello from a volume' ? true : undefined),
      60_000,
    );
    expect((await node.lxc(['exec', 'c1', '--', 'head', '-c', '9', '/dev/mammatus/e2e-raw'])).stdout).toBe('RAWVOLUME');
    expect((await node.lxc(['config', 'device', 'get', 'c1', 'mammatus-vol-e2e-data', 'type'])).stdout.trim()).toBe('disk');
    expect((await node.lxc(['config', 'device', 'get', 'c1', 'mammatus-vol-e2e-raw', 'type'])).stdout.trim()).toBe('unix-block');
    expect((await node.lxc(['exec', 'c1', '--', 'test', '-d', '/mnt/blank/lost+found'])).code).toBe(0); // a fresh ext4
    expect(compute.facts().summary).toMatch(/3 volumes attached, 1 failing \(e2e-junk: cannot mount it at \/mnt\/junk: it holds data/);
    expect(compute.volumeReport()?.failed).toEqual([
      { volume: 'e2e-junk', error: expect.stringMatching(/^cannot mount it at \/mnt\/junk: it holds data but no filesystem/) },
    ]);
    expect(readFileSync(p('junk.img')).includes('precious, no filesystem')).toBe(true);
    expect(iscsi!.calls).toEqual([blank, data, junk, raw].map((v) => `login ${volumeIqn(v)}`));

    // An agent restart finds sessions and devices in place: nothing is logged in again.
    await compute.stop!();
    compute = await startCompute();
    await until('the pass after the restart', async () => (compute.volumeReport()?.attached.length === 3 ? true : undefined), 30_000);
    expect(compute.volumeReport()?.done).toEqual([]);
    expect(iscsi!.calls).toHaveLength(4);
    expect((await marker()).stdout.trim()).toBe('hello from a volume');

    // Detach: the devices leave the container first, then the sessions end and the records go.
    attached = [];
    pushVolumes([]);
    await until(
      'the devices removed from c1',
      async () => ((await node.lxc(['config', 'device', 'list', 'c1'])).stdout.includes('mammatus-vol') ? undefined : true),
      30_000,
    );
    await until('the logouts', async () => (iscsi!.calls.length === 12 ? true : undefined), 30_000);
    expect(iscsi!.calls.slice(4).sort()).toEqual(
      [blank, data, junk, raw].flatMap((v) => [`delete ${volumeIqn(v)}`, `logout ${volumeIqn(v)}`]).sort(),
    );
    expect((await marker()).code).not.toBe(0);
  }, 240_000);

  it('a container the registry does not know is reported and left alone', async () => {
    const lxd = new LxdClient({ socketPath: node.socket });
    await lxd
      .createInstance({ name: 'stranger', profiles: ['default'], source: { type: 'image', alias: 'mammatus-test' } })
      .finally(() => lxd.close());
    await until('the report', async () => (compute.report()?.unmanaged.some((u) => u.name === 'stranger') ? true : undefined), 20_000);
    expect((await node.lxc(['list', 'stranger', '--format', 'csv', '-c', 'n'])).stdout.trim()).toBe('stranger');
    expect((await node.lxc(['delete', 'stranger'])).code).toBe(0);
  }, 150_000);

  it('delete → the container and its record are gone, and so is its reservation', async () => {
    expect((await cli('instance', 'delete', 'c1', '--nats', natsUrl)).code).toBe(0);
    await until('the record removed', async () => ((await registry.find('c1')) ? undefined : true), 60_000);
    expect((await node.lxc(['list', '--format', 'csv', '-c', 'n'])).stdout.trim()).toBe('');
    // dnsmasq keeps answering the name from the lease until it expires (gateway-metadata.test.ts).
    await until('the reservation file removed', async () => (existsSync(p('dhcp-hosts.d/c1')) ? undefined : true), 30_000);
  }, 120_000);
});
