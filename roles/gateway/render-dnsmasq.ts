/**
 * Renders dnsmasq's one static config file for the gateway, following a configuration verified
 * end to end by test/integration/gateway.test.ts. Names that change at run time (members, instances) are not
 * in here: they go to `hostsdir`, which dnsmasq re-reads by inotify without a restart.
 */
import { MANAGED_HEADER, type GatewayConfig } from './config.js';
import { formatIPv4, netmask, parseCidr, parseIPv4 } from '../../core/net.js';
import { stubUrl } from './render-boot.js';
import { RPI_TAG } from './render-instances.js';

/** What of the registry the static config depends on. */
export interface DnsmasqConfInput {
  /**
   * True when a served planned host is a Raspberry Pi (`rpi`): only then do the Pi's lines go in,
   * because a `pxe-service` line makes dnsmasq answer every PXE client with option 43 (for the
   * others only "boot the file given", verified with dnsmasq 2.90), and without a Pi nothing should
   * change for them. Registering the first Pi (or removing the last) therefore restarts dnsmasq.
   */
  readonly rpi?: boolean;
}

/** Renders `dnsmasq.conf` from resolved settings. Pure; reservations are sorted by IP. */
export function renderDnsmasqConf(cfg: GatewayConfig, input: DnsmasqConfInput = {}): string {
  const rpi = cfg.pxe.enabled && input.rpi === true;
  const lan = parseCidr(cfg.lan.address);
  if (!lan) throw new Error(`roles.gateway.lan.address: invalid CIDR ${cfg.lan.address}`);
  const gw = formatIPv4(lan.address);
  const d = cfg.domain;
  const range = cfg.dhcp.range;
  const lines = [
    '# --- listening: the LAN port only, never the WAN ---',
    `interface=${cfg.lan.interface}`,
    // Bound sockets, so another resolver on the host (systemd-resolved, a test dnsmasq) can coexist.
    'bind-interfaces',
    'except-interface=lo',
    `# --- DNS: *.${d} answered here (unknown names NXDOMAIN, never forwarded), the rest upstream ---`,
    'no-resolv',
    ...cfg.upstream_dns.map((ip) => `server=${ip}`),
    'no-hosts',
    `domain=${d}`,
    `local=/${d}/`,
    'expand-hosts',
    // host-record, never the address option: that answers AAAA queries for the name with NXDOMAIN,
    // and resolvers then drop the name.
    '# fixed names are host-records: they answer AAAA with NOERROR/no data, not NXDOMAIN',
    `host-record=gateway.${d},gateway,${gw}`,
    '# one hosts file per member or instance, re-read on change (no restart)',
    `hostsdir=${cfg.paths.hosts_dir}`,
    '# --- DHCP ---',
    `dhcp-range=set:lan,${range.start},${range.end},${formatIPv4(netmask(lan.prefix))},${cfg.dhcp.lease_time}`,
    `dhcp-option=tag:lan,option:router,${gw}`,
    `dhcp-option=tag:lan,option:dns-server,${gw}`,
    `dhcp-option=tag:lan,option:domain-search,${d}`,
    '# one file per registered instance (MAC -> address, name); new files are read without a restart',
    `dhcp-hostsdir=${cfg.paths.dhcp_hosts_dir}`,
    ...[...cfg.dhcp.reservations]
      .sort((a, b) => (parseIPv4(a.ip) ?? 0) - (parseIPv4(b.ip) ?? 0))
      .map((r) => `dhcp-host=${r.mac},${r.name},${r.ip}`),
    // The only DHCP server on this LAN: answer REQUESTs for unknown leases at once (e.g. after a
    // lost lease file) instead of making clients wait for a timeout.
    'dhcp-authoritative',
    `dhcp-leasefile=${cfg.paths.leases}`,
    '# lease and TFTP events go to the agent through this hook',
    `dhcp-script=${cfg.paths.lease_hook}`,
    'log-dhcp',
    ...(cfg.pxe.enabled ? renderPxe(cfg, rpi) : []),
    ...(rpi ? renderRpi(gw) : []),
    ...(cfg.pxe.enabled && cfg.boot.enabled ? renderRa(cfg) : []),
    ...(cfg.tftp.enabled ? renderTftp(cfg) : []),
  ];
  // No pid-file: the agent runs dnsmasq in the foreground and supervises it.
  return `${MANAGED_HEADER}${lines.join('\n')}\n`;
}

/** PXE by RFC 4578 client architecture (DHCP option 93), and iPXE recognised by its user class. */
function renderPxe(cfg: GatewayConfig, rpi: boolean): string[] {
  // An operator's own script wins; else the boot server's stub, when it runs.
  const script = cfg.pxe.ipxe_script ?? (cfg.boot.enabled ? stubUrl(cfg) : undefined);
  return [
    '# --- PXE: tag by client architecture (option 93) and by iPXE (user class, option 77) ---',
    'dhcp-match=set:bios,option:client-arch,0',
    'dhcp-match=set:efi64,option:client-arch,7',
    'dhcp-match=set:efi64,option:client-arch,9',
    'dhcp-match=set:efiarm64,option:client-arch,11',
    'dhcp-userclass=set:ipxe,iPXE',
    '# firmware PXE chainloads iPXE; tag:!ipxe keeps iPXE from being handed iPXE again (boot loop)',
    // A Raspberry Pi also claims arch 0 (BIOS) but runs no iPXE: no boot file for it (renderRpi).
    `dhcp-boot=tag:bios,tag:!ipxe,${rpi ? `tag:!${RPI_TAG},` : ''}${cfg.pxe.bios}`,
    `dhcp-boot=tag:efi64,tag:!ipxe,${cfg.pxe.efi64}`,
    `dhcp-boot=tag:efiarm64,tag:!ipxe,${cfg.pxe.arm64}`,
    // Without a script URL iPXE gets no boot file and falls through to its next boot device.
    ...(script ? ['# iPXE already running: hand it the boot script', `dhcp-boot=tag:ipxe,${script}`] : []),
  ];
}

/**
 * Raspberry Pi 4/5 network boot (planned hosts with arch `rpi`, whose MACs the dhcp-hostsdir
 * files tag). Their EEPROM bootloader sends option 93 = 0 and vendor class
 * `PXEClient:Arch:00000:UNDI:002001`, and boots from the network only when the reply's option 43
 * holds "Raspberry Pi Boot": dnsmasq writes that as the PXE boot menu (43.9) of a `pxe-service`
 * of CSA 0 without a boot file (the Pi asks for its own files). Verified against dnsmasq 2.90
 * with a DHCPDISCOVER shaped like the Pi's: option 43 comes out byte for byte as in the Raspberry
 * Pi documentation's capture, and an untagged client gets no menu. The Pi then reads
 * `<serial>/start4.elf` by TFTP from the reply's server (siaddr, and option 66 which it asks for;
 * both are the gateway) and, when that is missing, the TFTP root.
 */
function renderRpi(gw: string): string[] {
  return [
    `# --- Raspberry Pi 4/5 (tag:${RPI_TAG} set by MAC in dhcp-hostsdir): option 43 "Raspberry Pi Boot", TFTP here; no iPXE ---`,
    `pxe-service=tag:${RPI_TAG},0,"Raspberry Pi Boot"`,
    `dhcp-option=tag:${RPI_TAG},option:tftp-server,${gw}`,
  ];
}

/**
 * Router advertisements on the LAN, so that iPXE's IPv6 autoconfiguration ends at once instead of
 * timing out (about 13 s per boot). Verified with dnsmasq 2.90: with only a link-local address on
 * the LAN the constructor finds no network and no RA is sent at all (the lines are then harmless);
 * with a ULA or global address on the LAN, an RA goes out with M and O clear (no DHCPv6) and the
 * prefix with L and A set (clients also take a SLAAC address). Router lifetime 0 (`ra-param`):
 * the gateway does not route IPv6, so it must not be anyone's default router.
 */
function renderRa(cfg: GatewayConfig): string[] {
  return [
    "# --- IPv6 RA only (no DHCPv6, not a default router): ends iPXE's IPv6 wait; needs a non-link-local LAN address ---",
    'enable-ra',
    `dhcp-range=::,constructor:${cfg.lan.interface},ra-only`,
    `ra-param=${cfg.lan.interface},0,0`,
  ];
}

/** Read-only TFTP; `tftp-secure` serves only files owned by dnsmasq's user, so name it explicitly. */
function renderTftp(cfg: GatewayConfig): string[] {
  return [
    '# --- TFTP: read-only; tftp-secure serves only files owned by the user= below ---',
    'enable-tftp',
    `tftp-root=${cfg.tftp.root}`,
    'tftp-secure',
    // The default user differs between builds (nobody in dnsmasq-base, dnsmasq in the service
    // package); the agent chowns the boot files to this one.
    `user=${cfg.tftp.user}`,
  ];
}
