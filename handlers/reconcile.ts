/**
 * `mammatus.reconcile` user event: empty payload = every role of the node, else one role name. Each
 * agent re-applies the matching roles; applying is idempotent, so sending it again is harmless.
 */
import type { Dispatcher } from '../agent/dispatch/dispatcher.js';
import type { AgentView } from '../agent/types.js';
import { detach } from '../core/errors.js';

/** Event name, as documented in docs/serf.md. */
export const RECONCILE_EVENT = 'mammatus.reconcile';

/** Registers the reconcile event handler. */
export function registerReconcile(d: Pick<Dispatcher, 'on'>, view: AgentView): void {
  d.on(`user:${RECONCILE_EVENT}`, (event, ctx) => {
    const role = event.payload.toString('utf8').trim();
    if (role && !view.roles().includes(role)) {
      ctx.log.debug({ role }, 'reconcile for a role this node does not run; ignored');
      return;
    }
    // Queued, not awaited: the apply may outlast a handler timeout; its outcome shows in status.
    detach(view.reconcile(role || undefined), (err) => ctx.log.error({ err }, 'reconcile failed'));
  });
}
