/**
 * A watched copy of the instance registry over NATS, shared by the roles that follow it (the
 * gateway's feed, the compute role's link): one connection to the controllers, a view kept current
 * by the registry's watch, and a snapshot taken after a quiet period so a burst of changes costs
 * one reconcile. While the registry is unreachable the last snapshot stays: an outage of the
 * controllers never takes anything away from the LAN or from a compute node.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../../core/contracts.js';
import type { InstanceRecord } from '../../core/instance-record.js';
import { connectNats, type ConnectNatsOptions } from '../../core/nats.js';
import { RegistryView } from './view.js';

/** What to watch and what to keep of it. */
export interface WatchedRegistrySpec<T> {
  readonly servers: readonly string[];
  /** The node's NATS credentials. */
  readonly credentials?: ConnectNatsOptions['credentials'];
  /** The NATS client name, as the controllers' connection list shows it. */
  readonly clientName: string;
  /** Quiet period after a change before the snapshot is taken and `onChange` runs. */
  readonly debounceMs: number;
  /** The part of the records a role keeps. */
  readonly project: (records: InstanceRecord[]) => T;
  readonly onChange: () => void;
  readonly log: Logger;
}

/** A running watch. */
export interface WatchedRegistry<T> {
  /** The last snapshot; undefined until the registry was first read. */
  snapshot(): T | undefined;
  /** The NATS connection once made; undefined when it could not be made (logged). */
  readonly connected: Promise<NatsConnection | undefined>;
  stop(): Promise<void>;
}

/** Connects (retrying while the controllers are away) and starts watching. */
export function watchRegistry<T>(spec: WatchedRegistrySpec<T>): WatchedRegistry<T> {
  let nc: NatsConnection | undefined;
  let view: RegistryView | undefined;
  let last: T | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const changed = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (stopped || !view?.available) return;
      last = spec.project(view.records());
      spec.onChange();
    }, spec.debounceMs);
  };
  const connected = connectNats(spec.servers, { name: spec.clientName, persistent: true, credentials: spec.credentials }).then(
    (c) => {
      if (stopped) {
        void c.close().catch(() => undefined);
        return undefined;
      }
      nc = c;
      view = RegistryView.start(c, spec.log, undefined, changed);
      return c;
    },
    (err: unknown) => {
      spec.log.error({ err }, 'cannot reach the instance registry');
      return undefined;
    },
  );
  return {
    snapshot: () => last,
    connected,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      view?.stop();
      await nc?.close().catch(() => undefined);
    },
  };
}
