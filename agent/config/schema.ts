/**
 * The agent's config: its TypeScript shape, the JSON schema that checks what operators write, and the
 * defaults kept in code. The schema is typed as `JSONSchemaType<AgentConfig>`, so the compiler refuses
 * a schema that drifts from the interface.
 */
import { Ajv, type ErrorObject, type JSONSchemaType, type ValidateFunction } from 'ajv';
import { isIPv6 } from 'node:net';
import { ROLE_NAMES, type RoleName } from '../../roles/types.js';
import { parseDuration } from '../../core/duration.js';

/** pino's level names; `silent` turns logging off (tests, benchmarks). */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
/** One of pino's level names. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** One role's settings, `roles.<name>`; each role checks its own keys, so this level is free-form. */
export type RoleSettings = Readonly<Record<string, unknown>>;

/** `roles:`; any of the four may be absent, and a name outside `ROLE_NAMES` is an error. */
export type RolesConfig = { readonly [K in RoleName]?: RoleSettings };

/** `serf:` — how the agent reaches its local Serf agent's RPC endpoint. */
export interface SerfConfig {
  /** `host:port` of Serf's RPC listener. */
  readonly rpc_addr: string;
  /** Serf's RPC auth key; empty when Serf runs without one. */
  readonly rpc_auth: string;
  /**
   * How often a node whose roles follow membership (a gateway) re-reads `members` (default 1s), as a Go
   * duration; "0" turns it off. Serf delivers member events only after 1 s without another, so
   * without polling a joining node's name appears about a second late.
   */
  readonly members_poll: string;
}

/** `log:` */
export interface LogConfig {
  readonly level: LogLevel;
}

/** `dispatch:` — the handler policy, durations written as Go strings (see `parseDuration`). */
export interface DispatchConfig {
  /** A handler running longer than this is abandoned and logged as failed. */
  readonly handler_timeout: string;
  /** A handler running longer than this is logged at warn. */
  readonly slow_handler: string;
  /** How long the CLI waits for query answers (Serf's own default is about 3.2 s for small clusters). */
  readonly query_timeout: string;
}

/**
 * A service's own section (`metadata:`, `messaging:`): free-form here, because each service checks its
 * own keys when it starts (and names the key that is wrong), as each role does for `roles.<name>`.
 */
export type ServiceSettings = Readonly<Record<string, unknown>>;

/** The merged, validated agent config (see docs: /etc/mammatus/agent.yaml). */
export interface AgentConfig {
  /** The agent's own state directory. */
  readonly state_dir: string;
  readonly serf: SerfConfig;
  readonly log: LogConfig;
  readonly roles: RolesConfig;
  readonly dispatch: DispatchConfig;
  /** Reload when a config file changes, in addition to SIGHUP. */
  readonly watch_config: boolean;
  /** The metadata service and its proxy (`docs/metadata.md`); also read by `mammatus metadata serve`. */
  readonly metadata: ServiceSettings;
  /** The SQS/SNS API (`docs/messaging.md`); also read by `mammatus messaging serve`. */
  readonly messaging: ServiceSettings;
}

/** Every property optional, all the way down: the shape of one config file or of CLI overrides. */
export type DeepPartial<T> = {
  -readonly [K in keyof T]?: T[K] extends readonly unknown[]
    ? T[K]
    : T[K] extends object
      ? DeepPartial<T[K]>
      : T[K];
};

// Names of the custom ajv formats below.
const HOST_PORT_FORMAT = 'host-port';
const DURATION_FORMAT = 'go-duration';

// A DNS name or dotted IPv4 address; underscores allowed because container and test hosts use them.
const HOSTNAME = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/** True for `host:port` with a hostname, IPv4 address or bracketed IPv6 address and a port 1–65535. */
export function isHostPort(value: string): boolean {
  const colon = value.lastIndexOf(':');
  if (colon <= 0) return false;
  const host = value.slice(0, colon);
  const port = value.slice(colon + 1);
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) return false;
  if (host.startsWith('[') && host.endsWith(']')) return isIPv6(host.slice(1, -1));
  return HOSTNAME.test(host);
}

/** True for a Go duration string that is not negative (a negative timeout has no meaning here). */
export function isDuration(value: string): boolean {
  try {
    return parseDuration(value) >= 0;
  } catch {
    return false;
  }
}

// The custom formats the schema uses, registered with ajv before it compiles the schema.
const CONFIG_FORMATS: Readonly<Record<string, (value: string) => boolean>> = {
  [HOST_PORT_FORMAT]: isHostPort,
  [DURATION_FORMAT]: isDuration,
};

/** Explains why `value` fails `format`, in words an operator can act on. */
function describeFormatError(format: string, value: unknown): string {
  if (format === HOST_PORT_FORMAT) return 'must match host:port';
  if (format === DURATION_FORMAT && typeof value === 'string') {
    try {
      parseDuration(value);
    } catch (err) {
      return (err as Error).message;
    }
    return `invalid duration ${JSON.stringify(value)}: must not be negative`;
  }
  return `must match format "${format}"`;
}

// `nullable` is what JSONSchemaType demands for an optional key; a bare `gateway:` line in YAML is
// null, and the loader reads that as `{}` ("this role, default settings").
const roleSettingsSchema = {
  type: 'object',
  nullable: true,
  required: [],
  additionalProperties: true,
} as const;

const roleProperties = {
  gateway: roleSettingsSchema,
  compute: roleSettingsSchema,
  storage: roleSettingsSchema,
  controller: roleSettingsSchema,
} satisfies Record<RoleName, unknown>;

const durationSchema = { type: 'string', format: DURATION_FORMAT } as const;

const serviceSettingsSchema = { type: 'object', required: [], additionalProperties: true } as const;

/** The JSON schema of a complete `AgentConfig`; files are checked merged over `DEFAULT_CONFIG`. */
export const AGENT_CONFIG_SCHEMA: JSONSchemaType<AgentConfig> = {
  type: 'object',
  additionalProperties: false,
  required: ['state_dir', 'serf', 'log', 'roles', 'dispatch', 'watch_config', 'metadata', 'messaging'],
  properties: {
    state_dir: { type: 'string', minLength: 1 },
    serf: {
      type: 'object',
      additionalProperties: false,
      required: ['rpc_addr', 'rpc_auth', 'members_poll'],
      properties: {
        rpc_addr: { type: 'string', format: HOST_PORT_FORMAT },
        rpc_auth: { type: 'string' },
        members_poll: { type: 'string', format: DURATION_FORMAT },
      },
    },
    log: {
      type: 'object',
      additionalProperties: false,
      required: ['level'],
      properties: { level: { type: 'string', enum: LOG_LEVELS } },
    },
    roles: {
      type: 'object',
      additionalProperties: false,
      required: [],
      properties: roleProperties,
    },
    dispatch: {
      type: 'object',
      additionalProperties: false,
      required: ['handler_timeout', 'slow_handler', 'query_timeout'],
      properties: {
        handler_timeout: durationSchema,
        slow_handler: durationSchema,
        query_timeout: durationSchema,
      },
    },
    watch_config: { type: 'boolean' },
    metadata: serviceSettingsSchema,
    messaging: serviceSettingsSchema,
  },
};

/** What is wrong with a config object: the dotted key (empty for the whole object) and why. */
export interface SchemaProblem {
  readonly key: string;
  readonly reason: string;
}

let validator: ValidateFunction<AgentConfig> | undefined;

/**
 * Checks `obj` against `AGENT_CONFIG_SCHEMA` and returns its first problem, or `undefined` when it is
 * a valid `AgentConfig`. The first only: one precise message beats a cascade of follow-on errors.
 */
export function findSchemaProblem(obj: unknown): SchemaProblem | undefined {
  // Compiled on first use, so importing this module stays cheap for commands that never load config.
  if (!validator) {
    // verbose: a format error then carries the value, so a bad duration's message can quote it.
    const ajv = new Ajv({ allErrors: false, verbose: true });
    for (const [name, check] of Object.entries(CONFIG_FORMATS)) ajv.addFormat(name, check);
    validator = ajv.compile(AGENT_CONFIG_SCHEMA);
  }
  if (validator(obj)) return undefined;
  const error = validator.errors?.[0];
  return error ? explain(error) : { key: '', reason: 'invalid config' };
}

/** Turns one ajv error into a dotted key and a sentence an operator can act on. */
function explain(error: ErrorObject): SchemaProblem {
  const at = error.instancePath
    .split('/')
    .slice(1)
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .join('.');
  const child = (name: string): string => (at ? `${at}.${name}` : name);
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'additionalProperties': {
      const name = String(params.additionalProperty);
      const reason = at === 'roles' ? `unknown role name (known: ${ROLE_NAMES.join(', ')})` : 'unknown key';
      return { key: child(name), reason };
    }
    case 'required':
      return { key: child(String(params.missingProperty)), reason: 'is required' };
    case 'enum':
      return { key: at, reason: `must be one of ${(params.allowedValues as unknown[]).join(', ')}` };
    case 'format':
      return { key: at, reason: describeFormatError(String(params.format), error.data) };
    default:
      return { key: at, reason: error.message ?? 'is invalid' };
  }
}

/** Freezes `value` and everything reachable from it, so no consumer can change shared config. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Reflect.ownKeys(value)) deepFreeze((value as Record<PropertyKey, unknown>)[key]);
  }
  return value;
}

/** The defaults kept in code, under every config file. Deep-frozen. */
export const DEFAULT_CONFIG: AgentConfig = deepFreeze({
  state_dir: '/var/lib/mammatus',
  serf: { rpc_addr: '127.0.0.1:7373', rpc_auth: '', members_poll: '1s' },
  log: { level: 'info' },
  // Every role present with empty settings, so `roles.<name>` is `{}` unless a file says more.
  roles: Object.fromEntries(ROLE_NAMES.map((name) => [name, {}])) as RolesConfig,
  dispatch: { handler_timeout: '30s', slow_handler: '1s', query_timeout: '3.2s' },
  watch_config: true,
  metadata: {},
  messaging: {},
});
