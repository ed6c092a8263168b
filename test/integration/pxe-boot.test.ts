/**
 * The network-boot chain, proven with real firmware in QEMU (TCG) on a netns bed's LAN: dnsmasq in
 * the gateway namespace answers DHCP (and TFTP for UEFI), a small HTTP server there serves an iPXE
 * stub, a per-MAC iPXE script reached through 169.254.169.254 (REDIRECTed as on a real gateway), the
 * boot image from scripts/build-boot-image.sh and a NoCloud seed; the VM boots the live system and
 * cloud-init runs our user-data, whose runcmd reports back. Each stage's time since qemu started is
 * printed (docs/baremetal.md records them). This is the spike of issue 19's chain: the real boot
 * server, seed and admission come from the gateway and metadata roles.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chrootSkipReason } from '../../scripts/lib/chroot.js';
import { buildGatewayBed, canUseNetns, missingTools, waitForFile, type GatewayBed } from '../../scripts/lib/netns-bed.js';
import { IPXE_DIR, UEFI_LOADER, qemuSkipReason, standInDnsmasqArgs, startVm, type Firmware, type Vm } from '../../scripts/lib/qemu-bed.js';
import { sleep } from '../../scripts/lib/wait.js';

const exec = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const PORT = 8777;
const GW = '10.88.0.1';
const METADATA = '169.254.169.254';
// From qemu's start to our user-data's report, generous for TCG on two shared cores.
const BOOT_LIMIT_MS = 300_000;
// Both spellings of the seed work with trixie's cloud-init 25.1 (nocloud-net logs a deprecation):
// the BIOS machine uses one, the UEFI machine the other, so every run checks both.
const MACHINES = {
  bios: { mac: '52:54:00:88:00:11', ds: `ds=nocloud;s=http://169.254.169.254/nocloud/` },
  efi64: { mac: '52:54:00:88:00:12', ds: `ds=nocloud-net;s=http://169.254.169.254/nocloud/` },
} as const;

const skip =
  canUseNetns() ??
  qemuSkipReason('bios') ??
  missingTools(['dnsmasq', 'iptables', 'mksquashfs']) ??
  (existsSync(path.join(IPXE_DIR, UEFI_LOADER)) ? undefined : 'ipxe is missing (apt-get install ipxe)') ??
  // The image build needs debootstrap's trixie script and the mirror (the same check as the package tests').
  (await chrootSkipReason('trixie', process.env.MAMMATUS_IMAGE_MIRROR || undefined));
if (skip) console.warn(`PXE boot test skipped: ${skip}`);
const efiSkip = qemuSkipReason('efi64');

// The test's boot server: files from the image dir, a stub and a per-MAC iPXE script, the NoCloud
// seed, and POST /done. One JSON line per request start and end, with the time, into the log.
const BOOT_SERVER = `
const http = require('node:http');
const fs = require('node:fs');
const cfg = JSON.parse(process.argv[1]);
const log = (o) => fs.appendFileSync(cfg.log, JSON.stringify({ t: Date.now(), ...o }) + '\\n');
http.createServer((req, res) => {
  const at = { remote: req.socket.remoteAddress, method: req.method, url: req.url };
  log({ ev: 'start', ...at });
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    res.on('finish', () => log({ ev: 'end', status: res.statusCode, ...at, body: body.slice(0, 200) }));
    const text = (s, type = 'text/plain') => { res.writeHead(200, { 'content-type': type }); res.end(s); };
    if (req.url === '/boot.ipxe') return text(cfg.stub);
    // iPXE percent-encodes \${net0/mac} in a URL (52%3A54%3A…).
    const script = req.url.startsWith('/ipxe/') && cfg.scripts[decodeURIComponent(req.url.slice(6))];
    if (script) return text(script);
    if (req.url === '/nocloud/meta-data') return text(cfg.metaData);
    if (req.url === '/nocloud/user-data') return text(cfg.userData);
    // cloud-init 25.1 retries a 404 of these optional files ten times, a second apart: answer them.
    if (req.url === '/nocloud/vendor-data' || req.url === '/nocloud/network-config') return text('');
    if (req.method === 'POST' && req.url === '/done') return text('ok\\n');
    const file = { '/vmlinuz': 'vmlinuz', '/initrd.img': 'initrd.img', '/filesystem.squashfs': 'filesystem.squashfs' }[req.url];
    if (!file) { res.writeHead(404); return res.end(); }
    const p = cfg.image + '/' + file;
    res.writeHead(200, { 'content-length': fs.statSync(p).size, 'content-type': 'application/octet-stream' });
    fs.createReadStream(p).pipe(res);
  });
}).listen(cfg.port, cfg.host, () => console.log('listening'));
`;

/** The iPXE script the metadata service will render per MAC; `initrd=` is needed by iPXE's EFI loader. */
function ipxeScript(ds: string): string {
  const base = `http://${GW}:${PORT}`;
  return [
    '#!ipxe',
    `kernel ${base}/vmlinuz initrd=initrd.img boot=live fetch=${base}/filesystem.squashfs console=ttyS0 ${ds}`,
    `initrd ${base}/initrd.img`,
    'boot',
    '',
  ].join('\n');
}

/** Stages seen in the logs: name → ms since qemu started (first time its pattern matched). */
type Stages = Map<string, number>;

interface LogLine {
  t: number;
  ev: 'start' | 'end';
  method: string;
  url: string;
  status?: number;
  body?: string;
}

function httpLines(file: string): LogLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LogLine);
}

describe.skipIf(Boolean(skip))('a QEMU machine network-boots the live image', { timeout: BOOT_LIMIT_MS + 60_000 }, () => {
  let bed: GatewayBed;
  let image: string;
  let httpLog: string;
  let dhcpLog: string;

  beforeAll(async () => {
    // Cached after the first build (≈5–8 minutes with a mirror).
    const built = await exec('bash', [path.join(ROOT, 'scripts/build-boot-image.sh')], { timeout: 1_800_000, maxBuffer: 16 << 20 });
    image = built.stdout.trim();
    bed = await buildGatewayBed({ prefix: 'pxe' });
    httpLog = path.join(bed.dir, 'boot-http.log');
    dhcpLog = path.join(bed.dir, 'dnsmasq.log');
    const tftp = path.join(bed.dir, 'tftp');
    mkdirSync(tftp);
    copyFileSync(path.join(IPXE_DIR, UEFI_LOADER), path.join(tftp, UEFI_LOADER));
    writeFileSync(dhcpLog, '');
    // Like the gateway role: metadata traffic to 169.254.169.254:80 is redirected to a local port.
    await exec(
      'ip',
      ['netns', 'exec', bed.ns.gw, 'iptables', '-t', 'nat', '-A', 'PREROUTING', '-i', bed.ifaces.gwLan, '-d', METADATA].concat([
        '-p',
        'tcp',
        '--dport',
        '80',
        '-j',
        'REDIRECT',
        '--to-ports',
        String(PORT),
      ]),
    );
    // Router adverts need an IPv6 prefix on the LAN; without them iPXE waits for IPv6 before booting.
    await exec('ip', ['-n', bed.ns.gw, 'addr', 'add', 'fd00:88::1/64', 'dev', bed.ifaces.gwLan, 'nodad']);
    bed.spawn(
      'gw',
      standInDnsmasqArgs({
        iface: bed.ifaces.gwLan,
        gw: GW,
        bootUrl: `http://${GW}:${PORT}/boot.ipxe`,
        tftp,
        leases: path.join(bed.dir, 'leases'),
        log: dhcpLog,
      }),
    );
    await waitForFile(dhcpLog, /started, version/, 10_000);
    const cfg = {
      port: PORT,
      host: '0.0.0.0',
      log: httpLog,
      image,
      stub: `#!ipxe\nchain http://${METADATA}/ipxe/\${net0/mac}\n`,
      scripts: Object.fromEntries(Object.values(MACHINES).map((m) => [m.mac, ipxeScript(m.ds)])),
      metaData: 'instance-id: pxe-spike-1\nlocal-hostname: pxe1\n',
      userData: [
        '#cloud-config',
        'runcmd:',
        `  - [sh, -c, 'echo "mammatus-pxe-done $(cut -d" " -f1 /proc/uptime)" > /dev/console; curl -sS -X POST --data-binary @/proc/uptime http://${METADATA}/done']`,
        '',
      ].join('\n'),
    };
    const server = bed.spawn('gw', [process.execPath, '-e', BOOT_SERVER, JSON.stringify(cfg)]);
    await waitForFile(server.logFile, /listening/, 10_000);
  }, 1_900_000);

  afterAll(async () => {
    await bed?.destroy();
  });

  /** Boots one VM, waits for our user-data's report, returns the stage timings. */
  async function bootAndReport(firmware: Firmware): Promise<{ stages: Stages; vm: Vm; requests: LogLine[] }> {
    const stages: Stages = new Map();
    const vm = await startVm(bed, { name: `pxe-${firmware}`, mac: MACHINES[firmware].mac, firmware });
    const mark = (name: string, t = Date.now()) => stages.has(name) || stages.set(name, t - vm.startedAt);
    const dhcpFirst = readFileSync(dhcpLog, 'utf8').length;
    const httpFirst = httpLines(httpLog).length;
    try {
      const deadline = vm.startedAt + BOOT_LIMIT_MS;
      for (;;) {
        const dhcp = readFileSync(dhcpLog, 'utf8').slice(dhcpFirst);
        if (/DHCPACK\(\S+\) \S+ 52:54/.test(dhcp) && !/user class: iPXE/.test(dhcp)) mark('firmware DHCP');
        if (/sent \S+snponly\.efi/.test(dhcp)) mark('TFTP snponly.efi');
        if (/user class: iPXE[\s\S]*DHCPACK/.test(dhcp)) mark('iPXE DHCP');
        for (const l of httpLines(httpLog).slice(httpFirst)) {
          const what = `${l.method} ${l.url}`;
          if (l.ev === 'start' && l.url.startsWith('/ipxe/')) mark('iPXE script via 169.254.169.254', l.t);
          else if (l.ev === 'start' && l.url === '/boot.ipxe') mark('iPXE stub', l.t);
          else if (l.ev === 'end' && /vmlinuz|initrd|squashfs/.test(l.url)) mark(`${what} done`, l.t);
          else if (l.ev === 'start' && /squashfs|nocloud/.test(l.url)) mark(what, l.t);
          else if (l.ev === 'end' && l.url === '/done') mark('user-data runcmd reported', l.t);
        }
        const serial = vm.serial();
        if (/Linux version/.test(serial)) mark('kernel started');
        if (/Welcome to .*Debian/.test(serial) || /systemd\[1\]/.test(serial)) mark('systemd started');
        if (/Cloud-init v\. \S+ running 'init-local'/.test(serial)) mark('cloud-init init-local');
        if (/Cloud-init v\. \S+ running 'init'/.test(serial)) mark('cloud-init init');
        if (/mammatus-pxe-done/.test(serial)) mark('marker on the serial console');
        if (stages.has('user-data runcmd reported') && stages.has('marker on the serial console')) break;
        if (vm.process.exitCode !== null) throw new Error(`qemu exited (${vm.process.exitCode}):\n${vm.serial().slice(-3000)}`);
        if (Date.now() > deadline) {
          throw new Error(
            `no report from the user-data within ${BOOT_LIMIT_MS} ms; stages ${JSON.stringify([...stages])}\n${vm.serial().slice(-3000)}`,
          );
        }
        await sleep(250);
      }
    } finally {
      await vm.stop();
    }
    const table = [...stages].sort((a, b) => a[1] - b[1]).map(([k, v]) => `  ${(v / 1000).toFixed(1).padStart(6)} s  ${k}`);
    console.log(`${firmware} boot stages (since qemu start):\n${table.join('\n')}`);
    return {
      stages,
      vm,
      requests: httpLines(httpLog)
        .slice(httpFirst)
        .filter((l) => l.ev === 'start'),
    };
  }

  it('BIOS: the NIC ROM iPXE follows the chain, and cloud-init runs the seed from 169.254.169.254', async () => {
    const { stages, vm, requests } = await bootAndReport('bios');
    expect(stages.has('iPXE script via 169.254.169.254')).toBe(true);
    expect(stages.has('GET /nocloud/user-data')).toBe(true);
    // iPXE passes the `;` in ds= through to the kernel.
    expect(vm.serial()).toContain(
      `Command line: ${ipxeScript(MACHINES.bios.ds)
        .split('\n')[1]
        ?.replace(/^kernel \S+ /, '')}`,
    );
    expect(vm.serial()).toMatch(/mammatus-pxe-done/);
    // Answered with 200, the seed's optional files are asked for once each, not retried.
    const asked = (url: string) => requests.filter((r) => r.url === url).length;
    expect(asked('/nocloud/network-config')).toBe(1);
    expect(asked('/nocloud/vendor-data')).toBe(1);
  });

  it.skipIf(Boolean(efiSkip))('UEFI: OVMF PXE loads snponly.efi by TFTP, which follows the same chain', async () => {
    const { stages } = await bootAndReport('efi64');
    expect(stages.has('TFTP snponly.efi')).toBe(true);
    expect(stages.has('iPXE script via 169.254.169.254')).toBe(true);
    expect(stages.has('user-data runcmd reported')).toBe(true);
  });
});
