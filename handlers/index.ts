/**
 * The handlers every agent registers, whatever its roles: `mammatus.ping`, `mammatus.status`,
 * `mammatus.reconcile` and `mammatus.verdict`. Queries that belong to a role (`mammatus.leases`, `mammatus.reservations`,
 * `mammatus.capacity`) are declared by that role and answered while it runs.
 */
import type { Dispatcher } from '../agent/dispatch/dispatcher.js';
import type { AgentView } from '../agent/types.js';
import { registerPing } from './ping.js';
import { registerReconcile } from './reconcile.js';
import { registerStatus } from './status.js';
import { registerVerdict } from './verdict.js';

/** Registers `mammatus.ping`, `mammatus.status`, `mammatus.reconcile` and `mammatus.verdict`. */
export function registerBuiltinHandlers(d: Pick<Dispatcher, 'on'>, view: AgentView): void {
  registerPing(d);
  registerStatus(d, view);
  registerReconcile(d, view);
  registerVerdict(d, view);
}

export { PING_QUERY } from './ping.js';
export { RECONCILE_EVENT } from './reconcile.js';
export { VERDICT_QUERY } from './verdict.js';
export { STATUS_QUERY, STATUS_MAX_BYTES, buildStatus, type StatusAnswer } from './status.js';
