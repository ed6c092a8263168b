/**
 * The contract every role implements. A role turns desired state into files (pure `render`), and
 * the framework in `roles/apply.ts` writes only what changed, validates, reloads, probes health and
 * rolls back. Roles know nothing of Serf: they see a membership snapshot, never the wire.
 */
import type { Logger, Member, MemberEventType } from '../core/contracts.js';
import type { FileOps, InstanceSummary, Run } from '../core/contracts.js';
import type { AdmittedNode, NodeCredentials } from '../core/trust.js';
import type { LbLeftOut, ResolvedBalancer } from '../core/lb-record.js';

/** A role's state on this node, as `mammatus.status` reports it. */
export interface RoleStatus {
  readonly state: 'ok' | 'error' | 'pending';
  /** When the last apply finished. */
  readonly appliedAt?: Date;
  /** Short error of the last apply (or why the role cannot run). */
  readonly error?: string;
  /** The role's one-line summary of its work (e.g. the compute role's instance counts). */
  readonly detail?: string;
}

/** What a role renders from: this node, its role settings, and the cluster as Serf sees it. */
export interface DesiredState<C = Record<string, unknown>> {
  /** This node's Serf name. */
  readonly node: string;
  /** The role's own settings: `roles.<name>` from the merged agent config (`{}` when absent). */
  readonly config: C;
  /** Every known member, sorted by name. */
  readonly members: readonly Member[];
  /**
   * Registered instances (from the instance registry), for roles that follow it (`Role.instances`);
   * absent when the role does not, or has no snapshot yet.
   */
  readonly instances?: readonly InstanceSummary[];
  /**
   * The registry's load balancers with their targets resolved against `members`, for roles that
   * serve them (`Role.balancers`); absent when the role does not, or has not read them yet.
   */
  readonly balancers?: readonly ResolvedBalancer[];
  /** Balancers the role's `balancers` hook left out (not in `balancers`), with why, for its report. */
  readonly balancersLeftOut?: readonly LbLeftOut[];
  /** This node's credentials (core/trust.ts), when it was admitted. */
  readonly credentials?: NodeCredentials;
  /** The admitted nodes, for roles that follow the roster (`Role.admitted`), once read. */
  readonly admitted?: readonly AdmittedNode[];
}

/** One file a role owns. Paths are absolute; `mode` defaults to 0o644. */
export interface RenderedFile {
  readonly path: string;
  readonly content: string;
  readonly mode?: number;
}

/** What a role's hooks receive while applying. */
export interface ApplyContext<C = Record<string, unknown>> {
  readonly run: Run;
  readonly files: FileOps;
  readonly log: Logger;
  /** Paths whose content changed in this apply (written, or removed). */
  readonly changed: readonly string[];
  /**
   * What a changed path held before this apply (`undefined`: it did not exist, or did not change).
   * Hooks diff with it: the gateway releases the DHCP leases of reservations it removed.
   */
  prior(path: string): string | undefined;
  /** The desired state this apply rendered from (hooks find their settings here). */
  readonly desired: DesiredState<C>;
}

/** What `Role.start` receives: the apply context without the change set, and a way to ask for an apply. */
export type StartContext<C = Record<string, unknown>> = Omit<ApplyContext<C>, 'changed' | 'prior'> & {
  readonly reconcile?: (reason: string) => void;
};

/** A role plugin. Only `name` and `render` are required; every hook is optional. */
export interface Role<C = Record<string, unknown>> {
  readonly name: string;
  /** Member event types after which this role reconciles (membership is part of its input). */
  readonly watches?: readonly MemberEventType[];
  /** Pure: desired state to files. Same input, same output (sorted, no clock, no I/O). */
  render(desired: DesiredState<C>): RenderedFile[];
  /** Checks the written files (e.g. `dnsmasq --test`); throwing rolls the files back. */
  validate?(ctx: ApplyContext<C>): Promise<void>;
  /** Makes running services pick up the changed files; throwing rolls back. */
  reload?(ctx: ApplyContext<C>): Promise<void>;
  /** Probes that the node works after a reload; throwing rolls back and reloads the old files. */
  health?(ctx: ApplyContext<C>): Promise<void>;
  /**
   * Starts long-running services the role hosts in-process (after the first apply). `reconcile`
   * asks for another apply of this role (an input it follows itself changed, e.g. the registry).
   */
  start?(ctx: StartContext<C>): Promise<void>;
  /** The instances this role renders from (its feed's snapshot); the framework puts them in `desired`. */
  instances?(): readonly InstanceSummary[] | undefined;
  /**
   * The balancers this role renders from (its feed's snapshot), resolved against `members`, the
   * members of the same desired state; put in `desired` likewise (`leftOut` as `balancersLeftOut`).
   * `from` lets a role that has no snapshot yet (an agent just started) read back a copy it
   * rendered earlier, and open its feed before its first good apply (`reconcile` asks for another
   * apply when the feed changes). A hook that throws keeps the role's last good balancers
   * (roles/balancer-input.ts).
   */
  balancers?(members: readonly Member[], from: BalancerContext<C>): Promise<BalancerSet | undefined> | BalancerSet | undefined;
  /** The admitted nodes this role renders from (its roster feed's snapshot); put in `desired` likewise. */
  admitted?(): readonly AdmittedNode[] | undefined;
  /**
   * The agent's config was reloaded (after the reconcile that followed). For what a role reads
   * beyond its own section, which no render sees: the controller restarts hosted services whose
   * section changed. Rejecting is logged.
   */
  configReloaded?(): Promise<void>;
  /**
   * What the role knows about its work beyond the apply state (read by queries; cheap, no I/O).
   * `last` is the desired state of the role's last apply (undefined before the first).
   */
  facts?(last: DesiredState<C> | undefined): RoleFacts | undefined;
  /**
   * Serf queries the role answers while it is active on this node (the agent registers them once
   * and stays silent for a role the node does not run). Keys are query names (`mammatus.<verb>`).
   */
  readonly queries?: Readonly<Record<string, RoleQuery<C>>>;
  /** Stops what `start` started; called when the role is removed from the node or on shutdown. */
  stop?(): Promise<void>;
}

/** A role as the scheduler gets it: the role, or a loader of its module (a node loads only what it runs). */
export type RoleSource = Role | (() => Promise<Role>);

/**
 * Answers one Serf query for a role: `payload` as sent, `last` the desired state of the role's
 * last apply. The answer is sent as compact JSON (a string as it is); `undefined` stays silent.
 */
export type RoleQuery<C = Record<string, unknown>> = (payload: Buffer, last: DesiredState<C> | undefined) => unknown;

/**
 * A role's report about itself. `summary` is one short line that `mammatus.status` shows next to
 * the role's state; the other keys are the role's own (the compute role's capacity, for one).
 */
export interface RoleFacts {
  readonly summary?: string;
  /**
   * Serf tags the role wants on its node (the compute role's `iscsi`, its initiator IQN); the agent
   * publishes those whose value differs. Never `role`, `trust` or `mammatus`: the agent's own.
   */
  readonly tags?: Readonly<Record<string, string>>;
  readonly [key: string]: unknown;
}

/** What `Role.balancers` reads besides the members. */
export interface BalancerContext<C = Record<string, unknown>> {
  readonly node: string;
  readonly config: C;
  readonly files: FileOps;
  readonly log: Logger;
  readonly reconcile: (reason: string) => void;
}

/** What `Role.balancers` returns: the balancers to render, and those it leaves out with why. */
export interface BalancerSet {
  readonly balancers: readonly ResolvedBalancer[];
  readonly leftOut?: readonly LbLeftOut[];
}
