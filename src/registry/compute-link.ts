/**
 * The compute role's link to the instance registry: the watched registry with the fields a compute
 * node acts on (node, state, tags), and the writes the role makes (the instance's real addresses,
 * its observed status; removing a deleted instance's record), sent to the controllers' write API
 * (node-writes.ts), which accepts them only for records placed on this node. While the registry is
 * unreachable the last snapshot stays: a compute node never stops or deletes anything because the
 * controllers went away.
 */
import type { ComputeRegistry, Logger } from '../../core/contracts.js';
import type { ConnectNatsOptions } from '../../core/nats.js';
import { requestNodeWrite, type NodeWrite } from './node-writes.js';
import { watchRegistry } from './watched.js';

/** Who this compute node is on NATS. */
export interface ComputeIdentity {
  /** Its Serf name: the records placed on it carry it in `node`. */
  readonly node: string;
  readonly credentials?: ConnectNatsOptions['credentials'];
}

/**
 * A burst of registry changes (a launch registers the record, then sets it running, milliseconds
 * apart) costs one reconcile. Short: it is on every launch's critical path (bench/compute.ts).
 */
const DEBOUNCE_MS = 50;

/** Opens the link (the composition root binds `identity` and gives the role the rest). */
export function openComputeRegistry(
  servers: readonly string[],
  onChange: () => void,
  log: Logger,
  identity: ComputeIdentity,
): ComputeRegistry {
  const watched = watchRegistry({
    servers,
    credentials: identity.credentials,
    clientName: 'mammatus-compute',
    debounceMs: DEBOUNCE_MS,
    project: (records) => records.sort((a, b) => a.name.localeCompare(b.name)),
    onChange,
    log,
  });
  const write = async (w: NodeWrite): Promise<void> => {
    const nc = await watched.connected;
    if (!nc) throw new Error('the instance registry is not connected');
    await requestNodeWrite(nc, identity.node, w);
  };
  return {
    snapshot: () => watched.snapshot(),
    setIps: (id, ips) => write({ op: 'ips', id, ips: [...ips] }),
    setObserved: (id, observed) => write({ op: 'observed', id, observed }),
    remove: (id) => write({ op: 'remove', id }),
    stop: () => watched.stop(),
  };
}
