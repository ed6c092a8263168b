/**
 * The instance feed a gateway keeps: the watched registry reduced to what DHCP and DNS need.
 * While the registry is unreachable the last snapshot stays, so an outage of the controllers
 * never takes reservations away from the LAN.
 */
import type { InstanceFeed, InstanceSummary, Logger } from '../../core/contracts.js';
import type { InstanceRecord } from '../../core/instance-record.js';
import type { ConnectNatsOptions } from '../../core/nats.js';
import { watchRegistry } from './watched.js';

/** How long changes are gathered before one reconcile (a burst of registrations costs one apply). */
const DEBOUNCE_MS = 200;

/**
 * What the gateway keeps of a record: name, MACs, IPs, whether it is a planned host (`host`:
 * such a machine keeps its reservation when it joins Serf under its own name), and whether that
 * host is a Raspberry Pi (`rpi`: its MACs get the Pi bootloader's DHCP answer).
 */
export function gatewaySummary(r: InstanceRecord): InstanceSummary {
  return {
    name: r.name,
    macs: r.macs,
    ips: r.ips,
    ...(r.host ? { host: true as const } : {}),
    ...(r.host?.arch === 'rpi' ? { rpi: true as const } : {}),
  };
}

/** Opens the feed (the composition root binds `credentials` and gives the role the rest). */
export function openInstanceFeed(
  servers: readonly string[],
  onChange: () => void,
  log: Logger,
  credentials?: ConnectNatsOptions['credentials'],
): InstanceFeed {
  const watched = watchRegistry({
    servers,
    credentials,
    clientName: 'mammatus-gateway',
    debounceMs: DEBOUNCE_MS,
    project: (records) => records.map(gatewaySummary),
    onChange,
    log,
  });
  return { snapshot: () => watched.snapshot(), stop: () => watched.stop() };
}
