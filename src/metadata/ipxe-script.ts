/**
 * The iPXE script of a planned host (issue 19), served at `GET /mammatus/ipxe`: the gateway's stub
 * script (`/boot.ipxe` on its boot server) sets `boot-url` and chains here through the metadata
 * proxy, which vouches for the caller's MAC. A host not yet installed boots the live system from the
 * gateway's boot server, with the NoCloud seed on its kernel command line; an installed one boots its
 * own disk, so a reboot never reinstalls it. Pure.
 */
import type { HostArch } from '../../core/host-record.js';
import { parseIPv4Port } from '../../core/net.js';

/** What a host's script depends on. */
export interface IpxeScriptInput {
  /** The host's name (a DNS label), for the comment only. */
  readonly name: string;
  readonly arch: HostArch;
  /** True once the host reported `installed`: boot the local disk. */
  readonly installed: boolean;
  /**
   * The boot server's base URL (`http://<IPv4>:<port>`), or undefined to leave iPXE's own
   * `${boot-url}` variable in the script (the stub set it before chaining, and iPXE keeps settings
   * across `chain`).
   */
  readonly bootUrl?: string;
}

/** The NoCloud seed on the kernel command line: `ds=nocloud;s=http…` (the boot image's cloud-init 25.1 takes it; `nocloud-net` is deprecated there, docs/baremetal.md). */
export const HOST_SEED_ARG = 'ds=nocloud;s=http://169.254.169.254/nocloud/';

/**
 * The live system's directory per firmware: x86 BIOS and UEFI share the amd64 build; arm64 is on
 * paper. A Raspberry Pi (`rpi`) runs no iPXE — its EEPROM bootloader loads firmware and kernel by
 * TFTP — so it never asks for this script; only a Pi given a UEFI firmware in its TFTP directory
 * goes on like an ARM64 UEFI machine (iPXE, then here), hence the arm64 build for it too.
 */
const LIVE_ARCH: Readonly<Record<HostArch, string>> = { bios: 'amd64', efi64: 'amd64', arm64: 'arm64', rpi: 'arm64' };

/**
 * True for a `boot_url` the service may write into a script: `http://<IPv4>:<port>`, nothing else
 * (no path, no credentials, no name to resolve), so no value can add an iPXE command or argument.
 */
export function isBootUrl(value: string): boolean {
  return value.startsWith('http://') && parseIPv4Port(value.slice('http://'.length)) !== undefined;
}

/**
 * The commands that boot an installed host's own disk. BIOS iPXE hands over to the first hard disk's
 * boot sector itself. x86 UEFI chains the boot image's `local-disk.efi`, a GRUB that finds the
 * installed root (label `mammatus-root`) and reads its grub.cfg: iPXE's `exit` is meant to return to the firmware's next boot entry, but Debian's
 * ipxe.efi under OVMF spins instead (docs/baremetal.md); `exit` stays the fallback when the loader
 * cannot be fetched, and the only way for ARM64, which has no built image yet.
 */
function localBoot(arch: HostArch, base: string): string[] {
  if (arch === 'bios') return ['sanboot --no-describe --drive 0x80'];
  if (LIVE_ARCH[arch] === 'amd64') return [`chain ${base}/local-disk.efi || exit`];
  return ['exit'];
}

/**
 * Renders the script.
 *
 * @throws Error for a boot URL {@link isBootUrl} refuses (the caller checks it first and answers 400).
 */
export function renderIpxeScript(input: IpxeScriptInput): string {
  if (input.bootUrl !== undefined && !isBootUrl(input.bootUrl)) throw new Error('boot URL must be http://<IPv4>:<port>');
  const head = ['#!ipxe', `# mammatus planned host ${input.name} (${input.arch})`];
  const base = `${input.bootUrl ?? '${boot-url}'}/live/${LIVE_ARCH[input.arch]}`;
  if (input.installed) return [...head, '# installed: boot the local disk', ...localBoot(input.arch, base), ''].join('\n');
  // `initrd=initrd.img` names the initrd for the kernel's EFI stub (older iPXE on UEFI needs it).
  const kernel = [
    'kernel',
    `${base}/vmlinuz`,
    'initrd=initrd.img',
    'boot=live',
    `fetch=${base}/filesystem.squashfs`,
    'ip=dhcp',
    // The last console is /dev/console: systemd's and cloud-init's output go to the serial line.
    'console=tty0',
    'console=ttyS0',
    HOST_SEED_ARG,
  ].join(' ');
  return [...head, '# live system from the gateway, seeded by the metadata service', kernel, `initrd ${base}/initrd.img`, 'boot', ''].join(
    '\n',
  );
}
