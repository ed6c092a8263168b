/**
 * The decisions of the node certificate keeper (agent/certs.ts), pure: where the files are, which
 * root to trust, when to renew, how long to wait after a failure, which NATS servers to ask.
 */
import path from 'node:path';
import { checkPinnedRoot } from '../core/ca.js';
import type { Member } from '../core/contracts.js';
import { aliveWithRole } from '../core/members.js';
import type { NodeCredentials } from '../core/trust.js';
import type { AgentConfig } from './config/schema.js';

/**
 * The files under `<state_dir>/tls/`: the key (0600, never leaves the node), the chain, the root.
 * Absolute even for a relative `state_dir` (the local cluster's `.cluster/<node>/state`): they go
 * into the controller's settings and nats-server's config, which take absolute paths only.
 */
export function tlsPaths(stateDir: string): { dir: string; key: string; cert: string; ca: string } {
  const dir = path.resolve(stateDir, 'tls');
  return { dir, key: path.join(dir, 'node.key'), cert: path.join(dir, 'node.crt'), ca: path.join(dir, 'ca.crt') };
}

/** The share of a certificate's lifetime after which it is renewed. */
export const RENEW_AT = 2 / 3;
/** ± this share of the renewal point, at random: a cluster's nodes do not all renew at once. */
export const RENEW_JITTER = 0.1;

/** When to renew a certificate valid from `notBefore` to `notAfter`; `random` in [0, 1). */
export function renewAt(notBefore: Date, notAfter: Date, random: number): Date {
  const life = notAfter.getTime() - notBefore.getTime();
  const share = RENEW_AT * (1 + RENEW_JITTER * (2 * random - 1));
  return new Date(notBefore.getTime() + Math.floor(life * share));
}

/** Waits after `failures` failures in a row: 2 s doubling, at most 5 min, and never past `latest` when given. */
export function backoffMs(failures: number, untilExpiry?: number): number {
  const wait = Math.min(300_000, 2000 * 2 ** Math.max(0, Math.min(failures - 1, 10)));
  // A certificate about to expire is retried more often: ten tries in what is left of it.
  return untilExpiry !== undefined && untilExpiry > 0 ? Math.max(1000, Math.min(wait, Math.floor(untilExpiry / 10))) : wait;
}

const url = (host: string, port: string | number) => `nats://${host.includes(':') ? `[${host}]` : host}:${port}`;

/** The `nats:` list of a role's `registry` section in the raw config, if it has one. */
function registryNats(roles: Readonly<Record<string, unknown>>, role: string): string[] {
  const section = roles[role] as { registry?: { nats?: unknown } } | undefined;
  const list = section?.registry?.nats;
  return Array.isArray(list) ? list.filter((s): s is string => typeof s === 'string') : [];
}

/**
 * The NATS servers to ask for a certificate: on a controller its own server (the client address of
 * `roles.controller.nats.listen`, loopback for a wildcard); else the servers a role of the node
 * is configured with (`roles.<role>.registry.nats`); else every alive admitted controller at 4222.
 */
export function certServers(
  roles: Readonly<Record<string, unknown>>,
  creds: NodeCredentials | undefined,
  members: readonly Member[],
): string[] {
  if (creds?.roles.includes('controller')) {
    const listen = (roles.controller as { nats?: { listen?: unknown } } | undefined)?.nats?.listen;
    const text = typeof listen === 'string' ? listen : '0.0.0.0:4222';
    const i = text.lastIndexOf(':');
    const host = text.slice(0, i).replace(/^\[(.*)\]$/, '$1');
    return [url(host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host, text.slice(i + 1))];
  }
  for (const role of ['compute', 'gateway', 'storage']) {
    const list = registryNats(roles, role);
    if (list.length > 0) return list;
  }
  return aliveWithRole(members, 'controller').map((m) => url(m.addr, 4222));
}

/**
 * The root this node trusts before it connects to ask for a certificate: the one its credentials
 * carry (checked against the pin once more); for credentials older than `ca_root`, the `ca.crt` on
 * disk (`onDisk`, written by an earlier run) when it is the pinned one. Undefined without a pin
 * (no CA at admission: nothing to verify yet) and for a controller that holds no root (it asks its
 * own server, and takes the bucket's root only when it matches its pin). @throws for a node with a
 * pin and no root: it cannot verify its servers, and never connects without verifying.
 */
export function trustedRoot(creds: NodeCredentials, onDisk: string | undefined): string | undefined {
  if (creds.ca_root !== undefined) return checkPinnedRoot(creds.ca_root, creds.ca_fingerprint);
  if (creds.ca_fingerprint === undefined || creds.roles.includes('controller')) return undefined;
  try {
    return checkPinnedRoot(onDisk, creds.ca_fingerprint);
  } catch {
    throw new Error(
      `the credentials pin the CA root ${creds.ca_fingerprint.slice(0, 16)}… but do not carry it, and ca.crt does not hold it: re-admit the node (mammatus node add, or node admit) so that it can verify its servers`,
    );
  }
}

/**
 * A role's settings as the role sees them. The controller's nats-server serves this agent's own
 * certificate: its `tls` paths follow `state_dir` unless set (a role does not see `state_dir`, and a
 * controller left plain would lock out every node holding the root). Its monitoring stack, when
 * configured, is told where this agent's metrics listener is (`monitoring.agent_metrics`).
 */
export function roleSettings(config: Pick<AgentConfig, 'roles' | 'state_dir' | 'metrics'>, role: string): Record<string, unknown> {
  const raw = { ...((config.roles as Record<string, Record<string, unknown> | undefined>)[role] ?? {}) };
  if (role !== 'controller') return raw;
  const { key, cert, ca } = tlsPaths(config.state_dir);
  const tls = typeof raw.tls === 'object' && raw.tls !== null ? (raw.tls as Record<string, unknown>) : {};
  const out: Record<string, unknown> = { ...raw, tls: { key, cert, ca, ...tls } };
  // The monitoring stack scrapes every member through this agent's metrics listener (docs/monitoring.md).
  const monitoring = raw.monitoring;
  if (typeof monitoring === 'object' && monitoring !== null && config.metrics.enabled && config.metrics.listen)
    out.monitoring = { agent_metrics: config.metrics.listen, ...monitoring };
  return out;
}
