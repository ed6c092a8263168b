/**
 * The storage role's link to the volume registry, as the role needs it: src/registry/volume-feed.ts
 * implements it (NATS), the tests fake it. Defined here so the role depends on no service module.
 */
import type { Logger } from '../../core/contracts.js';
import type { VolumeRecord } from '../../core/volume-record.js';
import type { ServedState } from './serve.js';

/** What a storage node reports for one of its volumes (the record's `observed`). */
export interface VolumeObserved extends ServedState {
  readonly at: string;
}

/** The open link to the volume registry. */
export interface VolumeFeedLink {
  close(): Promise<void>;
  report(name: string, observed: VolumeObserved): Promise<void>;
}

/**
 * Opens the volume registry (src/registry/volume-feed.ts implements it): calls `onChange` with
 * every record whenever one changes, and writes what this node observes.
 */
export type VolumeFeed = (
  servers: readonly string[],
  node: string,
  onChange: (volumes: readonly VolumeRecord[]) => void,
  log: Logger,
) => Promise<VolumeFeedLink>;
