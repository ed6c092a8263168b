/**
 * Which keys hold secrets, by name: the one rule behind the log redaction (core/logger.ts) and the
 * refusal of config files that others can read (agent/config/load.ts). A rule by name, not a list of
 * paths, so a secret nested anywhere — `config.messaging.credentials[0].secret_access_key`, a header
 * map, a role's own settings — is caught, and a key added later in the same style is too.
 */

/** What a secret value is replaced with in log lines. */
export const CENSOR = '[redacted]';

// A key is a secret when its last word (or last two words) says so. Words, not substrings: `preseed`
// is a path and `access_key_id` is not secret, while `authority_seed` and `secret_access_key` are.
const LAST_WORD = new Set(['secret', 'secrets', 'token', 'password', 'passwd', 'seed', 'auth', 'authorization', 'cookie', 'signature']);
const LAST_TWO_WORDS = new Set([
  'auth key',
  'access key',
  'secret key',
  'private key',
  'api key',
  'gossip key',
  'encrypt key',
  'receipt key',
  'signing key',
  'secret id',
]);

// Key names repeat (a log has a few dozen), so each is split into words once; the cap keeps a stream
// of made-up names (a JSON body logged at debug) from growing the cache without bound.
const verdicts = new Map<string, boolean>();
const MAX_CACHED = 4096;

/**
 * True when `name` names a secret: `rpc_auth`, `authKey`, `proxy_secret`, `proxySecret`,
 * `secret_access_key`, `secretAccessKey`, `seed`, `authority_seed`, `token`, `password`,
 * `authorization`, `x-aws-ec2-metadata-token`, `gossip_key`, `receipt_key`, `vaultWrappedSecretId`…
 * Not: `access_key_id`, `proxy_secret_file`, `token_file`, `tokens`, `preseed`, `key`.
 */
export function isSecretKey(name: string): boolean {
  let verdict = verdicts.get(name);
  if (verdict === undefined) {
    const words = name
      .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
      .toLowerCase()
      .split(/[^a-z0-9]+/)
      .filter(Boolean);
    const last = words.at(-1) ?? '';
    verdict = LAST_WORD.has(last) || LAST_TWO_WORDS.has(words.slice(-2).join(' '));
    if (verdicts.size >= MAX_CACHED) verdicts.clear();
    verdicts.set(name, verdict);
  }
  return verdict;
}

/** True when a value under a secret key actually holds something: `rpc_auth: ""` or `null` holds nothing, nor does a flag. */
export function holdsSecret(value: unknown): boolean {
  if (value === undefined || value === null || value === '' || typeof value === 'boolean') return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object') return Object.keys(value).length > 0;
  return true;
}

/**
 * The dotted path of the first secret that `data` holds (`serf.rpc_auth`,
 * `messaging.credentials[0].secret_access_key`), or undefined when it holds none. Walks plain
 * objects and arrays (what YAML parses to).
 */
export function findSecret(data: unknown, at = ''): string | undefined {
  if (Array.isArray(data)) {
    for (const [i, item] of data.entries()) {
      const found = findSecret(item, `${at}[${i}]`);
      if (found) return found;
    }
    return undefined;
  }
  if (!isPlain(data)) return undefined;
  for (const [key, value] of Object.entries(data)) {
    const path = at ? `${at}.${key}` : key;
    if (isSecretKey(key) && holdsSecret(value)) return path;
    const found = findSecret(value, path);
    if (found) return found;
  }
  return undefined;
}

// Bounds of one redaction: deeper or larger objects than any log line carries are censored whole
// rather than walked, so a huge or deeply nested object costs no more than this.
const MAX_DEPTH = 16;
const MAX_NODES = 10_000;

/**
 * `value` with every secret (see {@link isSecretKey}) replaced by {@link CENSOR}, at any depth of
 * plain objects and arrays. Copy on write: `value` is never changed (config objects are frozen), and
 * an object without secrets comes back as is, so the common log line allocates nothing. Class
 * instances (errors, buffers, dates) are left to their serializers; a cycle becomes `[Circular]`.
 */
export function redactSecrets<T>(value: T): T {
  const budget = { nodes: MAX_NODES };
  return redact(value, 0, new Set(), budget) as T;
}

function redact(value: unknown, depth: number, path: Set<object>, budget: { nodes: number }): unknown {
  const isArray = Array.isArray(value);
  if (!isArray && !isPlain(value)) return value;
  const obj = value as Record<string, unknown> | unknown[];
  if (path.has(obj)) return '[Circular]';
  if (depth >= MAX_DEPTH || --budget.nodes < 0) return CENSOR;
  path.add(obj);
  let copy: Record<string, unknown> | unknown[] | undefined;
  for (const key of Object.keys(obj)) {
    const item = (obj as Record<string, unknown>)[key];
    const next = !isArray && isSecretKey(key) && holdsSecret(item) ? CENSOR : redact(item, depth + 1, path, budget);
    if (next !== item) {
      copy ??= isArray ? [...(obj as unknown[])] : { ...obj };
      // defineProperty: a YAML key `__proto__` is an own property; assigning it would set the prototype.
      Object.defineProperty(copy, key, { value: next, enumerable: true, writable: true, configurable: true });
    }
  }
  path.delete(obj);
  return copy ?? obj;
}

function isPlain(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}
