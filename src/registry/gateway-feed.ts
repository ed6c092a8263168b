/**
 * The instance feed a gateway keeps: the watched registry reduced to what DHCP and DNS need.
 * While the registry is unreachable the last snapshot stays, so an outage of the controllers
 * never takes reservations away from the LAN.
 */
import type { InstanceFeed, InstanceFeedFactory } from '../../core/contracts.js';
import { watchRegistry } from './watched.js';

/** How long changes are gathered before one reconcile (a burst of registrations costs one apply). */
const DEBOUNCE_MS = 200;

/** The feed factory the composition root gives the gateway role. */
export const openInstanceFeed: InstanceFeedFactory = (servers, onChange, log): InstanceFeed => {
  const watched = watchRegistry({
    servers,
    clientName: 'mammatus-gateway',
    debounceMs: DEBOUNCE_MS,
    project: (records) => records.map((r) => ({ name: r.name, macs: r.macs, ips: r.ips })),
    onChange,
    log,
  });
  return { snapshot: () => watched.snapshot(), stop: () => watched.stop() };
};
