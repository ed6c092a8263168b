/**
 * Renders HAProxy's files for the gateway's load balancers (pure): `haproxy.cfg`, one Host map per
 * HTTP listen port (`hosts-<port>.map`) and one SNI map per TLS-passthrough port (`sni-<port>.map`).
 *
 * Shape, and why:
 * - One frontend per listen port (`ft_<port>`); every balancer on a port must agree on mode and TLS,
 *   since one socket speaks one protocol. Binds are the union of the balancers' addresses, and the
 *   settings' wildcard addresses when one of them names none.
 * - HTTP routing is one lookup: the key `<host><path>` (Host lower-cased, port dropped) against
 *   `hosts-<port>.map` with `map_beg`, whose keys are `<host>/` (every path) or `<host><prefix>`.
 *   `map_beg` takes the first match in file order, so keys are written longest first: the longest
 *   prefix wins. A prefix is a string prefix, like `path_beg` (`/api` also takes `/apix`; write
 *   `/api/` for the segment). A balancer without hosts is the port's catch-all (by path when it has
 *   one, else `default_backend`); with none, an unknown host gets a 503 from `mammatus_unknown_host`.
 * - TLS passthrough reads the SNI name from the ClientHello (`tcp-request inspect-delay`) and looks
 *   it up in `sni-<port>.map`; an unknown name goes to the catch-all or is refused.
 * - `tls acme` binds `crt <placeholder> crt <cert dir>`: HAProxy refuses an `ssl` bind whose
 *   directory holds no certificate, and certificates arrive later, from someone else. The
 *   placeholder (a self-signed certificate the supervisor generates once) keeps `haproxy -c` and
 *   the listener working meanwhile; it is also what a client without SNI gets.
 * - An explicit IPv4 bind is `transparent`, so a listen address routed to the gateway but not held
 *   by it binds (see `transparent` below). The global section is render-haproxy-global.ts's.
 * - Servers are explicit lines with every option on the line and no `default-server`: a server added
 *   through the runtime API (`add server`) does not inherit `default-server`, so the file and the
 *   runtime use the same `serverOptions` and a server looks the same whichever way it came in.
 */
import { isIP } from 'node:net';
import path from 'node:path';
import type { LoadBalancerRecord, ResolvedBalancer } from '../../../core/lb-record.js';
import { isHostName, isSafePath } from '../../../core/lb-syntax.js';
import type { RenderedFile } from '../../types.js';
import { acmeChallengeRule, renderAcmeSections } from './render-acme.js';
import { backendName, serverAddress, serverName, UNKNOWN_HOST_BACKEND } from './names.js';
import { renderGlobal } from './render-haproxy-global.js';

/** Header of every rendered file (the role's). */
export const LB_HEADER = '# managed by mammatus role=gateway\n';

/** Where HAProxy's files and sockets live, and its limits. Durations in milliseconds. */
export interface HaproxySettings {
  /** Directory of `haproxy.cfg` and the map files. */
  readonly configDir: string;
  /** The runtime API socket (level admin). The master socket is a command-line option (`-S`). */
  readonly adminSocket: string;
  /** Directory of the certificates `tls acme` serves (PEM with key), written by the certificate owner. */
  readonly certDir: string;
  /** The self-signed certificate bound before (and besides) the real ones. */
  readonly placeholderCert: string;
  /** Addresses a balancer without `listen.addr` binds (the gateway's WAN addresses). */
  readonly wildcardAddrs: readonly string[];
  readonly maxconn: number;
  readonly timeouts: {
    readonly connect: number;
    readonly client: number;
    readonly server: number;
    readonly httpRequest: number;
    readonly check: number;
    /** Health check interval. */
    readonly checkInterval: number;
  };
}

/** Defaults for everything but the paths. */
export const HAPROXY_DEFAULTS = {
  wildcardAddrs: ['0.0.0.0'],
  maxconn: 4096,
  timeouts: { connect: 5000, client: 30_000, server: 30_000, httpRequest: 10_000, check: 2000, checkInterval: 2000 },
} as const;

/** A set of balancers HAProxy cannot serve as one config (two protocols on one port, a host twice...). */
export class HaproxyRenderError extends Error {
  override readonly name = 'HaproxyRenderError';
}

/** The path of `haproxy.cfg`. */
export const configPath = (s: Pick<HaproxySettings, 'configDir'>): string => path.join(s.configDir, 'haproxy.cfg');

/**
 * Options of every server line: a health check every `checkInterval`, down after 2 failures, up
 * after 2 successes. The runtime `add server` sends the same string.
 */
export function serverOptions(s: Pick<HaproxySettings, 'timeouts'>): string {
  return `check inter ${s.timeouts.checkInterval}ms fall 2 rise 2`;
}

/** Renders every file, sorted by path; throws `HaproxyRenderError` on a set it cannot serve. */
export function renderHaproxy(balancers: readonly ResolvedBalancer[], s: HaproxySettings): RenderedFile[] {
  const sorted = [...balancers].sort((a, b) => cmp(a.record.name, b.record.name));
  const ports = groupByPort(sorted);
  const maps: RenderedFile[] = [];
  const frontends: string[] = [];
  for (const [port, group] of ports) {
    const first = group[0].record;
    if (first.mode === 'http') {
      const file = path.join(s.configDir, `hosts-${port}.map`);
      maps.push({ path: file, content: renderHostMap(group), mode: 0o644 });
      frontends.push(renderHttpFrontend(port, group, file, s, acmeChallengeRule(sorted, first, s)));
    } else if (first.tls === 'passthrough') {
      const file = path.join(s.configDir, `sni-${port}.map`);
      maps.push({ path: file, content: renderSniMap(group), mode: 0o644 });
      frontends.push(renderSniFrontend(port, group, file, s));
    } else {
      frontends.push([`frontend ft_${port}`, '  mode tcp', ...binds(group, s, ''), `  default_backend ${backendName(first)}`].join('\n'));
    }
  }
  const backends = sorted.map((b) => renderBackend(b, s));
  // A port whose catch-alls all have a path still sends other paths of unknown hosts to the 503.
  const needs503 = [...ports.values()].some((g) => g[0].record.mode === 'http' && !g.some((b) => isCatchAll(b.record) && !b.record.path));
  if (needs503) backends.push(render503());
  const cfg = [renderGlobal(s), ...frontends, ...backends, ...renderAcmeSections(sorted, s)].join('\n\n');
  const files = [{ path: configPath(s), content: `${LB_HEADER}${cfg}\n`, mode: 0o644 }, ...maps];
  return files.sort((a, b) => cmp(a.path, b.path));
}

function renderHttpFrontend(port: number, group: readonly ResolvedBalancer[], map: string, s: HaproxySettings, acme: string[]): string {
  const tls = group[0].record.tls === 'acme' ? ` ssl crt ${s.placeholderCert} crt ${s.certDir}` : '';
  const catchAll = group.filter((b) => isCatchAll(b.record)).map((b) => b.record);
  // Longest prefix first, as in the host map: `/api/v2` is tried before `/api`.
  const byPath = catchAll
    .filter((r) => r.path !== undefined)
    .sort((a, b) => (b.path ?? '').length - (a.path ?? '').length || cmp(a.name, b.name));
  const whole = catchAll.find((r) => r.path === undefined);
  return [
    `frontend ft_${port}`,
    '  mode http',
    ...binds(group, s, tls),
    '  option forwardfor',
    // An old worker after a reload closes an idle keep-alive connection only after answering a
    // request on it (with `connection: close`), never under a client that is just sending one.
    '  option idle-close-on-response',
    '  http-request set-var(txn.lb_host) req.hdr(host),field(1,:),lower',
    '  http-request set-var(txn.lb_path) path',
    '  http-request set-var(txn.lb_key) var(txn.lb_host),concat(,txn.lb_path,)',
    `  http-request set-var(txn.lb_be) var(txn.lb_key),map_beg(${map})`,
    ...acme,
    '  use_backend %[var(txn.lb_be)] if { var(txn.lb_be) -m found }',
    ...byPath.map((r) => `  use_backend ${backendName(r)} if { path_beg ${r.path} }`),
    `  default_backend ${whole ? backendName(whole) : UNKNOWN_HOST_BACKEND}`,
  ].join('\n');
}

function renderSniFrontend(port: number, group: readonly ResolvedBalancer[], map: string, s: HaproxySettings): string {
  const whole = group.find((b) => isCatchAll(b.record));
  return [
    `frontend ft_${port}`,
    '  mode tcp',
    ...binds(group, s, ''),
    // Wait for the ClientHello (set-var comes first: `accept` ends the content rules).
    '  tcp-request inspect-delay 5s',
    `  tcp-request content set-var(txn.lb_be) req.ssl_sni,lower,map(${map})`,
    '  tcp-request content accept if { req.ssl_hello_type 1 }',
    ...(whole ? [] : ['  tcp-request content reject unless { var(txn.lb_be) -m found }']),
    '  use_backend %[var(txn.lb_be)] if { var(txn.lb_be) -m found }',
    ...(whole ? [`  default_backend ${backendName(whole.record)}`] : []),
  ].join('\n');
}

function renderBackend(b: ResolvedBalancer, s: HaproxySettings): string {
  const r = b.record;
  const health = r.health;
  const lines = [`backend ${backendName(r)}`, `  mode ${r.mode}`, `  balance ${r.balance}`];
  if (r.mode === 'http') {
    // A request sent to a server that dies before answering goes to another one, but only an
    // idempotent one (RFC 9110 9.2.2): a POST may have taken effect.
    lines.push('  retry-on conn-failure empty-response');
    lines.push('  http-request disable-l7-retry unless { method GET HEAD OPTIONS PUT DELETE }');
  }
  if (health.kind === 'http') {
    checkPath(health.path, r.name);
    lines.push('  option httpchk');
    // HTTP/1.1 with the balancer's first name, for servers that route by Host themselves.
    const host = r.hosts[0];
    if (host) checkHost(host, r.name);
    lines.push(`  http-check send meth GET uri ${health.path}${host ? ` ver HTTP/1.1 hdr host ${host}` : ''}`);
    lines.push('  http-check expect status 200-399');
  }
  const opts = serverOptions(s);
  for (const srv of [...b.servers].sort((x, y) => cmp(serverName(x), serverName(y)))) {
    checkAddr(srv.addr, r.name);
    lines.push(`  server ${serverName(srv)} ${serverAddress(srv)} ${opts}`);
  }
  return lines.join('\n');
}

function render503(): string {
  return [
    `backend ${UNKNOWN_HOST_BACKEND}`,
    '  mode http',
    '  http-request return status 503 content-type text/plain string "no such service"',
  ].join('\n');
}

/** Host map lines `<host><prefix> <backend>`, longest key first (see the header). */
function renderHostMap(group: readonly ResolvedBalancer[]): string {
  const entries = new Map<string, string>();
  for (const { record: r } of group) {
    if (r.path !== undefined) checkPath(r.path, r.name);
    for (const host of r.hosts) {
      checkHost(host, r.name);
      const key = `${host}${r.path ?? '/'}`;
      if (entries.has(key))
        throw new HaproxyRenderError(`balancer ${r.name}: ${key} on port ${r.listen.port} is also ${entries.get(key)}'s`);
      entries.set(key, backendName(r));
    }
  }
  const keys = [...entries.keys()].sort((a, b) => b.length - a.length || cmp(a, b));
  return LB_HEADER + keys.map((k) => `${k} ${entries.get(k)}\n`).join('');
}

/** SNI map lines `<name> <backend>` (exact names). */
function renderSniMap(group: readonly ResolvedBalancer[]): string {
  const entries = new Map<string, string>();
  for (const { record: r } of group) {
    for (const host of r.hosts) {
      checkHost(host, r.name);
      if (entries.has(host))
        throw new HaproxyRenderError(`balancer ${r.name}: ${host} on port ${r.listen.port} is also ${entries.get(host)}'s`);
      entries.set(host, backendName(r));
    }
  }
  const keys = [...entries.keys()].sort(cmp);
  return LB_HEADER + keys.map((k) => `${k} ${entries.get(k)}\n`).join('');
}

/** Balancers by listen port, each group checked to fit one frontend. */
function groupByPort(balancers: readonly ResolvedBalancer[]): Map<number, ResolvedBalancer[]> {
  const ports = new Map<number, ResolvedBalancer[]>();
  for (const b of balancers) {
    const port = b.record.listen.port;
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new HaproxyRenderError(`balancer ${b.record.name}: bad port ${port}`);
    const group = ports.get(port) ?? [];
    const other = group[0]?.record;
    const r = b.record;
    // One frontend per port: one protocol, and one address set it binds (core/lb-conflicts.ts).
    const how = (x: LoadBalancerRecord) => `${x.mode}/${x.tls} on ${x.listen.addr ?? '*'}`;
    if (other && how(other) !== how(r)) {
      throw new HaproxyRenderError(`balancer ${r.name}: port ${port} is ${how(other)} (balancer ${other.name}), not ${how(r)}`);
    }
    if (other && r.mode === 'tcp' && r.tls !== 'passthrough') {
      throw new HaproxyRenderError(
        `balancer ${r.name}: plain TCP port ${port} is balancer ${other.name}'s; TCP without TLS cannot be shared`,
      );
    }
    const wholeBefore = group.find((g) => isCatchAll(g.record) && g.record.path === r.path);
    if (isCatchAll(r) && wholeBefore) {
      throw new HaproxyRenderError(
        `balancer ${r.name}: port ${port} already takes every name for that path (balancer ${wholeBefore.record.name})`,
      );
    }
    group.push(b);
    ports.set(port, group);
  }
  return new Map([...ports].sort((a, b) => a[0] - b[0]));
}

/** Bind lines: every named address, and the wildcard ones when a balancer names none. */
function binds(group: readonly ResolvedBalancer[], s: HaproxySettings, suffix: string): string[] {
  const addrs = new Set<string>();
  for (const { record: r } of group)
    for (const a of r.listen.addr === undefined ? s.wildcardAddrs : [r.listen.addr]) {
      checkAddr(a, r.name);
      addrs.add(a);
    }
  const port = group[0].record.listen.port;
  return [...addrs].sort(cmp).map((a) => `  bind ${a.includes(':') ? `[${a}]` : a}:${port}${transparent(a)}${suffix}`);
}

/**
 * `transparent` (IP_TRANSPARENT) on an explicit IPv4 bind: HAProxy may then bind an address the
 * gateway does not hold (one routed to it, a WAN address DHCP has not given back yet) instead of
 * refusing to start every balancer. Whether an address is local is the host's state, which a pure
 * render cannot know; on a local address the option changes nothing. The wildcard needs none.
 */
function transparent(addr: string): string {
  return isIP(addr) === 4 && addr !== '0.0.0.0' ? ' transparent' : '';
}

const isCatchAll = (r: LoadBalancerRecord): boolean => r.hosts.length === 0;

// What may reach the config from a record: the registry's own patterns (core/lb-syntax.ts), tested
// again here as the last guard, since a quote, `\`, `$` or space changes the config's meaning (an
// environment variable expanded, a header added to the health check) rather than fail. No
// wildcard names: a `*.example.org` key would silently never match in the map.
function checkHost(host: string, name: string): void {
  if (!isHostName(host)) throw new HaproxyRenderError(`balancer ${name}: host ${JSON.stringify(host)} is not a lower-case DNS name`);
}

function checkPath(p: string, name: string): void {
  if (!isSafePath(p))
    throw new HaproxyRenderError(`balancer ${name}: path ${JSON.stringify(p)} must start with / and hold no spaces, quotes, \\, $, ; or #`);
}

function checkAddr(addr: string, name: string): void {
  if (isIP(addr) === 0) throw new HaproxyRenderError(`balancer ${name}: ${JSON.stringify(addr)} is not an IP address`);
}

// Code-unit order: the output must not depend on the host's locale.
const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
