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
import type { JSONSchemaType } from 'ajv';
import { COMMON_FORMATS, invalid, sectionChecker, withDefaults, type Format } from '../../core/validation.js';
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

/** What an operator writes: every key optional but `parent`. */
type ComputeSettings = { readonly parent: string } & {
  readonly [K in Exclude<keyof ComputeConfig, 'parent'>]?: ComputeConfig[K] extends object
    ? { readonly [P in keyof ComputeConfig[K]]?: ComputeConfig[K][P] }
    : ComputeConfig[K];
};

const AT = 'roles.compute';

const DEFAULTS: Omit<ComputeConfig, 'parent'> = {
  lxd: { socket: DEFAULT_LXD_SOCKET },
  storage: { pool: 'mammatus', driver: 'dir' },
  profile: 'mammatus',
  host_macvlan: { enabled: false, interface: 'mammatus0' },
  registry: { nats: [], port: 4222 },
  paths: { preseed: '/etc/mammatus/compute/preseed.yaml' },
};

const FORMATS: Readonly<Record<string, Format>> = {
  ifname: COMMON_FORMATS.ifname,
  cidr: { check: COMMON_FORMATS.cidr.check, why: 'must be an IPv4 address with a prefix length, like 10.88.0.21/24' },
  path: { check: COMMON_FORMATS.path.check, why: 'must be an absolute path' },
  'nats-url': COMMON_FORMATS['nats-url'],
  // LXD refuses "/" and spaces in pool and profile names; keep to what is safe in a URL and a log.
  'lxd-name': { check: (v) => /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(v), why: 'must be an LXD name (A-Z a-z 0-9 _ . -, at most 63)' },
};

const opt = { nullable: true } as const;
const str = (format: string) => ({ type: 'string', format, ...opt }) as const;
const obj = { type: 'object', additionalProperties: false, required: [], ...opt } as const;

const SCHEMA: JSONSchemaType<ComputeSettings> = {
  type: 'object',
  additionalProperties: false,
  required: ['parent'],
  properties: {
    parent: { type: 'string', format: 'ifname' },
    lxd: { ...obj, properties: { socket: str('path') } },
    storage: { ...obj, properties: { pool: str('lxd-name'), driver: { type: 'string', enum: STORAGE_DRIVERS, ...opt } } },
    profile: str('lxd-name'),
    host_macvlan: { ...obj, properties: { enabled: { type: 'boolean', ...opt }, interface: str('ifname'), address: str('cidr') } },
    registry: {
      ...obj,
      properties: {
        nats: { type: 'array', items: { type: 'string', format: 'nats-url' }, ...opt },
        port: { type: 'integer', minimum: 1, maximum: 65535, ...opt },
      },
    },
    paths: { ...obj, properties: { preseed: str('path') } },
  },
};

const checkSettings = sectionChecker<ComputeSettings>({
  name: 'roles.compute',
  at: AT,
  schema: SCHEMA,
  formats: FORMATS,
  hints: {
    parent: "is required: the LAN interface the instances' macvlan NICs use",
    'registry.nats': 'must be a list of nats:// URLs',
    'registry.port': 'must be a port number',
  },
});

/** Checks `roles.compute` as written and returns it with every default applied. */
export function parseComputeConfig(raw: unknown): ComputeConfig {
  const settings = checkSettings(raw ?? {});
  const cfg = withDefaults<ComputeConfig>({ ...DEFAULTS, parent: settings.parent }, settings);
  if (cfg.host_macvlan.interface === cfg.parent) invalid(AT, 'host_macvlan.interface', 'must differ from parent');
  if (cfg.profile === 'default') invalid(AT, 'profile', 'must not be "default" (LXD\'s own profile keeps the root disk)');
  return cfg;
}
