/**
 * Builds the desired state of one role's apply from what the scheduler reads at that moment: the
 * members, the role's config, and what the role follows itself (instances, balancers, the roster).
 *
 * A role's balancers are the one input read through an async hook that may fail (a copy on disk, a
 * feed resolving records): a failure there is the role's, never the scheduler's. It is logged, and
 * the role renders its last good balancers, so one bad read neither fails this role's apply nor
 * stops the scheduler's queue (and so the other roles' applies). A hook that does not answer within
 * {@link BALANCERS_TIMEOUT_MS} counts as failed.
 */
import type { Logger, Member } from '../core/contracts.js';
import { errorMessage } from '../core/errors.js';
import type { BalancerContext, BalancerSet, DesiredState, Role } from './types.js';
import type { SchedulerDeps } from './scheduler.js';

/** How long a role's `balancers` hook may take. */
export const BALANCERS_TIMEOUT_MS = 10_000;

/** What a role's desired state is read from; one per scheduler. */
export class DesiredInputs {
  /** Each role's last balancers that were read without failing. */
  private readonly lastBalancers = new Map<string, BalancerSet | undefined>();

  constructor(private readonly deps: SchedulerDeps) {}

  /** The desired state of `name`'s next apply; `reconcile` asks for another apply of it. */
  async desired(name: string, role: Role, reconcile: (reason: string) => void): Promise<DesiredState> {
    const instances = role.instances?.();
    const admitted = role.admitted?.();
    const credentials = this.deps.credentials?.();
    const members = [...this.deps.members()].sort((a, b) => a.name.localeCompare(b.name));
    const config = this.deps.roleConfig(name);
    const node = this.deps.node();
    const log = this.deps.log.child({ component: `role.${name}` });
    const set = await this.balancers(name, role, members, { node, config, files: this.deps.files, log, reconcile });
    return {
      node,
      config,
      members,
      ...(instances ? { instances } : {}),
      ...(set ? { balancers: set.balancers } : {}),
      ...(set?.leftOut?.length ? { balancersLeftOut: set.leftOut } : {}),
      ...(credentials ? { credentials } : {}),
      ...(admitted ? { admitted } : {}),
    };
  }

  /** A role left this node: its balancers are not kept. */
  forget(name: string): void {
    this.lastBalancers.delete(name);
  }

  /** The role's balancers, or its last good ones when the hook fails (see the header). */
  private async balancers(name: string, role: Role, members: readonly Member[], from: BalancerContext): Promise<BalancerSet | undefined> {
    if (!role.balancers) return undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer in ${BALANCERS_TIMEOUT_MS} ms`)), BALANCERS_TIMEOUT_MS);
      });
      const set = await Promise.race([Promise.resolve().then(() => role.balancers!(members, from)), timeout]);
      this.lastBalancers.set(name, set);
      return set;
    } catch (err) {
      const last = this.lastBalancers.get(name);
      logFailure(this.deps.log, name, err, last);
      return last;
    } finally {
      clearTimeout(timer);
    }
  }
}

function logFailure(log: Logger, role: string, err: unknown, last: BalancerSet | undefined): void {
  const keeping = last ? `keeping the last ${last.balancers.length} read` : 'none read yet';
  log.error({ role, err: errorMessage(err) }, `could not read the role's load balancers; ${keeping}`);
}
