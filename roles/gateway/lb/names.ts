/**
 * Names HAProxy sees for the registry's balancers and servers. HAProxy accepts more characters in
 * proxy and server names than we let through; keeping to `[a-z0-9_-]` means a name can never end a
 * config token, start a comment or be read as an ACL operator, and the runtime API addresses the
 * same server by the same string the file declares.
 */
import { createHash } from 'node:crypto';
import type { LbServer, LoadBalancerRecord } from '../../../core/lb-record.js';

/** The backend that answers 503 to a Host (or path) no balancer claims. */
export const UNKNOWN_HOST_BACKEND = 'mammatus_unknown_host';

/**
 * `name` lower-cased with every other character than `[a-z0-9_-]` made `_`. When that changed the
 * name, a short hash of the original is appended, so two names that differ only in such
 * characters (`a.b`, `a_b`) stay two names.
 */
export function sanitizeName(name: string): string {
  const clean = name.toLowerCase().replace(/[^a-z0-9_-]/g, '_');
  if (clean === name && clean !== '') return clean;
  return `${clean}-${createHash('sha256').update(name).digest('hex').slice(0, 6)}`;
}

/** The backend of one balancer. */
export function backendName(record: Pick<LoadBalancerRecord, 'name'>): string {
  return `lb_${sanitizeName(record.name)}`;
}

/** A server's name inside its backend (config file and runtime API alike). */
export function serverName(server: Pick<LbServer, 'name'>): string {
  return sanitizeName(server.name);
}

/** `addr:port` as HAProxy reads it; IPv6 in brackets, so the last colon is not taken for the port. */
export function serverAddress(server: Pick<LbServer, 'addr' | 'port'>): string {
  return server.addr.includes(':') ? `[${server.addr}]:${server.port}` : `${server.addr}:${server.port}`;
}
