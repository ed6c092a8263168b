/**
 * `mammatus.leases`: a gateway answers with its current DHCP leases (from dnsmasq's lease file);
 * other nodes stay silent. Payload empty = every lease that fits in one answer (with the total);
 * payload a MAC or an IP = the matching lease and its recent events from the lease hook.
 */
import { readFile } from 'node:fs/promises';
import type { DesiredState } from '../types.js';
import { parseGatewayConfig } from './config.js';
import { leaseSpoolPath, parseLeaseEvents, parseLeases, type Lease } from './leases.js';

/** Query name, as documented in docs/serf.md. */
export const LEASES_QUERY = 'mammatus.leases';
/** Answers stay under Serf's response limit with room for the node name. */
const MAX_BYTES = 900;

/** A lease as answered: `[mac, ip, name, expires]`, compact so more fit. */
type LeaseRow = [string, string, string, number];

const readText = (file: string) => readFile(file, 'utf8').catch(() => '');

/** Builds the answer for `filter` (a MAC, an IP, or '' for all) from the lease file and hook spool. */
export function buildLeasesAnswer(node: string, leases: readonly Lease[], events: string, filter: string): object {
  const row = (l: Lease): LeaseRow => [l.mac, l.ip, l.name, l.expires];
  if (filter) {
    const key = filter.toLowerCase();
    const match = leases.filter((l) => l.mac === key || l.ip === key).map(row);
    const recent = parseLeaseEvents(events)
      .filter((e) => e.fields.some((f) => f.toLowerCase() === key))
      .slice(-5)
      .map((e) => [e.action, ...e.fields.slice(0, 3)].join(' '));
    return { node, leases: match, events: recent };
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
  const [leases, events] = await Promise.all([readText(cfg.paths.leases), readText(leaseSpoolPath(cfg))]);
  return buildLeasesAnswer(desired.node, parseLeases(leases), events, payload.toString('utf8').trim());
}
