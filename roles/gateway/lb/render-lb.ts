/**
 * The gateway's part of the load balancers in its pure render: HAProxy's files for the balancers
 * it can serve (none → no files: the apply removes them and stops HAProxy), the ports the firewall
 * opens on the WAN side for them, and `lb-left-out`, the balancers it leaves out and why.
 *
 * One balancer the gateway cannot serve never takes the others, nor the rest of the gateway
 * (dnsmasq, the firewall), down with it: {@link planGatewayLb} leaves it out and the render goes
 * on with the others. Left out: a listen the shared check refuses (core/lb-listen.ts: IPv6, a port
 * every gateway uses), a port this gateway uses itself ({@link reservedPorts}), a balancer HAProxy's
 * renderer cannot take alone, and the younger of two that conflict (core/lb-conflicts.ts, the rule
 * `lb create` applies too, so the registry and the gateway agree on what conflicts).
 *
 * Beside HAProxy's files it keeps `balancers.json`, the resolved balancers they were rendered from:
 * an agent that starts again has no feed snapshot until the controllers answer, and renders from
 * this copy meanwhile, so a restart (with the controllers unreachable, too) leaves HAProxy's files
 * and the firewall's ports as they were instead of taking every balancer away. Each balancer of
 * the copy is checked as the registry checks a record; a bad one is dropped, not trusted.
 */
import path from 'node:path';
import type { Member } from '../../../core/contracts.js';
import { checkResolvedBalancer } from '../../../core/lb-check.js';
import { olderFirst, withoutConflicts } from '../../../core/lb-conflicts.js';
import { ALWAYS_RESERVED_PORTS, checkListen } from '../../../core/lb-listen.js';
import type { LbLeftOut, ResolvedBalancer } from '../../../core/lb-record.js';
import { byText } from '../../../core/lb-syntax.js';
import { errorMessage } from '../../../core/errors.js';
import { hasRole } from '../../../core/members.js';
import type { DesiredState, RenderedFile } from '../../types.js';
import type { GatewayConfig } from '../config.js';
import { SERF_DEFAULT_PORT } from '../render-iptables.js';
import { haproxySettings, type GatewayLbConfig, type ReservedPort } from './config.js';
import { LB_HEADER, renderHaproxy } from './render-haproxy.js';
import { ACME_HTTP_PORT, acmeFirewallPorts, hasAcme } from './render-acme.js';

/** The copy of the balancers HAProxy's files were rendered from (see the header). */
export const balancersCachePath = (lb: Pick<GatewayLbConfig, 'dir'>): string => path.join(lb.dir, 'balancers.json');

/** The report of the balancers left out, beside the instances' `left-out`. */
export const lbLeftOutPath = (cfg: GatewayConfig): string => path.join(path.dirname(cfg.paths.left_out), 'lb-left-out');

/** Reads the copy back, dropping every balancer that fails the registry's check; undefined when it is not one. */
export function parseBalancersCache(text: string | undefined): ResolvedBalancer[] | undefined {
  if (!text?.startsWith(LB_HEADER)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text.slice(LB_HEADER.length));
  } catch {
    return undefined;
  }
  if (!Array.isArray(value)) return undefined;
  return value.flatMap((b: unknown) => {
    try {
      return [checkResolvedBalancer(b)];
    } catch {
      return [];
    }
  });
}

/** The gossip port this node's Serf advertises (its member entry), if it is a valid one. */
export function ownSerfPort(d: Pick<DesiredState, 'node' | 'members'>): number | undefined {
  const self = d.members.find((m) => m.name === d.node);
  return self !== undefined && Number.isInteger(self.port) && self.port > 0 && self.port < 65536 ? self.port : undefined;
}

// Documented defaults (docs/configuration.md#ports): the gateway does not read the other roles'
// settings, so a port moved there is not known here (the bind then fails, and says so).
const CONTROLLER_PORTS: readonly ReservedPort[] = [
  { port: 4222, what: 'NATS (controller)' },
  { port: 6222, what: 'NATS routes (controller)' },
  { port: 8222, what: 'NATS monitor (controller)' },
  { port: 8775, what: 'metadata service (controller)' },
  { port: 9000, what: 'CA (controller)' },
  { port: 9324, what: 'SQS/SNS API (controller)' },
];
const STORAGE_PORTS: readonly ReservedPort[] = [{ port: 3260, what: 'iSCSI portal (storage)' }];

/**
 * The ports this node listens on itself: every gateway's ({@link ALWAYS_RESERVED_PORTS}), the
 * gateway's configured ones, this node's gossip port, and those of the other roles its `role` tag
 * names (`self`, its member entry).
 */
export function reservedPorts(cfg: GatewayConfig, serfPort: number, self?: Member): ReservedPort[] {
  return [
    ...Object.entries(ALWAYS_RESERVED_PORTS).map(([port, what]) => ({ port: Number(port), what })),
    { port: cfg.metadata.proxy_port, what: 'metadata proxy (metadata.proxy_port)' },
    ...(cfg.boot.enabled ? [{ port: cfg.boot.port, what: 'boot server (boot.port)' }] : []),
    { port: serfPort, what: 'Serf gossip' },
    ...(self && hasRole(self, 'controller') ? CONTROLLER_PORTS : []),
    ...(self && hasRole(self, 'storage') ? STORAGE_PORTS : []),
  ];
}

/** What the gateway serves of a set of balancers, and what it leaves out. */
export interface LbPlan {
  /** Sorted by name. */
  readonly served: ResolvedBalancer[];
  /** Sorted by name. */
  readonly leftOut: LbLeftOut[];
}

/** Splits `balancers` into those this gateway serves and those it leaves out (see the header). Pure. */
export function planGatewayLb(
  cfg: GatewayConfig,
  balancers: readonly ResolvedBalancer[],
  d: Pick<DesiredState, 'node' | 'members'>,
): LbPlan {
  const reserved = reservedPorts(
    cfg,
    ownSerfPort(d) ?? SERF_DEFAULT_PORT,
    d.members.find((m) => m.name === d.node),
  );
  const settings = haproxySettings(cfg.lb);
  const leftOut: LbLeftOut[] = [];
  const fit = balancers.filter((b) => {
    const reason = whyNot(b, reserved, () => renderHaproxy([b], settings));
    if (reason) leftOut.push({ name: b.record.name, reason });
    return !reason;
  });
  const { kept, dropped } = withoutConflicts(fit.map((b) => b.record));
  for (const { record, why } of dropped) leftOut.push({ name: record.name, reason: why });
  let served = fit.filter((b) => kept.includes(b.record)).sort((a, b) => byText(a.record.name, b.record.name));
  // http-01 asks port 80 in plain HTTP: held by TCP or TLS, the CA's challenges would reach that
  // balancer's servers, which could answer them for names that are not theirs.
  const on80 = (b: ResolvedBalancer) => b.record.listen.port === ACME_HTTP_PORT;
  const port80 = served.find((b) => on80(b) && !(b.record.mode === 'http' && b.record.tls === 'none'));
  if (port80 && hasAcme(served)) {
    const r = port80.record;
    const why = `tls acme needs plain HTTP on port 80 for the CA's http-01 challenges; port 80 is ${r.mode}/${r.tls} (balancer ${r.name})`;
    for (const b of served) if (b.record.tls === 'acme') leftOut.push({ name: b.record.name, reason: why });
    served = served.filter((b) => b.record.tls !== 'acme');
  }
  // The last guard: a set the renderer still refuses together loses its youngest member until it
  // renders, so no pair of records can throw out of the role's render (DHCP and DNS with it).
  for (;;) {
    const why = whyNot(undefined, [], () => renderHaproxy(served, settings));
    if (!why || !served.length) break;
    const youngest = [...served].sort((x, y) => olderFirst(x.record, y.record)).at(-1)!;
    served.splice(served.indexOf(youngest), 1);
    leftOut.push({ name: youngest.record.name, reason: `cannot be served beside the others: ${why}` });
  }
  return { served, leftOut: leftOut.sort((a, b) => byText(a.name, b.name)) };
}

/** Why the gateway cannot serve `b` alone, or undefined. */
function whyNot(b: ResolvedBalancer | undefined, reserved: readonly ReservedPort[], render: () => unknown): string | undefined {
  try {
    if (b) checkListen(b.record.listen);
    const taken = b && reserved.find((p) => p.port === b.record.listen.port);
    if (taken) return `port ${taken.port} is the gateway's ${taken.what}`;
    render();
    return undefined;
  } catch (err) {
    return errorMessage(err);
  }
}

/** The `lb-left-out` report: `<name>: left out: <reason>` per line. */
export function renderLbLeftOut(leftOut: readonly LbLeftOut[]): string {
  const lines = leftOut.map((l) => `${l.name}: left out: ${l.reason.replace(/\s+/g, ' ')}\n`);
  return `${LB_HEADER}# load balancers this gateway does not serve, and why\n${lines.join('')}`;
}

/** Reads the report back (for the log of what changed). */
export function parseLbLeftOut(text: string | undefined): LbLeftOut[] {
  return (text ?? '').split('\n').flatMap((line) => {
    const m = /^([a-z0-9-]+): left out: (.*)$/.exec(line);
    return m ? [{ name: m[1], reason: m[2] }] : [];
  });
}

/** What the render adds for the balancers. */
export interface LbRender {
  readonly files: RenderedFile[];
  /** The served balancers' listen ports, sorted, each once (TCP, opened on the WAN interface); 80 for ACME's http-01 too. */
  readonly ports: number[];
  /** Ports opened on the LAN interface too: 80 while a served `tls acme` balancer exists (the cluster CA's http-01 checks). */
  readonly lanPorts: number[];
  readonly leftOut: LbLeftOut[];
}

/**
 * HAProxy's files, the listen ports and the left-out report for `desired.balancers` (undefined:
 * not read yet, rendered as none), with `desired.balancersLeftOut` (those the role's feed hook
 * left out already) in the report.
 */
export function renderGatewayLb(
  cfg: GatewayConfig,
  desired: Pick<DesiredState, 'node' | 'members' | 'balancers' | 'balancersLeftOut'>,
): LbRender {
  const none = { ports: [], lanPorts: [] };
  if (!cfg.lb.enabled || (!desired.balancers?.length && !desired.balancersLeftOut?.length)) return { files: [], ...none, leftOut: [] };
  const plan = planGatewayLb(cfg, desired.balancers ?? [], desired);
  const leftOut = [...(desired.balancersLeftOut ?? []), ...plan.leftOut].sort((a, b) => byText(a.name, b.name));
  const files: RenderedFile[] = [];
  if (leftOut.length) files.push({ path: lbLeftOutPath(cfg), content: renderLbLeftOut(leftOut), mode: 0o644 });
  if (!plan.served.length) return { files, ...none, leftOut };
  const cache = { path: balancersCachePath(cfg.lb), content: `${LB_HEADER}${JSON.stringify(plan.served)}\n`, mode: 0o644 };
  files.push(...renderHaproxy(plan.served, haproxySettings(cfg.lb)), cache);
  const lanPorts = acmeFirewallPorts(plan.served);
  const ports = [...new Set([...plan.served.map((b) => b.record.listen.port), ...lanPorts])].sort((a, b) => a - b);
  return { files, ports, lanPorts, leftOut };
}
