/**
 * Schedules the node's role applies: each role at start, on `mammatus.reconcile`, on the
 * membership changes it watches and on config change; starts and stops roles when the node's
 * `role` tag changes. Applies are serialized, and a request for a role already waiting in line is
 * merged into that one, so a burst of events costs one apply. A role's module is loaded the first
 * time the node takes the role (a node loads only what it runs), and the Serf queries it declares
 * are answered while it runs.
 */
import { detach, errorMessage } from '../core/errors.js';
import { observeApply } from './apply-metrics.js';
import { applyRole } from './apply.js';
import { DesiredInputs } from './desired-inputs.js';
import { OwnedFiles } from './owned-files.js';
import type { FileOps, Logger, Member, MemberEventType, Run } from '../core/contracts.js';
import type { NodeCredentials } from '../core/trust.js';
import type { DesiredState, Role, RoleFacts, RoleSource, RoleStatus } from './types.js';

/** Where a role's queries are registered while it runs (the agent's dispatcher). */
export interface QueryPort {
  add(name: string, answer: (payload: Buffer) => unknown): void;
  remove(name: string): void;
}

/** Inputs the scheduler reads at each reconcile (they change under it). */
export interface SchedulerDeps {
  /** Every role this agent can run, by the name the `role` tag uses; a function loads it on first use. */
  readonly roles: Readonly<Record<string, RoleSource>>;
  readonly queries?: QueryPort;
  readonly run: Run;
  readonly files: FileOps;
  readonly log: Logger;
  /** The state directory (a getter: a reload may change it). */
  readonly stateDir: () => string;
  readonly node: () => string;
  readonly members: () => readonly Member[];
  readonly roleConfig: (role: string) => Record<string, unknown>;
  /** This node's credentials, when it was admitted. */
  readonly credentials?: () => NodeCredentials | undefined;
  readonly now?: () => Date;
}

/** Owns the set of active roles and their last apply results. */
export class RoleScheduler {
  /** Roles loaded so far (a role is loaded when the node first takes it). */
  private readonly loaded = new Map<string, Role>();
  private active: string[] = [];
  private unknown: string[] = [];
  /** Roles the tag asks for that this node may not take, each with why. */
  private refused: Record<string, string> = {};
  private readonly status = new Map<string, RoleStatus>();
  /** The desired state of each role's last apply, for its facts and queries. */
  private readonly lastDesired = new Map<string, DesiredState>();
  private readonly waiting = new Set<string>();
  /** Roles whose `start` ran (and whose `stop` is therefore due). */
  private readonly started = new Set<string>();
  private chain: Promise<void> = Promise.resolve();
  private readonly inputs: DesiredInputs;
  /** The files each role's last apply owned (roles-owned.json). */
  private readonly owned: OwnedFiles;

  constructor(private readonly deps: SchedulerDeps) {
    this.inputs = new DesiredInputs(deps);
    this.owned = new OwnedFiles(deps);
  }

  /** The role `name`, if it has been loaded. */
  private role(name: string): Role | undefined {
    return this.loaded.get(name);
  }

  /** Loads a role's module (once); a role that cannot be loaded is reported, not fatal. */
  private async load(name: string): Promise<Role | undefined> {
    const known = this.loaded.get(name);
    if (known) return known;
    const source = this.deps.roles[name];
    if (!source) return undefined;
    try {
      const role = typeof source === 'function' ? await source() : source;
      this.loaded.set(name, role);
      return role;
    } catch (err) {
      this.deps.log.error({ err, role: name }, 'could not load the role');
      this.status.set(name, { state: 'error', error: `load: ${errorMessage(err)}` });
      return undefined;
    }
  }

  /** The roles this node runs now. */
  roles(): readonly string[] {
    return this.active;
  }

  /** Per-role state, including unknown names from the tag (reported as errors). */
  statuses(): Record<string, RoleStatus> {
    const out: Record<string, RoleStatus> = {};
    for (const r of this.active) {
      const status = this.status.get(r) ?? { state: 'pending' };
      const detail = this.facts(r)?.summary;
      out[r] = typeof detail === 'string' && detail ? { ...status, detail } : status;
    }
    for (const u of this.unknown) out[u] = { state: 'error', error: 'unknown role' };
    for (const [r, why] of Object.entries(this.refused)) out[r] = { state: 'error', error: why };
    return out;
  }

  /** What an active, started role reports about its work; a failing report counts as none. */
  facts(name: string): RoleFacts | undefined {
    if (!this.active.includes(name)) return undefined;
    try {
      return this.role(name)?.facts?.(this.lastDesired.get(name));
    } catch {
      return undefined;
    }
  }

  /** The Serf tags the active roles want on this node (their `facts().tags`, merged by role name). */
  tags(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const r of [...this.active].sort()) Object.assign(out, this.facts(r)?.tags ?? {});
    return out;
  }

  /**
   * Answers a query the role declares, if the role runs here (undefined, silence, otherwise). A
   * handler that throws is the dispatcher's to report.
   */
  answer(name: string, query: string, payload: Buffer): unknown {
    if (!this.active.includes(name)) return undefined;
    return this.role(name)?.queries?.[query]?.(payload, this.lastDesired.get(name));
  }

  /**
   * Switches to a new role set: stops roles no longer named, loads, applies and starts new ones.
   * `refused` are roles the tag asks for that the node may not take (reported with why, not run).
   */
  setRoles(next: readonly string[], unknown: readonly string[] = [], refused: Readonly<Record<string, string>> = {}): Promise<void> {
    return this.enqueue(async () => {
      this.unknown = [...unknown];
      this.refused = { ...refused };
      if (unknown.length) this.deps.log.error({ unknown }, 'role tag names unknown roles; running the others');
      if (Object.keys(refused).length)
        this.deps.log.error({ refused }, 'role tag asks for roles this node may not take; running the others');
      const wanted = next.filter((r) => this.deps.roles[r]);
      const removed = this.active.filter((r) => !wanted.includes(r));
      const added = wanted.filter((r) => !this.active.includes(r));
      for (const r of removed) {
        this.deps.log.info({ role: r }, 'role removed from this node; stopping it');
        this.answerQueries(r, false);
        await this.stopRole(r);
        await this.owned.remove(r, this.role(r));
        this.status.delete(r);
        this.lastDesired.delete(r);
        this.inputs.forget(r);
      }
      this.active = wanted;
      for (const r of added) {
        this.deps.log.info({ role: r }, 'role added to this node');
        this.status.set(r, { state: 'pending' });
        if (!(await this.load(r))) continue;
        this.answerQueries(r, true);
        await this.applyNow(r);
      }
    });
  }

  /** Registers (or removes) the Serf queries a role declares. */
  private answerQueries(name: string, on: boolean): void {
    for (const query of Object.keys(this.role(name)?.queries ?? {})) {
      if (on) this.deps.queries?.add(query, (payload) => this.answer(name, query, payload));
      else this.deps.queries?.remove(query);
    }
  }

  /** Re-applies the named roles (all active ones when `names` is absent). */
  reconcile(names?: readonly string[], reason = 'request'): Promise<void> {
    const targets = (names ?? this.active).filter((r) => this.active.includes(r) && !this.waiting.has(r));
    // Nothing new to queue: do not make the caller wait for whatever apply is running.
    if (targets.length === 0) return Promise.resolve();
    for (const r of targets) this.waiting.add(r);
    this.deps.log.debug({ roles: targets, reason }, 'reconcile queued');
    return this.enqueue(async () => {
      for (const r of targets) {
        this.waiting.delete(r);
        if (this.active.includes(r) && this.loaded.has(r)) await this.applyNow(r);
      }
    });
  }

  /** Tells the started roles that the agent config was reloaded (queued after any apply). */
  configReloaded(): Promise<void> {
    return this.enqueue(async () => {
      for (const name of this.active) {
        const role = this.role(name);
        if (!this.started.has(name) || !role?.configReloaded) continue;
        try {
          await role.configReloaded();
        } catch (err) {
          this.deps.log.error({ err, role: name }, 'role failed to take the reloaded config');
        }
      }
    });
  }

  /** Reconciles the active roles that watch this member event type. */
  onMemberEvent(type: MemberEventType): Promise<void> {
    const watching = this.active.filter((r) => this.role(r)?.watches?.includes(type));
    return watching.length ? this.reconcile(watching, type) : Promise.resolve();
  }

  /** True when an active role renders from membership (and so wants membership changes fast). */
  hasMembershipWatchers(): boolean {
    return this.active.some((r) => (this.role(r)?.watches?.length ?? 0) > 0);
  }

  /**
   * Membership changed outside a member event (a reconnect to serf, where events may have been
   * missed, or a poll that saw it first): every watching role re-applies.
   */
  onMembershipResync(reason = 'serf reconnect'): Promise<void> {
    const watching = this.active.filter((r) => (this.role(r)?.watches?.length ?? 0) > 0);
    return watching.length ? this.reconcile(watching, reason) : Promise.resolve();
  }

  /** Stops every active role (shutdown). */
  stopAll(): Promise<void> {
    return this.enqueue(async () => {
      for (const r of this.active) await this.stopRole(r);
    });
  }

  private async stopRole(name: string): Promise<void> {
    if (!this.started.delete(name)) return;
    await this.role(name)
      ?.stop?.()
      .catch((err: unknown) => this.deps.log.error({ err, role: name }, 'role stop failed'));
  }

  /** Starts a role's in-process services after its first good apply (which may be a later one). */
  private async startRole(name: string, desired: DesiredState): Promise<void> {
    const role = this.role(name);
    if (!role?.start || this.started.has(name) || this.status.get(name)?.state !== 'ok') return;
    try {
      await role.start({
        run: this.deps.run,
        files: this.deps.files,
        log: this.deps.log.child({ component: `role.${name}` }),
        desired,
        reconcile: this.reconcileLater(name),
      });
      this.started.add(name);
    } catch (err) {
      this.status.set(name, { ...this.status.get(name)!, state: 'error', error: `start: ${errorMessage(err)}` });
    }
  }

  /** Asks for another apply of `name` without waiting (reconcile() never rejects: the queue logs what fails). */
  private reconcileLater(name: string): (reason: string) => void {
    return (reason) => detach(this.reconcile([name], reason), () => undefined);
  }

  private enqueue(job: () => Promise<void>): Promise<void> {
    const next = this.chain.then(job).catch((err: unknown) => this.deps.log.error({ err }, 'role scheduler job failed'));
    this.chain = next;
    return next;
  }

  private async applyNow(name: string): Promise<void> {
    const role = this.role(name)!;
    const previous = await this.owned.of(name);
    const desired = await this.inputs.desired(name, role, this.reconcileLater(name));
    const started = Date.now();
    const report = await applyRole(role, desired, { run: this.deps.run, files: this.deps.files, log: this.deps.log, previous });
    observeApply(report, started);
    this.lastDesired.set(name, desired);
    const at = (this.deps.now ?? (() => new Date()))();
    this.status.set(
      name,
      report.ok ? { state: 'ok', appliedAt: at } : { state: 'error', appliedAt: at, error: report.error ?? 'apply failed' },
    );
    if (report.ok && report.changed.length + report.removed.length > 0) {
      this.deps.log.info({ role: name, changed: report.changed, removed: report.removed }, 'role applied');
    }
    await this.owned.set(name, report.owned);
    await this.startRole(name, desired);
  }
}
