/**
 * Carries out {@link planCompute} on one node, one pass at a time: reads LXD's instances (with
 * state), plans against the registry's snapshot, runs the actions through the LXD client and
 * writes back to the registry (real addresses, and what each instance is really doing). One failed
 * action is logged, reported and written to its record, and does not stop the others; the next
 * pass (a registry change, or the poll) tries again. Passes never overlap: a request during a pass
 * makes one more pass after it.
 *
 * Instances are worked on concurrently (each instance's own actions stay in order): LXD spends
 * seconds unpacking an image per container, and ten launches one after another would make the
 * tenth wait for the nine before it.
 */
import type { Logger } from '../../core/contracts.js';
import { MAX_OBSERVED_ERROR, type InstanceRecord } from '../../core/instance-record.js';
import type { ComputeConfig } from './config.js';
import { LxdConflictError, LxdNotFoundError, type LxdClient } from '../../src/lxd/client.js';
import { planCompute, type ComputeAction, type ComputeProblem } from './plan.js';
import type { ComputeRegistry, ObservedWrite } from '../../core/contracts.js';
import { errorMessage } from '../../core/errors.js';
import type { ObservedRow } from './metrics.js';

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
  /** Containers LXD has on this node (managed or not), and how many of them run. */
  readonly instances: number;
  readonly running: number;
  /** Records of this node that failed an action or cannot be acted on. */
  readonly failing: number;
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
  /** How many instances are worked on at once (default 4). */
  readonly concurrency?: number;
  /** Told each pass's statuses as written (the role's metrics); must not throw. */
  readonly observed?: (rows: readonly ObservedRow[]) => void;
}

const EMPTY: ComputeReport = {
  done: [],
  failed: [],
  unmanaged: [],
  problems: [],
  awaitingAddress: 0,
  instances: 0,
  running: 0,
  failing: 0,
};
/** Passes a request may run back to back because the previous one changed LXD (bounds a flapping instance). */
const MAX_FOLLOW_UPS = 2;

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
        let followUps = 0;
        do {
          this.again = false;
          const acted = await this.pass().catch((err: unknown) => {
            this.deps.log.error({ err }, 'compute reconcile failed');
            this.last = { ...this.last, at: new Date(), failed: [`reconcile: ${errorMessage(err)}`] };
            return false;
          });
          // What an action changed (a container now running) is written back by a pass that reads it.
          if (acted && followUps++ < MAX_FOLLOW_UPS) this.again = true;
        } while (this.again);
      } finally {
        this.current = undefined;
      }
    })();
    return this.current;
  }

  /** One pass; true when it changed something in LXD. */
  private async pass(): Promise<boolean> {
    const { lxd, registry, log } = this.deps;
    const records = registry.snapshot();
    if (!records) return false; // not read yet: acting on "no records" would report every instance as unknown
    const instances = await lxd.listInstances(true);
    const plan = planCompute(this.deps.config(), this.deps.node(), records, instances);
    const done: string[] = [];
    const failed: string[] = [];
    const errors = new Map<string, string>();
    let acted = 0;
    await forEachLimited(groupByInstance(plan.actions), this.deps.concurrency ?? 4, async (chain) => {
      for (const action of chain) {
        try {
          await this.act(action);
          acted++;
          done.push(`${action.kind} ${action.name}`);
        } catch (err) {
          // A create that failed leaves nothing to start: one error per instance, not two.
          const message = errorMessage(err);
          failed.push(`${action.kind} ${action.name}: ${message}`);
          errors.set(action.id, `${action.kind}: ${message}`);
          log.error({ instance: action.name, action: action.kind, err: message }, 'compute action failed');
          return;
        }
      }
    });
    for (const u of plan.ipUpdates) {
      try {
        await registry.setIps(u.id, u.ips);
        done.push(`address ${u.name} ${u.ips.join(',')}`);
      } catch (err) {
        failed.push(`address ${u.name}: ${errorMessage(err)}`);
      }
    }
    await this.writeObserved(records, plan, errors, failed);
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
    const running = instances.filter((i) => i.status === 'Running').length;
    const failing = new Set([...errors.keys(), ...plan.problems.map((p) => p.name)]).size;
    this.last = {
      at: new Date(),
      done,
      failed,
      unmanaged: plan.unmanaged,
      problems: plan.problems,
      awaitingAddress,
      instances: instances.length,
      running,
      failing,
    };
    return acted > 0;
  }

  /** Writes each record's live status where it changed: what LXD shows, or why the node cannot act. */
  private async writeObserved(
    records: readonly InstanceRecord[],
    plan: ReturnType<typeof planCompute>,
    errors: Map<string, string>,
    failed: string[],
  ): Promise<void> {
    const byId = new Map(records.map((r) => [r.id, r]));
    const problems = new Map(plan.problems.map((p) => [p.name, p.reason]));
    const rows: ObservedRow[] = [];
    for (const o of plan.observed) {
      const reason = errors.get(o.id) ?? problems.get(o.name);
      const next: ObservedWrite = reason ? { status: 'error', error: reason.slice(0, MAX_OBSERVED_ERROR) } : { status: o.status };
      const now = byId.get(o.id)?.observed;
      rows.push({ id: o.id, status: next.status, before: now?.status, createdAt: byId.get(o.id)?.created_at });
      if (now && now.status === next.status && now.error === next.error) continue;
      try {
        await this.deps.registry.setObserved(o.id, next);
      } catch (err) {
        failed.push(`status ${o.name}: ${errorMessage(err)}`);
      }
    }
    this.deps.observed?.(rows);
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

/** The actions of each instance, in plan order. */
function groupByInstance(actions: readonly ComputeAction[]): ComputeAction[][] {
  const chains = new Map<string, ComputeAction[]>();
  for (const a of actions) chains.set(a.id, [...(chains.get(a.id) ?? []), a]);
  return [...chains.values()];
}

/** Runs `fn` over `items`, at most `limit` at once. */
async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function ignore(kind: new (...args: never[]) => Error): (err: unknown) => void {
  return (err) => {
    if (!(err instanceof kind)) throw err;
  };
}
