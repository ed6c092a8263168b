/**
 * Issue 19's "Must show": a diskless machine becomes a cluster member hands off. A real controller
 * agent and a real gateway agent run in network namespaces (scripts/lib/pxe-cluster-bed.ts); the
 * operator registers two hosts (BIOS and UEFI), and two QEMU machines with no disk boot from the
 * LAN: DHCP and iPXE from the gateway, the live image from its boot server, the seed from the
 * metadata service through the gateway's proxy, mammatus-agent from the cluster's apt repository on
 * the gateway, and `mammatus node join` at the controller. Each ends an alive Serf member whose trust
 * tag verifies. Then the spent secret is refused a second time, and a machine with an unregistered
 * MAC gets neither a seed nor a join. Each stage's time is printed (docs/benchmarks.md).
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser } from '@nats-io/nkeys';
import { generateKeyPairSync } from 'node:crypto';
import { HOST_JOIN_SUBJECT, type HostJoinAnswer } from '../../core/host-record.js';
import { connectNats } from '../../core/nats.js';
import { chrootSkipReason } from '../../scripts/lib/chroot.js';
import { bundleBuilt } from '../../scripts/lib/mammatus-agent.js';
import { buildGatewayBed, canUseNetns, missingTools, type GatewayBed } from '../../scripts/lib/netns-bed.js';
import { startPxeCluster, fileLines, type PxeCluster } from '../../scripts/lib/pxe-cluster-bed.js';
import { gatewayStages, serialStages, servedFiles } from '../../scripts/lib/pxe-stages.js';
import { createDisk, qemuSkipReason, startVm, type Firmware, type Vm } from '../../scripts/lib/qemu-bed.js';
import { sleep } from '../../scripts/lib/wait.js';
import { JoinSecrets } from '../../src/hosts/joins.js';

const exec = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
// From qemu's start to `host list` saying ok: 320–360 s with two TCG machines at once on two shared
// cores (load 5–8 from other runs; docs/benchmarks.md section 14).
const JOIN_LIMIT_MS = 480_000;
const HOSTS = {
  bios: { name: 'h-bios', mac: '52:54:00:88:01:11' },
  efi64: { name: 'h-efi', mac: '52:54:00:88:01:12' },
} as const;
/** Registered with `--install-disk /dev/vda` and given a blank disk. */
const DISK_HOST = { name: 'h-disk', mac: '52:54:00:88:01:13' } as const;
// After ok: the install (copy ≈1 GB under TCG, 95–200 s), the reboot, and the disk's system back.
const INSTALL_LIMIT_MS = 420_000;

const skip =
  canUseNetns() ??
  qemuSkipReason('efi64') ??
  missingTools(['dnsmasq', 'iptables-restore', 'mksquashfs', 'nats-server', 'serf', 'gpg', 'curl', 'busybox']) ??
  (bundleBuilt() ? undefined : 'dist/mammatus.mjs is missing (npm run build)') ??
  (await chrootSkipReason('trixie', process.env.MAMMATUS_IMAGE_MIRROR || undefined));
if (skip) console.warn(`PXE cluster test skipped: ${skip}`);

/** One row of `mammatus status --json`. */
interface StatusRow {
  node: string;
  status: string;
  trust: string;
  answer: { role_status?: unknown } | null;
  roles: string[];
}

interface HostRow {
  name: string;
  id: string;
  progress: string;
  host: { progress: Record<string, string> };
}

describe.skipIf(Boolean(skip))('bare metal to a node, hands off', { timeout: JOIN_LIMIT_MS + INSTALL_LIMIT_MS + 120_000 }, () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'mammatus-pxec-'));
  let bed: GatewayBed;
  let cluster: PxeCluster;
  let nc: NatsConnection;
  const secrets = new Map<string, string>();
  const hostIds = new Map<string, string>();

  const hosts = async (): Promise<HostRow[]> => {
    const r = await cluster.cli(['host', 'list', '--json']);
    if (r.code !== 0) throw new Error(`host list: ${r.stderr}`);
    return JSON.parse(r.stdout) as HostRow[];
  };

  beforeAll(async () => {
    const built = await exec('bash', [path.join(ROOT, 'scripts/build-boot-image.sh')], { timeout: 1_800_000, maxBuffer: 16 << 20 });
    const image = built.stdout.trim();
    bed = await buildGatewayBed({ prefix: 'pxc' });
    cluster = await startPxeCluster(bed, work, image);
    nc = await connectNats(cluster.natsUrl, { name: 'pxe-cluster-test', credentials: cluster.ctlCredentials });
    const joins = await JoinSecrets.open(nc);
    for (const [fw, h] of Object.entries(HOSTS)) {
      const args = ['host', 'register', h.name, '--mac', h.mac, '--role', 'compute', '--json'];
      if (fw === 'efi64') args.push('--arch', 'efi64');
      const r = await cluster.cli(args);
      expect(r.code, r.stderr).toBe(0);
      const id = (JSON.parse(r.stdout) as { id: string }).id;
      hostIds.set(h.name, id);
      // Kept for the replay below: the test reads it where only controllers can.
      secrets.set(h.name, (await joins.get(id))!.secret);
    }
  }, 1_900_000);

  afterAll(async () => {
    // MAMMATUS_PXE_KEEP=DIR keeps the agents' logs and the serial consoles for reading the stages.
    const keep = process.env.MAMMATUS_PXE_KEEP;
    if (keep && bed) {
      mkdirSync(keep, { recursive: true });
      for (const f of readdirSync(bed.dir).filter((n) => n.endsWith('-serial.log')))
        copyFileSync(path.join(bed.dir, f), path.join(keep, f));
      for (const a of [cluster?.controller, cluster?.gateway])
        if (a) copyFileSync(a.logFile, path.join(keep, `${path.basename(path.dirname(path.dirname(a.logFile)))}-agent.log`));
    }
    await nc?.close().catch(() => undefined);
    await cluster?.stop();
    await bed?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  /** A machine under watch: its VM and the stages seen so far (ms since qemu started). */
  interface Machine {
    readonly name: string;
    readonly mac: string;
    readonly vm: Vm;
    readonly seen: Map<string, number>;
  }

  /**
   * Polls a machine's logs, Serf and `host list` until `done` says so for its host row; records the
   * stages. Stops the VM when it fails or runs out of time.
   */
  async function watch(m: Machine, limitMs: number, done: (row: HostRow) => boolean): Promise<void> {
    const mark = (name: string, t = Date.now()) => m.seen.has(name) || m.seen.set(name, t - m.vm.startedAt);
    try {
      const deadline = Date.now() + limitMs;
      for (let i = 0; ; i++) {
        if (fileLines(cluster.leases).some((l) => l.includes(m.mac))) mark('DHCP lease (dnsmasq)');
        for (const name of serialStages(m.vm.serial())) mark(name);
        for (const [name, t] of gatewayStages(cluster.gateway.logLines(), m.mac)) mark(name, t);
        if (i % 2 === 0) {
          const member = (await cluster.members()).find((x) => x.name === m.name);
          if (member?.status === 'alive') mark('Serf member alive (serf members)');
          if (member?.tags.trust) mark('trust tag set by its agent (serf members)');
        }
        if (i % 8 === 0) {
          const row = (await hosts().catch(() => [])).find((r) => r.name === m.name);
          for (const [step, at] of Object.entries(row?.host.progress ?? {})) if (step !== 'registered') mark(step, Date.parse(at));
          if (row?.progress === 'ok') mark('ok: alive member, trust tag verifies (host list)');
          if (row && done(row)) return;
        }
        if (m.vm.process.exitCode !== null) throw new Error(`qemu exited (${m.vm.process.exitCode}):\n${m.vm.serial().slice(-3000)}`);
        if (Date.now() > deadline) {
          throw new Error(`${m.name} not done within ${limitMs} ms; stages ${JSON.stringify([...m.seen])}\n${m.vm.serial().slice(-4000)}`);
        }
        await sleep(500);
      }
    } catch (err) {
      await m.vm.stop();
      throw err;
    }
  }

  /** Prints a machine's stages, earliest first. */
  function printStages(m: Machine, title: string): void {
    const table = [...m.seen].sort((a, b) => a[1] - b[1]).map(([k, v]) => `  ${(v / 1000).toFixed(1).padStart(6)} s  ${k}`);
    console.log(`${m.name} (${title}) stages since qemu start:\n${table.join('\n')}`);
  }

  /** Boots one diskless machine until `host list` says ok. */
  async function bootToOk(fw: Firmware): Promise<Vm> {
    const h = HOSTS[fw];
    const m: Machine = { ...h, vm: await startVm(bed, { name: h.name, mac: h.mac, firmware: fw }), seen: new Map() };
    await watch(m, JOIN_LIMIT_MS, (row) => row.progress === 'ok');
    printStages(m, fw);
    return m.vm;
  }

  /** Polls `mammatus status` until each named node's agent answers (`tries` × (≤10 s + 5 s)); its rows. */
  async function statusRows(names: readonly string[], tries = 6): Promise<StatusRow[]> {
    let rows: StatusRow[] = [];
    for (let i = 0; i < tries; i++) {
      const status = await cluster.cli(['status', '--json', '--timeout', '10s']);
      rows = JSON.parse(status.stdout || '[]') as StatusRow[];
      if (names.every((n) => rows.find((r) => r.node === n)?.answer)) break;
      await sleep(5_000);
    }
    console.log(
      `mammatus status:\n${rows.map((r) => `  ${r.node} ${r.status} ${r.trust} ${JSON.stringify(r.answer?.role_status ?? null)}`).join('\n')}`,
    );
    return rows;
  }

  it('BIOS and UEFI hosts boot, join and become trusted, alive members', async () => {
    const vms = await Promise.all([bootToOk('bios'), bootToOk('efi64')]);
    try {
      for (const h of Object.values(HOSTS)) {
        const row = (await hosts()).find((r) => r.name === h.name)!;
        expect(Object.keys(row.host.progress)).toEqual(['registered', 'booted', 'seeded', 'joined']);
        const times = ['registered', 'booted', 'seeded', 'joined'].map((s) => Date.parse(row.host.progress[s]));
        expect([...times].sort((a, b) => a - b)).toEqual(times);
      }
      // `ok` needs the trust tag the host's agent sets; its status answer follows within seconds.
      const rows = await statusRows(Object.values(HOSTS).map((h) => h.name));
      for (const h of Object.values(HOSTS)) {
        const row = rows.find((r) => r.node === h.name);
        expect(row, h.name).toMatchObject({ status: 'alive', trust: 'admitted' });
        expect(row?.answer, `${h.name}'s agent answers`).not.toBeNull();
      }
    } finally {
      await Promise.all(vms.map((v) => v.stop()));
    }
  });

  it('a host registered with --install-disk installs, boots from its disk, is ok again, not reinstalled', async () => {
    const h = DISK_HOST;
    const r = await cluster.cli(['host', 'register', h.name, '--mac', h.mac, '--role', 'compute', '--install-disk', '/dev/vda', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const disk = path.join(bed.dir, `${h.name}.qcow2`);
    await createDisk(disk, 4);
    const m: Machine = {
      ...h,
      vm: await startVm(bed, { name: h.name, mac: h.mac, firmware: 'bios', disk, reboot: true }),
      seen: new Map(),
    };
    try {
      // The live system joins, installs, reports and reboots; the disk's system starts serf (a third
      // start on the console) and the agent, which answers `mammatus status` as the same trusted
      // member (only a running agent answers: the live system's is gone with its kernel).
      await watch(
        m,
        JOIN_LIMIT_MS + INSTALL_LIMIT_MS,
        (row) => Boolean(row.host.progress.installed) && m.seen.has('serf started from disk (serial)') && row.progress === 'ok',
      );
      const rows = await statusRows([h.name], 24);
      printStages(m, 'bios, --install-disk');
      expect(rows.find((x) => x.node === h.name)).toMatchObject({ status: 'alive', trust: 'admitted', answer: expect.anything() });
      // Let a wrongly live-booted machine show itself (it would fetch the squashfs within seconds).
      await sleep(10_000);
      const row = (await hosts()).find((x) => x.name === h.name)!;
      expect(Object.keys(row.host.progress)).toEqual(['registered', 'booted', 'seeded', 'joined', 'installed']);
      const served = servedFiles(cluster.gateway.logLines(), h.mac);
      expect(served.get('filesystem.squashfs')).toBe(1);
      expect(served.get('vmlinuz')).toBe(1);
      const serial = m.vm.serial();
      const installedAt = /mammatus-install-to-disk: \S+ installed to \/dev\/vda/.exec(serial)?.index ?? -1;
      expect(installedAt).toBeGreaterThan(0);
      const fromDisk = serial.slice(installedAt);
      // The second kernel is the disk's (root by UUID, no live-boot), and cloud-init stays off there.
      expect(fromDisk).toMatch(/Command line: \S*vmlinuz\S* root=UUID=\S+/);
      expect(fromDisk).not.toMatch(/Command line: .*boot=live/);
      expect(fromDisk).not.toMatch(/Cloud-init v\. \S+ running/);
      expect(serial.match(/mammatus-install-to-disk: \S+ installed to/g)).toHaveLength(1);
    } finally {
      await m.vm.stop();
    }
  });

  it('refuses the spent secret a second time, with another key', async () => {
    const h = HOSTS.bios;
    const { publicKey } = generateKeyPairSync('x25519');
    const box = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
    const request = { host_id: hostIds.get(h.name), mac: h.mac, secret: secrets.get(h.name), nkey: createUser().getPublicKey(), box };
    const reply = await nc.request(HOST_JOIN_SUBJECT, JSON.stringify(request), { timeout: 10_000 });
    const answer = JSON.parse(reply.string()) as HostJoinAnswer;
    expect(answer.ok).toBe(false);
    expect(answer.sealed).toBeUndefined();
    console.log(`replayed join refused: ${answer.error}`);
  });

  it('gives an unregistered MAC no seed and no join', async () => {
    await bed.dhcp();
    const seed = await bed.curl('cl', 'http://169.254.169.254/nocloud/user-data');
    expect(seed.status).toBe(404);
    const token = await bed.curl('cl', 'http://169.254.169.254/latest/api/token', {
      args: ['-X', 'PUT', '-H', 'x-aws-ec2-metadata-token-ttl-seconds: 300'],
    });
    const join = await bed.curl('cl', 'http://169.254.169.254/mammatus/join', {
      args: ['-X', 'POST', '-H', 'content-type: application/json', '-H', `x-aws-ec2-metadata-token: ${token.body.trim()}`, '-d', '{}'],
    });
    expect(join.status).toBe(404);
    expect((await hosts()).map((r) => r.name).sort()).toEqual(['h-bios', 'h-disk', 'h-efi']);
    const ipxe = await bed.curl('cl', 'http://169.254.169.254/mammatus/ipxe');
    console.log(`unregistered MAC: token ${token.status}, seed ${seed.status}, join ${join.status}, ipxe ${ipxe.status}`);
  });
});
