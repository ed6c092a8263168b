/**
 * `metadata.vendor_data`: which bootstrap parts (Consul, Vault, Telegraf) the metadata service puts
 * into every instance's vendor-data, and their cluster-wide values. Checked when the service starts;
 * ajv checks the shape and fills the defaults, the code below checks what a schema cannot (a gossip
 * key's decoded length, URLs, keys that depend on each other). Every error names its key.
 */
import { parseDuration } from '../../core/duration.js';
import { INFLUXDB_DATABASE } from '../../core/telegraf.js';
import { SettingsError, sectionChecker } from '../../core/validation.js';

/** `metadata.vendor_data.consul`: a Consul client agent on every instance. */
export interface ConsulSettings {
  /** Default true. */
  readonly enabled: boolean;
  /** Default `dc1`. */
  readonly datacenter: string;
  /** Consul's gossip `encrypt` key (`consul keygen`); absent = gossip unencrypted. */
  readonly gossip_key?: string;
  /** What the agents `retry_join`; absent = the controllers' addresses as Serf knows them. */
  readonly servers?: readonly string[];
}

/** `metadata.vendor_data.vault`: a Vault agent logging in with AppRole on every instance. */
export interface VaultSettings {
  /** Default: true when `address` is set. When true, address, role_id, role_name and token_file are required. */
  readonly enabled: boolean;
  /** Vault's URL as instances reach it, `http(s)://host:port` (no path). */
  readonly address?: string;
  /** The AppRole's role_id, handed to instances (not a secret without a secret_id). */
  readonly role_id?: string;
  /** Where the AppRole auth method is mounted. Default `auth/approle`. */
  readonly approle_path: string;
  /** The AppRole the service mints secret_ids for. */
  readonly role_name?: string;
  /** How long the wrapping token lives (Vault duration). Default `15m`, at most `1h`. */
  readonly wrap_ttl: string;
  /** The secret_id's own TTL (Vault's `ttl`); absent = the role's `secret_id_ttl`. */
  readonly secret_id_ttl?: string;
  /** File with the Vault token the service mints secret_ids with (read by the caller, not here). */
  readonly token_file?: string;
}

/** `metadata.vendor_data.telegraf`: Telegraf sending metrics to the controllers' InfluxDB store. */
export interface TelegrafSettings {
  /** Default true (nothing goes out while no controller's store is InfluxDB and no URL is set). */
  readonly enabled: boolean;
  /** InfluxDB (1.x API) URL; absent = `http://<controller>:8086` of every controller whose store is InfluxDB. */
  readonly influxdb_url?: string;
  /** Default `mammatus`, the database of the controllers' store. */
  readonly database: string;
}

/** `metadata.vendor_data.ca`: the cluster CA's root and ACME directory on every instance (once `ca init` ran). */
export interface CaPartSettings {
  /** Default true (nothing goes out while the cluster has no CA). */
  readonly enabled: boolean;
  /**
   * The ACME directory instances are told. Default `https://ca.mammatus:9000/acme/acme/directory`,
   * matching `roles.controller.ca.listen` and `provisioner`'s defaults: change it with them.
   */
  readonly acme_directory: string;
}

/** The checked `metadata.vendor_data` section, defaults applied. */
export interface VendorDataSettings {
  readonly consul: ConsulSettings;
  readonly vault: VaultSettings;
  readonly telegraf: TelegrafSettings;
  /** Absent in hand-made settings of older tests: treated as the defaults. */
  readonly ca?: CaPartSettings;
}

/** The ACME directory of a controller with the default `roles.controller.ca` (listen :9000, provisioner acme). */
export const DEFAULT_ACME_DIRECTORY = 'https://ca.mammatus:9000/acme/acme/directory';

const AT = 'metadata.vendor_data';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
// One word of printable ASCII: what ends up in config files and HTTP paths needs no escaping surprises.
const WORD = '^[\\x21-\\x7e]+$';

const SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    consul: {
      type: 'object',
      default: {},
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean', default: true },
        // Consul allows letters, digits, - and _ in a datacenter name.
        datacenter: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$', default: 'dc1' },
        gossip_key: { type: 'string' },
        servers: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[^\\s]+$' } },
      },
    },
    vault: {
      type: 'object',
      default: {},
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean' },
        address: { type: 'string' },
        role_id: { type: 'string', pattern: WORD, maxLength: 4096 },
        approle_path: { type: 'string', pattern: '^auth/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$', default: 'auth/approle' },
        // Vault's rule for AppRole names.
        role_name: { type: 'string', pattern: '^[A-Za-z0-9 ._-]{1,4095}$' },
        wrap_ttl: { type: 'string', default: '15m' },
        secret_id_ttl: { type: 'string' },
        token_file: { type: 'string', pattern: '^/' },
      },
    },
    telegraf: {
      type: 'object',
      default: {},
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean', default: true },
        influxdb_url: { type: 'string' },
        database: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$', default: INFLUXDB_DATABASE },
      },
    },
    ca: {
      type: 'object',
      default: {},
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean', default: true },
        acme_directory: {
          type: 'string',
          pattern: '^https://[a-z0-9.-]+(:[0-9]{1,5})?/acme/[a-z0-9_-]+/directory$',
          default: DEFAULT_ACME_DIRECTORY,
        },
      },
    },
  },
} as const;

// What each patterned key may hold, in words an operator can act on.
const HINTS: Readonly<Record<string, string>> = {
  'consul.datacenter': 'must be 1–64 of A-Z, a-z, 0-9, - and _',
  'consul.servers[]': 'must be an address without spaces',
  'vault.role_id': 'must be printable ASCII without spaces',
  'vault.approle_path': 'must be the auth mount, such as auth/approle',
  'vault.role_name': 'must be 1–4095 of A-Z, a-z, 0-9, space, ., - and _',
  'vault.token_file': 'must be an absolute path',
  'telegraf.database': 'must be 1–64 of A-Z, a-z, 0-9, ., - and _',
  'ca.acme_directory': 'must be https://HOST[:PORT]/acme/<provisioner>/directory',
};

// ajv fills the defaults (on a copy: never on the caller's frozen config).
const checkSettings = sectionChecker<{
  consul: ConsulSettings;
  vault: Omit<Mutable<VaultSettings>, 'enabled'> & { enabled?: boolean };
  telegraf: Mutable<TelegrafSettings>;
  ca: CaPartSettings;
}>({
  name: 'metadata.vendor_data',
  at: AT,
  schema: SCHEMA,
  hints: HINTS,
  useDefaults: true,
});

/**
 * Checks `raw` (the `metadata.vendor_data` mapping; absent or null = every default) and returns it
 * with defaults applied. Vault is on by default only when `vault.address` is set.
 *
 * @throws SettingsError naming the first key that is wrong.
 */
export function parseVendorDataSettings(raw: unknown): VendorDataSettings {
  const s = checkSettings(raw === undefined || raw === null ? {} : raw);

  if (s.consul.gossip_key !== undefined) checkGossipKey(s.consul.gossip_key, `${AT}.consul.gossip_key`);
  s.consul.servers?.forEach((v, i) => {
    if (/\p{Cc}/u.test(v)) throw new SettingsError(`${AT}.consul.servers.${i}`, 'must not contain control characters');
  });

  const vault = { ...s.vault };
  if (vault.address !== undefined) vault.address = checkUrl(vault.address, `${AT}.vault.address`, false);
  checkDuration(vault.wrap_ttl, `${AT}.vault.wrap_ttl`, 3_600_000);
  if (vault.secret_id_ttl !== undefined) checkDuration(vault.secret_id_ttl, `${AT}.vault.secret_id_ttl`, Infinity);
  const vaultEnabled = vault.enabled ?? vault.address !== undefined;
  if (vaultEnabled) {
    for (const key of ['address', 'role_id', 'role_name', 'token_file'] as const) {
      if (vault[key] === undefined) throw new SettingsError(`${AT}.vault.${key}`, 'is required when vault is enabled');
    }
  }

  const telegraf = { ...s.telegraf };
  if (telegraf.influxdb_url !== undefined) telegraf.influxdb_url = checkUrl(telegraf.influxdb_url, `${AT}.telegraf.influxdb_url`, true);

  return { consul: s.consul, vault: { ...vault, enabled: vaultEnabled }, telegraf, ca: s.ca };
}

/**
 * Checks a Serf or Consul gossip key: base64 of 16, 24 or 32 bytes (AES-128/192/256, what memberlist
 * accepts; `consul keygen` and `serf keygen` make 32).
 *
 * @throws SettingsError naming `key`.
 */
export function checkGossipKey(value: string, key: string): void {
  const bytes = Buffer.from(value, 'base64');
  if (bytes.toString('base64') !== value || ![16, 24, 32].includes(bytes.length)) {
    throw new SettingsError(key, 'must be base64 of 16, 24 or 32 bytes (consul keygen)');
  }
}

/** Returns a http(s) URL without credentials, query or fragment, trailing slash removed. */
function checkUrl(value: string, key: string, pathAllowed: boolean): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new SettingsError(key, 'must be an http:// or https:// URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new SettingsError(key, 'must be an http:// or https:// URL');
  // Vendor-data is readable by whoever claims an instance's address (see docs/metadata.md): no secrets in it.
  if (url.username || url.password) throw new SettingsError(key, 'must not carry credentials: vendor-data is not secret');
  if (url.search || url.hash) throw new SettingsError(key, 'must not have a query or fragment');
  if (!pathAllowed && url.pathname !== '/') throw new SettingsError(key, 'must not have a path');
  return url.href.replace(/\/+$/, '');
}

/** Vault reads durations as integer seconds or Go durations. */
function checkDuration(value: string, key: string, maxMs: number): void {
  let ms: number;
  try {
    ms = /^\d+$/.test(value) ? Number(value) * 1000 : parseDuration(value);
  } catch {
    throw new SettingsError(key, 'must be a duration such as 300, 90s or 15m');
  }
  if (ms < 1000) throw new SettingsError(key, 'must be at least 1s');
  if (ms > maxMs) throw new SettingsError(key, 'must be at most 1h: a wrapping token is meant to live minutes');
}
