/**
 * The gateway's boot serving, rendered: the iPXE stub every PXE client is handed (`/boot.ipxe`)
 * and the boot server's own config (where it listens, what it serves). The stub knows nothing of
 * any machine: it asks the metadata service (through the gateway's metadata proxy, which adds the
 * caller's MAC) for the machine's own script, and falls back to `boot.unknown` when there is none.
 * Pure.
 */
import { stringify } from 'yaml';
import { MANAGED_HEADER, type GatewayConfig } from './config.js';
import { METADATA_IP } from './render-iptables.js';

/** The URL path of the stub, handed to iPXE by DHCP. */
export const STUB_PATH = '/boot.ipxe';
/** The URL prefix of the live image (amd64 is the only image built). */
export const LIVE_PREFIX = '/live/amd64/';
/** The URL prefix of the cluster apt repository. */
export const APT_PREFIX = '/apt/';
/** How long an unregistered machine waits before asking again (`boot.unknown: none`). */
const RETRY_S = 30;

/** The gateway's LAN address without its prefix length. */
function lanIp(cfg: GatewayConfig): string {
  return cfg.lan.address.split('/')[0];
}

/** The boot server's base URL as machines on the LAN reach it. */
export function bootUrl(cfg: GatewayConfig): string {
  return `http://${lanIp(cfg)}:${cfg.boot.port}`;
}

/** The URL dnsmasq hands to iPXE (`dhcp-boot=tag:ipxe,…`). */
export function stubUrl(cfg: GatewayConfig): string {
  return `${bootUrl(cfg)}${STUB_PATH}`;
}

/**
 * The iPXE stub. `chain` fails (and the script goes on at `:unknown`) when the metadata service
 * answers 404 (a MAC it has no host for), is unreachable, or the machine's own script fails (a
 * kernel that did not download). `local` then `exit`s: the firmware tries its next boot device, so
 * an installed host boots its disk and a stranger boots whatever it had. `none` boots nothing and
 * asks again: no shell, no local boot, and a machine registered meanwhile boots without a reset
 * (`sleep` is in iPXE's default build; where it is missing the `||` keeps the loop going, unpaced).
 */
export function renderBootStub(cfg: GatewayConfig): string {
  const unknown =
    cfg.boot.unknown === 'local'
      ? ['echo mammatus: no boot script for ${net0/mac}, trying the next boot device', 'exit']
      : [
          `echo mammatus: no boot script for \${net0/mac} (not registered?), asking again in ${RETRY_S}s`,
          `sleep ${RETRY_S} || goto start`,
          'goto start',
        ];
  const lines = [
    '#!ipxe',
    MANAGED_HEADER.trim(),
    `# boot.unknown: ${cfg.boot.unknown}`,
    `set boot-url ${bootUrl(cfg)}`,
    ':start',
    `chain http://${METADATA_IP}/mammatus/ipxe?boot_url=\${boot-url} || goto unknown`,
    ':unknown',
    ...unknown,
  ];
  return `${lines.join('\n')}\n`;
}

/** The boot server's settings, as the child gets them (the `boot` section of its config file). */
export interface BootServerSection {
  readonly host: string;
  readonly port: number;
  readonly files: Readonly<Record<string, string>>;
  readonly dirs: Readonly<Record<string, string>>;
}

/** The section the boot server runs from. */
export function bootServerSection(cfg: GatewayConfig): BootServerSection {
  return {
    host: lanIp(cfg),
    port: cfg.boot.port,
    files: { [STUB_PATH]: cfg.paths.boot_stub },
    dirs: { [LIVE_PREFIX]: cfg.boot.image_dir, [APT_PREFIX]: cfg.boot.apt_dir },
  };
}

/** The boot server's config file (the role restarts the server when it changes). */
export function renderBootServerConf(cfg: GatewayConfig): string {
  return `${MANAGED_HEADER}${stringify({ boot: bootServerSection(cfg) })}`;
}
