/**
 * The agent's config: its TypeScript shape, the JSON schema that checks what operators write, and the
 * defaults kept in code. The schema is typed as `JSONSchemaType<AgentConfig>`, so the compiler refuses
 * a schema that drifts from the interface.
 */
import { DEFAULT_SERVICE_USER } from '../../core/users.js';
import type { JSONSchemaType } from 'ajv';
import { parseDuration } from '../../core/duration.js';
import { ROLE_NAMES, type RoleName } from '../../core/members.js';
import { COMMON_FORMATS, SettingsError, sectionChecker, type Format } from '../../core/validation.js';
import { errorMessage } from '../../core/errors.js';

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

/** `trust:` — what this node may be, whom it trusts (docs/security.md). */
export interface TrustConfig {
  /** Roles this node may take; empty: the roles its credentials admit. A tag asking for more is reported, not obeyed. */
  readonly allowed_roles: readonly RoleName[];
  /**
   * The operators: OpenSSH public keys in `authorized_keys` format, the comment naming the operator.
   * Their signatures admit nodes and authorize signed events and queries (docs/security.md).
   */
  readonly operators: readonly string[];
  /** An `authorized_keys`-format file of more operator keys ('' = none); read at each (re)load. */
  readonly operators_file: string;
  /** Lab only: run the controller role although Serf gossip is not encrypted or its RPC has no auth key. */
  readonly allow_plain_serf: boolean;
}

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
  readonly trust: TrustConfig;
  readonly services: ServicesConfig;
  readonly metrics: MetricsConfig;
}

/** `metrics:` — the agent's metrics in Prometheus' text format (docs/monitoring.md). */
export interface MetricsConfig {
  /** Off: no listener, no answers to the controllers, no process collectors. */
  readonly enabled: boolean;
  /**
   * `host:port` of the local HTTP listener (`GET /metrics`; on a controller also
   * `/members/<name>/metrics`); '' for none (the controllers still gather them over NATS).
   */
  readonly listen: string;
}

/** The agent's metrics port (docs/monitoring.md); loopback only unless configured otherwise. */
export const DEFAULT_METRICS_LISTEN = '127.0.0.1:9475';

/** `services:` — how the tenant-facing services run (docs/security.md, "Privilege separation"). */
export interface ServicesConfig {
  /**
   * The system user the metadata service, the SQS/SNS API and the metadata proxy run as, in child
   * processes of a root agent; when it does not exist they run as `nobody` and the log says so.
   */
  readonly user: string;
}

/** Every property optional, all the way down: the shape of one config file or of CLI overrides. */
export type DeepPartial<T> = {
  -readonly [K in keyof T]?: T[K] extends readonly unknown[] ? T[K] : T[K] extends object ? DeepPartial<T[K]> : T[K];
};

// Names of the custom ajv formats below.
const HOST_PORT_FORMAT = 'host-port';
const DURATION_FORMAT = 'go-duration';

/** True for a Go duration string that is not negative (a negative timeout has no meaning here). */
export function isDuration(value: string): boolean {
  try {
    return parseDuration(value) >= 0;
  } catch {
    return false;
  }
}

// The custom formats the schema uses, each with the sentence shown when a value fails it.
const CONFIG_FORMATS: Readonly<Record<string, Format>> = {
  [HOST_PORT_FORMAT]: { check: COMMON_FORMATS['host-port'].check, why: 'must match host:port' },
  [DURATION_FORMAT]: { check: isDuration, why: durationProblem },
};

/** Why `value` is not a usable duration, in words an operator can act on. */
function durationProblem(value: string): string {
  try {
    parseDuration(value);
  } catch (err) {
    return errorMessage(err);
  }
  return `invalid duration ${JSON.stringify(value)}: must not be negative`;
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
  required: ['state_dir', 'serf', 'log', 'roles', 'dispatch', 'watch_config', 'metadata', 'messaging', 'trust', 'services', 'metrics'],
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
    trust: {
      type: 'object',
      additionalProperties: false,
      required: ['allowed_roles', 'operators', 'operators_file', 'allow_plain_serf'],
      properties: {
        allowed_roles: { type: 'array', items: { type: 'string', enum: ROLE_NAMES }, uniqueItems: true },
        operators: { type: 'array', items: { type: 'string', pattern: '^(ssh-|ecdsa-|sk-)[^\\n]+$' } },
        operators_file: { type: 'string', pattern: '^(/[^\\n]*)?$' },
        allow_plain_serf: { type: 'boolean' },
      },
    },
    services: {
      type: 'object',
      additionalProperties: false,
      required: ['user'],
      // A system user name as useradd takes it; never root's (checked in code: root is no drop).
      properties: { user: { type: 'string', pattern: '^[a-z_][a-z0-9_-]{0,31}$', not: { const: 'root' } } },
    },
    metrics: {
      type: 'object',
      additionalProperties: false,
      required: ['enabled', 'listen'],
      properties: {
        enabled: { type: 'boolean' },
        listen: { type: 'string', anyOf: [{ const: '' }, { format: HOST_PORT_FORMAT }] },
      },
    },
  },
};

const checkConfig = sectionChecker<AgentConfig>({
  name: 'agent',
  at: '',
  schema: AGENT_CONFIG_SCHEMA,
  formats: CONFIG_FORMATS,
  hints: {
    'roles.*': `unknown role name (known: ${ROLE_NAMES.join(', ')})`,
    'services.user': 'must be a system user name other than root, like mammatus',
  },
});

/**
 * The first problem of `obj` as an `AgentConfig`, or undefined when it is one. Compiled on first
 * use, so commands that never load the config never pay for it.
 */
export function findSchemaProblem(obj: unknown): SettingsError | undefined {
  try {
    checkConfig(obj);
    return undefined;
  } catch (err) {
    if (err instanceof SettingsError) return err;
    throw err;
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
  roles: Object.fromEntries(ROLE_NAMES.map((name) => [name, {}])),
  dispatch: { handler_timeout: '30s', slow_handler: '1s', query_timeout: '3.2s' },
  watch_config: true,
  metadata: {},
  messaging: {},
  trust: { allowed_roles: [], operators: [], operators_file: '', allow_plain_serf: false },
  services: { user: DEFAULT_SERVICE_USER },
  metrics: { enabled: true, listen: DEFAULT_METRICS_LISTEN },
});
