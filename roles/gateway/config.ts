/**
 * The gateway role's settings (`roles.gateway` in the agent config): the resolved `GatewayConfig`,
 * the JSON schema of what operators may write (`GatewaySettings`, every key optional), and
 * `parseGatewayConfig`, which checks the shape, applies the defaults and then checks what a schema
 * cannot (addresses inside the LAN, unique reservations). Every string that ends up in dnsmasq or
 * iptables syntax is restricted to characters that cannot break a line or a comma-separated field.
 */
import type { JSONSchemaType } from 'ajv';
import { broadcast, contains, formatIPv4, isHostOf, network, parseCidr, parseIPv4, parseIPv4Port, subnetOf } from '../../core/net.js';
import { COMMON_FORMATS, invalid, sectionChecker, withDefaults as applyDefaults, type Format } from '../../core/validation.js';
import { parseLbConfig, splitLbSettings, type GatewayLbConfig } from './lb/config.js';

/** A fixed DHCP lease: this MAC always gets this IP and name. */
export interface DhcpReservation {
  readonly mac: string;
  readonly ip: string;
  readonly name: string;
}

/** A WAN port forwarded to a LAN host, `to` being `IP:PORT`. */
export interface PortForward {
  readonly proto: 'tcp' | 'udp';
  readonly port: number;
  readonly to: string;
}

/** The resolved gateway settings: every default applied, every value checked. */
export interface GatewayConfig {
  readonly lan: { readonly interface: string; readonly address: string };
  readonly wan: { readonly interface: string };
  readonly domain: string;
  readonly upstream_dns: readonly string[];
  readonly dhcp: {
    readonly range: { readonly start: string; readonly end: string };
    readonly lease_time: string;
    readonly reservations: readonly DhcpReservation[];
  };
  readonly pxe: {
    readonly enabled: boolean;
    readonly bios: string;
    readonly efi64: string;
    readonly arm64: string;
    /** URL handed to clients already running iPXE; without it they get no boot file (no loop). */
    readonly ipxe_script?: string;
    /** Where the boot files are copied from into `tftp.root` (Debian's `ipxe` package puts them here). */
    readonly ipxe_dir: string;
  };
  readonly tftp: { readonly enabled: boolean; readonly root: string; readonly user: string };
  /**
   * The boot HTTP server (a child run as `services.user`, on the LAN address): the iPXE stub
   * `/boot.ipxe`, the live image under `/live/amd64/`, the cluster apt repository under `/apt/`.
   */
  readonly boot: {
    /** Default: `pxe.enabled`. */
    readonly enabled: boolean;
    readonly port: number;
    /** Holds vmlinuz, initrd.img and filesystem.squashfs (scripts/build-boot-image.sh's output). */
    readonly image_dir: string;
    /** The signed flat repository scripts/repo-build.sh writes. */
    readonly apt_dir: string;
    /**
     * What iPXE does when the metadata service has no script for the machine (an unregistered MAC,
     * the service unreachable): `local` exits to the firmware's next boot device; `none` boots
     * nothing and asks again every 30 s, so a machine registered later boots without a reset.
     */
    readonly unknown: 'local' | 'none';
  };
  readonly firewall: { readonly ssh_from_lan: boolean; readonly port_forwards: readonly PortForward[] };
  readonly metadata: {
    /** Where instances' 169.254.169.254:80 is redirected: the local metadata proxy. */
    readonly proxy_port: number;
    /** The cluster secret the proxy signs callers with (`metadata.proxy_secret` of the controllers); unset = no proxy. */
    readonly secret_file?: string;
    /** Metadata service URLs; empty = every controller Serf knows, at `upstream_port`. */
    readonly upstreams: readonly string[];
    readonly upstream_port: number;
    /**
     * The IP TTL of the proxy's answers (AWS's "hop limit"): 1 = only the instance itself gets
     * them; a container or VM that an instance NATs or routes for is one hop further and gets none.
     */
    readonly hop_limit: number;
  };
  /** The instance registry, for DHCP reservations and DNS names of instances. */
  readonly registry: {
    /** Follow it at all (needs NATS on the controllers). */
    readonly enabled: boolean;
    /** NATS servers; empty = every controller Serf knows, at `port`. */
    readonly nats: readonly string[];
    readonly port: number;
  };
  readonly paths: {
    readonly dnsmasq_conf: string;
    readonly hosts_dir: string;
    readonly leases: string;
    readonly iptables: string;
    /** Our mangle chain that sets the proxy answers' TTL (`metadata.hop_limit`), restored with `--noflush`. */
    readonly hop_limit: string;
    readonly sysctl: string;
    readonly lease_hook: string;
    /** The metadata proxy's own config (secret file, upstreams, leases), rendered from the above. */
    readonly metadata_proxy: string;
    /** dnsmasq's `dhcp-hostsdir`: one file per registered instance (its MAC → address and name). */
    readonly dhcp_hosts_dir: string;
    /** The members the gateway knows, so the next apply can release the leases of those gone. */
    readonly members: string;
    /** The registered instances the gateway does not serve as registered, with the reason. */
    readonly left_out: string;
    /** The boot server's own config (listen address, what it serves), rendered from `boot`. */
    readonly boot_server: string;
    /** The iPXE stub served as `/boot.ipxe` (readable by the service user: 0644). */
    readonly boot_stub: string;
  };
  /** HAProxy for the registry's load balancers: its own section and schema (lb/config.ts). */
  readonly lb: GatewayLbConfig;
}

/** Every key optional, all the way down (list items stay complete): what an operator writes. */
export type Settings<T> = {
  readonly [K in keyof T]?: T[K] extends readonly unknown[] ? T[K] : T[K] extends object ? Settings<T[K]> : T[K];
};
/** The shape `roles.gateway` may take before defaults are applied. */
export type GatewaySettings = Settings<Omit<GatewayConfig, 'lb'>>;

/** The first line of every file the gateway role renders. */
export const MANAGED_HEADER = '# managed by mammatus role=gateway\n';

// A file under tftp-root: relative, no ".." (dnsmasq refuses those anyway), no dnsmasq syntax.
function isBootFile(v: string): boolean {
  return /^[A-Za-z0-9._+-]+(?:\/[A-Za-z0-9._+-]+)*$/.test(v) && !v.split('/').some((p) => p === '.' || p === '..');
}

const UNIT_SECONDS: Readonly<Record<string, number>> = { '': 1, s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
// dnsmasq's floor is two minutes; refusing less beats a lease silently longer than configured.
function isLeaseTime(v: string): boolean {
  const m = /^(?:infinite|(\d{1,9})([smhdw]?))$/.exec(v);
  return m !== null && (m[1] === undefined || Number(m[1]) * (UNIT_SECONDS[m[2] ?? ''] ?? 1) >= 120);
}

/** The formats of `roles.gateway`: the common ones and the gateway's own. */
const FORMATS: Readonly<Record<string, Format>> = {
  ...COMMON_FORMATS,
  lease: { check: isLeaseTime, why: 'must be a lease time of at least 2m, like 45m, 12h, 7d or infinite' },
  'boot-file': {
    check: isBootFile,
    why: 'must be a file name relative to tftp.root (A-Z a-z 0-9 . _ + - /, no "..")',
  },
  // A comma would start dnsmasq's next dhcp-boot field; quotes and '#' are dnsmasq syntax too.
  url: {
    check: (v) => /^(?:https?|tftp):\/\/[^\s,"'\\#]+$/.test(v),
    why: 'must be an http://, https:// or tftp:// URL without spaces, commas, quotes or "#"',
  },
  user: { check: (v) => /^[a-z_][a-z0-9_-]{0,31}$/.test(v), why: 'must be a user name like nobody or dnsmasq' },
  'ip-port': { check: (v) => parseIPv4Port(v) !== undefined, why: 'must be IP:PORT, like 10.88.0.10:8080' },
};

// Optional keys are `nullable` (JSONSchemaType demands it); a bare `dhcp:` line in YAML is null,
// which the defaults below treat like an absent key.
const opt = { nullable: true } as const;
const s = (format: string) => ({ type: 'string', format, ...opt }) as const;
const bool = { type: 'boolean', ...opt } as const;
const port = { type: 'integer', minimum: 1, maximum: 65535 } as const;
const obj = { type: 'object', additionalProperties: false, required: [], ...opt } as const;

/** The JSON schema of `roles.gateway` as written; defaults and cross-field checks come after. */
export const GATEWAY_SETTINGS_SCHEMA: JSONSchemaType<GatewaySettings> = {
  ...obj,
  properties: {
    lan: { ...obj, properties: { interface: s('ifname'), address: s('cidr') } },
    wan: { ...obj, properties: { interface: s('ifname') } },
    domain: s('domain'),
    upstream_dns: { type: 'array', items: { type: 'string', format: 'ipv4' }, ...opt },
    dhcp: {
      ...obj,
      properties: {
        range: { ...obj, properties: { start: s('ipv4'), end: s('ipv4') } },
        lease_time: s('lease'),
        reservations: {
          type: 'array',
          ...opt,
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['mac', 'ip', 'name'],
            properties: {
              mac: { type: 'string', format: 'mac' },
              ip: { type: 'string', format: 'ipv4' },
              name: { type: 'string', format: 'label' },
            },
          },
        },
      },
    },
    pxe: {
      ...obj,
      properties: {
        enabled: bool,
        bios: s('boot-file'),
        efi64: s('boot-file'),
        arm64: s('boot-file'),
        ipxe_script: s('url'),
        ipxe_dir: s('path'),
      },
    },
    tftp: { ...obj, properties: { enabled: bool, root: s('path'), user: s('user') } },
    boot: {
      ...obj,
      properties: {
        enabled: bool,
        // The server runs unprivileged (services.user): no port below 1024.
        port: { type: 'integer', minimum: 1024, maximum: 65535, ...opt },
        image_dir: s('path'),
        apt_dir: s('path'),
        unknown: { type: 'string', enum: ['local', 'none'], ...opt },
      },
    },
    firewall: {
      ...obj,
      properties: {
        ssh_from_lan: bool,
        port_forwards: {
          type: 'array',
          ...opt,
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['proto', 'port', 'to'],
            properties: {
              proto: { type: 'string', enum: ['tcp', 'udp'] },
              port,
              to: { type: 'string', format: 'ip-port' },
            },
          },
        },
      },
    },
    metadata: {
      ...obj,
      properties: {
        proxy_port: { ...port, ...opt },
        secret_file: s('path'),
        upstreams: { type: 'array', items: { type: 'string', format: 'url' }, ...opt },
        upstream_port: { ...port, ...opt },
        hop_limit: { type: 'integer', minimum: 1, maximum: 64, ...opt },
      },
    },
    registry: {
      ...obj,
      properties: {
        enabled: bool,
        nats: { type: 'array', items: { type: 'string', format: 'nats-url' }, ...opt },
        port: { ...port, ...opt },
      },
    },
    paths: {
      ...obj,
      properties: {
        dnsmasq_conf: s('path'),
        hosts_dir: s('path'),
        leases: s('path'),
        iptables: s('path'),
        hop_limit: s('path'),
        sysctl: s('path'),
        lease_hook: s('path'),
        metadata_proxy: s('path'),
        dhcp_hosts_dir: s('path'),
        members: s('path'),
        left_out: s('path'),
        boot_server: s('path'),
        boot_stub: s('path'),
      },
    },
  },
};

/**
 * Every default except the DHCP range, which is derived from `lan.address` (.100–.199), and
 * `boot.enabled`, which follows `pxe.enabled`.
 */
export const GATEWAY_DEFAULTS = {
  lan: { interface: 'eth1', address: '10.88.0.1/24' },
  wan: { interface: 'eth0' },
  domain: 'mammatus',
  upstream_dns: ['1.1.1.1'],
  dhcp: { lease_time: '12h', reservations: [] },
  pxe: { enabled: true, bios: 'undionly.kpxe', efi64: 'snponly.efi', arm64: 'ipxe-arm64.efi', ipxe_dir: '/usr/lib/ipxe' },
  tftp: { enabled: true, root: '/srv/tftp', user: 'nobody' },
  boot: { port: 8777, image_dir: '/var/lib/mammatus/boot/amd64', apt_dir: '/var/lib/mammatus/apt', unknown: 'local' },
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
} as const satisfies Omit<GatewayConfig, 'dhcp' | 'boot' | 'lb'> & {
  dhcp: Omit<GatewayConfig['dhcp'], 'range'>;
  boot: Omit<GatewayConfig['boot'], 'enabled'>;
};

const AT = 'roles.gateway';
const checkSettings = sectionChecker<GatewaySettings>({ name: 'roles.gateway', at: AT, schema: GATEWAY_SETTINGS_SCHEMA, formats: FORMATS });

/**
 * Checks `roles.gateway` (`raw`; null or undefined mean "all defaults"), applies the defaults and
 * returns the resolved config. Throws a `SettingsError` naming the first bad key, e.g.
 * `roles.gateway.dhcp.range.start: must be an IPv4 address inside lan.address (10.88.0.0/24)`.
 */
export function parseGatewayConfig(raw: unknown): GatewayConfig {
  const { rest, lb } = splitLbSettings(raw);
  const settings = checkSettings(rest ?? {});
  const cfg = { ...withDefaults(settings), lb: parseLbConfig(lb) };
  checkConfig(cfg, { start: !settings.dhcp?.range?.start, end: !settings.dhcp?.range?.end });
  return cfg;
}

function withDefaults(s: GatewaySettings): Omit<GatewayConfig, 'lb'> {
  // Format-checked already, so this parses; checkConfig then sees whether .100-.199 fits the LAN.
  const net = network(parseCidr(s.lan?.address ?? GATEWAY_DEFAULTS.lan.address) ?? { address: 0, prefix: 32 });
  const range = { start: formatIPv4(net + 100), end: formatIPv4(net + 199) };
  const boot = { ...GATEWAY_DEFAULTS.boot, enabled: s.pxe?.enabled ?? GATEWAY_DEFAULTS.pxe.enabled };
  const defaults = { ...GATEWAY_DEFAULTS, dhcp: { ...GATEWAY_DEFAULTS.dhcp, range }, boot };
  // Sound: the schema admitted only known keys of the right types, over a complete default.
  const cfg = applyDefaults(defaults, s) as Omit<GatewayConfig, 'lb'>;
  // DNS names and MACs are case-insensitive; one spelling keeps duplicate checks honest.
  const reservations = cfg.dhcp.reservations.map((r) => ({
    ...r,
    mac: r.mac.toLowerCase(),
    name: r.name.toLowerCase(),
  }));
  return { ...cfg, domain: cfg.domain.toLowerCase(), dhcp: { ...cfg.dhcp, reservations } };
}

function fail(key: string, reason: string): never {
  return invalid(AT, key, reason);
}

/** Fails at `key` when `value` is already in `seen` (value → key of its first occurrence). */
function unique(seen: Map<string, string>, key: string, value: string): void {
  const first = seen.get(value);
  if (first !== undefined) fail(key, `duplicate of ${first} (${value})`);
  seen.set(value, key);
}

/** Cross-field checks the schema cannot express; the first problem throws. */
function checkConfig(cfg: GatewayConfig, defaulted: { readonly start: boolean; readonly end: boolean }): void {
  const lan = parseCidr(cfg.lan.address) ?? fail('lan.address', 'is invalid');
  const subnet = subnetOf(lan);
  const gw = formatIPv4(lan.address);
  if (lan.prefix < 8 || lan.prefix > 30) fail('lan.address', 'must have a prefix length between /8 and /30');
  if (!isHostOf(lan, lan.address)) {
    fail('lan.address', 'must be a host address, not the network or broadcast address');
  }
  if (cfg.wan.interface === cfg.lan.interface) fail('wan.interface', 'must differ from lan.interface');
  /** A usable LAN address other than the gateway's own, as a number. */
  const lanHost = (key: string, text: string): number => {
    const ip = parseIPv4(text) ?? fail(key, 'must be an IPv4 address');
    if (!contains(lan, ip)) fail(key, `must be an IPv4 address inside lan.address (${subnet})`);
    if (!isHostOf(lan, ip)) fail(key, `must not be the network or broadcast address of ${subnet}`);
    if (ip === lan.address) fail(key, `must not be the gateway's own address ${gw}`);
    return ip;
  };

  const upstreams = new Map<string, string>();
  cfg.upstream_dns.forEach((ip, i) => {
    unique(upstreams, `upstream_dns[${i}]`, ip);
    // dnsmasq would forward to itself and loop.
    if (ip === gw) fail(`upstream_dns[${i}]`, "must not be the gateway's own address");
  });

  // The .100-.199 defaults exist only in a /24 or larger; say so rather than "not inside the LAN".
  for (const end of ['start', 'end'] as const) {
    if (defaulted[end] && broadcast(lan) - network(lan) < 200) {
      fail(`dhcp.range.${end}`, `has no default in a LAN smaller than /24 (${subnet}): set it`);
    }
  }
  const start = lanHost('dhcp.range.start', cfg.dhcp.range.start);
  const end = lanHost('dhcp.range.end', cfg.dhcp.range.end);
  if (end < start) fail('dhcp.range.end', 'must not be below dhcp.range.start');
  if (start <= lan.address && lan.address <= end) {
    fail('dhcp.range', `must not contain the gateway's own address ${gw}`);
  }

  // Reservations may sit inside or outside the range, but each MAC, IP and name only once.
  const [macs, ips, names] = [new Map<string, string>(), new Map<string, string>(), new Map<string, string>()];
  cfg.dhcp.reservations.forEach((r, i) => {
    const at = `dhcp.reservations[${i}]`;
    unique(macs, `${at}.mac`, r.mac);
    lanHost(`${at}.ip`, r.ip);
    unique(ips, `${at}.ip`, r.ip);
    if (r.name === 'gateway') fail(`${at}.name`, 'must not be "gateway" (the gateway\'s own host-record)');
    unique(names, `${at}.name`, r.name);
  });

  if (cfg.pxe.enabled && !cfg.tftp.enabled) {
    fail('pxe.enabled', "needs tftp.enabled: the boot files are served by this gateway's TFTP server");
  }
  // The proxy binds its port on the gateway next to sshd, dnsmasq (DNS, DHCP) and TFTP.
  cfg.metadata.upstreams.forEach((u, i) => {
    if (!/^https?:\/\//.test(u)) fail(`metadata.upstreams[${i}]`, 'must be an http:// or https:// URL of a metadata service');
  });
  if ([22, 53, 67, 69].includes(cfg.metadata.proxy_port)) {
    fail('metadata.proxy_port', 'must not be 22, 53, 67 or 69 (ssh, DNS, DHCP, TFTP)');
  }

  if (cfg.boot.enabled && [cfg.metadata.proxy_port, cfg.metadata.upstream_port].includes(cfg.boot.port)) {
    fail(
      'boot.port',
      `must differ from the metadata proxy's port ${cfg.metadata.proxy_port} and upstream_port ${cfg.metadata.upstream_port}`,
    );
  }

  const forwards = new Map<string, string>();
  cfg.firewall.port_forwards.forEach((f, i) => {
    const at = `firewall.port_forwards[${i}]`;
    unique(forwards, at, `${f.proto}/${f.port}`);
    lanHost(`${at}.to`, parseIPv4Port(f.to)?.ip ?? '');
  });

  // Two settings naming one file would make the role render one path twice.
  const paths = new Map<string, string>();
  for (const [name, path] of Object.entries(cfg.paths)) {
    unique(paths, `paths.${name}`, path);
    if (name !== 'hosts_dir' && name !== 'dhcp_hosts_dir' && path.startsWith(`${cfg.paths.dhcp_hosts_dir}/`)) {
      fail(`paths.${name}`, 'must not be inside paths.dhcp_hosts_dir (dnsmasq reads every file there as DHCP hosts)');
    }
    if (name !== 'hosts_dir' && path.startsWith(`${cfg.paths.hosts_dir}/`)) {
      fail(`paths.${name}`, 'must not be inside paths.hosts_dir (dnsmasq reads every file there as a hosts file)');
    }
  }
}
