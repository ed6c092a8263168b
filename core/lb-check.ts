/**
 * The check a load balancer record (core/lb-record.ts) passes wherever it is read: before the
 * registry stores it (src/lb/registry.ts), on every value the feed reads from the bucket, and on
 * the gateway's copy of the balancers read back after a restart (roles/gateway/lb/render-lb.ts).
 * On the ground floor so the registry and the gateway check one way.
 *
 * Decisions the rules encode (docs/loadbalancer.md says the same for operators):
 * - Host names are exact, lower-case DNS names; wildcards (`*.example.com`) are refused. ACME's
 *   HTTP and TLS-ALPN challenges cannot issue wildcard certificates, and exact names keep the
 *   engine's Host/SNI map a plain lookup and the conflict rule (core/lb-conflicts.ts) exact. A
 *   balancer without hosts (HTTP only) is the catch-all of its port and serves every other name.
 * - The listen address is IPv4, and a few ports belong to every gateway (core/lb-listen.ts).
 */
import { isIP } from 'node:net';
import type { LbBalance, LbMode, LbSelector, LbTarget, LbTls, LoadBalancerRecord, ResolvedBalancer } from './lb-record.js';
import { checkListen } from './lb-listen.js';
import { check, isAcmeHostName, isHostName, isSafePath, LABEL, MAX_PATH } from './lb-syntax.js';

/** Most host names and most targets per balancer: enough for real sites, small for one KV value. */
export const MAX_HOSTS = 32;
/** See {@link MAX_HOSTS}. */
export const MAX_TARGETS = 32;

/** The values of `mode`, `tls` and `balance` (the CLI offers them as choices). */
export const LB_MODES: readonly LbMode[] = ['http', 'tcp'];
/** See {@link LB_MODES}. */
export const LB_TLS: readonly LbTls[] = ['none', 'acme', 'passthrough'];
/** See {@link LB_MODES}. */
export const LB_BALANCE: readonly LbBalance[] = ['roundrobin', 'leastconn'];

// Instance tag keys as core/instance-record.ts allows them, less `=`: the first `=` of K=V ends the key.
const TAG_KEY = /^[A-Za-z0-9_.:+@-]{1,128}$/;
// Serf node names as admission allows them (core/trust.ts).
const MEMBER = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

/** A selector as written on the command line. */
export function formatSelector(s: LbSelector): string {
  return s.kind === 'tag' ? `tag:${s.key}=${s.value}` : `${s.kind}:${s.name}`;
}

/** A target as written on the command line. */
export function formatTarget(t: LbTarget): string {
  return `${formatSelector(t.selector)}:${t.port}`;
}

const FIELDS = ['name', 'listen', 'mode', 'hosts', 'path', 'targets', 'health', 'tls', 'balance', 'created_at', 'updated_at'];

/** Checks a record from any source (a write, or a value read from the bucket); returns it typed. */
export function checkLoadBalancerRecord(value: unknown): LoadBalancerRecord {
  check(isObject(value), 'record', 'must be an object');
  const r = value;
  for (const key of Object.keys(r)) check(FIELDS.includes(key), key, 'unknown field');
  check(
    typeof r.name === 'string' && LABEL.test(r.name),
    'name',
    'must be a DNS label: a-z, 0-9 and -, at most 63, not starting or ending with -',
  );
  check(isObject(r.listen), 'listen', 'must be { addr?, port }');
  checkListen(r.listen);
  check(LB_MODES.includes(r.mode as LbMode), 'mode', `must be ${LB_MODES.join(' or ')}`);
  check(LB_TLS.includes(r.tls as LbTls), 'tls', `must be ${LB_TLS.join(', ')}`);
  check(LB_BALANCE.includes(r.balance as LbBalance), 'balance', `must be ${LB_BALANCE.join(' or ')}`);
  const mode = r.mode as LbMode;
  const tls = r.tls as LbTls;
  checkHosts(r.hosts);
  const hosts = r.hosts as readonly string[];
  if (r.path !== undefined) {
    check(mode === 'http', 'path', 'a path prefix needs mode http (TCP carries no path)');
    checkPath(r.path, 'path');
  }
  check(Array.isArray(r.targets) && r.targets.length > 0, 'targets', 'at least one target is required');
  check(r.targets.length <= MAX_TARGETS, 'targets', `at most ${MAX_TARGETS}`);
  r.targets.forEach((t: unknown, i: number) => checkTarget(t, `targets[${i}]`));
  const spelled = r.targets.map((t) => formatTarget(t as LbTarget));
  check(new Set(spelled).size === spelled.length, 'targets', 'entries must be unique');
  checkHealth(r.health, mode);
  if (tls === 'passthrough') {
    check(mode === 'tcp', 'tls', 'passthrough needs mode tcp (the gateway does not look inside the TLS stream)');
    check(hosts.length > 0, 'hosts', 'passthrough routes by SNI: name at least one host');
  }
  if (tls === 'acme') {
    check(mode === 'http', 'tls', 'acme needs mode http (the gateway terminates TLS and routes by Host)');
    check(hosts.length > 0, 'hosts', 'acme needs the names to get certificates for: name at least one host');
    for (const h of hosts)
      check(isAcmeHostName(h), 'hosts', `${h}: acme cannot get a certificate for it (it needs two labels or more, not all digits)`);
    // http-01 asks port 80 in plain HTTP (RFC 8555 8.3): a TLS listener there answers no challenge.
    check(
      (r.listen as { port?: unknown }).port !== 80,
      'listen',
      "acme cannot listen on port 80: the CA's http-01 challenges need plain HTTP there (use 443)",
    );
  }
  if (mode === 'tcp' && tls === 'none')
    check(hosts.length === 0, 'hosts', 'plain TCP carries no host name: use --tls passthrough to route by SNI');
  // One spelling of a time (Date#toISOString), so every reader orders records alike (lb-conflicts.ts).
  for (const f of ['created_at', 'updated_at'] as const)
    check(typeof r[f] === 'string' && isIsoTime(r[f]), f, 'must be an ISO 8601 UTC time as 2026-12-07T00:00:00.000Z');
  return r as unknown as LoadBalancerRecord;
}

function isIsoTime(text: string): boolean {
  const t = Date.parse(text);
  return !Number.isNaN(t) && new Date(t).toISOString() === text;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkHosts(value: unknown): void {
  check(Array.isArray(value), 'hosts', 'must be a list');
  check(value.length <= MAX_HOSTS, 'hosts', `at most ${MAX_HOSTS}`);
  for (const h of value) {
    check(typeof h === 'string', 'hosts', 'must be strings');
    check(!h.includes('*'), 'hosts', `${h}: wildcards are not supported (name each host, or leave hosts out for a catch-all)`);
    check(isHostName(h), 'hosts', `${JSON.stringify(h)} is not a lower-case DNS name`);
  }
  check(new Set(value).size === value.length, 'hosts', 'entries must be unique');
}

export function checkPath(value: unknown, field: string): void {
  check(typeof value === 'string' && value.length <= MAX_PATH, field, `must be a path of at most ${MAX_PATH} characters`);
  check(
    isSafePath(value),
    field,
    `${JSON.stringify(value)} must start with / and hold only letters, digits, %XX and -._~!&()*+,=:@/ ` +
      '(no spaces, quotes, \\, $, ;, ? or #: HAProxy would read them)',
  );
}

export function checkSelector(s: LbSelector, field: string): void {
  if (s.kind === 'instance') check(LABEL.test(s.name), field, `instance:${s.name}: an instance name is a DNS label`);
  if (s.kind === 'member') check(MEMBER.test(s.name), field, `member:${s.name}: not a Serf node name`);
  if (s.kind === 'tag') {
    check(TAG_KEY.test(s.key), field, `tag:${s.key}: a tag key is 1–128 of letters, digits and _.:+@-`);
    check(
      s.value.length > 0 && s.value.length <= 256 && ![...s.value].some((c) => c < ' ' || c === '\x7f'),
      field,
      `tag:${s.key}=: the value must be 1–256 printable characters`,
    );
  }
}

function checkTarget(t: unknown, field: string): void {
  check(isObject(t) && isObject(t.selector), field, 'must be { selector, port }');
  const s = t.selector;
  const ok =
    (s.kind === 'tag' && typeof s.key === 'string' && typeof s.value === 'string' && Object.keys(s).length === 3) ||
    ((s.kind === 'instance' || s.kind === 'member') && typeof s.name === 'string' && Object.keys(s).length === 2);
  check(ok, field, 'selector must be { kind: instance|member, name } or { kind: tag, key, value }');
  checkSelector(s as LbSelector, field);
  check(Number.isInteger(t.port) && (t.port as number) >= 1 && (t.port as number) <= 65535, field, 'port must be 1–65535');
}

function checkHealth(h: unknown, mode: LbMode): void {
  check(isObject(h) && (h.kind === 'tcp' || h.kind === 'http'), 'health', 'must be { kind: tcp } or { kind: http, path }');
  if (h.kind === 'tcp') check(Object.keys(h).length === 1, 'health', 'a tcp check has no other field');
  else {
    check(mode === 'http', 'health', 'an HTTP health check needs mode http; use tcp');
    check(Object.keys(h).length === 2, 'health', 'an http check has kind and path, no other field');
    checkPath(h.path, 'health');
  }
}

/**
 * Checks a resolved balancer read back from a file (the gateway's copy): its record as the registry
 * checks one, and each server a name, an IP address and a port. Returns it typed.
 */
export function checkResolvedBalancer(value: unknown): ResolvedBalancer {
  check(isObject(value) && Object.keys(value).length === 2, 'balancer', 'must be { record, servers }');
  const record = checkLoadBalancerRecord(value.record);
  check(Array.isArray(value.servers), 'servers', 'must be a list');
  for (const s of value.servers as unknown[]) {
    const ok =
      isObject(s) &&
      Object.keys(s).length === 3 &&
      typeof s.name === 'string' &&
      /^[A-Za-z0-9._-]{1,200}$/.test(s.name) &&
      typeof s.addr === 'string' &&
      isIP(s.addr) !== 0 &&
      Number.isInteger(s.port) &&
      (s.port as number) >= 1 &&
      (s.port as number) <= 65535;
    check(ok, 'servers', 'each must be { name, addr, port }');
  }
  return { record, servers: value.servers as ResolvedBalancer['servers'] };
}
