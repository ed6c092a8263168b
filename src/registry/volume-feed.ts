/**
 * A storage node's link to the volume registry: the volumes it serves (`node` is itself), kept
 * current, and its reports of what it serves. It reads through the controllers' volume API
 * (volume-writes.ts), which gives a node only its own volumes: it lists them at start, after every
 * change the controllers announce on `mammatus.volumes.changed.<node>` (debounced, so a burst
 * costs one reconcile), after a reconnect, and every `RESYNC_MS` in case an announcement was lost.
 * While the controllers are unreachable the last list stays: a storage node never stops serving a
 * volume because the controllers went away.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../../core/contracts.js';
import { connectNats } from '../../core/nats.js';
import { VOLUME_CHANGED_SUBJECT, type NodeCredentials } from '../../core/trust.js';
import type { VolumeObserved, VolumeRecord } from '../../core/volume-record.js';
import { requestVolumes } from './volume-writes.js';

/** A burst of changes (create, then the first report) costs one reconcile. */
const DEBOUNCE_MS = 50;
/** A full re-read this often, should an announcement have been lost. */
const RESYNC_MS = 30_000;

/** An open feed. */
export interface VolumeFeed {
  close(): Promise<void>;
  /**
   * Records what this node serves for volume `name` (its `observed`; `at` is set by the registry).
   * `absent` for a `deleting` volume removes its record: send it once the target and backing are gone.
   * Throws when the controllers cannot be reached or refuse (a volume not served by this node).
   */
  report(name: string, observed: VolumeObserved): Promise<void>;
}

/**
 * Opens the feed for storage node `node`; `onChange` gets its volumes (sorted by name) after the
 * first read and after every change. Resolves once connected (retrying while the controllers are
 * away happens in the background: NATS reconnects forever).
 */
export function openVolumeFeed(
  servers: readonly string[],
  node: string,
  onChange: (volumes: readonly VolumeRecord[]) => void,
  log: Logger,
  credentials?: NodeCredentials,
): Promise<VolumeFeed> {
  return followVolumes({ servers, node, clientName: 'mammatus-storage', select: (v) => v.node === node, onChange, log, credentials });
}

/**
 * The same for a compute node: the volumes attached to instances on `node` (`attached.node`), for
 * it to log in to. Its `report` is refused (only a volume's storage node reports).
 */
export function openAttachedVolumeFeed(
  servers: readonly string[],
  node: string,
  onChange: (volumes: readonly VolumeRecord[]) => void,
  log: Logger,
  credentials?: NodeCredentials,
): Promise<VolumeFeed> {
  return followVolumes({
    servers,
    node,
    clientName: 'mammatus-compute-volumes',
    select: (v) => v.attached?.node === node,
    onChange,
    log,
    credentials,
  });
}

interface FollowSpec {
  readonly servers: readonly string[];
  readonly node: string;
  readonly clientName: string;
  readonly select: (v: VolumeRecord) => boolean;
  readonly onChange: (volumes: readonly VolumeRecord[]) => void;
  readonly log: Logger;
  readonly credentials?: NodeCredentials;
}

async function followVolumes(spec: FollowSpec): Promise<VolumeFeed> {
  const { node, onChange, log } = spec;
  const nc: NatsConnection = await connectNats(spec.servers, { name: spec.clientName, persistent: true, credentials: spec.credentials });
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let last: string | undefined;
  let running: Promise<void> | undefined;
  let again = false;

  const read = async (): Promise<void> => {
    try {
      const answer = await requestVolumes(nc, node, { op: 'list' });
      const mine = (answer.volumes ?? []).filter(spec.select).sort((a, b) => a.name.localeCompare(b.name));
      const text = JSON.stringify(mine);
      if (closed || text === last) return;
      last = text;
      onChange(mine);
    } catch (err) {
      if (!closed) log.warn({ err }, 'cannot read the volume registry; keeping the last list');
    }
  };
  // One read at a time; a change during a read asks for one more after it.
  const refresh = (): void => {
    if (closed) return;
    if (running) {
      again = true;
      return;
    }
    running = read().finally(() => {
      running = undefined;
      if (again) {
        again = false;
        refresh();
      }
    });
  };
  const soon = (): void => {
    clearTimeout(timer);
    timer = setTimeout(refresh, DEBOUNCE_MS);
  };

  const sub = nc.subscribe(`${VOLUME_CHANGED_SUBJECT}.${node}`, { callback: () => soon() });
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'reconnect') soon();
  })().catch(() => undefined);
  const resync = setInterval(refresh, RESYNC_MS);
  resync.unref();
  refresh();

  return {
    async close() {
      closed = true;
      clearTimeout(timer);
      clearInterval(resync);
      sub.unsubscribe();
      await running?.catch(() => undefined);
      await nc.close().catch(() => undefined);
    },
    async report(name, observed) {
      const { at: _at, ...sent } = observed;
      await requestVolumes(nc, node, { op: 'observed', name, observed: sent });
    },
  };
}
