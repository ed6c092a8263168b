/**
 * The compute role's settings (`roles.compute` in the agent config): `parseComputeConfig` checks
 * the shape, applies the defaults and names the offending key in every error
 * (`roles.compute.storage.driver: must be one of dir, btrfs, lvm, zfs`).
 *
 * ```yaml
 * roles:
 *   compute:
 *     parent: eth0                 # required: the LAN interface the containers' macvlan NICs sit on
 *     lxd: { socket: /var/lib/lxd/unix.socket }
 *     storage: { pool: mammatus, driver: dir }
 *     profile: mammatus            # the macvlan profile every instance gets, after "default"
 *     host_macvlan:                # optional: a macvlan sibling so this node reaches its containers
 *       enabled: false
 *       interface: mammatus0
 *       address: 10.88.0.21/24     # the node's LAN address, moved onto the sibling
 *     registry:                    # where the instance registry is (NATS on the controllers)
 *       nats: []                   # empty: every alive controller Serf knows, at `port`
 *       port: 4222
 *     paths: { preseed: /etc/mammatus/compute/preseed.yaml }
 * ```
 */
import { DEFAULT_LXD_SOCKET } from '../../src/lxd/connection.js';

/** LXD storage drivers the role may create a pool with (`dir` needs nothing from the host). */
export const STORAGE_DRIVERS = ['dir', 'btrfs', 'lvm', 'zfs'] as const;
/** One of {@link STORAGE_DRIVERS}. */
export type StorageDriver = (typeof STORAGE_DRIVERS)[number];

/** The resolved compute settings: every default applied, every value checked. */
export interface ComputeConfig {
  /** The macvlan parent: the node's LAN interface. */
  readonly parent: string;
  readonly lxd: { readonly socket: string };
  readonly storage: { readonly pool: string; readonly driver: StorageDriver };
  readonly profile: string;
  readonly host_macvlan: {
    readonly enabled: boolean;
    readonly interface: string;
    /** CIDR put on the sibling; without it the sibling comes up with no address. */
    readonly address?: string;
  };
  /** Where the registry the role follows is: `nats` URLs, else every alive controller at `port`. */
  readonly registry: { readonly nats: readonly string[]; readonly port: number };
  /** The rendered preseed (what the role applies to LXD; also `lxd init --preseed` input). */
  readonly paths: { readonly preseed: string };
}

/** An invalid `roles.compute` setting; `key` is the dotted path under `roles.compute`. */
export class ComputeConfigError extends Error {
  override readonly name = 'ComputeConfigError';
  constructor(
    readonly key: string,
    readonly reason: string,
  ) {
    super(`roles.compute${key ? `.${key}` : ''}: ${reason}`);
  }
}

type Check = (v: string) => boolean;
const IFNAME: [Check, string] = [
  (v) => /^[A-Za-z0-9_.-]{1,15}$/.test(v) && v !== '.' && v !== '..',
  'must be a network interface name (1-15 of A-Z a-z 0-9 _ . -)',
];
// LXD refuses "/" and spaces in pool and profile names; keep to what is safe in a URL and a log.
const LXD_NAME: [Check, string] = [(v) => /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(v), 'must be an LXD name (A-Z a-z 0-9 _ . -, at most 63)'];
const ABS_PATH: [Check, string] = [(v) => /^(?:\/[A-Za-z0-9._+@-]+)+$/.test(v) && !/\/\.\.?(?:\/|$)/.test(v), 'must be an absolute path'];
const CIDR: [Check, string] = [
  (v) => {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(v);
    return m !== null && m.slice(1, 5).every((o) => Number(o) <= 255) && Number(m[5]) >= 1 && Number(m[5]) <= 32;
  },
  'must be an IPv4 address with a prefix length, like 10.88.0.21/24',
];

/** Reads one optional key of an object section; null counts as absent (a bare `key:` in YAML). */
function field(section: Record<string, unknown>, key: string): unknown {
  const v = section[key];
  return v === null ? undefined : v;
}

function str(section: Record<string, unknown>, key: string, at: string, check: [Check, string], fallback?: string): string | undefined {
  const v = field(section, key);
  if (v === undefined) return fallback;
  if (typeof v !== 'string') throw new ComputeConfigError(at, 'must be a string');
  if (!check[0](v)) throw new ComputeConfigError(at, check[1]);
  return v;
}

function section(parent: Record<string, unknown>, key: string, known: readonly string[]): Record<string, unknown> {
  const v = field(parent, key);
  if (v === undefined) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new ComputeConfigError(key, 'must be a mapping');
  return onlyKnown(v as Record<string, unknown>, known, `${key}.`);
}

function onlyKnown(obj: Record<string, unknown>, known: readonly string[], prefix: string): Record<string, unknown> {
  const stray = Object.keys(obj).find((k) => !known.includes(k));
  if (stray !== undefined) throw new ComputeConfigError(`${prefix}${stray}`, 'unknown key');
  return obj;
}

/** Checks `roles.compute` as written and returns it with every default applied. */
export function parseComputeConfig(raw: unknown): ComputeConfig {
  if (raw !== undefined && raw !== null && (typeof raw !== 'object' || Array.isArray(raw))) {
    throw new ComputeConfigError('', 'must be a mapping');
  }
  const top = onlyKnown((raw ?? {}) as Record<string, unknown>, ['parent', 'lxd', 'storage', 'profile', 'host_macvlan', 'registry', 'paths'], '');
  const parent = str(top, 'parent', 'parent', IFNAME);
  if (parent === undefined) throw new ComputeConfigError('parent', 'is required: the LAN interface the instances\' macvlan NICs use');
  const lxd = section(top, 'lxd', ['socket']);
  const storage = section(top, 'storage', ['pool', 'driver']);
  const host = section(top, 'host_macvlan', ['enabled', 'interface', 'address']);
  const registry = section(top, 'registry', ['nats', 'port']);
  const paths = section(top, 'paths', ['preseed']);
  const nats = field(registry, 'nats') ?? [];
  if (!Array.isArray(nats) || !nats.every((u) => typeof u === 'string' && /^(?:nats|tls):\/\/[^\s/]+$/.test(u))) {
    throw new ComputeConfigError('registry.nats', 'must be a list of nats:// URLs');
  }
  const port = field(registry, 'port') ?? 4222;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) throw new ComputeConfigError('registry.port', 'must be a port number');

  const driver = field(storage, 'driver') ?? 'dir';
  if (typeof driver !== 'string' || !(STORAGE_DRIVERS as readonly string[]).includes(driver)) {
    throw new ComputeConfigError('storage.driver', `must be one of ${STORAGE_DRIVERS.join(', ')}`);
  }
  const enabled = field(host, 'enabled') ?? false;
  if (typeof enabled !== 'boolean') throw new ComputeConfigError('host_macvlan.enabled', 'must be true or false');
  const hostIf = str(host, 'interface', 'host_macvlan.interface', IFNAME, 'mammatus0')!;
  if (hostIf === parent) throw new ComputeConfigError('host_macvlan.interface', 'must differ from parent');
  const address = str(host, 'address', 'host_macvlan.address', CIDR);
  const profile = str(top, 'profile', 'profile', LXD_NAME, 'mammatus')!;
  if (profile === 'default') throw new ComputeConfigError('profile', 'must not be "default" (LXD\'s own profile keeps the root disk)');

  return {
    parent,
    lxd: { socket: str(lxd, 'socket', 'lxd.socket', ABS_PATH, DEFAULT_LXD_SOCKET)! },
    storage: { pool: str(storage, 'pool', 'storage.pool', LXD_NAME, 'mammatus')!, driver: driver as StorageDriver },
    profile,
    host_macvlan: { enabled, interface: hostIf, ...(address !== undefined && { address }) },
    registry: { nats: nats as string[], port },
    paths: { preseed: str(paths, 'preseed', 'paths.preseed', ABS_PATH, '/etc/mammatus/compute/preseed.yaml')! },
  };
}
