/**
 * Which balancers can live side by side on one gateway. Balancers share a listener when their
 * ports are equal and their addresses overlap (equal, or either one left out: every address);
 * the engine then serves them from one frontend, so they must agree on how that frontend speaks:
 * - the same mode and the same TLS kind;
 * - plain TCP (no TLS passthrough) has no name to route by: one balancer per listener;
 * - otherwise each request goes to one balancer by its route: HTTP by Host (or the catch-all,
 *   no hosts) and path prefix, passthrough by SNI name. Two balancers may not claim one route:
 *   the same host with the same path (absent = every path), or both the catch-all with the same
 *   path. One host under different path prefixes is allowed (`/api` and the rest); the engine
 *   tries the longest prefix first.
 * Of two records that conflict anyway (two creates racing, or a foreign writer), the older wins:
 * the earlier `created_at` (parsed, so one instant is one order), then the lower name. The
 * registry's withdrawal after a racing write (registry.ts) and every reader (`withoutConflicts`)
 * use this one rule, {@link olderFirst}.
 * Pure; the registry refuses a create that conflicts, and a reader can drop what slipped past a race.
 */
import type { LoadBalancerRecord } from '../../core/lb-record.js';
import { formatListen } from './listen.js';
import { byText } from '../../core/lb-syntax.js';

/** Orders records oldest first: by parsed `created_at`, then by name (which record wins a conflict). */
export function olderFirst(a: LoadBalancerRecord, b: LoadBalancerRecord): number {
  return Date.parse(a.created_at) - Date.parse(b.created_at) || byText(a.name, b.name);
}

/** Do `a` and `b` listen on the same socket (same port, overlapping addresses)? */
export function sharesListener(a: LoadBalancerRecord, b: LoadBalancerRecord): boolean {
  const [x, y] = [a.listen, b.listen];
  return x.port === y.port && (x.addr === undefined || y.addr === undefined || x.addr === y.addr);
}

/** Why `b` cannot live beside `a`, or undefined when it can. */
function conflictBetween(a: LoadBalancerRecord, b: LoadBalancerRecord): string | undefined {
  if (!sharesListener(a, b)) return undefined;
  const where = `lb ${a.name} listens on ${formatListen(a.listen)}`;
  if (a.mode !== b.mode) return `${where} in mode ${a.mode}: balancers sharing a listener share its mode`;
  if (a.tls !== b.tls) return `${where} with tls ${a.tls}: balancers sharing a listener share its TLS kind`;
  if (a.mode === 'tcp' && a.tls === 'none') return `${where} as plain TCP, which cannot be shared (no host name to route by)`;
  if ((a.path ?? '') !== (b.path ?? '')) return undefined;
  const on = a.path === undefined ? '' : ` under ${a.path}`;
  if (a.hosts.length === 0 && b.hosts.length === 0) return `${where} as the catch-all${on}: there can be one per listener`;
  const taken = b.hosts.filter((h) => a.hosts.includes(h));
  if (taken.length > 0) return `${where} for ${taken.join(', ')}${on} already`;
  return undefined;
}

/**
 * Why `candidate` cannot join `records` (one message per balancer it conflicts with, naming it),
 * or an empty list. A record with the candidate's name is skipped: the candidate replaces it.
 */
export function conflicts(records: readonly LoadBalancerRecord[], candidate: LoadBalancerRecord): string[] {
  const found: string[] = [];
  for (const r of records) {
    if (r.name === candidate.name) continue;
    const why = conflictBetween(r, candidate);
    if (why) found.push(why);
  }
  return found;
}

/**
 * The records that can be served together: oldest first (then by name), each kept unless it
 * conflicts with one kept before. What a reader does with two records that raced past the
 * registry's check: the older one wins ({@link olderFirst}), as it does in the registry. Sorted by name.
 */
export function withoutConflicts(records: readonly LoadBalancerRecord[]): {
  kept: LoadBalancerRecord[];
  dropped: { record: LoadBalancerRecord; why: string }[];
} {
  const byAge = [...records].sort(olderFirst);
  const kept: LoadBalancerRecord[] = [];
  const dropped: { record: LoadBalancerRecord; why: string }[] = [];
  for (const r of byAge) {
    const why = conflicts(kept, r)[0];
    if (why) dropped.push({ record: r, why });
    else kept.push(r);
  }
  return { kept: kept.sort((a, b) => byText(a.name, b.name)), dropped };
}
