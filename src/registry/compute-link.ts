/**
 * The compute role's link to the instance registry: the watched registry with the fields a compute
 * node acts on (node, state, tags), and the writes the role makes (the instance's real addresses,
 * its observed status; removing a deleted instance's record). While the registry is unreachable
 * the last snapshot stays: a compute node never stops or deletes anything because the controllers
 * went away.
 */
import type { ComputeRegistryFactory } from '../../core/contracts.js';
import { InstanceNotFoundError, InstanceRegistry } from './registry.js';
import { watchRegistry } from './watched.js';

/**
 * A burst of registry changes (a launch registers the record, then sets it running, milliseconds
 * apart) costs one reconcile. Short: it is on every launch's critical path (bench/compute.ts).
 */
const DEBOUNCE_MS = 50;

/** The factory the composition root gives the compute role. */
export const openComputeRegistry: ComputeRegistryFactory = (servers, onChange, log) => {
  const watched = watchRegistry({
    servers,
    clientName: 'mammatus-compute',
    debounceMs: DEBOUNCE_MS,
    project: (records) => records.sort((a, b) => a.name.localeCompare(b.name)),
    onChange,
    log,
  });
  let registry: Promise<InstanceRegistry> | undefined;
  const writer = async (): Promise<InstanceRegistry> => {
    const nc = await watched.connected;
    if (!nc) throw new Error('the instance registry is not connected');
    return (registry ??= InstanceRegistry.open(nc));
  };
  const ignoreGone = (err: unknown) => {
    if (!(err instanceof InstanceNotFoundError)) throw err;
  };
  return {
    snapshot: () => watched.snapshot(),
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
    stop: () => watched.stop(),
  };
};
