/**
 * The whole `messaging:` section: the wire layer's keys (`config.ts`) plus the engine's and the
 * listener's, read here. Unknown keys are refused, so a typo does not silently fall back to a default.
 *
 * ```yaml
 * messaging:
 *   nats: nats://127.0.0.1:4222        # JetStream servers, comma-separated (--nats overrides)
 *   listen: 0.0.0.0:9324               # HTTPS once the node has its certificate, else HTTP (--listen overrides)
 *   http_listen: 127.0.0.1:9325        # optional second, plain HTTP listener (none by default)
 *   replicas: 1                        # JetStream replicas of the streams and buckets (1, 3 or 5)
 *   receipt_key: <hex or base64>       # ≥ 16 bytes; default: generated once, kept in JetStream KV
 *   owner_lease_seconds: 10            # queue ownership lease (failover time of a dead controller)
 *   owner_idle_seconds: 30             # an owner lets a queue idle this long go (0: never)
 *   body_cache_bytes: 1048576          # bodies of recent sends kept for the receive that follows (0: none)
 *   heap_mb: 0                         # V8 old-space limit of the API's process, MiB (0: node's default)
 *   sns:
 *     # The default delivery policy of http(s) subscriptions; a topic's or subscription's
 *     # DeliveryPolicy overrides it field by field (delivery-policy.ts).
 *     http_retries: 3                  # retries after the first http(s) delivery attempt
 *     http_min_delay_seconds: 1        # first retry delay; doubles up to the max
 *     http_max_delay_seconds: 20
 *     http_timeout_seconds: 15         # per attempt
 *     signing_key_file: /etc/…/sns.key # PEM RSA key + certificate; default: generated, kept in KV
 *     signing_cert_file: /etc/…/sns.crt
 *     # http(s) endpoints on loopback, link-local, private/LAN ranges and this machine are refused
 *     # (engine/endpoint-guard.ts); these lists adjust that.
 *     endpoint_allow: [203.0.113.0/24, hooks.internal.example] # CIDRs or host names let through anyway
 *     endpoint_deny: [198.51.100.0/24]  # further CIDRs refused (a LAN on public addresses)
 * ```
 */
import type { JSONSchemaType } from 'ajv';
import { parseHostPort } from '../../core/net.js';
import { invalid, sectionChecker, type Format } from '../../core/validation.js';
import { BODY_CACHE_BYTES } from './engine/body-cache.js';
import { isEndpointAllowEntry, parseNetwork } from './engine/endpoint-guard.js';
import { parseMessagingConfig, WIRE_FORMATS, WIRE_HINTS, WIRE_PROPERTIES, type MessagingConfig, type WireSettings } from './config.js';

/** SNS delivery settings (`messaging.sns`). */
export interface SnsSettings {
  readonly httpRetries: number;
  readonly httpMinDelayMs: number;
  readonly httpMaxDelayMs: number;
  readonly httpTimeoutMs: number;
  readonly signingKeyFile?: string;
  readonly signingCertFile?: string;
  /** CIDRs, addresses or host names http(s) deliveries may reach even in refused ranges. */
  readonly endpointAllow: readonly string[];
  /** CIDRs or addresses refused besides the default ranges. */
  readonly endpointDeny: readonly string[];
  /** The PEMs themselves, read by the agent (root) from the files above and handed to the API's process. */
  readonly signingKeyPem?: string;
  readonly signingCertPem?: string;
}

/** The engine's and listener's settings. */
export interface EngineSettings {
  readonly nats: string;
  /** HTTPS once the node holds its certificate (issue 20), plain HTTP before. */
  readonly listen: string;
  /** A second, plain HTTP listener; absent: none (docs/messaging.md "HTTPS"). */
  readonly httpListen?: string;
  readonly replicas: 1 | 3 | 5;
  /** Decoded `receipt_key`; undefined = the key kept in JetStream KV (generated on first start). */
  readonly receiptKey?: Buffer;
  readonly ownerLeaseMs: number;
  /** An owner lets go of a queue idle this long (0: never); docs/messaging.md "Idle queues". */
  readonly ownerIdleMs: number;
  /** Bound of the process's cache of recently sent bodies (`body-cache.ts`); 0: no cache. */
  readonly bodyCacheBytes: number;
  /** V8 old-space limit of the API's child process in MiB (0: node's default); `messagingNodeFlags`. */
  readonly heapMb: number;
  readonly sns: SnsSettings;
}

/** Everything under `messaging:`. */
export interface MessagingSettings {
  readonly wire: MessagingConfig;
  readonly engine: EngineSettings;
}

/** Engine defaults (documented in docs/messaging.md). */
export const ENGINE_DEFAULTS = {
  nats: 'nats://127.0.0.1:4222',
  listen: '0.0.0.0:9324',
  replicas: 1,
  owner_lease_seconds: 10,
  owner_idle_seconds: 30,
  body_cache_bytes: BODY_CACHE_BYTES,
  heap_mb: 0,
  sns: { http_retries: 3, http_min_delay_seconds: 1, http_max_delay_seconds: 20, http_timeout_seconds: 15 },
} as const;

const AT = 'messaging';

/** The section as written: the wire keys (config.ts) and the engine's and listener's. */
interface SectionSettings extends WireSettings {
  readonly nats?: string | null;
  readonly listen?: string | null;
  readonly http_listen?: string | null;
  readonly replicas?: 1 | 3 | 5 | null;
  readonly receipt_key?: string | null;
  readonly owner_lease_seconds?: number | null;
  readonly owner_idle_seconds?: number | null;
  readonly body_cache_bytes?: number | null;
  readonly heap_mb?: number | null;
  readonly sns?: {
    readonly http_retries?: number | null;
    readonly http_min_delay_seconds?: number | null;
    readonly http_max_delay_seconds?: number | null;
    readonly http_timeout_seconds?: number | null;
    readonly signing_key_file?: string | null;
    readonly signing_cert_file?: string | null;
    readonly endpoint_allow?: readonly string[] | null;
    readonly endpoint_deny?: readonly string[] | null;
  } | null;
}

const int = (minimum: number, maximum: number) => ({ type: 'integer', minimum, maximum, nullable: true }) as const;
// 1 GiB: far past what a controller should spend on it (see body-cache.ts).
const MAX_BODY_CACHE_BYTES = 1024 ** 3;
const absolute = { type: 'string', format: 'absolute-path', nullable: true } as const;

const SECTION_SCHEMA: JSONSchemaType<SectionSettings> = {
  type: 'object',
  additionalProperties: false,
  required: [],
  properties: {
    ...(WIRE_PROPERTIES as JSONSchemaType<WireSettings>['properties']),
    nats: { type: 'string', format: 'nats-urls', nullable: true },
    listen: { type: 'string', format: 'listen', nullable: true },
    http_listen: { type: 'string', format: 'listen', nullable: true },
    replicas: { type: 'integer', enum: [1, 3, 5], nullable: true },
    receipt_key: { type: 'string', nullable: true },
    owner_lease_seconds: int(2, 300),
    owner_idle_seconds: int(0, 86_400),
    body_cache_bytes: int(0, MAX_BODY_CACHE_BYTES),
    heap_mb: int(0, 65_536),
    sns: {
      type: 'object',
      additionalProperties: false,
      required: [],
      nullable: true,
      properties: {
        http_retries: int(0, 100),
        http_min_delay_seconds: int(0, 3600),
        http_max_delay_seconds: int(0, 3600),
        http_timeout_seconds: int(1, 60),
        signing_key_file: absolute,
        signing_cert_file: absolute,
        endpoint_allow: { type: 'array', nullable: true, items: { type: 'string', format: 'endpoint-allow' } },
        endpoint_deny: { type: 'array', nullable: true, items: { type: 'string', format: 'network' } },
      },
    },
  },
};

const FORMATS: Readonly<Record<string, Format>> = {
  ...WIRE_FORMATS,
  'nats-urls': {
    check: (v) => v.split(',').every((u) => /^(nats|tls):\/\/[^\s/]+$/.test(u.trim())),
    why: 'must be nats://host:port, comma-separated',
  },
  // Port 0 (any free port) is allowed: tests and ad-hoc runs use it.
  listen: { check: (v) => parseHostPort(v, { allowPortZero: true }) !== undefined, why: 'must be host:port' },
  'absolute-path': { check: (v) => v.startsWith('/'), why: 'must be an absolute path' },
  'endpoint-allow': {
    check: isEndpointAllowEntry,
    why: 'must be an IPv4 or IPv6 address or network (10.0.0.0/8, fd00::/8) or a host name',
  },
  network: { check: (v) => parseNetwork(v) !== undefined, why: 'must be an IPv4 or IPv6 address or network (10.0.0.0/8, fd00::/8)' },
};

const range = (min: number, max: number) => `must be an integer between ${min} and ${max}`;
const HEAP_HINT = "must be 0 (node's default) or an integer between 64 and 65536";
const checkSection = sectionChecker<SectionSettings>({
  name: 'messaging',
  at: AT,
  schema: SECTION_SCHEMA,
  formats: FORMATS,
  hints: {
    ...WIRE_HINTS,
    receipt_key: 'must be a string (hex or base64)',
    owner_lease_seconds: range(2, 300),
    owner_idle_seconds: range(0, 86_400),
    body_cache_bytes: range(0, MAX_BODY_CACHE_BYTES),
    heap_mb: HEAP_HINT,
    'sns.http_retries': range(0, 100),
    'sns.http_min_delay_seconds': range(0, 3600),
    'sns.http_max_delay_seconds': range(0, 3600),
    'sns.http_timeout_seconds': range(1, 60),
  },
});

// Below 64 MiB the API cannot hold its own code and a busy controller's state.
function heapMb(raw: number | null | undefined): number {
  const mb = raw ?? ENGINE_DEFAULTS.heap_mb;
  if (mb !== 0 && mb < 64) invalid(AT, 'heap_mb', HEAP_HINT);
  return mb;
}

/** Decodes a key given as hex (even length) or base64; never echoes the value in errors. */
function parseKey(raw: string | null | undefined): Buffer | undefined {
  if (raw === undefined || raw === null) return undefined;
  const bytes = /^(?:[0-9a-fA-F]{2})+$/.test(raw) ? Buffer.from(raw, 'hex') : Buffer.from(raw, 'base64');
  if (bytes.length < 16) invalid(AT, 'receipt_key', 'must decode to at least 16 bytes');
  return bytes;
}

/**
 * Checks the whole `messaging` section (null/undefined = defaults) and resolves it.
 * @throws SettingsError naming the first bad key.
 */
export function parseMessagingSettings(raw: unknown): MessagingSettings {
  const s = checkSection(raw ?? {});
  const wire = parseMessagingConfig(s);
  const sns = s.sns ?? {};
  const d = ENGINE_DEFAULTS.sns;
  const minDelay = sns.http_min_delay_seconds ?? d.http_min_delay_seconds;
  const maxDelay = sns.http_max_delay_seconds ?? d.http_max_delay_seconds;
  if (maxDelay < minDelay) invalid(AT, 'sns.http_max_delay_seconds', 'must not be below http_min_delay_seconds');
  const keyFile = sns.signing_key_file ?? undefined;
  const certFile = sns.signing_cert_file ?? undefined;
  if ((keyFile === undefined) !== (certFile === undefined))
    invalid(AT, 'sns.signing_cert_file', 'signing_key_file and signing_cert_file go together');
  return {
    wire,
    engine: {
      nats: s.nats ?? ENGINE_DEFAULTS.nats,
      listen: s.listen ?? ENGINE_DEFAULTS.listen,
      ...(s.http_listen ? { httpListen: s.http_listen } : {}),
      replicas: s.replicas ?? ENGINE_DEFAULTS.replicas,
      receiptKey: parseKey(s.receipt_key),
      ownerLeaseMs: (s.owner_lease_seconds ?? ENGINE_DEFAULTS.owner_lease_seconds) * 1000,
      ownerIdleMs: (s.owner_idle_seconds ?? ENGINE_DEFAULTS.owner_idle_seconds) * 1000,
      bodyCacheBytes: s.body_cache_bytes ?? ENGINE_DEFAULTS.body_cache_bytes,
      heapMb: heapMb(s.heap_mb),
      sns: {
        httpRetries: sns.http_retries ?? d.http_retries,
        httpMinDelayMs: minDelay * 1000,
        httpMaxDelayMs: maxDelay * 1000,
        httpTimeoutMs: (sns.http_timeout_seconds ?? d.http_timeout_seconds) * 1000,
        ...(keyFile ? { signingKeyFile: keyFile } : {}),
        ...(certFile ? { signingCertFile: certFile } : {}),
        endpointAllow: sns.endpoint_allow ?? [],
        endpointDeny: sns.endpoint_deny ?? [],
      },
    },
  };
}

/**
 * The node flags the API's child process runs with. Its live heap is small (the state of a million
 * stored messages is ~20 MiB, bodies stay in JetStream), but V8 keeps what it grew: a 1 MiB young
 * generation keeps the churn of requests from inflating RSS, and a fixed old-space growth of 20 %
 * (instead of V8's up to 4x, picked for throughput) keeps the heap near what is live — 97 instead
 * of 154 MB with 100,000 messages stored, for 2-3 % more CPU per request (docs/benchmarks.md §19).
 * Neither is a limit: the heap still grows as far as the live state needs. `heap_mb` (off by
 * default) adds a hard limit on top; a takeover's rebuild streams into the packed state, so a limit
 * must cover the queues' state (and ~200 B per received message), not a copy of a queue.
 */
export function messagingNodeFlags(heapMb: number): string[] {
  return ['--max-semi-space-size=1', '--heap-growing-percent=20', ...(heapMb > 0 ? [`--max-old-space-size=${heapMb}`] : [])];
}
