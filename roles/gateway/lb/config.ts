/**
 * `roles.gateway.lb`: where the gateway runs HAProxy for the registry's load balancers (issue 21),
 * and the ports a balancer may not take. Parsed with the rest of `roles.gateway` (config.ts hands
 * this section over before checking its own keys), checked by its own schema.
 *
 * Wildcard binds: a balancer without `listen.addr` binds `bind` (default `0.0.0.0`), not the WAN
 * interface's addresses. The render is pure, and a WAN address may come from DHCP and change; the
 * firewall (render-iptables.ts) opens the listen ports on the WAN interface only, so the LAN side
 * of a `0.0.0.0` bind stays closed. Set `bind` to the WAN address(es) to bind nothing else.
 */
import type { JSONSchemaType } from 'ajv';
import path from 'node:path';
import { isIPv4 } from '../../../core/net.js';
import { COMMON_FORMATS, invalid, isSafeAbsolutePath, sectionChecker, withDefaults, type Format } from '../../../core/validation.js';
import type { AcmeHaproxySettings } from './render-acme.js';
import { HAPROXY_DEFAULTS } from './render-haproxy.js';

/** The resolved `roles.gateway.lb`. */
export interface GatewayLbConfig {
  /** Serve the registry's balancers at all (off: no HAProxy files, HAProxy stopped). */
  readonly enabled: boolean;
  /** The HAProxy program: a name looked up on PATH, or an absolute path. */
  readonly binary: string;
  /** HAProxy's config, maps, placeholder certificate and `certs/` (the certificates `tls acme` serves). */
  readonly dir: string;
  /** The admin and master sockets. */
  readonly run_dir: string;
  /** Addresses a balancer without `listen.addr` binds. */
  readonly bind: readonly string[];
  /** Where `tls acme` certificates come from (acme.ts). */
  readonly acme: GatewayLbAcmeConfig;
}

/** `roles.gateway.lb.acme`: the ACME directory the gateway's lego asks, and lego's own files. */
export interface GatewayLbAcmeConfig {
  /** The ACME directory URL (default: the cluster CA's, docs/ca.md). */
  readonly directory: string;
  /** The root lego trusts for the directory (LEGO_CA_CERTIFICATES); empty: the system's trust. */
  readonly ca_file: string;
  /**
   * The account's contact address. lego will not register without one; the cluster CA takes any
   * address, a public CA wants a real one (and may refuse the default).
   */
  readonly email: string;
  /** lego's `--path` (account key, certificates), mode 0700. */
  readonly state_dir: string;
  /** The loopback port lego answers http-01 challenges on; HAProxy routes `/.well-known/acme-challenge/` there. */
  readonly http_port: number;
  /** Seconds between certificate checks (renewals); a failure is retried sooner, with backoff. */
  readonly check_interval: number;
}

/** What an operator may write under `acme`. */
type GatewayLbAcmeSettings = { readonly [K in keyof GatewayLbAcmeConfig]?: GatewayLbAcmeConfig[K] };

/** What an operator may write (every key optional). */
export type GatewayLbSettings = { readonly [K in Exclude<keyof GatewayLbConfig, 'acme'>]?: GatewayLbConfig[K] } & {
  readonly acme?: GatewayLbAcmeSettings;
};

export const GATEWAY_LB_DEFAULTS: GatewayLbConfig = {
  enabled: true,
  binary: 'haproxy',
  dir: '/etc/mammatus/haproxy',
  run_dir: '/run/mammatus/haproxy',
  bind: ['0.0.0.0'],
  acme: {
    directory: 'https://ca.mammatus:9000/acme/acme/directory',
    ca_file: '/var/lib/mammatus/tls/ca.crt',
    email: 'gateway@mammatus',
    state_dir: '/var/lib/mammatus/lego',
    http_port: 402,
    check_interval: 3600,
  },
};

const AT = 'roles.gateway.lb';
const opt = { nullable: true } as const;
// IPv4 only: the gateway's firewall is iptables (IPv4), so an IPv6 bind would stand unfiltered.
const isBindAddr = (v: string): boolean => isIPv4(v);
const FORMATS: Readonly<Record<string, Format>> = {
  path: COMMON_FORMATS.path,
  program: {
    check: (v) => /^[A-Za-z0-9._+-]+$/.test(v) || isSafeAbsolutePath(v),
    why: 'must be a program name like haproxy or an absolute path',
  },
  'bind-addr': { check: isBindAddr, why: 'must be an IPv4 address like 0.0.0.0 or 203.0.113.5 (IPv6 is not filtered by the firewall)' },
  'acme-url': {
    check: (v) => /^https:\/\/[A-Za-z0-9.:[\]-]+(\/[A-Za-z0-9._~%/-]*)?$/.test(v),
    why: 'must be an https URL like https://ca.mammatus:9000/acme/acme/directory',
  },
  'path-or-empty': { check: (v) => v === '' || isSafeAbsolutePath(v), why: 'must be an absolute path, or empty for the system trust' },
  email: {
    check: (v) => /^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+$/.test(v),
    why: 'must be an address like ops@example.org',
  },
};

const SCHEMA: JSONSchemaType<GatewayLbSettings> = {
  type: 'object',
  additionalProperties: false,
  required: [],
  nullable: true,
  properties: {
    enabled: { type: 'boolean', ...opt },
    binary: { type: 'string', format: 'program', ...opt },
    dir: { type: 'string', format: 'path', ...opt },
    run_dir: { type: 'string', format: 'path', ...opt },
    bind: { type: 'array', items: { type: 'string', format: 'bind-addr' }, minItems: 1, maxItems: 16, ...opt },
    acme: {
      type: 'object',
      additionalProperties: false,
      required: [],
      nullable: true,
      properties: {
        directory: { type: 'string', format: 'acme-url', ...opt },
        ca_file: { type: 'string', format: 'path-or-empty', ...opt },
        email: { type: 'string', format: 'email', ...opt },
        state_dir: { type: 'string', format: 'path', ...opt },
        http_port: { type: 'integer', minimum: 1, maximum: 1023, ...opt },
        check_interval: { type: 'integer', minimum: 60, maximum: 86_400, ...opt },
      },
    },
  },
};

const check = sectionChecker<GatewayLbSettings>({ name: 'roles.gateway.lb', at: AT, schema: SCHEMA, formats: FORMATS });

/**
 * `roles.gateway` without its `lb` key, and that key: the gateway's schema checks the first, this
 * module the second.
 */
export function splitLbSettings(raw: unknown): { readonly rest: unknown; readonly lb: unknown } {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || !('lb' in raw)) return { rest: raw, lb: undefined };
  const { lb, ...rest } = raw as Record<string, unknown>;
  return { rest, lb };
}

/** Checks `roles.gateway.lb` and applies the defaults; throws a `SettingsError` naming the bad key. */
export function parseLbConfig(raw: unknown): GatewayLbConfig {
  const cfg = withDefaults(GATEWAY_LB_DEFAULTS, check(raw ?? {}));
  if (cfg.dir === cfg.run_dir) invalid(AT, 'run_dir', 'must differ from dir');
  return cfg;
}

/** HAProxy's settings from the resolved section. */
export function haproxySettings(lb: GatewayLbConfig): AcmeHaproxySettings {
  return {
    ...HAPROXY_DEFAULTS,
    configDir: lb.dir,
    adminSocket: path.join(lb.run_dir, 'admin.sock'),
    certDir: path.join(lb.dir, 'certs'),
    placeholderCert: path.join(lb.dir, 'placeholder.pem'),
    wildcardAddrs: lb.bind,
    acmeChallengePort: lb.acme.http_port,
  };
}

/** The master CLI socket HAProxy is started with. */
export const masterSocket = (lb: GatewayLbConfig): string => path.join(lb.run_dir, 'master.sock');

/** A port the gateway itself listens on, with what listens there. */
export interface ReservedPort {
  readonly port: number;
  readonly what: string;
}
