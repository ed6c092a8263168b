/**
 * A Raspberry Pi 4/5 planned host at a real dnsmasq, in network namespaces: the gateway role's
 * rendered files (a Pi host and an x86 host from the registry) run in dnsmasq, and a DHCP client
 * asks the way the Pi's EEPROM bootloader does (vendor class `PXEClient:Arch:00000:UNDI:002001`,
 * client architecture 0, asking for 43, 60 and 66). The Pi's MAC must get option 43 with the
 * "Raspberry Pi Boot" menu, byte for byte as in the Raspberry Pi documentation's capture, the
 * gateway as TFTP server and no boot file; the PC asking the same from another MAC keeps
 * `undionly.kpxe` and no menu; the Pi's per-serial TFTP directory is served.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InstanceSummary } from '../../core/contracts.js';
import { renderGateway } from '../../roles/gateway/render.js';
import { buildGatewayBed, canUseNetns, missingTools, waitForFile, type GatewayBed } from '../../scripts/lib/netns-bed.js';

const skip = canUseNetns() ?? missingTools(['busybox', 'curl', 'dnsmasq']);
if (skip) console.warn(`gateway Raspberry Pi tests skipped: ${skip}`);

const PI_MAC = 'dc:a6:32:01:36:c2';
const PC_MAC = '02:00:00:00:00:51';
/** The Pi bootloader's DHCPDISCOVER, as udhcpc arguments (options 60, 93, 94 and its request list). */
const PI_LIKE = ['-V', 'PXEClient:Arch:00000:UNDI:002001', '-x', '0x5d:0000', '-x', '0x5e:010201', '-O', '43', '-O', '60', '-O', '66'];
/** Option 43 of the capture in the Raspberry Pi documentation (boot-net.adoc), as hex. */
const PI_OPTION43 = '0601030a0400505845091400001152617370626572727920506920426f6f74ff';

/** A udhcpc hook that only writes the offer's fields, including options it has no name for (`optNN`, hex). */
const DUMP_HOOK = `#!/bin/sh
[ "$1" = bound ] || exit 0
env | grep -E '^(ip|siaddr|boot_file|tftp|opt[0-9]+)=' > "$DUMP_OUT"
`;

describe.skipIf(Boolean(skip))('a Raspberry Pi host at the gateway', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'mammatus-gwrpi-'));
  const p = (name: string) => path.join(tmp, name);
  let bed: GatewayBed;

  beforeAll(async () => {
    // dnsmasq drops to nobody and reads the TFTP files below tmp.
    chmodSync(tmp, 0o755);
    bed = await buildGatewayBed({ prefix: 'grp' });
    const instances: InstanceSummary[] = [
      { name: 'pi-1', macs: [PI_MAC], ips: ['10.88.0.50'], host: true, rpi: true },
      { name: 'pc-1', macs: [PC_MAC], ips: ['10.88.0.51'], host: true },
    ];
    const files = renderGateway({
      node: 'gw1',
      members: [],
      instances,
      config: {
        lan: { interface: bed.ifaces.gwLan, address: '10.88.0.1/24' },
        wan: { interface: bed.ifaces.gwWan },
        upstream_dns: ['203.0.113.1'],
        tftp: { root: p('tftp') },
        paths: {
          dnsmasq_conf: p('dnsmasq.conf'),
          hosts_dir: p('hosts.d'),
          dhcp_hosts_dir: p('dhcp-hosts.d'),
          leases: p('leases/dnsmasq.leases'),
          iptables: p('iptables.rules'),
          sysctl: p('sysctl.conf'),
          lease_hook: p('lease-hook'),
          members: p('members'),
          left_out: p('left-out'),
          boot_server: p('boot-server.yaml'),
          boot_stub: p('boot.ipxe'),
        },
      },
    });
    for (const dir of ['hosts.d', 'dhcp-hosts.d', 'leases', 'tftp/9ffefdef']) mkdirSync(p(dir), { recursive: true });
    for (const f of files) {
      mkdirSync(path.dirname(f.path), { recursive: true });
      writeFileSync(f.path, f.content, { mode: f.mode });
    }
    writeFileSync(p('lease-hook'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    writeFileSync(p('dump-hook'), DUMP_HOOK, { mode: 0o755 });
    // tftp-secure serves only files owned by dnsmasq's user (tftp.user, default nobody).
    const nobody = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
    writeFileSync(p('tftp/9ffefdef/start4.elf'), 'firmware of serial 9ffefdef\n');
    chownSync(p('tftp/9ffefdef/start4.elf'), nobody, -1);
    const dnsmasq = bed.spawn('gw', ['dnsmasq', '--keep-in-foreground', '--log-facility=-', `--conf-file=${p('dnsmasq.conf')}`]);
    await waitForFile(dnsmasq.logFile, /read .*dhcp-hosts\.d\/pi-1/);
  }, 30_000);

  /** One DHCP exchange from `mac`, shaped like the Pi bootloader's; the offer's fields by name. */
  async function ask(mac: string): Promise<Record<string, string>> {
    await bed.exec('cl', ['ip', 'link', 'set', bed.ifaces.clLan, 'address', mac]);
    const out = p(`dhcp-${mac.replaceAll(':', '')}.env`);
    writeFileSync(out, '');
    const argv = ['busybox', 'udhcpc', '-i', bed.ifaces.clLan, '-n', '-q', '-t', '3', '-T', '2', '-s', p('dump-hook'), ...PI_LIKE];
    const r = await bed.exec('cl', argv, { timeoutMs: 20_000, env: { DUMP_OUT: out } });
    expect(r.code, r.stderr).toBe(0);
    const lines = readFileSync(out, 'utf8').split('\n').filter(Boolean);
    return Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  }

  afterAll(async () => {
    await bed?.destroy();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('answers the Pi with option 43 "Raspberry Pi Boot", the gateway as TFTP server and no boot file', async () => {
    const offer = await ask(PI_MAC);
    expect(offer.ip).toBe('10.88.0.50');
    expect(offer.opt43).toBe(PI_OPTION43);
    expect(offer.siaddr).toBe('10.88.0.1');
    expect(offer.tftp).toBe('10.88.0.1');
    expect(offer.boot_file ?? '').toBe('');
  });

  it('keeps an x86 PXE client asking the same on iPXE, without a boot menu', async () => {
    const offer = await ask(PC_MAC);
    expect(offer.ip).toBe('10.88.0.51');
    expect(offer.boot_file).toBe('undionly.kpxe');
    // dnsmasq adds option 43 for every PXE client once a pxe-service exists, but only "boot the file given".
    expect(offer.opt43 ?? '').not.toContain(Buffer.from('Raspberry Pi Boot').toString('hex'));
  });

  it("serves the Pi's files from its serial's directory under tftp.root", async () => {
    await bed.dhcp({ mac: PI_MAC, options: PI_LIKE });
    const r = await bed.curl('cl', 'tftp://10.88.0.1/9ffefdef/start4.elf');
    expect(r.code).toBe(0);
    expect(r.body).toBe('firmware of serial 9ffefdef\n');
  });
});
