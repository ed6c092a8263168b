/**
 * QEMU machines on a network-namespace test bed's LAN: each VM gets a tap port on the bed's bridge
 * (br0 in the `sw` namespace) and network-boots from whatever the gateway namespace serves.
 *
 * Facts this follows (docs/baremetal.md): the nested /dev/kvm of the CI machines cannot run Debian's
 * kernel, so the VMs use TCG; every QEMU NIC ROM is iPXE, so a BIOS machine runs iPXE straight away;
 * a UEFI machine gets OVMF and an empty `romfile=`, so OVMF's own PXE fetches iPXE (snponly.efi) by TFTP, as
 * real firmware would. The serial console goes to a file the test reads; the VM is stopped by its
 * PID and its tap deleted. Root only.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { findOnPath } from './daemon.js';
import type { BedProcess, GatewayBed } from './netns-bed.js';
import { sleep } from './wait.js';

const exec = promisify(execFile);

/** The firmware a VM boots with. */
export type Firmware = 'bios' | 'efi64';

/** Where Debian's ovmf and ipxe packages put their files. */
export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';
export const IPXE_DIR = '/usr/lib/ipxe';
/**
 * The iPXE a UEFI machine's firmware PXE loads: `snponly.efi` drives the NIC through the firmware's own
 * network protocol instead of disconnecting it and binding iPXE's driver, as the gateway role's
 * default does (docs/baremetal.md: `ipxe.efi` hung at "initialising devices" after a warm reboot).
 */
export const UEFI_LOADER = 'snponly.efi';

/**
 * The argv of a dnsmasq that stands in for the gateway in the PXE spike tests (pxe-boot, pxe-install):
 * DHCP on `iface` with `gw` as router, firmware PXE → TFTP {@link UEFI_LOADER} (UEFI), iPXE → `bootUrl`,
 * router adverts (with an IPv6 prefix on the LAN they spare iPXE its IPv6 wait), logs to `log`.
 */
export function standInDnsmasqArgs(o: { iface: string; gw: string; bootUrl: string; tftp: string; leases: string; log: string }): string[] {
  return [
    'dnsmasq',
    '--no-daemon',
    '--conf-file=/dev/null',
    '--port=0',
    '--user=root',
    `--interface=${o.iface}`,
    '--bind-interfaces',
    '--dhcp-range=10.88.0.100,10.88.0.150,255.255.255.0,1h',
    `--dhcp-option=option:router,${o.gw}`,
    `--dhcp-leasefile=${o.leases}`,
    '--dhcp-userclass=set:ipxe,iPXE',
    '--dhcp-match=set:efi64,option:client-arch,7',
    '--dhcp-match=set:efi64,option:client-arch,9',
    `--dhcp-boot=tag:efi64,tag:!ipxe,${UEFI_LOADER}`,
    `--dhcp-boot=tag:ipxe,${o.bootUrl}`,
    '--enable-tftp',
    `--tftp-root=${o.tftp}`,
    '--enable-ra',
    `--dhcp-range=::,constructor:${o.iface},ra-only`,
    '--log-dhcp',
    `--log-facility=${o.log}`,
  ];
}

/** Why VMs with `firmware` cannot run here (not root, no qemu, no OVMF or iPXE), or undefined. */
export function qemuSkipReason(firmware: Firmware = 'bios'): string | undefined {
  if (process.platform !== 'linux') return 'QEMU beds need Linux';
  if (process.getuid?.() !== 0) return 'QEMU beds need root (tap devices, network namespaces)';
  if (!findOnPath('qemu-system-x86_64')) return 'qemu-system-x86_64 is missing (apt-get install qemu-system-x86)';
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun is missing';
  if (firmware === 'efi64') {
    if (!existsSync(OVMF_CODE) || !existsSync(OVMF_VARS)) return `OVMF is missing (${OVMF_CODE}; apt-get install ovmf)`;
    if (!existsSync(path.join(IPXE_DIR, UEFI_LOADER))) return `${IPXE_DIR}/${UEFI_LOADER} is missing (apt-get install ipxe)`;
  }
  return undefined;
}

/** How to start a VM. */
export interface VmOptions {
  /** Short name for its files (serial log, VARS copy); [a-z0-9-]. */
  readonly name: string;
  /** The NIC's MAC, e.g. 52:54:00:12:34:56. */
  readonly mac: string;
  readonly firmware: Firmware;
  /** A qcow2 image attached as the second boot device (after the network). */
  readonly disk?: string;
  /** Default 1024. */
  readonly memoryMb?: number;
  /** Default virtio-net-pci; e1000 needs a boot image with the generic kernel (the cloud one lacks it). */
  readonly nic?: 'virtio-net-pci' | 'e1000';
  /** Let a reboot inside the guest restart the machine (install-to-disk); by default qemu exits instead,
   * so a kernel panic ends the test at once rather than booting in a loop. */
  readonly reboot?: boolean;
}

/** A running VM. */
export interface Vm {
  readonly name: string;
  readonly mac: string;
  readonly tap: string;
  /** The serial console's file (-serial file:). */
  readonly serialLog: string;
  /** Date.now() when qemu was spawned: the zero of the stage timings. */
  readonly startedAt: number;
  readonly process: BedProcess;
  /** The serial console so far. */
  serial(): string;
  /** Stops qemu by its PID and deletes the tap; idempotent. */
  stop(): Promise<void>;
}

let taps = 0;

/** Creates a qcow2 image of `sizeGb` at `file` (qemu-img). */
export async function createDisk(file: string, sizeGb: number): Promise<void> {
  await exec('qemu-img', ['create', '-q', '-f', 'qcow2', file, `${sizeGb}G`], { timeout: 30_000 });
}

/** The qemu argv (without the program) for `opts` on tap `tap`; pure, for the tests. */
export function qemuArgs(opts: VmOptions, tap: string, serialLog: string, varsFile?: string): string[] {
  const args = ['-name', opts.name, '-accel', 'tcg', '-nodefaults', '-machine', 'q35', '-m', String(opts.memoryMb ?? 1024)];
  args.push('-smp', '1', '-display', 'none', '-serial', `file:${serialLog}`);
  if (!opts.reboot) args.push('-no-reboot');
  if (opts.firmware === 'efi64') {
    if (!varsFile) throw new Error('UEFI needs a copy of the OVMF variables');
    args.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`);
    args.push('-drive', `if=pflash,format=raw,unit=1,file=${varsFile}`);
  }
  args.push('-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`);
  // BIOS: the NIC's option ROM is iPXE. UEFI: no ROM, so OVMF's own network stack does the PXE.
  const rom = opts.firmware === 'efi64' ? ',romfile=' : '';
  args.push('-device', `${opts.nic ?? 'virtio-net-pci'},netdev=n0,mac=${opts.mac},bootindex=1${rom}`);
  if (opts.disk) {
    args.push('-drive', `if=none,id=d0,format=qcow2,file=${opts.disk}`);
    args.push('-device', 'virtio-blk-pci,drive=d0,bootindex=2');
  }
  // Entropy early in boot: cloud-init and sshd-keygen would otherwise wait on the CRNG under TCG.
  args.push('-device', 'virtio-rng-pci');
  return args;
}

/** Adds a tap port to the bed's bridge and starts a VM on it inside the switch namespace. */
export async function startVm(bed: GatewayBed, opts: VmOptions): Promise<Vm> {
  if (!/^[a-z0-9-]{1,20}$/.test(opts.name)) throw new Error(`bad VM name ${JSON.stringify(opts.name)}`);
  const tap = `tap${++taps}`;
  const sw = bed.ns.sw;
  const ipSw = async (args: string[]) => exec('ip', ['-n', sw, ...args], { timeout: 10_000 });
  await ipSw(['tuntap', 'add', tap, 'mode', 'tap']);
  const removeTap = () =>
    ipSw(['link', 'del', tap]).then(
      () => undefined,
      () => undefined,
    );
  try {
    await ipSw(['link', 'set', tap, 'master', bed.ifaces.br]);
    await ipSw(['link', 'set', tap, 'up']);
    const serialLog = path.join(bed.dir, `${opts.name}-serial.log`);
    let vars: string | undefined;
    if (opts.firmware === 'efi64') {
      vars = path.join(bed.dir, `${opts.name}-OVMF_VARS.fd`);
      copyFileSync(OVMF_VARS, vars); // each VM writes its own boot variables
    }
    const argv = ['qemu-system-x86_64', ...qemuArgs(opts, tap, serialLog, vars)];
    const startedAt = Date.now();
    // The tap exists only in `sw`: qemu opens it by name, so it must run there.
    const proc = bed.spawn('sw', argv, path.join(bed.dir, `${opts.name}-qemu.log`));
    let stopping: Promise<void> | undefined;
    const vm: Vm = {
      name: opts.name,
      mac: opts.mac,
      tap,
      serialLog,
      startedAt,
      process: proc,
      serial: () => (existsSync(serialLog) ? readFileSync(serialLog, 'utf8') : ''),
      stop: () => {
        stopping ??= bed.kill(proc).then(removeTap);
        return stopping;
      },
    };
    // qemu fails fast on a bad argument or a tap it cannot open: report that, not a boot timeout.
    await sleep(500);
    if (proc.exitCode !== null) {
      await removeTap();
      throw new Error(`qemu exited (${proc.exitCode}) at start: ${readFileSync(proc.logFile, 'utf8').trim()}`);
    }
    return vm;
  } catch (err) {
    await removeTap();
    throw err;
  }
}
