/**
 * The `metadata:` section of the agent config, read by the metadata service (on controllers) and by
 * the metadata proxy (on gateways). Checked when the service starts; each error names its key.
 */
import type { JSONSchemaType } from 'ajv';
import { isDnsName } from '../../core/net.js';
import { COMMON_FORMATS, invalid, SettingsError, sectionChecker, type Format } from '../../core/validation.js';
import { parseSecret } from './identity.js';
import { errorMessage } from '../../core/errors.js';
import type { HostSeedSettings } from './host-seed.js';
import { normalizeFingerprint } from './apt-key-fetch.js';

/** The checked settings with defaults applied. */
export interface MetadataSettings {
  /** Where the service listens. */
  readonly listen: string;
  /** NATS servers of the registry, comma-separated (`--nats` overrides). */
  readonly nats: string;
  /** The cluster secret that signs proxy identity headers and IMDSv2 tokens; absent = no proxy trusted. */
  readonly proxySecret?: Buffer;
  /** IMDSv2: `optional` (IMDSv1 and v2 both work) or `required` (a GET without a token gets 401). */
  readonly tokens: 'optional' | 'required';
  /** Identify a caller that did not pass a proxy by its source address (a controller on the LAN). */
  readonly trustSourceAddress: boolean;
  readonly availabilityZone: string;
  readonly domain: string;
  /** JetStream replicas of the registry bucket when it is created. */
  readonly registryReplicas: number;
  /** `metadata.vendor_data`, checked by the vendor-data module. */
  readonly vendorData: unknown;
  readonly proxy: ProxySettings;
  /** `metadata.hosts`: the seeds of planned hosts; absent = their user-data answers 503. */
  readonly hosts?: HostSeedSettings;
}

/** `metadata.proxy`: the proxy a gateway runs in front of the service. */
export interface ProxySettings {
  readonly listen: string;
  /** Metadata service URLs, tried in order (the gateway role fills them from the controllers). */
  readonly upstreams: readonly string[];
  /** dnsmasq's lease file, for the caller's MAC. */
  readonly leasesFile: string;
}

/** `metadata:` as written. */
interface Written {
  readonly listen?: string;
  readonly nats?: string;
  readonly proxy_secret?: string;
  readonly proxy_secret_file?: string;
  readonly tokens?: 'optional' | 'required';
  readonly trust_source_address?: boolean;
  readonly availability_zone?: string;
  readonly domain?: string;
  readonly registry_replicas?: 1 | 3 | 5;
  readonly vendor_data?: Record<string, unknown>;
  readonly proxy?: { readonly listen?: string; readonly upstreams?: readonly string[]; readonly leases_file?: string };
  readonly hosts?: { readonly apt_url?: string; readonly apt_key_url?: string; readonly apt_key_fingerprint?: string };
}

const AT = 'metadata';

const FORMATS: Readonly<Record<string, Format>> = {
  'host-port': { check: COMMON_FORMATS['host-port'].check, why: 'must match host:port' },
  'nats-urls': {
    check: (v) => v.split(',').every((u) => /^(nats|tls):\/\/[^\s/]+$/.test(u.trim())),
    why: 'must be nats://host:port, comma-separated',
  },
  zone: { check: (v) => /^[a-z0-9-]{2,32}$/.test(v), why: 'must be 2–32 of a-z, 0-9, - (the region is the zone minus its last character)' },
  domain: { check: (v) => isDnsName(v) && v === v.toLowerCase(), why: 'must be a DNS domain' },
  'http-url': { check: (v) => /^https?:\/\/[^\s]+$/.test(v), why: 'must be a list of http:// URLs' },
  'apt-url': { check: (v) => /^https?:\/\/[^\s/]+\/\S*\/$/.test(v), why: 'must be an http:// or https:// URL ending in /' },
  url: { check: (v) => /^https?:\/\/[^\s/]+\/\S*$/.test(v), why: 'must be an http:// or https:// URL' },
};

const text = (format?: string) => ({ type: 'string', minLength: 1, ...(format ? { format } : {}), nullable: true }) as const;

const SCHEMA: JSONSchemaType<Written> = {
  type: 'object',
  additionalProperties: false,
  required: [],
  properties: {
    listen: text('host-port'),
    nats: text('nats-urls'),
    proxy_secret: text(),
    proxy_secret_file: text(),
    tokens: { type: 'string', enum: ['optional', 'required'], nullable: true },
    trust_source_address: { type: 'boolean', nullable: true },
    availability_zone: text('zone'),
    domain: text('domain'),
    registry_replicas: { type: 'integer', enum: [1, 3, 5], nullable: true },
    // Checked by the vendor-data module, which owns its keys.
    vendor_data: { type: 'object', required: [], nullable: true },
    proxy: {
      type: 'object',
      additionalProperties: false,
      required: [],
      nullable: true,
      properties: {
        listen: text('host-port'),
        upstreams: { type: 'array', items: { type: 'string', format: 'http-url' }, nullable: true },
        leases_file: text(),
      },
    },
    hosts: {
      type: 'object',
      additionalProperties: false,
      required: [],
      nullable: true,
      properties: { apt_url: text('apt-url'), apt_key_url: text('url'), apt_key_fingerprint: text() },
    },
  },
};

const checkSettings = sectionChecker<Written>({
  name: 'metadata',
  at: AT,
  schema: SCHEMA,
  formats: FORMATS,
  hints: {
    tokens: 'must be optional or required',
    registry_replicas: 'must be 1, 3 or 5',
    'proxy.upstreams': 'must be a list of http:// URLs',
  },
});

/**
 * Checks `raw` (the `metadata:` mapping) and applies defaults. `readFile` reads `proxy_secret_file`
 * (injected, so this stays free of I/O).
 */
export function parseMetadataSettings(raw: unknown, readFile: (path: string) => string = noFile): MetadataSettings {
  const m = checkSettings(raw ?? {});
  const proxy = m.proxy ?? {};
  // A bare `key:` line in YAML is null: absent.
  const secret = m.proxy_secret ?? undefined;
  const secretFile = m.proxy_secret_file ?? undefined;
  if (secret !== undefined && secretFile !== undefined) invalid(AT, 'proxy_secret', 'set proxy_secret or proxy_secret_file, not both');
  let proxySecret: Buffer | undefined;
  try {
    if (secret !== undefined) proxySecret = parseSecret(secret, 'metadata.proxy_secret');
    if (secretFile !== undefined) proxySecret = parseSecret(readFile(secretFile), `metadata.proxy_secret_file (${secretFile})`);
  } catch (err) {
    // parseSecret's message starts with the key it was given; it never quotes the secret.
    throw new SettingsError('', errorMessage(err));
  }
  return {
    listen: m.listen ?? '0.0.0.0:8775',
    nats: m.nats ?? 'nats://127.0.0.1:4222',
    ...(proxySecret ? { proxySecret } : {}),
    tokens: m.tokens ?? 'optional',
    trustSourceAddress: m.trust_source_address ?? true,
    availabilityZone: m.availability_zone ?? 'dc1a',
    domain: m.domain ?? 'mammatus',
    registryReplicas: m.registry_replicas ?? 1,
    vendorData: m.vendor_data ?? {},
    proxy: {
      listen: proxy.listen ?? '0.0.0.0:8776',
      upstreams: [...(proxy.upstreams ?? [])],
      leasesFile: proxy.leases_file ?? '/var/lib/misc/dnsmasq.leases',
    },
    ...hostSettings(m.hosts ?? undefined),
  };
}

/** The repository key's file name in what `scripts/repo-build.sh` writes. */
const REPO_KEY_FILE = 'mammatus-archive-keyring.gpg';

/** `metadata.hosts` checked: a plain http:// key URL needs the fingerprint the host pins it to. */
function hostSettings(h: Written['hosts'] | undefined): { hosts?: HostSeedSettings } {
  if (!h?.apt_url) {
    if (h?.apt_key_url || h?.apt_key_fingerprint) invalid(AT, 'hosts.apt_url', 'is required with apt_key_url or apt_key_fingerprint');
    return {};
  }
  const aptKeyUrl = h.apt_key_url ?? `${h.apt_url}${REPO_KEY_FILE}`;
  let fingerprint: string | undefined;
  if (h.apt_key_fingerprint) {
    try {
      fingerprint = normalizeFingerprint(h.apt_key_fingerprint);
    } catch {
      invalid(AT, 'hosts.apt_key_fingerprint', 'must be the key fingerprint: 40 (or 64) hex digits, as gpg prints it');
    }
  } else if (aptKeyUrl.startsWith('http:')) {
    invalid(AT, 'hosts.apt_key_fingerprint', 'is required when the key is fetched over plain http:// (the host pins the key to it)');
  }
  return { hosts: { aptUrl: h.apt_url, aptKeyUrl, ...(fingerprint ? { aptKeyFingerprint: fingerprint } : {}) } };
}

function noFile(path: string): string {
  throw new Error(`cannot read ${path}`);
}
