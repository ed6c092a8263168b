/**
 * `mammatus.status`: one compact JSON object per agent, at most 900 bytes, so a whole cluster can be
 * listed by one Serf query. Long errors are shortened until the answer fits.
 */
import type { Dispatcher } from '../agent/dispatch/dispatcher.js';
import type { AgentView, TlsStatus } from '../agent/types.js';
import type { RoleStatus } from '../roles/types.js';

/** Query name, as documented in docs/serf.md. */
export const STATUS_QUERY = 'mammatus.status';
/** The documented upper bound of one status answer. */
export const STATUS_MAX_BYTES = 900;

/** Per-role entry of the answer. */
export interface RoleStatusJson {
  state: RoleStatus['state'];
  /** ISO 8601 time of the last apply, or null before the first. */
  applied_at: string | null;
  error?: string;
  /** The role's one-line summary of its work, when it has one (the compute role's instance counts). */
  detail?: string;
}

/** The answer of one agent. */
export interface StatusAnswer {
  node: string;
  roles: string[];
  version: string;
  uptime_s: number;
  role_status: Record<string, RoleStatusJson>;
  /** Credentials and Serf security, as this node sees its own (absent from agents before trust). */
  trust?: { admitted: string[] | null; errors: string[] };
  /** The node certificate (issue 20): expiry, next renewal, last failure; absent before any attempt. */
  tls?: TlsStatus;
}

/** Builds the answer, shortening errors (then dropping them) until it fits `maxBytes`. Pure. */
export function buildStatus(view: AgentView, maxBytes = STATUS_MAX_BYTES): StatusAnswer {
  const statuses = foldUnknown(view.roleStatus());
  for (const limit of [160, 60, 20, 0]) {
    const role_status: Record<string, RoleStatusJson> = {};
    for (const [name, s] of Object.entries(statuses)) {
      const entry: RoleStatusJson = { state: s.state, applied_at: s.appliedAt ? s.appliedAt.toISOString() : null };
      if (s.error && limit > 0) entry.error = shorten(s.error, limit);
      if (s.detail && limit > 0) entry.detail = shorten(s.detail, Math.min(limit, 80));
      role_status[name] = entry;
    }
    const answer: StatusAnswer = {
      node: view.node(),
      roles: [...view.roles()],
      version: view.version,
      uptime_s: view.uptimeSeconds(),
      role_status,
    };
    const trust = view.trust?.();
    if (trust)
      answer.trust = {
        admitted: trust.admitted ? [...trust.admitted] : null,
        errors: trust.errors.map((e) => shorten(e, Math.max(limit, 40))),
      };
    const tls = view.tls?.();
    if (tls) answer.tls = { ...tls, last_error: tls.last_error === null ? null : shorten(tls.last_error, Math.max(limit, 40)) };
    if (Buffer.byteLength(JSON.stringify(answer)) <= maxBytes || limit === 0) return answer;
  }
  throw new Error('unreachable');
}

function shorten(text: string, limit: number): string {
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
}

/**
 * Many unknown names in a `role` tag would each take an entry; past three they are folded into
 * one, so the answer's size stays bounded whatever the tag says.
 */
function foldUnknown(statuses: Record<string, RoleStatus>): Record<string, RoleStatus> {
  const unknown = Object.keys(statuses).filter((k) => statuses[k].error === 'unknown role');
  if (unknown.length <= 3) return statuses;
  const kept = Object.fromEntries(Object.entries(statuses).filter(([k]) => !unknown.includes(k)));
  const names = unknown.map((u) => u.slice(0, 24)).join(',');
  return { ...kept, unknown: { state: 'error', error: `unknown roles: ${names}` } };
}

/** Registers the status query handler. */
export function registerStatus(d: Pick<Dispatcher, 'on'>, view: AgentView): void {
  d.on(`query:${STATUS_QUERY}`, () => buildStatus(view));
}
