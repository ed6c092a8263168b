/**
 * The whole `messaging:` section: the wire layer's keys (`config.ts`) plus the engine's and the
 * listener's, read here. Unknown keys are refused, so a typo does not silently fall back to a default.
 *
 * ```yaml
 * messaging:
 *   nats: nats://127.0.0.1:4222        # JetStream servers, comma-separated (--nats overrides)
 *   listen: 0.0.0.0:9324               # HTTP listener (--listen overrides)
 *   replicas: 1                        # JetStream replicas of the streams and buckets (1, 3 or 5)
 *   receipt_key: <hex or base64>       # ≥ 16 bytes; default: generated once, kept in JetStream KV
 *   owner_lease_seconds: 10            # queue ownership lease (failover time of a dead controller)
 *   sns:
 *     # The default delivery policy of http(s) subscriptions; a topic's or subscription's
 *     # DeliveryPolicy overrides it field by field (delivery-policy.ts).
 *     http_retries: 3                  # retries after the first http(s) delivery attempt
 *     http_min_delay_seconds: 1        # first retry delay; doubles up to the max
 *     http_max_delay_seconds: 20
 *     http_timeout_seconds: 15         # per attempt
 *     signing_key_file: /etc/…/sns.key # PEM RSA key + certificate; default: generated, kept in KV
 *     signing_cert_file: /etc/…/sns.crt
 * ```
 */
import { isHostPort } from '../../agent/config/schema.js';
import { MessagingConfigError, parseMessagingConfig, type MessagingConfig } from './config.js';

/** SNS delivery settings (`messaging.sns`). */
export interface SnsSettings {
  readonly httpRetries: number;
  readonly httpMinDelayMs: number;
  readonly httpMaxDelayMs: number;
  readonly httpTimeoutMs: number;
  readonly signingKeyFile?: string;
  readonly signingCertFile?: string;
}

/** The engine's and listener's settings. */
export interface EngineSettings {
  readonly nats: string;
  readonly listen: string;
  readonly replicas: 1 | 3 | 5;
  /** Decoded `receipt_key`; undefined = the key kept in JetStream KV (generated on first start). */
  readonly receiptKey?: Buffer;
  readonly ownerLeaseMs: number;
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
  sns: { http_retries: 3, http_min_delay_seconds: 1, http_max_delay_seconds: 20, http_timeout_seconds: 15 },
} as const;

const WIRE_KEYS = ['credentials', 'region', 'verify_signatures', 'base_url', 'account_id', 'max_request_bytes'];
const ENGINE_KEYS = ['nats', 'listen', 'replicas', 'receipt_key', 'owner_lease_seconds', 'sns'];
const SNS_KEYS = ['http_retries', 'http_min_delay_seconds', 'http_max_delay_seconds', 'http_timeout_seconds', 'signing_key_file', 'signing_cert_file'];

function fail(key: string, reason: string): never {
  throw new MessagingConfigError(key, reason);
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function int(value: unknown, key: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) fail(key, `must be an integer between ${min} and ${max}`);
  return value;
}

function optionalPath(value: unknown, key: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || !value.startsWith('/')) fail(key, 'must be an absolute path');
  return value;
}

/** Decodes a key given as hex (even length) or base64; never echoes the value in errors. */
function parseKey(raw: unknown): Buffer | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'string') fail('receipt_key', 'must be a string (hex or base64)');
  const bytes = /^(?:[0-9a-fA-F]{2})+$/.test(raw) ? Buffer.from(raw, 'hex') : Buffer.from(raw, 'base64');
  if (bytes.length < 16) fail('receipt_key', 'must decode to at least 16 bytes');
  return bytes;
}

/**
 * Checks the whole `messaging` section (null/undefined = defaults) and resolves it.
 * @throws MessagingConfigError naming the first bad key.
 */
export function parseMessagingSettings(raw: unknown): MessagingSettings {
  const s = raw ?? {};
  if (!isMap(s)) fail('', 'must be a mapping');
  for (const k of Object.keys(s)) if (!WIRE_KEYS.includes(k) && !ENGINE_KEYS.includes(k)) fail(k, 'unknown key');
  const wire = parseMessagingConfig(Object.fromEntries(Object.entries(s).filter(([k]) => WIRE_KEYS.includes(k))));
  const nats = s.nats ?? ENGINE_DEFAULTS.nats;
  if (typeof nats !== 'string' || !nats.split(',').every((u) => /^(nats|tls):\/\/[^\s/]+$/.test(u.trim()))) {
    fail('nats', 'must be nats://host:port, comma-separated');
  }
  const listen = s.listen ?? ENGINE_DEFAULTS.listen;
  // Port 0 (any free port) is allowed: tests and ad-hoc runs use it.
  if (typeof listen !== 'string' || !isHostPort(listen.replace(/:0$/, ':1'))) fail('listen', 'must be host:port');
  const replicas = s.replicas ?? ENGINE_DEFAULTS.replicas;
  if (replicas !== 1 && replicas !== 3 && replicas !== 5) fail('replicas', 'must be 1, 3 or 5');
  const sns = s.sns ?? {};
  if (!isMap(sns)) fail('sns', 'must be a mapping');
  for (const k of Object.keys(sns)) if (!SNS_KEYS.includes(k)) fail(`sns.${k}`, 'unknown key');
  const d = ENGINE_DEFAULTS.sns;
  const minDelay = int(sns.http_min_delay_seconds ?? d.http_min_delay_seconds, 'sns.http_min_delay_seconds', 0, 3600);
  const maxDelay = int(sns.http_max_delay_seconds ?? d.http_max_delay_seconds, 'sns.http_max_delay_seconds', 0, 3600);
  if (maxDelay < minDelay) fail('sns.http_max_delay_seconds', 'must not be below http_min_delay_seconds');
  const keyFile = optionalPath(sns.signing_key_file, 'sns.signing_key_file');
  const certFile = optionalPath(sns.signing_cert_file, 'sns.signing_cert_file');
  if ((keyFile === undefined) !== (certFile === undefined)) fail('sns.signing_cert_file', 'signing_key_file and signing_cert_file go together');
  return {
    wire,
    engine: {
      nats,
      listen,
      replicas,
      receiptKey: parseKey(s.receipt_key),
      ownerLeaseMs: int(s.owner_lease_seconds ?? ENGINE_DEFAULTS.owner_lease_seconds, 'owner_lease_seconds', 2, 300) * 1000,
      sns: {
        httpRetries: int(sns.http_retries ?? d.http_retries, 'sns.http_retries', 0, 100),
        httpMinDelayMs: minDelay * 1000,
        httpMaxDelayMs: maxDelay * 1000,
        httpTimeoutMs: int(sns.http_timeout_seconds ?? d.http_timeout_seconds, 'sns.http_timeout_seconds', 1, 60) * 1000,
        ...(keyFile ? { signingKeyFile: keyFile } : {}),
        ...(certFile ? { signingCertFile: certFile } : {}),
      },
    },
  };
}
