/**
 * The controller role's pure render: settings and membership in, nats-server's config and the
 * membership snapshot out. The config is JSON, which nats-server reads as a subset of its own syntax
 * (with `#` comments), so the same text also parses back here when the role must know what a running
 * server was started with.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { Member } from '../../core/contracts.js';
import { actsAs } from '../../core/members.js';
import { admittedNode, routePassword, type AdmittedNode, type NodeCredentials } from '../../core/trust.js';
import type { DesiredState, RenderedFile } from '../types.js';
import { MANAGED_HEADER, parseControllerConfig, type ControllerConfig } from './config.js';
import { natsUsers, type NatsUser } from './permissions.js';
import { renderFirewall } from './firewall.js';
import { renderCaFiles } from './ca-render.js';
import { renderMonitoringFiles } from './monitoring/render.js';
import { splitHostPort, urlHost } from '../../core/net.js';
import { tlsStampLine, withNatsTls, type NatsTlsBlock, type NatsTlsFiles } from './tls.js';

/** The user name of route connections between controllers (its password: `routePassword`). */
export const ROUTE_USER = 'mammatus-route';

/** The nats-server config the role renders, as nats-server reads it. */
export interface NatsServerConfig {
  readonly server_name: string;
  readonly listen: string;
  readonly http: string;
  readonly max_payload: number;
  /** pino stamps each line already. */
  readonly logtime: false;
  readonly jetstream: { readonly store_dir: string };
  /** Every admitted node's nkey and permissions: anonymous clients are refused. */
  readonly authorization: { readonly users: readonly NatsUser[] };
  /** The client port's TLS, once the node holds its certificate (tls.ts). */
  readonly tls?: NatsTlsBlock;
  /** Plain clients too (`roles.controller.tls.allow_plain`, a migration aid). */
  readonly allow_non_tls?: boolean;
  /** Only with at least one other controller: nats-server 2.9 refuses a JetStream cluster without routes. */
  readonly cluster?: {
    readonly name: string;
    readonly listen: string;
    /** Routes in and out authenticate with the route secret only controllers can derive. */
    readonly authorization: { readonly user: string; readonly password: string };
    readonly routes: readonly string[];
    /** The routes' TLS, verified both ways against the root (tls.ts). */
    readonly tls?: NatsTlsBlock;
  };
}

/**
 * The route URLs of the other controllers: every member other than `node` that is a controller (its
 * `role` tag names it and, once this node is admitted, its trust tag proves it), at its Serf
 * address and `clusterPort`, deduplicated and sorted. Failed and departed
 * controllers keep their route until Serf reaps them (24 h by default): nats-server keeps dialling
 * them, which costs nothing, whereas dropping the last peer would restart this server out of
 * cluster mode and take every replicated stream offline (nats-server 2.9 cannot load an R3 stream
 * standalone). Members whose address is not an IP are skipped.
 */
export function controllerRoutes(node: string, members: readonly Member[], clusterPort: number, credentials?: string): string[] {
  const routes = new Set<string>();
  // Another controller at our own address would get a route to our own cluster port (the port is
  // the same everywhere): a route to ourselves, which keeps JetStream from ever electing a leader.
  // Two controllers on one address cannot cluster; each runs alone.
  const self = members.find((m) => m.name === node)?.addr;
  for (const m of members) {
    if (m.name === node || m.addr === self || !actsAs(m, 'controller')) continue;
    const auth = credentials ? `${credentials}@` : '';
    if (isIPv4(m.addr)) routes.add(`nats-route://${auth}${m.addr}:${clusterPort}`);
    else if (isIPv6(m.addr)) routes.add(`nats-route://${auth}[${m.addr}]:${clusterPort}`);
  }
  // Code-unit order, not localeCompare: the output must not depend on the host's locale.
  return [...routes].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** What the server's `authorization` is built from. */
export interface ControllerTrust {
  /** This node's credentials: they must admit it as a controller. */
  readonly credentials?: NodeCredentials;
  /** The roster: every admitted node. */
  readonly admitted?: readonly AdmittedNode[];
}

/**
 * nats-server's config for this node. Throws when the node name cannot be a server name, and when
 * the node was not admitted as a controller: a `role` tag alone never starts a server.
 */
export function buildNatsConfig(
  node: string,
  cfg: ControllerConfig,
  members: readonly Member[],
  trust: ControllerTrust = {},
): NatsServerConfig {
  // server_name identifies a JetStream peer for good; nats-server refuses spaces in it.
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(node)) {
    throw new Error(`node name ${JSON.stringify(node)} cannot be a NATS server name (A-Z a-z 0-9 . _ -)`);
  }
  const creds = trust.credentials;
  if (!creds?.authority_seed || !creds.roles.includes('controller') || creds.node !== node) {
    throw new Error(
      `this node holds no controller credentials${creds ? ` (its credentials admit ${creds.node} as ${creds.roles.join(',') || 'no role'})` : ''}: ` +
        `run \`mammatus node admit ${node} --role controller\` on a controller (the first controller of a new cluster runs it on itself)`,
    );
  }
  const clusterPort = splitHostPort(cfg.nats.cluster_listen).port;
  const password = routePassword(creds.authority_seed);
  const routes = controllerRoutes(node, members, clusterPort, `${ROUTE_USER}:${password}`);
  return {
    server_name: node,
    listen: cfg.nats.listen,
    http: cfg.nats.monitor_listen,
    max_payload: cfg.nats.max_payload,
    logtime: false,
    jetstream: { store_dir: cfg.nats.store_dir },
    authorization: { users: natsUsers(admittedNode(creds), trust.admitted ?? []) },
    ...(routes.length > 0
      ? {
          cluster: {
            name: cfg.nats.cluster_name,
            listen: cfg.nats.cluster_listen,
            authorization: { user: ROUTE_USER, password },
            routes,
          },
        }
      : {}),
  };
}

/** The config file's text: the managed header, then the JSON. */
export function renderNatsConf(conf: NatsServerConfig): string {
  return `${MANAGED_HEADER}${JSON.stringify(conf, null, 2)}\n`;
}

/** Reads back a file `renderNatsConf` wrote; undefined for anything else (then the role restarts). */
export function parseNatsConf(text: string): NatsServerConfig | undefined {
  try {
    const json = text
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .join('\n');
    const conf = JSON.parse(json) as NatsServerConfig;
    return typeof conf === 'object' && conf !== null && typeof conf.listen === 'string' ? conf : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What a running nats-server cannot take on with a reload: everything but the routes and the users
 * (2.9 reloads `cluster.routes` and `authorization` on SIGHUP, and drops the clients of a removed
 * user; ports, the store and cluster mode itself need a restart).
 */
export function restartKey(conf: NatsServerConfig): string {
  const { cluster, authorization: _users, ...rest } = conf;
  return JSON.stringify({
    ...rest,
    cluster: cluster ? { name: cluster.name, listen: cluster.listen, auth: cluster.authorization, tls: Boolean(cluster.tls) } : null,
  });
}

/** The URL a client on this node uses: the listen address, with a wildcard host made loopback. */
export function localUrl(scheme: 'nats' | 'http', listen: string): string {
  const { host, port } = splitHostPort(listen);
  const local = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `${scheme}://${urlHost(local)}:${port}`;
}

/**
 * The membership snapshot: one JSON object per member (tags sorted) after the header. The hosted
 * services are told about membership whenever this file changes.
 */
export function renderMembers(members: readonly Member[]): string {
  const lines = [...members]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((m) => {
      const tags = Object.fromEntries(Object.entries(m.tags).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      return JSON.stringify({ name: m.name, addr: m.addr, port: m.port, status: m.status, tags });
    });
  return MANAGED_HEADER + lines.map((l) => `${l}\n`).join('');
}

/**
 * Every file of the role, sorted by path. Throws a `ControllerConfigError` for invalid settings.
 * `tls`: the node certificate's files when the agent holds them (tls.ts `findNatsTls`);
 * `grafanaInstalled`: Grafana's provisioning is rendered with `monitoring.grafana.provision: auto`.
 */
export function renderController(desired: DesiredState, tls?: NatsTlsFiles, grafanaInstalled = false): RenderedFile[] {
  const cfg = parseControllerConfig(desired.config);
  const trust = { credentials: desired.credentials, admitted: desired.admitted };
  const nats = renderNatsConf(withNatsTls(buildNatsConfig(desired.node, cfg, desired.members, trust), tls));
  const files: RenderedFile[] = [
    // 0600: it holds the route secret. The TLS stamp goes right after the managed header.
    { path: cfg.paths.nats_conf, content: nats.replace(MANAGED_HEADER, MANAGED_HEADER + tlsStampLine(tls)), mode: 0o600 },
    { path: cfg.paths.members, content: renderMembers(desired.members), mode: 0o644 },
    // The CA backend's config (docs/ca.md); it runs once the CA files exist.
    ...renderCaFiles(desired.node, cfg.ca, desired.credentials?.authority_seed),
    // The monitoring stack's files (docs/monitoring.md), with a store only.
    ...renderMonitoringFiles(cfg.monitoring, desired.members, desired.node, grafanaInstalled),
  ];
  if (cfg.firewall.enabled) {
    const content = renderFirewall({
      natsPorts: [splitHostPort(cfg.nats.listen).port, splitHostPort(cfg.nats.cluster_listen).port],
      metadataPort: cfg.firewall.metadata_port,
      metadataFrom: cfg.firewall.metadata_from,
      // buildNatsConfig above refused a node without controller credentials.
      authority: desired.credentials!.authority,
      ...(desired.admitted ? { admitted: desired.admitted } : {}),
      members: desired.members,
    });
    files.push({ path: cfg.paths.firewall, content, mode: 0o644 });
  }
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
