/** `mammatus.ping`: every agent answers `pong` — the cheapest "who runs an agent" check. */
import type { Dispatcher } from '../agent/dispatch/dispatcher.js';

/** Query name, as documented in docs/serf.md. */
export const PING_QUERY = 'mammatus.ping';

/** Registers the ping query handler. */
export function registerPing(d: Pick<Dispatcher, 'on'>): void {
  d.on(`query:${PING_QUERY}`, () => 'pong');
}
