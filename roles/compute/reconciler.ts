/**
 * Carries out {@link planCompute} on one node, one pass at a time: reads LXD's instances (with
 * state), plans against the registry's snapshot, runs each action through the LXD client and
 * writes back to the registry. One failed action is logged and reported and does not stop the
 * others; the next pass (a registry change, or the poll) tries again. Passes never overlap: a
 * request during a pass makes one more pass after it.
 */
import type { Logger } from '../../agent/types.js';
import type { ComputeConfig } from './config.js';
import { LxdConflictError, LxdNotFoundError, type LxdClient } from './lxd-client.js';
import { planCompute, type ComputeAction, type ComputeProblem } from './plan.js';
import type { ComputeRegistry } from './registry-link.js';

/** What the last pass found and did; the role's status detail. */
export interface ComputeReport {
  readonly at?: Date;
  /** Actions done, as `<kind> <name>`. */
  readonly done: readonly string[];
  /** Actions that failed, as `<kind> <name>: <message>`. */
  readonly failed: readonly string[];
  readonly unmanaged: readonly ComputeProblem[];
  readonly problems: readonly ComputeProblem[];
  /** Records of this node whose instance runs but has no address in the registry yet. */
  readonly awaitingAddress: number;
}

/** What a reconciler works with. */
export interface ReconcilerDeps {
  readonly lxd: LxdClient;
  readonly registry: ComputeRegistry;
  readonly config: () => ComputeConfig;
  readonly node: () => string;
  readonly log: Logger;
  /** How long a clean stop may take before LXD kills the instance (seconds). */
  readonly stopTimeoutS?: number;
}

const EMPTY: ComputeReport = { done: [], failed: [], unmanaged: [], problems: [], awaitingAddress: 0 };

/** Runs reconcile passes on request, never two at once. */
export class Reconciler {
  private current: Promise<void> | undefined;
  private again = false;
  private last: ComputeReport = EMPTY;
  private reported = '';

  constructor(private readonly deps: ReconcilerDeps) {}

  /** The last pass's report. */
  report(): ComputeReport {
    return this.last;
  }

  /** Asks for a pass; resolves when a pass that started after this call has finished. */
  request(): Promise<void> {
    if (this.current) {
      this.again = true;
      return this.current;
    }
    this.current = (async () => {
      try {
        do {
          this.again = false;
          await this.pass().catch((err: unknown) => {
            this.deps.log.error({ err: (err as Error).message }, 'compute reconcile failed');
            this.last = { ...this.last, at: new Date(), failed: [`reconcile: ${(err as Error).message}`] };
          });
        } while (this.again);
      } finally {
        this.current = undefined;
      }
    })();
    return this.current;
  }

  private async pass(): Promise<void> {
    const { lxd, registry, log } = this.deps;
    const records = registry.snapshot();
    if (!records) return; // not read yet: acting on "no records" would report every instance as unknown
    const plan = planCompute(this.deps.config(), this.deps.node(), records, await lxd.listInstances(true));
    const done: string[] = [];
    const failed: string[] = [];
    const broken = new Set<string>();
    for (const action of plan.actions) {
      // A create that failed leaves nothing to start: one error per instance, not two.
      if (broken.has(action.name)) continue;
      try {
        await this.act(action);
        done.push(`${action.kind} ${action.name}`);
      } catch (err) {
        broken.add(action.name);
        failed.push(`${action.kind} ${action.name}: ${(err as Error).message}`);
        log.error({ instance: action.name, action: action.kind, err: (err as Error).message }, 'compute action failed');
      }
    }
    for (const u of plan.ipUpdates) {
      try {
        await registry.setIps(u.id, u.ips);
        done.push(`address ${u.name} ${u.ips.join(',')}`);
      } catch (err) {
        failed.push(`address ${u.name}: ${(err as Error).message}`);
      }
    }
    if (done.length) log.info({ done }, 'instances reconciled');
    // Said once per change, not every pass: an unknown container is a fact to notice, not noise.
    const detail = JSON.stringify([plan.unmanaged, plan.problems]);
    if (detail !== this.reported) {
      this.reported = detail;
      if (plan.unmanaged.length) log.warn({ unmanaged: plan.unmanaged }, 'LXD has instances the registry does not know (left alone)');
      if (plan.problems.length) log.warn({ problems: plan.problems }, 'instances of this node that cannot be reconciled');
    }
    const mine = records.filter((r) => r.node === this.deps.node() && r.state === 'running');
    const awaitingAddress = mine.filter((r) => !r.ips.some((ip) => !ip.includes(':')) && !plan.ipUpdates.some((u) => u.id === r.id)).length;
    this.last = { at: new Date(), done, failed, unmanaged: plan.unmanaged, problems: plan.problems, awaitingAddress };
  }

  private async act(a: ComputeAction): Promise<void> {
    const { lxd, registry } = this.deps;
    switch (a.kind) {
      case 'create':
        // A create that LXD finished after our previous pass gave up waiting is done already.
        await lxd.createInstance(a.body).catch(ignore(LxdConflictError));
        return;
      case 'start':
        await lxd.startInstance(a.name).catch(ignore(LxdConflictError));
        return;
      case 'stop':
        await lxd.stopInstance(a.name, { timeout: this.deps.stopTimeoutS ?? 30 });
        return;
      case 'destroy':
        // Deleting throws the data away anyway: no clean shutdown to wait for.
        if (a.running) await lxd.stopInstance(a.name, { force: true, timeout: 1 }).catch(ignore(LxdConflictError));
        await lxd.deleteInstance(a.name).catch(ignore(LxdNotFoundError));
        await registry.remove(a.id);
        return;
      case 'forget':
        await registry.remove(a.id);
        return;
    }
  }
}

function ignore(kind: new (...args: never[]) => Error): (err: unknown) => void {
  return (err) => {
    if (!(err instanceof kind)) throw err;
  };
}
