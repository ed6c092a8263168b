/**
 * Which balancers can live side by side on one gateway: the one rule the registry (`lb create`
 * refuses a conflicting record; the feed drops what raced past it) and the gateway's renderer
 * (which leaves a conflicting balancer out) both apply, so they never disagree.
 *
 * The gateway serves every balancer on a port from one HAProxy frontend, which binds every address
 * of the port and routes by name. So balancers on the same port:
 * - must listen on the same address (all left out = every address, or all the same one): a balancer
 *   on 192.0.2.10:80 beside one on *:80 or 192.0.2.11:80 would be reachable on the other's
 *   addresses too, through the shared frontend;
 * - must have the same mode and the same TLS kind (one socket speaks one protocol);
 * - plain TCP (no TLS passthrough) has no name to route by: one balancer per port;
 * - otherwise each request goes to one balancer by its route: HTTP by Host (or the catch-all, no
 *   hosts) and path prefix, passthrough by SNI name. Two balancers may not claim one route: the
 *   same host with the same path (absent = every path), or both the catch-all with the same path.
 *   One host under different path prefixes is allowed (`/api` and the rest); the engine tries the
 *   longest prefix first.
 * Of two records that conflict anyway (two creates racing, a foreign writer, a record older than
 * this rule), the older wins: the earlier `created_at` (parsed, so one instant is one order), then
 * the lower name ({@link olderFirst}). Pure.
 */
import type { LoadBalancerRecord } from './lb-record.js';
import { formatListen } from './lb-listen.js';
import { byText } from './lb-syntax.js';

/** Orders records oldest first: by parsed `created_at`, then by name (which record wins a conflict). */
export function olderFirst(a: LoadBalancerRecord, b: LoadBalancerRecord): number {
  return Date.parse(a.created_at) - Date.parse(b.created_at) || byText(a.name, b.name);
}

/** The fields the rule reads. */
export type LbRouteFields = Pick<LoadBalancerRecord, 'name' | 'listen' | 'mode' | 'tls' | 'hosts' | 'path'>;

/** Why `b` cannot live beside `a` (naming `a`), or undefined when it can. */
export function lbConflict(a: LbRouteFields, b: LbRouteFields): string | undefined {
  if (a.listen.port !== b.listen.port) return undefined;
  const where = `lb ${a.name} listens on ${formatListen(a.listen)}`;
  if (a.listen.addr !== b.listen.addr)
    return `${where}: balancers on one port share its frontend, so they listen on the same address (or all on every address)`;
  if (a.mode !== b.mode) return `${where} in mode ${a.mode}: balancers sharing a port share its mode`;
  if (a.tls !== b.tls) return `${where} with tls ${a.tls}: balancers sharing a port share its TLS kind`;
  if (a.mode === 'tcp' && a.tls === 'none') return `${where} as plain TCP, which cannot be shared (no host name to route by)`;
  // No path is every path: the same routes as `/` (the renderer's map key is `<host>/` for both).
  if ((a.path ?? '/') !== (b.path ?? '/')) return undefined;
  const on = (a.path ?? '/') === '/' ? '' : ` under ${a.path}`;
  if (a.hosts.length === 0 && b.hosts.length === 0) return `${where} as the catch-all${on}: there can be one per port`;
  const taken = b.hosts.filter((h) => a.hosts.includes(h));
  if (taken.length > 0) return `${where} for ${taken.join(', ')}${on} already`;
  return undefined;
}

/**
 * Why `candidate` cannot join `records` (one message per balancer it conflicts with, naming it),
 * or an empty list. A record with the candidate's name is skipped: the candidate replaces it.
 */
export function conflicts(records: readonly LbRouteFields[], candidate: LbRouteFields): string[] {
  const found: string[] = [];
  for (const r of records) {
    if (r.name === candidate.name) continue;
    const why = lbConflict(r, candidate);
    if (why) found.push(why);
  }
  return found;
}

/**
 * The records that can be served together: oldest first (then by name), each kept unless it
 * conflicts with one kept before ({@link olderFirst}). `kept` is sorted by name.
 */
export function withoutConflicts<R extends LoadBalancerRecord>(
  records: readonly R[],
): { kept: R[]; dropped: { record: R; why: string }[] } {
  const byAge = [...records].sort(olderFirst);
  const kept: R[] = [];
  const dropped: { record: R; why: string }[] = [];
  for (const r of byAge) {
    const why = conflicts(kept, r)[0];
    if (why) dropped.push({ record: r, why });
    else kept.push(r);
  }
  return { kept: kept.sort((a, b) => byText(a.name, b.name)), dropped };
}
