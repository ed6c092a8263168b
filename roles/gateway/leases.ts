/**
 * DHCP leases and lease events. dnsmasq keeps the current leases in its lease file; its
 * `dhcp-script` hook (rendered here) appends one line per event to a spool file the agent reads.
 * The hook must be fast and must never fail, so it is plain `sh` with one `printf` per event (an
 * O_APPEND write of one short line is atomic) and ignores every action it does not know.
 *
 * The spool is bounded: past {@link LEASE_SPOOL_MAX_BYTES} the hook itself renames it to `<spool>.1`
 * (replacing the previous one) before it appends. The hook rotates, not the agent, because only the
 * hook's rotation bounds the file whether or not the agent runs or reads it, and it cannot race:
 * dnsmasq runs at most one instance of its script at a time (dnsmasq(8), `--dhcp-script`), so no
 * other append falls between the size check and the rename, and a reader that has the old file
 * open keeps reading it. The agent reads from the end only ({@link recentLeaseEvents}).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { linesFromEnd, tailBudget, type TailBudget } from '../../core/tail.js';
import type { GatewayConfig } from './config.js';

/** Where the lease hook appends its events: next to dnsmasq's lease file. */
export function leaseSpoolPath(cfg: GatewayConfig): string {
  return path.join(path.dirname(cfg.paths.leases), 'lease-events');
}

/** The size past which the hook rotates the spool to `<spool>.1` (so both together stay near 2 MiB). */
export const LEASE_SPOOL_MAX_BYTES = 1024 * 1024;

/**
 * What one read of recent events may read of the spool and its `.1`: both whole when the hook kept
 * them bounded, and no more when an older hook (or anyone) let them grow.
 */
export const LEASE_EVENTS_READ_BYTES = 2 * LEASE_SPOOL_MAX_BYTES + 64 * 1024;

/** One current lease, from dnsmasq's lease file. */
export interface Lease {
  readonly mac: string;
  readonly ip: string;
  /** Client-supplied hostname, or '' when none. */
  readonly name: string;
  /** Expiry as a Unix time in seconds; 0 = infinite. */
  readonly expires: number;
}

/** One event handed over by the hook. */
export interface LeaseEvent {
  readonly action: 'add' | 'old' | 'del' | 'tftp';
  /** add/old/del: MAC, IP, hostname, dnsmasq tags. tftp: size, client IP, file path. */
  readonly fields: readonly string[];
}

/** Parses dnsmasq's lease file (`expiry mac ip name client-id` per line). Malformed lines are skipped. */
export function parseLeases(text: string): Lease[] {
  const leases: Lease[] = [];
  for (const line of text.split('\n')) {
    const [expires, mac, ip, name] = line.trim().split(/\s+/);
    if (!expires || !mac || !ip || !/^\d+$/.test(expires) || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac)) continue;
    leases.push({ mac: mac.toLowerCase(), ip, name: name && name !== '*' ? name : '', expires: Number(expires) });
  }
  return leases.sort((a, b) => a.ip.localeCompare(b.ip, 'en', { numeric: true }));
}

/** Parses the hook's spool lines (tab-separated); unknown actions and malformed lines are skipped. */
export function parseLeaseEvents(text: string): LeaseEvent[] {
  const events: LeaseEvent[] = [];
  for (const line of text.split('\n')) {
    const [action, ...fields] = line.split('\t');
    if (action === 'add' || action === 'old' || action === 'del' || action === 'tftp') events.push({ action, fields });
  }
  return events;
}

/**
 * The `dhcp-script` hook: appends each known event to `spool` and always exits 0. Past `maxBytes`
 * it first renames `spool` to `<spool>.1` (see the module comment for why the hook rotates).
 */
export function renderLeaseHook(spool: string, maxBytes: number = LEASE_SPOOL_MAX_BYTES): string {
  const q = (p: string) => `'${p.replace(/'/g, `'\\''`)}'`;
  return [
    '#!/bin/sh',
    '# managed by mammatus role=gateway',
    '# dnsmasq dhcp-script: hands DHCP lease and TFTP events to the mammatus agent through a spool',
    '# file. It must stay fast and never fail; actions it does not know (init, arp-add, …) are ignored.',
    `spool=${q(spool)}`,
    'case "$1" in add|old|del|tftp) ;; *) exit 0 ;; esac',
    '# Bounded: past the size the spool becomes spool.1 (replacing the last one). dnsmasq runs one',
    '# instance of this script at a time, so no append falls between the check and the rename.',
    'size=$(stat -c %s "$spool" 2>/dev/null)',
    `[ "\${size:-0}" -gt ${Math.floor(maxBytes)} ] 2>/dev/null && mv -f "$spool" "$spool.1" 2>/dev/null`,
    'case "$1" in',
    `  add|old|del) printf '%s\\t%s\\t%s\\t%s\\t%s\\n' "$1" "$2" "$3" "\${4:-}" "\${DNSMASQ_TAGS:-}" >> "$spool" 2>/dev/null ;;`,
    `  tftp) printf '%s\\t%s\\t%s\\t%s\\n' "$1" "$2" "$3" "$4" >> "$spool" 2>/dev/null ;;`,
    'esac',
    'exit 0',
    '',
  ].join('\n');
}

/**
 * The last `limit` events of the spool (then of `<spool>.1`) that `match` accepts, oldest first.
 * Reads backwards from the end and stops at `limit`, or when `budget` is spent: never the whole
 * file, however large it grew. Missing files have no events.
 */
export async function recentLeaseEvents(
  spool: string,
  match: (e: LeaseEvent) => boolean,
  limit: number,
  budget: TailBudget = tailBudget(LEASE_EVENTS_READ_BYTES),
): Promise<LeaseEvent[]> {
  const found: LeaseEvent[] = [];
  for (const file of [spool, `${spool}.1`]) {
    for await (const line of linesFromEnd(file, budget)) {
      const [event] = parseLeaseEvents(line);
      if (event && match(event)) found.push(event);
      if (found.length >= limit) return found.reverse();
    }
  }
  return found.reverse();
}

/**
 * IP → MAC from dnsmasq's lease file, re-read whenever the file changes (one `stat` per request;
 * dnsmasq rewrites the file on every lease change).
 */
export function leaseFileLookup(file: string, nowS: () => number = () => Date.now() / 1000): (ip: string) => Promise<string> {
  let mtime = -1;
  let table = new Map<string, { mac: string; expires: number }>();
  return async (ip) => {
    try {
      const st = await fs.stat(file);
      if (st.mtimeMs !== mtime) {
        mtime = st.mtimeMs;
        table = new Map(parseLeases(await fs.readFile(file, 'utf8')).map((l) => [l.ip, { mac: l.mac, expires: l.expires }]));
      }
    } catch {
      table = new Map();
      mtime = -1;
    }
    const lease = table.get(ip);
    return lease && (lease.expires === 0 || lease.expires > nowS()) ? lease.mac : '';
  };
}
