/**
 * DHCP leases and lease events. dnsmasq keeps the current leases in its lease file; its
 * `dhcp-script` hook (rendered here) appends one line per event to a spool file the agent reads.
 * The hook must be fast and must never fail, so it is plain `sh` with one `printf` per event (an
 * O_APPEND write of one short line is atomic) and ignores every action it does not know.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { GatewayConfig } from './config.js';

/** Where the lease hook appends its events: next to dnsmasq's lease file. */
export function leaseSpoolPath(cfg: GatewayConfig): string {
  return path.join(path.dirname(cfg.paths.leases), 'lease-events');
}

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

/** The `dhcp-script` hook: appends each known event to `spool` and always exits 0. */
export function renderLeaseHook(spool: string): string {
  const q = `'${spool.replace(/'/g, `'\\''`)}'`;
  return [
    '#!/bin/sh',
    '# managed by mammatus role=gateway',
    '# dnsmasq dhcp-script: hands DHCP lease and TFTP events to the mammatus agent through a spool',
    '# file. It must stay fast and never fail; actions it does not know (init, arp-add, …) are ignored.',
    'case "$1" in',
    `  add|old|del) printf '%s\\t%s\\t%s\\t%s\\t%s\\n' "$1" "$2" "$3" "\${4:-}" "\${DNSMASQ_TAGS:-}" >> ${q} 2>/dev/null ;;`,
    `  tftp) printf '%s\\t%s\\t%s\\t%s\\n' "$1" "$2" "$3" "$4" >> ${q} 2>/dev/null ;;`,
    'esac',
    'exit 0',
    '',
  ].join('\n');
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
