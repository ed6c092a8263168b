/**
 * `mammatus.leases`: a gateway answers with its current DHCP leases (from dnsmasq's lease file);
 * other nodes stay silent. Payload empty = every lease that fits in one answer (with the total);
 * payload a MAC or an IP = the matching lease and its recent events from the lease hook (read from
 * the end of the hook's spool, so a spool of any size costs one bounded read).
 */
import { readFile } from 'node:fs/promises';
import type { DesiredState } from '../types.js';
import { parseGatewayConfig } from './config.js';
import { leaseSpoolPath, parseLeases, recentLeaseEvents, type Lease, type LeaseEvent } from './leases.js';

/** Query name, as documented in docs/serf.md. */
export const LEASES_QUERY = 'mammatus.leases';
/** Answers stay under Serf's response limit with room for the node name. */
const MAX_BYTES = 900;
/** How many recent hook events an answer about one lease carries. */
export const RECENT_EVENTS = 5;

/** A lease as answered: `[mac, ip, name, expires]`, compact so more fit. */
type LeaseRow = [string, string, string, number];

const readText = (file: string) => readFile(file, 'utf8').catch(() => '');

/** True when `event` is about `key` (a lower-case MAC or an IP): one of its fields is it. */
export function eventConcerns(event: LeaseEvent, key: string): boolean {
  return event.fields.some((f) => f.toLowerCase() === key);
}

/**
 * Builds the answer for `filter` (a MAC, an IP, or '' for all) from the lease file and the recent
 * hook events about that lease (oldest first; see {@link recentLeaseEvents}).
 */
export function buildLeasesAnswer(node: string, leases: readonly Lease[], recent: readonly LeaseEvent[], filter: string): object {
  const row = (l: Lease): LeaseRow => [l.mac, l.ip, l.name, l.expires];
  if (filter) {
    const key = filter.toLowerCase();
    const match = leases.filter((l) => l.mac === key || l.ip === key).map(row);
    const events = recent
      .filter((e) => eventConcerns(e, key))
      .slice(-RECENT_EVENTS)
      .map((e) => [e.action, ...e.fields.slice(0, 3)].join(' '));
    // Client-chosen hostnames can be long: drop the oldest events until the answer fits.
    while (events.length && Buffer.byteLength(JSON.stringify({ node, leases: match, events })) > MAX_BYTES) events.shift();
    return { node, leases: match, events };
  }
  const rows = leases.map(row);
  // Drop rows from the end until the answer fits; `total` says how many there are.
  for (let n = rows.length; n >= 0; n--) {
    const answer = { node, total: rows.length, truncated: n < rows.length, leases: rows.slice(0, n) };
    if (Buffer.byteLength(JSON.stringify(answer)) <= MAX_BYTES) return answer;
  }
  return { node, total: rows.length, truncated: true, leases: [] };
}

/**
 * Answers `mammatus.leases` from dnsmasq's lease file and the hook's spool (reads only; a file
 * that cannot be read counts as empty). Undefined before the role's first apply.
 */
export async function answerLeases(payload: Buffer, desired: DesiredState | undefined): Promise<object | undefined> {
  if (!desired) return undefined;
  const cfg = parseGatewayConfig(desired.config);
  const filter = payload.toString('utf8').trim();
  const key = filter.toLowerCase();
  const [leases, recent] = await Promise.all([
    readText(cfg.paths.leases),
    filter ? recentLeaseEvents(leaseSpoolPath(cfg), (e) => eventConcerns(e, key), RECENT_EVENTS).catch(() => []) : [],
  ]);
  return buildLeasesAnswer(desired.node, parseLeases(leases), recent, filter);
}
