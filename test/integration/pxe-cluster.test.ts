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
import { qemuSkipReason, startVm, type Firmware, type Vm } from '../../scripts/lib/qemu-bed.js';
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

const skip =
  canUseNetns() ??
  qemuSkipReason('efi64') ??
  missingTools(['dnsmasq', 'iptables-restore', 'mksquashfs', 'nats-server', 'serf', 'gpg', 'curl', 'busybox']) ??
  (bundleBuilt() ? undefined : 'dist/mammatus.mjs is missing (npm run build)') ??
  (await chrootSkipReason('trixie', process.env.MAMMATUS_IMAGE_MIRROR || undefined));
if (skip) console.warn(`PXE cluster test skipped: ${skip}`);

/**
 * Stages the gateway agent logged for the machine with `mac` (its dnsmasq's DHCP and TFTP lines, its
 * boot server's `boot file served` lines for the machine's address): name → epoch ms. A served
 * file's line is logged at its end; its start is that minus its `ms`.
 */
function gatewayStages(lines: Record<string, unknown>[], mac: string): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  let ip: string | undefined;
  let acks = 0;
  for (const l of lines) {
    const t = Number(l.time);
    const text = typeof l.dnsmasq === 'string' ? l.dnsmasq : '';
    const ack = /DHCPACK\(\S+\) (\S+) (\S+)/.exec(text);
    if (ack && ack[2] === mac) {
      ip = ack[1];
      out.push([`DHCPACK #${++acks} (dnsmasq)`, t]);
    }
    if (ip && new RegExp(`sent \\S+ipxe\\.efi to ${ip.replace(/\./g, '\\.')}$`).test(text)) out.push(['TFTP ipxe.efi sent (dnsmasq)', t]);
    if (!ip || l.msg !== 'boot file served' || l.remote !== ip) continue;
    const file = String(l.path).replace(/^.*\//, '');
    const ms = Number(l.ms);
    if (file === 'boot.ipxe') out.push(['iPXE stub served (boot-http)', t]);
    else if (/^(vmlinuz|initrd\.img|filesystem\.squashfs)$/.test(file)) {
      out.push([`${file} requested (boot-http)`, t - ms]);
      out.push([`${file} done, ${(Number(l.bytes) / 2 ** 20).toFixed(0)} MiB in ${ms} ms (boot-http)`, t]);
    } else if (file === 'mammatus-archive-keyring.gpg') out.push(['apt key fetched by bootcmd (boot-http)', t]);
    else if (file === 'InRelease') out.push(['apt update: InRelease (boot-http)', t]);
    else if (file.endsWith('.deb')) out.push(['mammatus-agent .deb fetched (boot-http)', t]);
  }
  return out;
}

interface HostRow {
  name: string;
  id: string;
  progress: string;
  host: { progress: Record<string, string> };
}

describe.skipIf(Boolean(skip))('bare metal to a node, hands off', { timeout: JOIN_LIMIT_MS + 120_000 }, () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'mammatus-pxec-'));
  let bed: GatewayBed;
  let cluster: PxeCluster;
  let nc: NatsConnection;
  const secrets = new Map<string, string>();
  const hostIds = new Map<string, string>();
  const stages = new Map<Firmware, Map<string, number>>();

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

  /** Boots one machine until `host list` says ok; records the stages (ms since qemu started). */
  async function bootToOk(fw: Firmware): Promise<Vm> {
    const h = HOSTS[fw];
    const seen = new Map<string, number>();
    stages.set(fw, seen);
    const vm = await startVm(bed, { name: h.name, mac: h.mac, firmware: fw });
    const mark = (name: string, t = Date.now()) => seen.has(name) || seen.set(name, t - vm.startedAt);
    try {
      const deadline = vm.startedAt + JOIN_LIMIT_MS;
      for (let i = 0; ; i++) {
        if (fileLines(cluster.leases).some((l) => l.includes(h.mac))) mark('DHCP lease (dnsmasq)');
        const serial = vm.serial();
        if (/iPXE initialising|iPXE \d/.test(serial)) mark('iPXE on the console');
        if (/Linux version/.test(serial)) mark('kernel started (serial)');
        if (/Welcome to .*Debian|systemd\[1\]/.test(serial)) mark('systemd started (serial)');
        if (/Cloud-init v\. \S+ running 'init-local'/.test(serial)) mark('cloud-init init-local (serial)');
        if (/Cloud-init v\. \S+ running 'init'/.test(serial)) mark('cloud-init init (serial)');
        if (/Cloud-init v\. \S+ running 'modules:final'/.test(serial)) mark('cloud-init final: apt, join (serial)');
        const started = (unit: string) => serial.match(new RegExp(`Started \\S*${unit}\\.service`, 'g'))?.length ?? 0;
        if (started('mammatus-agent') >= 1) mark('mammatus-agent installed, started (serial)');
        if (started('serf') >= 2) mark('serf restarted by the join (serial)');
        if (started('mammatus-agent') >= 2) mark('mammatus-agent restarted by the join (serial)');
        for (const [name, t] of gatewayStages(cluster.gateway.logLines(), h.mac)) mark(name, t);
        if (i % 2 === 0) {
          const m = (await cluster.members()).find((x) => x.name === h.name);
          if (m?.status === 'alive') mark('Serf member alive (serf members)');
          if (m?.tags.trust) mark('trust tag set by its agent (serf members)');
        }
        if (i % 8 === 0) {
          const row = (await hosts().catch(() => [])).find((r) => r.name === h.name);
          for (const [step, at] of Object.entries(row?.host.progress ?? {})) if (step !== 'registered') mark(step, Date.parse(at));
          if (row?.progress === 'ok') {
            mark('ok: alive member, trust tag verifies (host list)');
            break;
          }
        }
        if (vm.process.exitCode !== null) throw new Error(`qemu exited (${vm.process.exitCode}):\n${vm.serial().slice(-3000)}`);
        if (Date.now() > deadline) {
          throw new Error(`${h.name} not ok within ${JOIN_LIMIT_MS} ms; stages ${JSON.stringify([...seen])}\n${vm.serial().slice(-4000)}`);
        }
        await sleep(500);
      }
    } catch (err) {
      await vm.stop();
      throw err;
    }
    const table = [...seen].sort((a, b) => a[1] - b[1]).map(([k, v]) => `  ${(v / 1000).toFixed(1).padStart(6)} s  ${k}`);
    console.log(`${h.name} (${fw}) stages since qemu start:\n${table.join('\n')}`);
    return vm;
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
      type Row = { node: string; status: string; trust: string; answer: { role_status?: unknown } | null; roles: string[] };
      let rows: Row[] = [];
      for (let i = 0; i < 6; i++) {
        const status = await cluster.cli(['status', '--json', '--timeout', '10s']);
        rows = JSON.parse(status.stdout || '[]') as Row[];
        if (Object.values(HOSTS).every((h) => rows.find((r) => r.node === h.name)?.answer)) break;
        await sleep(5_000);
      }
      console.log(
        `mammatus status:\n${rows.map((r) => `  ${r.node} ${r.status} ${r.trust} ${JSON.stringify(r.answer?.role_status ?? null)}`).join('\n')}`,
      );
      for (const h of Object.values(HOSTS)) {
        const row = rows.find((r) => r.node === h.name);
        expect(row, h.name).toMatchObject({ status: 'alive', trust: 'admitted' });
        expect(row?.answer, `${h.name}'s agent answers`).not.toBeNull();
      }
    } finally {
      await Promise.all(vms.map((v) => v.stop()));
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
    expect((await hosts()).map((r) => r.name).sort()).toEqual(['h-bios', 'h-efi']);
    const ipxe = await bed.curl('cl', 'http://169.254.169.254/mammatus/ipxe');
    console.log(`unregistered MAC: token ${token.status}, seed ${seed.status}, join ${join.status}, ipxe ${ipxe.status}`);
  });
});
