/**
 * The instance feed a gateway keeps: a watched copy of the registry (over NATS to the controllers),
 * reduced to what DHCP and DNS need. While the registry is unreachable the last snapshot stays, so
 * an outage of the controllers never takes reservations away from the LAN.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { InstanceFeed, InstanceFeedFactory, InstanceSummary } from '../../core/contracts.js';
import { connectNats } from '../../core/nats.js';
import { RegistryView } from './view.js';

/** How long changes are gathered before one reconcile (a burst of registrations costs one apply). */
const DEBOUNCE_MS = 200;

/** The feed factory the composition root gives the gateway role. */
export const openInstanceFeed: InstanceFeedFactory = (servers, onChange, log): InstanceFeed => {
  let nc: NatsConnection | undefined;
  let view: RegistryView | undefined;
  let last: readonly InstanceSummary[] | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const changed = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (stopped || !view?.available) return;
      last = view.records().map((r) => ({ name: r.name, macs: r.macs, ips: r.ips }));
      onChange();
    }, DEBOUNCE_MS);
  };
  void connectNats(servers, { name: 'mammatus-gateway', persistent: true }).then(
    (c) => {
      if (stopped) return void c.close();
      nc = c;
      view = RegistryView.start(c, log, 1, changed);
    },
    (err: unknown) => log.error({ err }, 'cannot reach the instance registry'),
  );
  return {
    snapshot: () => last,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      view?.stop();
      await nc?.close().catch(() => undefined);
    },
  };
};
