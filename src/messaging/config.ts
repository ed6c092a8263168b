/**
 * The wire layer's settings under `messaging:` in the agent config. Only the keys below are read and
 * checked here; other keys of the section (the engine's, the listener's) are left to their owners.
 *
 * ```yaml
 * messaging:
 *   credentials:                       # key pairs accepted in SigV4 signatures; several allowed
 *     - { access_key_id: AKIA…, secret_access_key: … }
 *   region: us-east-1                  # used in ARNs; any region is accepted in signatures
 *   verify_signatures: true            # false: accept unsigned requests (development only)
 *   base_url: https://sqs.example:9324 # origin put in queue URLs; default: each request's Host
 *   account_id: "000000000000"         # 12 digits, in queue URLs and ARNs
 *   max_request_bytes: 4194304         # raw HTTP body limit (see below)
 * ```
 */
import type { Credential } from './sigv4.js';

/** The resolved settings, every default applied. */
export interface MessagingConfig {
  readonly credentials: readonly Credential[];
  readonly region: string;
  readonly verify_signatures: boolean;
  /** Without trailing slash; undefined = derive from each request's scheme and Host header. */
  readonly base_url?: string;
  readonly account_id: string;
  readonly max_request_bytes: number;
}

/** An invalid `messaging` setting; `key` is the dotted path under `messaging`. */
export class MessagingConfigError extends Error {
  override readonly name = 'MessagingConfigError';
  constructor(
    readonly key: string,
    readonly reason: string,
  ) {
    super(`messaging${key ? `.${key}` : ''}: ${reason}`);
  }
}

/**
 * Defaults. The body limit is not the 1 MiB message limit: a 1 MiB message grows up to threefold
 * when form-encoded (`%XX` per UTF-8 byte) and twofold as JSON, and the exact limits are checked
 * after decoding (`InvalidParameterValue`, `BatchRequestTooLong`); this only bounds memory.
 */
export const MESSAGING_DEFAULTS = {
  region: 'us-east-1',
  verify_signatures: true,
  account_id: '000000000000',
  max_request_bytes: 4 * 1024 * 1024,
} as const;

const REGION = /^[a-z]{2}(?:-[a-z0-9]+)+-\d+$|^[a-z0-9-]{1,32}$/;

function fail(key: string, reason: string): never {
  throw new MessagingConfigError(key, reason);
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Checks the `messaging` section (null/undefined = all defaults) and resolves it.
 * @throws MessagingConfigError naming the first bad key, e.g. `messaging.credentials[1].secret_access_key: is required`.
 */
export function parseMessagingConfig(raw: unknown): MessagingConfig {
  const s = raw ?? {};
  if (!isMap(s)) fail('', 'must be a mapping');
  const credentials = parseCredentials(s.credentials);
  const region = s.region ?? MESSAGING_DEFAULTS.region;
  if (typeof region !== 'string' || !REGION.test(region)) fail('region', 'must be a region name like us-east-1');
  const verify = s.verify_signatures ?? MESSAGING_DEFAULTS.verify_signatures;
  if (typeof verify !== 'boolean') fail('verify_signatures', 'must be true or false');
  if (verify && credentials.length === 0) {
    fail('credentials', 'must list at least one key pair while verify_signatures is true (every request would be refused)');
  }
  const account = s.account_id ?? MESSAGING_DEFAULTS.account_id;
  if (typeof account !== 'string' || !/^\d{12}$/.test(account)) fail('account_id', 'must be a string of 12 digits (quote it in YAML)');
  const limit = s.max_request_bytes ?? MESSAGING_DEFAULTS.max_request_bytes;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1024 * 1024 + 64 * 1024 || limit > 64 * 1024 * 1024) {
    fail('max_request_bytes', 'must be an integer between 1114112 (1 MiB + 64 KiB) and 67108864');
  }
  return {
    credentials,
    region,
    verify_signatures: verify,
    base_url: s.base_url === undefined || s.base_url === null ? undefined : parseBaseUrl(s.base_url),
    account_id: account,
    max_request_bytes: limit,
  };
}

function parseCredentials(raw: unknown): Credential[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) fail('credentials', 'must be a list of { access_key_id, secret_access_key }');
  const seen = new Set<string>();
  return raw.map((item: unknown, i) => {
    const at = `credentials[${i}]`;
    if (!isMap(item)) fail(at, 'must be a mapping with access_key_id and secret_access_key');
    const id = item.access_key_id;
    const secret = item.secret_access_key;
    if (typeof id !== 'string' || !/^[A-Za-z0-9]{4,128}$/.test(id)) fail(`${at}.access_key_id`, 'must be 4-128 letters or digits');
    // Never quote the secret in an error: config errors end up in logs.
    if (typeof secret !== 'string' || secret.length < 8) fail(`${at}.secret_access_key`, 'must be a string of at least 8 characters');
    if (seen.has(id)) fail(`${at}.access_key_id`, `duplicate of an earlier entry (${id})`);
    seen.add(id);
    return { accessKeyId: id, secretAccessKey: secret };
  });
}

function parseBaseUrl(raw: unknown): string {
  if (typeof raw !== 'string') fail('base_url', 'must be a URL like https://sqs.example.org:9324');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    fail('base_url', 'must be a URL like https://sqs.example.org:9324');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail('base_url', 'must use http or https');
  if (url.search || url.hash || url.username || url.password) fail('base_url', 'must not have a query, fragment or user info');
  // Queue URLs are `<base>/<account>/<name>` and resolved by their last two segments, so a path prefix is fine.
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}
