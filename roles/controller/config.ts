/**
 * The controller role's settings (`roles.controller` in the agent config): the resolved
 * `ControllerConfig`, the JSON schema of what operators may write (every key optional) and
 * `parseControllerConfig`, which checks the shape, applies the defaults and then checks what a schema
 * cannot (three distinct ports). A role sees only its own settings, not the agent's `state_dir`, so
 * the NATS store has a fixed default of its own under /var/lib/mammatus.
 */
import type { JSONSchemaType } from 'ajv';
import { splitHostPort } from '../../core/net.js';
import { CA_DEFAULTS, CA_FORMATS, CA_SETTINGS_SCHEMA, checkCaConfig, type CaConfig } from './ca-config.js';
import { posix } from 'node:path';
import { COMMON_FORMATS, invalid, isSafeAbsolutePath, sectionChecker, withDefaults, type Format } from '../../core/validation.js';
import { CONTROLLER_TLS_DEFAULTS, type ControllerTlsConfig } from './tls.js';
import {
  MONITORING_DEFAULTS,
  MONITORING_FORMATS,
  MONITORING_HINTS,
  MONITORING_SETTINGS_SCHEMA,
  checkMonitoringConfig,
  resolveMonitoring,
  type MonitoringConfig,
} from './monitoring/config.js';

/** The resolved controller settings: every default applied, every value checked. */
export interface ControllerConfig {
  readonly nats: {
    /** Where NATS clients connect (`host:port`). */
    readonly listen: string;
    /** Where the other controllers' routes connect; its port is the cluster port of every controller. */
    readonly cluster_listen: string;
    /** nats-server's HTTP monitor (`/healthz`, `/routez`, `/jsz`); the role probes health here. */
    readonly monitor_listen: string;
    readonly cluster_name: string;
    /** JetStream's store; nats-server keeps its files in `<store_dir>/jetstream`. */
    readonly store_dir: string;
    /** Largest message (headers + payload) in bytes; SQS messages reach 1 MiB plus attributes. */
    readonly max_payload: number;
    /** The nats-server executable: a name looked up on PATH, or an absolute path. */
    readonly binary: string;
    /**
     * The system user a root agent runs nats-server as (default `nats`, which Debian's package
     * creates); `""` = the agent's own user. See nats-user.ts for when it falls back.
     */
    readonly user: string;
  };
  /** The controller's own INPUT rules (firewall.ts). */
  readonly firewall: {
    /** Render and install them (needs root and iptables); off for controllers sharing a host's firewall in a lab. */
    readonly enabled: boolean;
    /** The metadata service's port (the `metadata.listen` port), open to gateways only. */
    readonly metadata_port: number;
    /** Further sources (IPv4 address or CIDR) allowed to the metadata service: direct callers. */
    readonly metadata_from: readonly string[];
  };
  /** The cluster CA's backend on this controller (docs/ca.md): ACME for services and instances. */
  readonly ca: CaConfig;
  /** The monitoring stack (docs/monitoring.md): off unless `store` is set. */
  readonly monitoring: MonitoringConfig;
  readonly paths: {
    readonly nats_conf: string;
    /** The iptables-restore file of the controller's chain. */
    readonly firewall: string;
    /** The membership snapshot the hosted services were last told about. */
    readonly members: string;
    /** The last copy of the roster, served at the next start until NATS answers. */
    readonly roster: string;
  };
  /** The node certificate NATS serves once the agent holds one (tls.ts; issue 20). */
  readonly tls: ControllerTlsConfig;
}

/** Every key optional, all the way down: what an operator writes. */
export type { CaBackendName, CaConfig } from './ca-config.js';

export type ControllerSettings = Settings<ControllerConfig>;
type Settings<T> = {
  readonly [K in keyof T]?: NonNullable<T[K]> extends readonly unknown[]
    ? T[K]
    : NonNullable<T[K]> extends object
      ? Settings<NonNullable<T[K]>>
      : T[K];
};

/** The first line of every file the controller role renders. */
export const MANAGED_HEADER = '# managed by mammatus role=controller\n';

const MIB = 1024 * 1024;

/** The defaults of every key. */
export const CONTROLLER_DEFAULTS: ControllerConfig = {
  nats: {
    listen: '0.0.0.0:4222',
    cluster_listen: '0.0.0.0:6222',
    monitor_listen: '127.0.0.1:8222',
    cluster_name: 'mammatus',
    store_dir: '/var/lib/mammatus/nats',
    max_payload: 2 * MIB,
    binary: 'nats-server',
    user: 'nats',
  },
  firewall: { enabled: true, metadata_port: 8775, metadata_from: [] },
  ca: CA_DEFAULTS,
  monitoring: MONITORING_DEFAULTS,
  paths: {
    nats_conf: '/etc/mammatus/controller/nats-server.conf',
    firewall: '/etc/mammatus/controller/firewall.rules',
    members: '/var/lib/mammatus/controller/members',
    roster: '/var/lib/mammatus/controller/roster.json',
  },
  tls: CONTROLLER_TLS_DEFAULTS,
};

/** The formats of `roles.controller`: the common ones and the controller's own. */
const FORMATS: Readonly<Record<string, Format>> = {
  'host-port': COMMON_FORMATS['host-port'],
  path: COMMON_FORMATS.path,
  // nats-server refuses spaces in a cluster name; keep to what reads well in logs and /varz.
  'cluster-name': { check: (v) => /^[A-Za-z0-9_-]{1,64}$/.test(v), why: 'must be 1-64 of A-Z a-z 0-9 _ -' },
  'ipv4-source': {
    check: (v) =>
      /^(\d{1,3})(\.\d{1,3}){3}(\/(\d|[12]\d|3[0-2]))?$/.test(v) &&
      v
        .split('/')[0]
        .split('.')
        .every((o) => Number(o) <= 255),
    why: 'must be an IPv4 address or CIDR (10.0.0.5, 10.0.0.0/24)',
  },
  'system-user': {
    check: (v) => /^(?:[a-z_][a-z0-9_-]{0,31})?$/.test(v),
    why: 'must be a system user name (a-z 0-9 _ -, up to 32) or "" for the agent\'s own user',
  },
  ...CA_FORMATS,
  ...MONITORING_FORMATS,
  binary: {
    check: (v) => isSafeAbsolutePath(v) || /^[A-Za-z0-9._+-]+$/.test(v),
    why: 'must be a program name on PATH (nats-server) or an absolute path',
  },
};

const opt = { nullable: true } as const;
const s = (format: string) => ({ type: 'string', format, ...opt }) as const;
const obj = { type: 'object', additionalProperties: false, required: [], ...opt } as const;

/** The JSON schema of `roles.controller` as written; defaults and cross-field checks come after. */
export const CONTROLLER_SETTINGS_SCHEMA: JSONSchemaType<ControllerSettings> = {
  ...obj,
  properties: {
    nats: {
      ...obj,
      properties: {
        listen: s('host-port'),
        cluster_listen: s('host-port'),
        monitor_listen: s('host-port'),
        cluster_name: s('cluster-name'),
        store_dir: s('path'),
        // nats-server's own ceiling is 64 MiB; below 1 MiB an SQS message no longer fits.
        max_payload: { type: 'integer', minimum: MIB, maximum: 64 * MIB, ...opt },
        binary: s('binary'),
        user: s('system-user'),
      },
    },
    firewall: {
      ...obj,
      properties: {
        enabled: { type: 'boolean', ...opt },
        metadata_port: { type: 'integer', minimum: 1, maximum: 65535, ...opt },
        metadata_from: { type: 'array', items: { type: 'string', format: 'ipv4-source' }, ...opt },
      },
    },
    ca: CA_SETTINGS_SCHEMA,
    monitoring: MONITORING_SETTINGS_SCHEMA,
    paths: { ...obj, properties: { nats_conf: s('path'), firewall: s('path'), members: s('path'), roster: s('path') } },
    tls: { ...obj, properties: { cert: s('path'), key: s('path'), ca: s('path'), allow_plain: { type: 'boolean', ...opt } } },
  },
};

const AT = 'roles.controller';
const checkSettings = sectionChecker<ControllerSettings>({
  name: 'roles.controller',
  at: AT,
  schema: CONTROLLER_SETTINGS_SCHEMA,
  formats: FORMATS,
  hints: {
    'nats.max_payload': `must be an integer from ${MIB} (1 MiB) to ${64 * MIB} (64 MiB)`,
    'ca.backend': 'must be auto, step-ca or caddy',
    ...MONITORING_HINTS,
  },
});

/**
 * Checks `roles.controller` (`raw`; null or undefined mean "all defaults"), applies the defaults and
 * returns the resolved config. Throws a `SettingsError` naming the first bad key, e.g.
 * `roles.controller.nats.listen: must be HOST:PORT ...`.
 */
export function parseControllerConfig(raw: unknown): ControllerConfig {
  const settings = checkSettings(raw ?? {});
  let cfg = withDefaults(CONTROLLER_DEFAULTS, settings);
  // Unset, the CA backend's config sits beside nats-server's (so an agent whose files were moved
  // to a test or lab directory keeps this one there too).
  if (!settings.ca?.paths?.config) {
    const config = posix.join(posix.dirname(cfg.paths.nats_conf), 'ca');
    cfg = { ...cfg, ca: { ...cfg.ca, paths: { ...cfg.ca.paths, config } } };
  }
  // Unset, its files and data directories move with NATS's too.
  cfg = { ...cfg, monitoring: resolveMonitoring(settings.monitoring, cfg.nats.store_dir, cfg.paths.nats_conf, cfg.tls.ca) };
  checkConfig(cfg);
  return cfg;
}

/** Cross-field checks the schema cannot express; the first problem throws. */
function checkConfig(cfg: ControllerConfig): void {
  const keys = ['listen', 'cluster_listen', 'monitor_listen'] as const;
  const seen = new Map<number, string>();
  for (const key of keys) {
    const port = splitHostPort(cfg.nats[key]).port;
    const first = seen.get(port);
    // Different hosts could share a port, but one node binding 0.0.0.0 collides with the others.
    if (first) invalid(AT, `nats.${key}`, `must not use the port of nats.${first} (${port})`);
    seen.set(port, key);
  }
  if (new Set(Object.values(cfg.paths)).size !== Object.values(cfg.paths).length) {
    invalid(AT, 'paths', 'nats_conf, firewall, members and roster must be four different files');
  }
  for (const [key, file] of Object.entries(cfg.paths)) {
    // nats-server owns everything below its store; a file of ours there could be removed by it.
    if (file.startsWith(`${cfg.nats.store_dir}/`)) invalid(AT, `paths.${key}`, 'must not be inside nats.store_dir');
  }
  const { listen, cluster_listen, monitor_listen } = cfg.nats;
  checkCaConfig(AT, cfg.ca, { listen, cluster_listen, monitor_listen }, cfg.firewall.metadata_port, cfg.nats.store_dir);
  const taken = { 'nats.listen': listen, 'nats.cluster_listen': cluster_listen, 'nats.monitor_listen': monitor_listen };
  checkMonitoringConfig(AT, cfg.monitoring, taken, cfg.nats.store_dir);
}
