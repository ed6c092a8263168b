/**
 * Install to disk on UEFI, proven with QEMU (TCG, OVMF) on a netns bed's LAN: a machine with a blank
 * virtio disk network-boots the live image (scripts/build-boot-image.sh) as in pxe-boot.test.ts, and its seed
 * stands in for the join (a marker file in /var/lib/mammatus) and runs `mammatus-install-to-disk
 * /dev/vda`. The test's HTTP server in the gateway namespace stands in for the gateway's boot server
 * and the metadata service: it hands out IMDSv2 tokens, records `POST /mammatus/installed` (token
 * required) and from then answers that MAC's iPXE request with "boot the local disk", as
 * src/metadata/ipxe-script.ts does (chain the boot image's local-disk.efi, a GRUB that reads the
 * installed system's grub.cfg). The machine reboots into the installed system, which prints the
 * marker on the serial console from a unit the seed enabled (it runs only off the live system),
 * reboots once more and comes up from disk again: no second install, no second report, no live-boot
 * fetch, no cloud-init. BIOS installs in the real chain, in pxe-cluster.test.ts. Root only; skipped
 * with the reason otherwise.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chrootSkipReason } from '../../scripts/lib/chroot.js';
import { buildGatewayBed, canUseNetns, missingTools, waitForFile, type GatewayBed } from '../../scripts/lib/netns-bed.js';
import {
  createDisk,
  IPXE_DIR,
  UEFI_LOADER,
  qemuSkipReason,
  standInDnsmasqArgs,
  startVm,
  type Firmware,
} from '../../scripts/lib/qemu-bed.js';
import { sleep } from '../../scripts/lib/wait.js';

const exec = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const PORT = 8777;
const GW = '10.88.0.1';
const METADATA = '169.254.169.254';
// Live boot (≈75 s), the install (copy ≈1 GB under TCG), two boots from disk: generous for two
// shared cores.
const LIMIT_MS = 1_200_000;
const MACS: Record<Firmware, string> = { bios: '52:54:00:88:00:21', efi64: '52:54:00:88:00:22' };
const MARKER = 'joined-state-7f3a';

const skip =
  canUseNetns() ??
  qemuSkipReason('efi64') ??
  missingTools(['dnsmasq', 'iptables', 'mksquashfs', 'qemu-img']) ??
  (existsSync(path.join(IPXE_DIR, UEFI_LOADER)) ? undefined : 'ipxe is missing (apt-get install ipxe)') ??
  (await chrootSkipReason('trixie', process.env.MAMMATUS_IMAGE_MIRROR || undefined));
if (skip) console.warn(`PXE install test skipped: ${skip}`);

// Boot server + metadata stand-in. Per MAC (found by the caller's IP in dnsmasq's lease file, as the
// gateway's proxy does): the live script until an installed report arrives, then the local-boot one.
const SERVER = `
const http = require('node:http');
const fs = require('node:fs');
const crypto = require('node:crypto');
const cfg = JSON.parse(process.argv[1]);
const tokens = new Set();
const installed = new Set();
const log = (o) => fs.appendFileSync(cfg.log, JSON.stringify({ t: Date.now(), ...o }) + '\\n');
const macOf = (ip) => {
  const line = fs.readFileSync(cfg.leases, 'utf8').split('\\n').find((l) => l.split(' ')[2] === ip);
  return line && line.split(' ')[1];
};
http.createServer((req, res) => {
  const ip = req.socket.remoteAddress.replace(/^::ffff:/, '');
  const at = { remote: ip, method: req.method, url: req.url };
  log({ ev: 'start', ...at });
  req.resume();
  req.on('end', () => {
    res.on('finish', () => log({ ev: 'end', status: res.statusCode, ...at }));
    const send = (status, s) => { res.writeHead(status, { 'content-type': 'text/plain' }); res.end(s); };
    if (req.url === '/boot.ipxe') return send(200, cfg.stub);
    if (req.url.startsWith('/ipxe/')) {
      const mac = decodeURIComponent(req.url.slice(6));
      const m = cfg.machines[mac];
      if (!m) return send(404, '');
      return send(200, installed.has(mac) ? m.local : m.live);
    }
    if (req.method === 'PUT' && req.url === '/latest/api/token') {
      if (!req.headers['x-aws-ec2-metadata-token-ttl-seconds']) return send(400, 'ttl header missing\\n');
      const t = crypto.randomBytes(24).toString('base64url');
      tokens.add(t);
      return send(200, t);
    }
    if (req.method === 'POST' && req.url === '/mammatus/installed') {
      if (!tokens.has(req.headers['x-aws-ec2-metadata-token'])) return send(401, 'token\\n');
      const mac = macOf(ip);
      if (!mac || !cfg.machines[mac]) return send(404, 'unknown caller\\n');
      installed.add(mac);
      log({ ev: 'installed', mac });
      return send(200, '{"ok":true}\\n');
    }
    if (req.url === '/nocloud/meta-data') return send(200, cfg.metaData);
    if (req.url === '/nocloud/user-data') return send(200, cfg.userData);
    if (req.url === '/nocloud/vendor-data' || req.url === '/nocloud/network-config') return send(200, '');
    const file = { '/vmlinuz': 'vmlinuz', '/initrd.img': 'initrd.img', '/filesystem.squashfs': 'filesystem.squashfs', '/local-disk.efi': 'local-disk.efi' }[req.url];
    if (!file) return send(404, '');
    const p = cfg.image + '/' + file;
    res.writeHead(200, { 'content-length': fs.statSync(p).size, 'content-type': 'application/octet-stream' });
    fs.createReadStream(p).pipe(res);
  });
}).listen(cfg.port, cfg.host, () => console.log('listening'));
`;

/** The live script the metadata service renders for a host not yet installed. */
function liveScript(): string {
  const base = `http://${GW}:${PORT}`;
  const args = `initrd=initrd.img boot=live fetch=${base}/filesystem.squashfs ds=nocloud;s=http://${METADATA}/nocloud/ console=ttyS0`;
  return ['#!ipxe', `kernel ${base}/vmlinuz ${args}`, `initrd ${base}/initrd.img`, 'boot', ''].join('\n');
}

/** The local-boot script for an installed host, as src/metadata/ipxe-script.ts renders it. */
function localScript(firmware: Firmware): string {
  const local = firmware === 'efi64' ? `chain http://${GW}:${PORT}/local-disk.efi || exit` : 'sanboot --no-describe --drive 0x80';
  return ['#!ipxe', local, ''].join('\n');
}

// Runs on every boot of the installed system (not the live one): prints the marker and whether
// cloud-init is off, counts boots, and reboots after the first so the test sees a second one.
const PROBE = `#!/bin/sh
n=$(( $(cat /var/lib/mammatus/test-boots 2>/dev/null || echo 0) + 1 ))
echo "$n" > /var/lib/mammatus/test-boots
sync
ci=on; [ -e /etc/cloud/cloud-init.disabled ] && ci=disabled
echo "mammatus-disk-boot $n marker=$(cat /var/lib/mammatus/marker) cloud-init=$ci root=$(findmnt -no SOURCE /) cmdline=$(cat /proc/cmdline)" > /dev/console
[ "$n" = 1 ] && systemctl --no-block reboot
exit 0
`;

const UNIT = `[Unit]
Description=pxe-install test probe
ConditionPathExists=!/run/live
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/pxe-install-probe

[Install]
WantedBy=multi-user.target
`;

const USER_DATA = [
  '#cloud-config',
  'write_files:',
  '  - path: /usr/local/sbin/pxe-install-probe',
  "    permissions: '0755'",
  '    content: |',
  ...PROBE.split('\n').map((l) => `      ${l}`),
  '  - path: /etc/systemd/system/pxe-install-probe.service',
  '    content: |',
  ...UNIT.split('\n').map((l) => `      ${l}`),
  'runcmd:',
  // Stands in for `mammatus node join`: state that must survive the install.
  `  - [sh, -c, 'mkdir -p /var/lib/mammatus && echo ${MARKER} > /var/lib/mammatus/marker && chmod 600 /var/lib/mammatus/marker']`,
  '  - [systemctl, enable, pxe-install-probe.service]',
  '  - [mammatus-install-to-disk, /dev/vda]',
  '',
].join('\n');

interface LogLine {
  t: number;
  ev: 'start' | 'end' | 'installed';
  method?: string;
  url?: string;
  mac?: string;
}

function httpLines(file: string): LogLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LogLine);
}

describe.skipIf(Boolean(skip))(
  'a QEMU machine installs the live system to its disk and boots from it',
  { timeout: LIMIT_MS + 60_000 },
  () => {
    let bed: GatewayBed;
    let image: string;
    let httpLog: string;
    let dhcpLog: string;
    // The stand-ins: a test that loses one says so instead of waiting on a machine that cannot boot.
    const helpers: { name: string; process: ChildProcess }[] = [];

    beforeAll(async () => {
      const built = await exec('bash', [path.join(ROOT, 'scripts/build-boot-image.sh')], { timeout: 1_800_000, maxBuffer: 16 << 20 });
      image = built.stdout.trim();
      bed = await buildGatewayBed({ prefix: 'pxi' });
      httpLog = path.join(bed.dir, 'boot-http.log');
      dhcpLog = path.join(bed.dir, 'dnsmasq.log');
      const leases = path.join(bed.dir, 'leases');
      const tftp = path.join(bed.dir, 'tftp');
      mkdirSync(tftp);
      copyFileSync(path.join(IPXE_DIR, UEFI_LOADER), path.join(tftp, UEFI_LOADER));
      writeFileSync(dhcpLog, '');
      writeFileSync(leases, '');
      const redirect = ['-p', 'tcp', '--dport', '80', '-j', 'REDIRECT', '--to-ports', String(PORT)];
      await exec('ip', [
        'netns',
        'exec',
        bed.ns.gw,
        'iptables',
        '-t',
        'nat',
        '-A',
        'PREROUTING',
        '-i',
        bed.ifaces.gwLan,
        '-d',
        METADATA,
        ...redirect,
      ]);
      await exec('ip', ['-n', bed.ns.gw, 'addr', 'add', 'fd00:88::1/64', 'dev', bed.ifaces.gwLan, 'nodad']);
      const dnsmasq = bed.spawn(
        'gw',
        standInDnsmasqArgs({ iface: bed.ifaces.gwLan, gw: GW, bootUrl: `http://${GW}:${PORT}/boot.ipxe`, tftp, leases, log: dhcpLog }),
      );
      await waitForFile(dhcpLog, /started, version/, 10_000);
      helpers.push({ name: 'dnsmasq', process: dnsmasq });
      const cfg = {
        port: PORT,
        host: '0.0.0.0',
        log: httpLog,
        leases,
        image,
        stub: `#!ipxe\nchain http://${METADATA}/ipxe/\${net0/mac}\n`,
        machines: Object.fromEntries(
          (Object.keys(MACS) as Firmware[]).map((f) => [MACS[f], { live: liveScript(), local: localScript(f) }]),
        ),
        metaData: 'instance-id: pxe-install-1\nlocal-hostname: pxi1\n',
        userData: USER_DATA,
      };
      const server = bed.spawn('gw', [process.execPath, '-e', SERVER, JSON.stringify(cfg)]);
      await waitForFile(server.logFile, /listening/, 10_000);
      helpers.push({ name: 'the boot and metadata server', process: server });
    }, 1_900_000);

    afterAll(async () => {
      await bed?.destroy();
    });

    async function installAndBoot(firmware: Firmware): Promise<void> {
      const disk = path.join(bed.dir, `${firmware}.qcow2`);
      await createDisk(disk, 4);
      const first = httpLines(httpLog).length;
      const vm = await startVm(bed, { name: `pxi-${firmware}`, mac: MACS[firmware], firmware, disk, reboot: true });
      const stages = new Map<string, number>();
      const mark = (name: string, t = Date.now()) => stages.has(name) || stages.set(name, t - vm.startedAt);
      try {
        const deadline = vm.startedAt + LIMIT_MS;
        for (;;) {
          for (const l of httpLines(httpLog).slice(first)) {
            if (l.ev === 'end' && l.url === '/filesystem.squashfs') mark('live squashfs fetched', l.t);
            if (l.ev === 'start' && l.url === '/nocloud/user-data') mark('seed fetched', l.t);
            if (l.ev === 'installed') mark('installed reported', l.t);
          }
          const serial = vm.serial();
          if (/mammatus-install-to-disk: .* copy the running system to \S+ \.\.\./.test(serial)) mark('install: copy started');
          if (/mammatus-install-to-disk: .* installed to \/dev\/vda/.test(serial)) mark('install: done');
          if (/mammatus-disk-boot 1 /.test(serial)) mark('first boot from disk');
          if (/mammatus-disk-boot 2 /.test(serial)) mark('second boot from disk');
          if (stages.has('second boot from disk')) break;
          if (/mammatus-install-to-disk: .*(FAILED|REFUSED)/.test(serial)) throw new Error(`install failed:\n${serial.slice(-4000)}`);
          const gone = helpers.find((h) => h.process.exitCode !== null || h.process.signalCode !== null);
          if (gone)
            throw new Error(
              `${gone.name} exited (${gone.process.exitCode ?? gone.process.signalCode}) during the test; stages ${JSON.stringify([...stages])}`,
            );
          if (vm.process.exitCode !== null || vm.process.signalCode !== null)
            throw new Error(`qemu exited (${vm.process.exitCode ?? vm.process.signalCode}):\n${serial.slice(-3000)}`);
          if (Date.now() > deadline)
            throw new Error(`not done within ${LIMIT_MS} ms; stages ${JSON.stringify([...stages])}\n${serial.slice(-4000)}`);
          await sleep(500);
        }
        // Let a wrongly live-booted machine show itself (it would fetch the squashfs within seconds).
        await sleep(5000);
      } finally {
        await vm.stop();
      }
      const table = [...stages].sort((a, b) => a[1] - b[1]).map(([k, v]) => `  ${(v / 1000).toFixed(1).padStart(6)} s  ${k}`);
      console.log(`${firmware} install stages (since qemu start):\n${table.join('\n')}`);

      const lines = httpLines(httpLog).slice(first);
      const starts = (url: string, method = 'GET') => lines.filter((l) => l.ev === 'start' && l.url === url && l.method === method).length;
      const serial = vm.serial();
      // One live boot, one install, one report; the iPXE script was asked three times (live + two disk boots).
      expect(lines.filter((l) => l.ev === 'installed')).toEqual([expect.objectContaining({ mac: MACS[firmware] })]);
      expect(starts('/mammatus/installed', 'POST')).toBe(1);
      expect(starts('/latest/api/token', 'PUT')).toBeGreaterThanOrEqual(1);
      expect(starts('/filesystem.squashfs')).toBe(1);
      expect(starts('/nocloud/user-data')).toBe(1);
      expect(starts(`/ipxe/${encodeURIComponent(MACS[firmware])}`)).toBe(3);
      // The installed system: the marker came along, cloud-init is off, root is the disk's ext4, the
      // kernel line has the serial console and no live-boot.
      const boots = serial.split('\n').filter((l) => l.includes('mammatus-disk-boot '));
      expect(boots).toHaveLength(2);
      for (const b of boots) {
        expect(b).toContain(`marker=${MARKER}`);
        expect(b).toContain('cloud-init=disabled');
        expect(b).toMatch(/root=\/dev\/vda3 /);
        expect(b).toMatch(/cmdline=.*root=UUID=\S+ .*console=ttyS0/);
        expect(b).not.toMatch(/boot=live/);
      }
      // cloud-init ran in the live system only (its stage banners are on the console then).
      const done = /mammatus-install-to-disk: \S+ installed to \/dev\/vda/.exec(serial);
      expect(done).not.toBeNull();
      const afterInstall = serial.slice(done?.index ?? 0);
      expect(afterInstall).not.toMatch(/Cloud-init v\. \S+ running/);
      expect(afterInstall).not.toMatch(/mammatus-install-to-disk: .*installing/);
    }

    // BIOS installs in the real chain (pxe-cluster.test.ts); `installAndBoot('bios')` runs the same here.
    it('UEFI: installs, reports, and boots twice from the disk through local-disk.efi', async () => {
      await installAndBoot('efi64');
    });
  },
);
