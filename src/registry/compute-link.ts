/**
 * The compute role's link to the instance registry: a watched copy of every record (over NATS to
 * the controllers, like the gateway's feed, but with the fields a compute node acts on: node,
 * state, tags) and the two writes the role makes (the instance's real addresses; removing a
 * deleted instance's record). While the registry is unreachable the last snapshot stays: a
 * compute node never stops or deletes anything because the controllers went away.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { InstanceRecord } from '../../core/instance-record.js';
import type { ComputeRegistryFactory } from '../../core/contracts.js';
import { InstanceNotFoundError, InstanceRegistry } from './registry.js';
import { RegistryView } from './view.js';
import { connectNats } from '../../core/nats.js';

/**
 * A burst of registry changes (a launch registers the record, then sets it running, milliseconds
 * apart) costs one reconcile. Short: it is on every launch's critical path (bench/compute.ts).
 */
const DEBOUNCE_MS = 50;

/** The factory the composition root gives the compute role. */
export const openComputeRegistry: ComputeRegistryFactory = (servers, onChange, log) => {
  let nc: NatsConnection | undefined;
  let view: RegistryView | undefined;
  let registry: Promise<InstanceRegistry> | undefined;
  let last: readonly InstanceRecord[] | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const changed = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (stopped || !view?.available) return;
      last = view.records().sort((a, b) => a.name.localeCompare(b.name));
      onChange();
    }, DEBOUNCE_MS);
  };
  const connected = connectNats(servers, { name: 'mammatus-compute', persistent: true }).then(
    (c) => {
      if (stopped) return void c.close();
      nc = c;
      view = RegistryView.start(c, log, 1, changed);
    },
    (err: unknown) => log.error({ err }, 'cannot reach the instance registry'),
  );
  const writer = async (): Promise<InstanceRegistry> => {
    await connected;
    if (!nc) throw new Error('the instance registry is not connected');
    return (registry ??= InstanceRegistry.open(nc));
  };
  const ignoreGone = (err: unknown) => {
    if (!(err instanceof InstanceNotFoundError)) throw err;
  };
  return {
    snapshot: () => last,
    async setIps(id, ips) {
      await (await writer()).update(id, (r) => ({ ...r, ips: [...ips] })).catch(ignoreGone);
    },
    async setObserved(id, observed) {
      const at = new Date().toISOString();
      await (await writer()).update(id, (r) => ({ ...r, observed: { ...observed, at } })).catch(ignoreGone);
    },
    async remove(id) {
      await (await writer()).remove(id).catch(ignoreGone);
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      view?.stop();
      await nc?.close().catch(() => undefined);
    },
  };
};
