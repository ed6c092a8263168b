import { describe, it, expect } from 'vitest';
import { parseGatewayConfig } from '../../../roles/gateway/config.js';
import { GATEWAY_LB_DEFAULTS } from '../../../roles/gateway/lb/config.js';
import { SettingsError } from '../../../core/validation.js';

/** The message `parseGatewayConfig(raw)` throws, or '' when it accepts `raw`. */
function problem(raw: unknown): string {
  try {
    parseGatewayConfig(raw);
    return '';
  } catch (err) {
    expect(err).toBeInstanceOf(SettingsError);
    return (err as Error).message;
  }
}

describe('parseGatewayConfig defaults', () => {
  const expected = {
    lan: { interface: 'eth1', address: '10.88.0.1/24' },
    wan: { interface: 'eth0' },
    domain: 'mammatus',
    upstream_dns: ['1.1.1.1'],
    dhcp: { range: { start: '10.88.0.100', end: '10.88.0.199' }, lease_time: '12h', reservations: [] },
    pxe: { enabled: true, bios: 'undionly.kpxe', efi64: 'snponly.efi', arm64: 'ipxe-arm64.efi', ipxe_dir: '/usr/lib/ipxe' },
    tftp: { enabled: true, root: '/srv/tftp', user: 'nobody' },
    boot: { enabled: true, port: 8777, image_dir: '/var/lib/mammatus/boot/amd64', apt_dir: '/var/lib/mammatus/apt', unknown: 'local' },
    firewall: { ssh_from_lan: true, port_forwards: [] },
    metadata: { proxy_port: 8776, upstreams: [], upstream_port: 8775, hop_limit: 1 },
    registry: { enabled: true, nats: [], port: 4222 },
    paths: {
      dnsmasq_conf: '/etc/mammatus/gateway/dnsmasq.conf',
      hosts_dir: '/var/lib/mammatus/gateway/hosts.d',
      leases: '/var/lib/mammatus/gateway/dnsmasq.leases',
      iptables: '/etc/mammatus/gateway/iptables.rules',
      hop_limit: '/etc/mammatus/gateway/hop-limit.rules',
      sysctl: '/etc/sysctl.d/60-mammatus-gateway.conf',
      lease_hook: '/usr/lib/mammatus/lease-hook',
      metadata_proxy: '/etc/mammatus/gateway/metadata-proxy.yaml',
      dhcp_hosts_dir: '/var/lib/mammatus/gateway/dhcp-hosts.d',
      members: '/var/lib/mammatus/gateway/members',
      left_out: '/var/lib/mammatus/gateway/left-out',
      boot_server: '/etc/mammatus/gateway/boot-server.yaml',
      boot_stub: '/etc/mammatus/gateway/boot.ipxe',
    },
    // Spelled out in lb.test.ts.
    lb: GATEWAY_LB_DEFAULTS,
  };

  it.each([{}, null, undefined])('fills every default for %j', (raw) => {
    expect(parseGatewayConfig(raw)).toEqual(expected);
  });

  it('treats null sections (a bare `dhcp:` line in YAML) as absent', () => {
    expect(parseGatewayConfig({ dhcp: null, pxe: null, paths: { leases: null } })).toEqual(expected);
  });

  it('turns the boot server on with PXE unless told otherwise, and checks its keys', () => {
    expect(parseGatewayConfig({ pxe: { enabled: false }, tftp: { enabled: false } }).boot.enabled).toBe(false);
    expect(parseGatewayConfig({ pxe: { enabled: false }, boot: { enabled: true } }).boot.enabled).toBe(true);
    expect(parseGatewayConfig({ boot: { enabled: false } }).boot.enabled).toBe(false);
    expect(() => parseGatewayConfig({ boot: { port: 80 } })).toThrow(/^roles\.gateway\.boot\.port: /);
    expect(() => parseGatewayConfig({ boot: { port: 8776 } })).toThrow(/^roles\.gateway\.boot\.port: must differ/);
    expect(() => parseGatewayConfig({ boot: { unknown: 'shell' } })).toThrow(/^roles\.gateway\.boot\.unknown: /);
    expect(() => parseGatewayConfig({ boot: { image_dir: 'relative/dir' } })).toThrow(/^roles\.gateway\.boot\.image_dir: /);
    expect(() => parseGatewayConfig({ boot: { apt_dir: '/var/lib/../etc' } })).toThrow(/^roles\.gateway\.boot\.apt_dir: /);
  });

  it('derives the DHCP range from the LAN and keeps each given key', () => {
    const cfg = parseGatewayConfig({ lan: { address: '172.16.5.1/16' }, dhcp: { range: { end: '172.16.4.9' } } });
    expect(cfg.dhcp.range).toEqual({ start: '172.16.0.100', end: '172.16.4.9' });
    expect(cfg.lan).toEqual({ interface: 'eth1', address: '172.16.5.1/16' });
  });

  it('lowercases MACs, names and the domain so duplicates cannot hide behind case', () => {
    const cfg = parseGatewayConfig({
      domain: 'Lab.Mammatus',
      dhcp: { reservations: [{ mac: '02:00:00:00:00:AB', ip: '10.88.0.10', name: 'Ctl' }] },
    });
    expect(cfg.domain).toBe('lab.mammatus');
    expect(cfg.dhcp.reservations).toEqual([{ mac: '02:00:00:00:00:ab', ip: '10.88.0.10', name: 'ctl' }]);
  });

  it('keeps ipxe_script only when given', () => {
    expect(parseGatewayConfig({}).pxe).not.toHaveProperty('ipxe_script');
    expect(parseGatewayConfig({ pxe: { ipxe_script: 'https://boot.example/x.ipxe' } }).pxe.ipxe_script).toBe('https://boot.example/x.ipxe');
  });

  it('accepts reservations inside and outside the range', () => {
    const reservations = [
      { mac: '02:00:00:00:00:01', ip: '10.88.0.10', name: 'outside' },
      { mac: '02:00:00:00:00:02', ip: '10.88.0.150', name: 'inside' },
    ];
    expect(parseGatewayConfig({ dhcp: { reservations } }).dhcp.reservations).toEqual(reservations);
  });
});

describe('parseGatewayConfig errors name the bad key', () => {
  const r = (over: Record<string, unknown>) => ({ mac: '02:00:00:00:00:01', ip: '10.88.0.10', name: 'a', ...over });
  it.each<[string, unknown, string]>([
    ['not an object', 'eth0', 'roles.gateway: must be a mapping'],
    ['unknown top key', { lann: {} }, 'roles.gateway.lann: unknown key'],
    ['unknown nested key', { dhcp: { lease: '1h' } }, 'roles.gateway.dhcp.lease: unknown key'],
    ['bad interface', { lan: { interface: 'eth 1' } }, 'roles.gateway.lan.interface: must be a network interface name'],
    ['interface too long', { wan: { interface: 'a'.repeat(16) } }, 'roles.gateway.wan.interface: must be a network'],
    ['same interfaces', { lan: { interface: 'eth0' } }, 'roles.gateway.wan.interface: must differ from lan.interface'],
    ['address without prefix', { lan: { address: '10.88.0.1' } }, 'roles.gateway.lan.address: must be an IPv4 address with a prefix'],
    ['leading zero', { lan: { address: '10.088.0.1/24' } }, 'roles.gateway.lan.address: must be an IPv4 address with a prefix'],
    ['prefix too long', { lan: { address: '10.88.0.1/31' } }, 'roles.gateway.lan.address: must have a prefix length between /8 and /30'],
    ['network address', { lan: { address: '10.88.0.0/24' } }, 'roles.gateway.lan.address: must be a host address'],
    ['bad domain', { domain: 'bad_domain' }, 'roles.gateway.domain: must be a DNS name'],
    ['upstream not IPv4', { upstream_dns: ['dns.google'] }, 'roles.gateway.upstream_dns[0]: must be an IPv4 address'],
    ['duplicate upstream', { upstream_dns: ['1.1.1.1', '1.1.1.1'] }, 'roles.gateway.upstream_dns[1]: duplicate of upstream_dns[0]'],
    ['upstream is the gateway', { upstream_dns: ['10.88.0.1'] }, "roles.gateway.upstream_dns[0]: must not be the gateway's own address"],
    [
      'range start outside the LAN',
      { dhcp: { range: { start: '10.89.0.100' } } },
      'roles.gateway.dhcp.range.start: must be an IPv4 address inside lan.address (10.88.0.0/24)',
    ],
    [
      'range end is broadcast',
      { dhcp: { range: { end: '10.88.0.255' } } },
      'roles.gateway.dhcp.range.end: must not be the network or broadcast address',
    ],
    [
      'range reversed',
      { dhcp: { range: { start: '10.88.0.150', end: '10.88.0.120' } } },
      'roles.gateway.dhcp.range.end: must not be below dhcp.range.start',
    ],
    [
      'range holds the gateway',
      { dhcp: { range: { start: '10.88.0.0', end: '10.88.0.9' } } },
      'roles.gateway.dhcp.range.start: must not be the network',
    ],
    [
      'range around the gateway',
      { lan: { address: '10.88.0.150/24' } },
      "roles.gateway.dhcp.range: must not contain the gateway's own address 10.88.0.150",
    ],
    [
      'no default range in a /25',
      { lan: { address: '10.88.0.1/25' } },
      'roles.gateway.dhcp.range.start: has no default in a LAN smaller than /24 (10.88.0.0/25)',
    ],
    ['lease too short', { dhcp: { lease_time: '60s' } }, 'roles.gateway.dhcp.lease_time: must be a lease time of at least 2m'],
    ['lease garbage', { dhcp: { lease_time: '12 hours' } }, 'roles.gateway.dhcp.lease_time: must be a lease time'],
    [
      'reservation MAC',
      { dhcp: { reservations: [r({ mac: '02:00:00:00:00' })] } },
      'roles.gateway.dhcp.reservations[0].mac: must be a MAC address',
    ],
    [
      'reservation IP outside',
      { dhcp: { reservations: [r({ ip: '192.168.1.5' })] } },
      'roles.gateway.dhcp.reservations[0].ip: must be an IPv4 address inside lan.address',
    ],
    [
      'reservation is the gateway',
      { dhcp: { reservations: [r({ ip: '10.88.0.1' })] } },
      "roles.gateway.dhcp.reservations[0].ip: must not be the gateway's own address 10.88.0.1",
    ],
    [
      'reservation name',
      { dhcp: { reservations: [r({ name: 'bad_name!' })] } },
      'roles.gateway.dhcp.reservations[0].name: must be a DNS label',
    ],
    [
      'reservation named gateway',
      { dhcp: { reservations: [r({ name: 'Gateway' })] } },
      'roles.gateway.dhcp.reservations[0].name: must not be "gateway"',
    ],
    [
      'reservation missing key',
      { dhcp: { reservations: [{ mac: '02:00:00:00:00:01', ip: '10.88.0.10' }] } },
      'roles.gateway.dhcp.reservations[0].name: is required',
    ],
    ['boot file escapes the root', { pxe: { bios: '../etc/shadow' } }, 'roles.gateway.pxe.bios: must be a file name relative to tftp.root'],
    ['absolute boot file', { pxe: { efi64: '/srv/tftp/ipxe.efi' } }, 'roles.gateway.pxe.efi64: must be a file name relative to tftp.root'],
    [
      'script URL with a comma',
      { pxe: { ipxe_script: 'http://a/b,c' } },
      'roles.gateway.pxe.ipxe_script: must be an http://, https:// or tftp:// URL',
    ],
    ['script not a URL', { pxe: { ipxe_script: 'boot.ipxe' } }, 'roles.gateway.pxe.ipxe_script: must be an http://'],
    ['pxe without tftp', { tftp: { enabled: false } }, 'roles.gateway.pxe.enabled: needs tftp.enabled'],
    ['enabled not boolean', { tftp: { enabled: 'yes' } }, 'roles.gateway.tftp.enabled: must be true or false'],
    ['tftp root relative', { tftp: { root: 'srv/tftp' } }, 'roles.gateway.tftp.root: must be an absolute path'],
    ['tftp root is /', { tftp: { root: '/' } }, 'roles.gateway.tftp.root: must be an absolute path'],
    ['tftp root with ..', { tftp: { root: '/srv/../etc' } }, 'roles.gateway.tftp.root: must be an absolute path'],
    ['tftp user', { tftp: { user: 'No Body' } }, 'roles.gateway.tftp.user: must be a user name'],
    [
      'forward proto',
      { firewall: { port_forwards: [{ proto: 'icmp', port: 1, to: '10.88.0.10:1' }] } },
      'roles.gateway.firewall.port_forwards[0].proto: must be one of tcp, udp',
    ],
    [
      'forward port',
      { firewall: { port_forwards: [{ proto: 'tcp', port: 70000, to: '10.88.0.10:1' }] } },
      'roles.gateway.firewall.port_forwards[0].port: must be at most 65535',
    ],
    [
      'forward to',
      { firewall: { port_forwards: [{ proto: 'tcp', port: 80, to: '10.88.0.10' }] } },
      'roles.gateway.firewall.port_forwards[0].to: must be IP:PORT',
    ],
    [
      'forward outside the LAN',
      { firewall: { port_forwards: [{ proto: 'tcp', port: 80, to: '8.8.8.8:80' }] } },
      'roles.gateway.firewall.port_forwards[0].to: must be an IPv4 address inside lan.address',
    ],
    ['proxy port not integer', { metadata: { proxy_port: 80.5 } }, 'roles.gateway.metadata.proxy_port: must be an integer'],
    ['proxy port taken', { metadata: { proxy_port: 53 } }, 'roles.gateway.metadata.proxy_port: must not be 22, 53, 67 or 69'],
    ['path relative', { paths: { leases: 'dnsmasq.leases' } }, 'roles.gateway.paths.leases: must be an absolute path'],
    ['path with a space', { paths: { sysctl: '/etc/sysctl.d/60 gw.conf' } }, 'roles.gateway.paths.sysctl: must be an absolute path'],
    [
      'two settings, one file',
      { paths: { iptables: '/etc/mammatus/gateway/dnsmasq.conf' } },
      'roles.gateway.paths.iptables: duplicate of paths.dnsmasq_conf',
    ],
    [
      'file inside hosts_dir',
      { paths: { sysctl: '/var/lib/mammatus/gateway/hosts.d/x' } },
      'roles.gateway.paths.sysctl: must not be inside paths.hosts_dir',
    ],
  ])('%s', (_title, raw, message) => {
    expect(problem(raw)).toContain(message);
  });

  it('exposes the key and the reason on the error', () => {
    try {
      parseGatewayConfig({ dhcp: { range: { start: '10.89.0.100' } } });
      expect.unreachable();
    } catch (err) {
      expect(err).toMatchObject({ name: 'SettingsError', key: 'roles.gateway.dhcp.range.start' });
      expect((err as SettingsError).message).toBe(
        'roles.gateway.dhcp.range.start: must be an IPv4 address inside lan.address (10.88.0.0/24)',
      );
    }
  });
});

describe('parseGatewayConfig duplicate reservations', () => {
  const base = [
    { mac: '02:00:00:00:00:01', ip: '10.88.0.10', name: 'ctl' },
    { mac: '02:00:00:00:00:02', ip: '10.88.0.11', name: 'web' },
  ];
  const withSecond = (over: Record<string, string>) => ({ dhcp: { reservations: [base[0], { ...base[1], ...over }] } });

  it('refuses a MAC twice, whatever its case', () => {
    expect(problem(withSecond({ mac: '02:00:00:00:00:01'.toUpperCase() }))).toBe(
      'roles.gateway.dhcp.reservations[1].mac: duplicate of dhcp.reservations[0].mac (02:00:00:00:00:01)',
    );
  });

  it('refuses an IP twice', () => {
    expect(problem(withSecond({ ip: '10.88.0.10' }))).toBe(
      'roles.gateway.dhcp.reservations[1].ip: duplicate of dhcp.reservations[0].ip (10.88.0.10)',
    );
  });

  it('refuses a name twice, whatever its case', () => {
    expect(problem(withSecond({ name: 'CTL' }))).toBe(
      'roles.gateway.dhcp.reservations[1].name: duplicate of dhcp.reservations[0].name (ctl)',
    );
  });

  it('refuses the same forwarded port and protocol twice, but not tcp and udp on one port', () => {
    const fwd = (proto: string) => ({ proto, port: 53, to: '10.88.0.10:53' });
    expect(problem({ firewall: { port_forwards: [fwd('tcp'), fwd('udp')] } })).toBe('');
    expect(problem({ firewall: { port_forwards: [fwd('udp'), fwd('udp')] } })).toBe(
      'roles.gateway.firewall.port_forwards[1]: duplicate of firewall.port_forwards[0] (udp/53)',
    );
  });
});
