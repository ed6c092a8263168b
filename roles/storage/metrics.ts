/**
 * The storage role's metrics (docs/monitoring.md, "Storage"): the volumes of this node by what its
 * last pass made of them, the space given to them and the backing store's size. All from what the
 * role already knows (its facts and last pass), so a scrape reads no disk and runs no command; the
 * space is refreshed by the role's passes (statfs, or the thin pool's `lvs`).
 */
import { gauge, onCollect } from '../../core/metrics.js';
import type { ServedState } from './serve.js';

const allocated = gauge({
  name: 'mammatus_storage_allocated_bytes',
  help: 'The sizes of the volumes recorded for this node (sparse files and thin volumes: more than they use).',
});
const capacity = gauge({
  name: 'mammatus_storage_capacity_bytes',
  help: "The size of the backing store: roles.storage.path's filesystem, or the thin pool.",
});

const volumes = gauge<'state'>({
  name: 'mammatus_storage_volumes',
  help: "Volumes of this node by the state of the role's last pass: serving, error, absent (deleted, target gone).",
  labelNames: ['state'],
});
/** The states every exposition carries (0 when none), so an alert on `error` has a series to watch. */
const STATES: readonly ServedState['state'][] = ['serving', 'error', 'absent'];

/** How many volumes are in each state (every state of {@link STATES}, 0 when none). */
export function volumesByState(observed: ReadonlyMap<string, ServedState>): Map<string, number> {
  const counts = new Map<string, number>(STATES.map((s) => [s, 0]));
  for (const s of observed.values()) counts.set(s.state, (counts.get(s.state) ?? 0) + 1);
  return counts;
}

/** What the collector reads from the role. */
export interface StorageMetricsSource {
  facts(): { readonly allocated_bytes: number; readonly total_bytes: number };
  observed(): ReadonlyMap<string, ServedState>;
}

/** The storage role's handle on its metrics: started with the role, stopped with it. */
export class StorageMetrics {
  private remove: (() => void) | undefined;

  /** Registers the collector (once). */
  start(role: StorageMetricsSource): void {
    this.remove ??= onCollect('storage', () => {
      const facts = role.facts();
      allocated.set(facts.allocated_bytes);
      capacity.set(facts.total_bytes);
      volumes.reset();
      for (const [state, n] of volumesByState(role.observed())) volumes.set({ state }, n);
    });
  }

  /** Removes the collector and the series. */
  stop(): void {
    this.remove?.();
    this.remove = undefined;
    volumes.reset();
    // Removed, not reset: a reset gauge without labels reads 0, which is not "no storage here".
    allocated.remove();
    capacity.remove();
  }
}
