/**
 * `roles.controller.ca`: the settings of the cluster CA's backend on a controller (docs/ca.md), their
 * defaults, their schema (part of `roles.controller`'s) and the checks a schema cannot make.
 */
import { COMMON_FORMATS, invalid, type Format } from '../../core/validation.js';
import { parseDuration } from '../../core/duration.js';
import { splitHostPort } from '../../core/net.js';

/** The CA backends the agent can run; `auto` = step-ca when its binary is found, else caddy. */
export type CaBackendName = 'auto' | 'step-ca' | 'caddy';

/** `roles.controller.ca`, resolved. */
export interface CaConfig {
  /**
   * Run a CA backend on this controller. The default is true: the backend's config is rendered
   * always, and the backend starts once the CA files below exist (`mammatus ca init` wrote them);
   * until then the role says it waits for them. false renders and runs nothing.
   */
  readonly enabled: boolean;
  readonly backend: CaBackendName;
  /** Where the backend listens (TLS): `[HOST]:PORT`, `:9000` = every address. */
  readonly listen: string;
  /** The ACME provisioner's name: the directory is `https://ca.mammatus:<port>/acme/<provisioner>/directory`. */
  readonly provisioner: string;
  /** Lifetime of node certificates (issued over NATS by the agents, not by the backend). */
  readonly node_cert_lifetime: string;
  /** Default lifetime of ACME certificates (step-ca; caddy 2.6.2 has no setting for it: 12 h). */
  readonly cert_lifetime: string;
  /** The system user a root agent runs the backend as; `auto` = `step` for step-ca, `caddy` for caddy; `""` = the agent's own. */
  readonly user: string;
  readonly caddy_binary: string;
  readonly step_ca_binary: string;
  readonly paths: {
    readonly root_cert: string;
    readonly intermediate_cert: string;
    /** PKCS#8 PEM, unencrypted (caddy reads no encrypted keys), 0600. */
    readonly intermediate_key: string;
    /**
     * The directory of the rendered backend config: caddy.json, step-ca's ca.json and password
     * file. Default: `ca/` beside `paths.nats_conf` (/etc/mammatus/controller/ca).
     */
    readonly config: string;
    /** The backend's own state: caddy's storage and ACME database, step-ca's bbolt database. */
    readonly data_dir: string;
  };
}

/** The defaults (`paths.config` moves with `paths.nats_conf` when unset: config.ts). */
export const CA_DEFAULTS: CaConfig = {
  enabled: true,
  backend: 'auto',
  listen: ':9000',
  provisioner: 'acme',
  node_cert_lifetime: '24h',
  cert_lifetime: '24h',
  user: 'auto',
  caddy_binary: 'caddy',
  step_ca_binary: 'step-ca',
  paths: {
    root_cert: '/var/lib/mammatus/ca/root.crt',
    intermediate_cert: '/var/lib/mammatus/ca/intermediate.crt',
    intermediate_key: '/var/lib/mammatus/ca/intermediate.key',
    config: '/etc/mammatus/controller/ca',
    data_dir: '/var/lib/mammatus/ca/data',
  },
};

/** The formats of the CA's keys. */
export const CA_FORMATS: Readonly<Record<string, Format>> = {
  'ca-listen': {
    check: (v) => (/^:\d{1,5}$/.test(v) ? validPort(Number(v.slice(1))) : COMMON_FORMATS['host-port'].check(v)),
    why: 'must be [HOST]:PORT with a port 1-65535, like :9000 or 10.0.0.5:9000',
  },
  // A path segment of the directory URL and step-ca's provisioner name.
  provisioner: { check: (v) => /^[a-z0-9][a-z0-9_-]{0,62}$/.test(v), why: 'must be 1-63 of a-z 0-9 _ - (starting with a letter or digit)' },
  duration: { check: (v) => durationMs(v) !== undefined && durationMs(v)! > 0, why: 'must be a positive duration like 24h, 90m or 5m' },
  'ca-user': {
    check: (v) => v === 'auto' || /^(?:[a-z_][a-z0-9_-]{0,31})?$/.test(v),
    why: 'must be auto, a system user name or "" for the agent\'s own user',
  },
};

const opt = { nullable: true } as const;
const s = (format: string) => ({ type: 'string', format, ...opt }) as const;
const obj = { type: 'object', additionalProperties: false, required: [], ...opt } as const;

/** The schema of `roles.controller.ca` as written (every key optional). */
export const CA_SETTINGS_SCHEMA = {
  ...obj,
  properties: {
    enabled: { type: 'boolean', ...opt },
    backend: { type: 'string', enum: ['auto', 'step-ca', 'caddy'], ...opt },
    listen: s('ca-listen'),
    provisioner: s('provisioner'),
    node_cert_lifetime: s('duration'),
    cert_lifetime: s('duration'),
    user: s('ca-user'),
    caddy_binary: s('binary'),
    step_ca_binary: s('binary'),
    paths: {
      ...obj,
      properties: {
        root_cert: s('path'),
        intermediate_cert: s('path'),
        intermediate_key: s('path'),
        config: s('path'),
        data_dir: s('path'),
      },
    },
  },
} as const;

/**
 * Cross-field checks of the resolved CA settings (`at` = `roles.controller`): its port is not one of
 * NATS's (`natsListen`, by key) or the metadata port, lifetimes lie in 5m-168h, and its paths differ
 * and stay out of the NATS store. The first problem throws a `SettingsError`.
 */
export function checkCaConfig(
  at: string,
  ca: CaConfig,
  natsListen: Readonly<Record<string, string>>,
  metadataPort: number,
  storeDir: string,
): void {
  const port = ca.listen.startsWith(':') ? Number(ca.listen.slice(1)) : splitHostPort(ca.listen).port;
  for (const [key, listen] of Object.entries(natsListen)) {
    if (splitHostPort(listen).port === port) invalid(at, 'ca.listen', `must not use the port of nats.${key} (${port})`);
  }
  if (port === metadataPort) invalid(at, 'ca.listen', `must not use the metadata port (${port})`);
  for (const key of ['node_cert_lifetime', 'cert_lifetime'] as const) {
    const ms = durationMs(ca[key])!;
    // Under 5 minutes a renewal at two thirds leaves no time for a retry; step-ca's minimum is 5m too.
    if (ms < 5 * 60_000 || ms > 7 * 24 * 3_600_000) invalid(at, `ca.${key}`, 'must be from 5m to 168h (7 days)');
  }
  const files = Object.values(ca.paths);
  if (new Set(files).size !== files.length)
    invalid(at, 'ca.paths', 'root_cert, intermediate_cert, intermediate_key, config and data_dir must all differ');
  if (ca.paths.data_dir.startsWith(`${storeDir}/`)) invalid(at, 'ca.paths.data_dir', 'must not be inside nats.store_dir');
}

/** A Go duration in milliseconds, or undefined when it is not one. */
function durationMs(text: string): number | undefined {
  try {
    return parseDuration(text);
  } catch {
    return undefined;
  }
}

const validPort = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= 65535;
