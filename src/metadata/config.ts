/**
 * The `metadata:` section of the agent config, read by the metadata service (on controllers) and by
 * the metadata proxy (on gateways). Checked when the service starts; each error names its key.
 */
import { isHostPort } from '../../agent/config/schema.js';
import { parseSecret } from './identity.js';

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
}

/** `metadata.proxy`: the proxy a gateway runs in front of the service. */
export interface ProxySettings {
  readonly listen: string;
  /** Metadata service URLs, tried in order (the gateway role fills them from the controllers). */
  readonly upstreams: readonly string[];
  /** dnsmasq's lease file, for the caller's MAC. */
  readonly leasesFile: string;
}

/** A `metadata:` key with a bad value. */
export class MetadataConfigError extends Error {
  override readonly name = 'MetadataConfigError';
}

type Plain = Record<string, unknown>;

const KEYS = ['listen', 'nats', 'proxy_secret', 'proxy_secret_file', 'tokens', 'trust_source_address', 'availability_zone', 'domain', 'registry_replicas', 'vendor_data', 'proxy'];
const PROXY_KEYS = ['listen', 'upstreams', 'leases_file'];

/**
 * Checks `raw` (the `metadata:` mapping) and applies defaults. `readFile` reads `proxy_secret_file`
 * (injected, so this stays free of I/O).
 */
export function parseMetadataSettings(raw: unknown, readFile: (path: string) => string = noFile): MetadataSettings {
  const m = mapping(raw, 'metadata');
  unknownKeys(m, KEYS, 'metadata');
  const proxy = mapping(m.proxy ?? {}, 'metadata.proxy');
  unknownKeys(proxy, PROXY_KEYS, 'metadata.proxy');
  const listen = str(m.listen ?? '0.0.0.0:8775', 'metadata.listen');
  if (!isHostPort(listen)) fail('metadata.listen', 'must match host:port');
  const proxyListen = str(proxy.listen ?? '0.0.0.0:8776', 'metadata.proxy.listen');
  if (!isHostPort(proxyListen)) fail('metadata.proxy.listen', 'must match host:port');
  const nats = str(m.nats ?? 'nats://127.0.0.1:4222', 'metadata.nats');
  if (!nats.split(',').every((u) => /^(nats|tls):\/\/[^\s/]+$/.test(u.trim()))) fail('metadata.nats', 'must be nats://host:port, comma-separated');
  const tokens = m.tokens ?? 'optional';
  if (tokens !== 'optional' && tokens !== 'required') fail('metadata.tokens', 'must be optional or required');
  const zone = str(m.availability_zone ?? 'dc1a', 'metadata.availability_zone');
  if (!/^[a-z0-9-]{2,32}$/.test(zone)) fail('metadata.availability_zone', 'must be 2–32 of a-z, 0-9, - (the region is the zone minus its last character)');
  const domain = str(m.domain ?? 'mammatus', 'metadata.domain');
  if (!/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(domain)) fail('metadata.domain', 'must be a DNS domain');
  const replicas = m.registry_replicas ?? 1;
  if (replicas !== 1 && replicas !== 3 && replicas !== 5) fail('metadata.registry_replicas', 'must be 1, 3 or 5');
  const trust = m.trust_source_address ?? true;
  if (typeof trust !== 'boolean') fail('metadata.trust_source_address', 'must be true or false');
  const upstreams = proxy.upstreams ?? [];
  if (!Array.isArray(upstreams) || !upstreams.every((u) => typeof u === 'string' && /^https?:\/\/[^\s]+$/.test(u))) {
    fail('metadata.proxy.upstreams', 'must be a list of http:// URLs');
  }
  let proxySecret: Buffer | undefined;
  if (m.proxy_secret !== undefined && m.proxy_secret_file !== undefined) fail('metadata.proxy_secret', 'set proxy_secret or proxy_secret_file, not both');
  try {
    if (m.proxy_secret !== undefined) proxySecret = parseSecret(str(m.proxy_secret, 'metadata.proxy_secret'), 'metadata.proxy_secret');
    if (m.proxy_secret_file !== undefined) {
      const file = str(m.proxy_secret_file, 'metadata.proxy_secret_file');
      proxySecret = parseSecret(readFile(file), `metadata.proxy_secret_file (${file})`);
    }
  } catch (err) {
    throw new MetadataConfigError((err as Error).message);
  }
  return {
    listen,
    nats,
    ...(proxySecret ? { proxySecret } : {}),
    tokens,
    trustSourceAddress: trust,
    availabilityZone: zone,
    domain,
    registryReplicas: replicas,
    vendorData: m.vendor_data ?? {},
    proxy: { listen: proxyListen, upstreams: upstreams as string[], leasesFile: str(proxy.leases_file ?? '/var/lib/misc/dnsmasq.leases', 'metadata.proxy.leases_file') },
  };
}

function noFile(path: string): string {
  throw new Error(`cannot read ${path}`);
}

function fail(key: string, reason: string): never {
  throw new MetadataConfigError(`${key}: ${reason}`);
}

function mapping(v: unknown, key: string): Plain {
  if (v === null || v === undefined) return {};
  if (typeof v !== 'object' || Array.isArray(v)) fail(key, 'must be a mapping');
  return v as Plain;
}

function unknownKeys(m: Plain, known: readonly string[], at: string): void {
  for (const k of Object.keys(m)) if (!known.includes(k)) fail(`${at}.${k}`, 'unknown key');
}

function str(v: unknown, key: string): string {
  if (typeof v !== 'string' || v.length === 0) fail(key, 'must be a non-empty string');
  return v;
}
