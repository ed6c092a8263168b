/** The built-in handlers every agent registers, whatever its roles. */
import type { Dispatcher } from '../agent/dispatch/dispatcher.js';
import type { AgentView } from '../agent/types.js';
import { registerCapacity } from '../roles/compute/capacity.js';
import { registerLeases } from '../roles/gateway/leases-query.js';
import { registerPing } from './ping.js';
import { registerReconcile } from './reconcile.js';
import { registerStatus } from './status.js';

/** Registers `mammatus.ping`, `mammatus.status`, `mammatus.reconcile`, `mammatus.leases` and `mammatus.capacity`. */
export function registerBuiltinHandlers(d: Pick<Dispatcher, 'on'>, view: AgentView): void {
  registerPing(d);
  registerStatus(d, view);
  registerReconcile(d, view);
  registerLeases(d, view);
  registerCapacity(d, view);
}

export { CAPACITY_QUERY, buildCapacity, type CapacityAnswer } from '../roles/compute/capacity.js';

export { LEASES_QUERY } from '../roles/gateway/leases-query.js';
export { PING_QUERY } from './ping.js';
export { RECONCILE_EVENT } from './reconcile.js';
export { STATUS_QUERY, STATUS_MAX_BYTES, buildStatus, type StatusAnswer } from './status.js';
