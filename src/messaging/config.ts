/**
 * The wire layer's settings under `messaging:` in the agent config. Only the keys below are read and
 * checked here; other keys of the section (the engine's, the listener's) are left to their owners.
 *
 * ```yaml
 * messaging:
 *   credentials:                       # key pairs accepted in SigV4 signatures; several allowed
 *     - { access_key_id: AKIA…, secret_access_key: … }
 *       allow:                         # optional scopes (access.ts); absent = every action on everything
 *         - { actions: ["sqs:SendMessage"], resources: ["orders-*"] }
 *   region: us-east-1                  # used in ARNs; any region is accepted in signatures
 *   verify_signatures: true            # false: accept unsigned requests (development only)
 *   base_url: https://sqs.example:9324 # origin put in queue URLs; default: each request's Host
 *   account_id: "000000000000"         # 12 digits, in queue URLs and ARNs
 *   max_request_bytes: 4194304         # raw HTTP body limit (see below)
 * ```
 */
import type { JSONSchemaType } from 'ajv';
import { invalid, sectionChecker, type Format } from '../../core/validation.js';
import { isActionPattern, isResourcePattern, type AccessRule } from './access.js';
import type { Credential } from './sigv4.js';

/** A key pair and its scopes (`allow` undefined = full access). */
export interface MessagingCredential extends Credential {
  readonly allow?: readonly AccessRule[];
}

/** The resolved settings, every default applied. */
export interface MessagingConfig {
  readonly credentials: readonly MessagingCredential[];
  readonly region: string;
  readonly verify_signatures: boolean;
  /** Without trailing slash; undefined = derive from each request's scheme and Host header. */
  readonly base_url?: string;
  readonly account_id: string;
  readonly max_request_bytes: number;
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

/** `messaging` as written (the wire layer's keys; other owners' keys pass through). */
export interface WireSettings {
  readonly credentials?:
    | readonly {
        readonly access_key_id: string;
        readonly secret_access_key: string;
        readonly allow?: readonly { readonly actions: readonly string[]; readonly resources?: readonly string[] | null }[] | null;
      }[]
    | null;
  readonly region?: string | null;
  readonly verify_signatures?: boolean | null;
  readonly base_url?: string | null;
  readonly account_id?: string | null;
  readonly max_request_bytes?: number | null;
}

const AT = 'messaging';
const MIN_BODY = 1024 * 1024 + 64 * 1024;
const MAX_BODY = 64 * 1024 * 1024;

/** The formats of the wire keys, each with its sentence. */
export const WIRE_FORMATS: Readonly<Record<string, Format>> = {
  region: { check: (v) => /^[a-z]{2}(?:-[a-z0-9]+)+-\d+$|^[a-z0-9-]{1,32}$/.test(v), why: 'must be a region name like us-east-1' },
  'access-key-id': { check: (v) => /^[A-Za-z0-9]{4,128}$/.test(v), why: 'must be 4-128 letters or digits' },
  'account-id': { check: (v) => /^\d{12}$/.test(v), why: 'must be a string of 12 digits (quote it in YAML)' },
  'messaging-action': {
    check: isActionPattern,
    why: (v) =>
      `must be an SQS or SNS action like sqs:SendMessage, sns:Publish, sqs:* or * (batch actions are covered by their single forms), not ${JSON.stringify(v)}`,
  },
  'messaging-resource': {
    check: isResourcePattern,
    why: 'must be a queue or topic name, * matching any characters (letters, digits, - _ . *)',
  },
};

/** The wire keys' schemas, shared with the whole section's (settings.ts). */
export const WIRE_PROPERTIES = {
  credentials: {
    type: 'array',
    nullable: true,
    items: {
      type: 'object',
      additionalProperties: false,
      required: ['access_key_id', 'secret_access_key'],
      properties: {
        access_key_id: { type: 'string', format: 'access-key-id' },
        // Never quoted in an error (the kit words it without the value): config errors end up in logs.
        secret_access_key: { type: 'string', minLength: 8 },
        allow: {
          type: 'array',
          nullable: true,
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['actions'],
            properties: {
              actions: { type: 'array', minItems: 1, items: { type: 'string', format: 'messaging-action' } },
              resources: { type: 'array', nullable: true, minItems: 1, items: { type: 'string', format: 'messaging-resource' } },
            },
          },
        },
      },
    },
  },
  region: { type: 'string', format: 'region', nullable: true },
  verify_signatures: { type: 'boolean', nullable: true },
  base_url: { type: 'string', nullable: true },
  account_id: { type: 'string', format: 'account-id', nullable: true },
  max_request_bytes: { type: 'integer', minimum: MIN_BODY, maximum: MAX_BODY, nullable: true },
} as const;

/** Sentences for the wire keys that the schema cannot word. */
export const WIRE_HINTS: Readonly<Record<string, string>> = {
  'credentials#type': 'must be a list of { access_key_id, secret_access_key }',
  'credentials[]#type': 'must be a mapping with access_key_id and secret_access_key',
  'credentials[].allow#type': 'must be a list of { actions: [...], resources: [...] }',
  'credentials[].allow[]#type': 'must be a mapping with actions (and resources)',
  'credentials[].secret_access_key': 'must be a string of at least 8 characters',
  'account_id#type': 'must be a string of 12 digits (quote it in YAML)',
  max_request_bytes: `must be an integer between ${MIN_BODY} (1 MiB + 64 KiB) and ${MAX_BODY}`,
};

const WIRE_SCHEMA: JSONSchemaType<WireSettings> = {
  type: 'object',
  additionalProperties: true,
  required: [],
  properties: WIRE_PROPERTIES,
};

const checkWire = sectionChecker<WireSettings>({
  name: 'messaging.wire',
  at: AT,
  schema: WIRE_SCHEMA,
  formats: WIRE_FORMATS,
  hints: WIRE_HINTS,
});

/**
 * Checks the `messaging` section's wire keys (null/undefined = all defaults) and resolves them;
 * the keys of other owners (the engine's, the listener's) are left to them.
 * @throws SettingsError naming the first bad key, e.g. `messaging.credentials[1].secret_access_key: is required`.
 */
export function parseMessagingConfig(raw: unknown): MessagingConfig {
  const s = checkWire(raw ?? {});
  const seen = new Set<string>();
  const credentials = (s.credentials ?? []).map((c, i) => {
    if (seen.has(c.access_key_id)) invalid(AT, `credentials[${i}].access_key_id`, `duplicate of an earlier entry (${c.access_key_id})`);
    seen.add(c.access_key_id);
    const allow = c.allow?.map((rule) => ({ actions: [...rule.actions], resources: [...(rule.resources ?? ['*'])] }));
    return { accessKeyId: c.access_key_id, secretAccessKey: c.secret_access_key, ...(allow ? { allow } : {}) };
  });
  const verify = s.verify_signatures ?? MESSAGING_DEFAULTS.verify_signatures;
  if (verify && credentials.length === 0) {
    invalid(AT, 'credentials', 'must list at least one key pair while verify_signatures is true (every request would be refused)');
  }
  return {
    credentials,
    region: s.region ?? MESSAGING_DEFAULTS.region,
    verify_signatures: verify,
    base_url: s.base_url === undefined || s.base_url === null ? undefined : parseBaseUrl(s.base_url),
    account_id: s.account_id ?? MESSAGING_DEFAULTS.account_id,
    max_request_bytes: s.max_request_bytes ?? MESSAGING_DEFAULTS.max_request_bytes,
  };
}

function parseBaseUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return invalid(AT, 'base_url', 'must be a URL like https://sqs.example.org:9324');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') invalid(AT, 'base_url', 'must use http or https');
  if (url.search || url.hash || url.username || url.password) invalid(AT, 'base_url', 'must not have a query, fragment or user info');
  // Queue URLs are `<base>/<account>/<name>` and resolved by their last two segments, so a path prefix is fine.
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}
