/**
 * Types shared across layers. Roles and handlers import only from here (and `roles/types.ts`),
 * never from the Serf client, so the layers keep pointing inward.
 */
import type { Logger as PinoLogger } from 'pino';

/** The logger every component receives; a pino child logger in production and tests. */
export type Logger = PinoLogger;

/** Serf member status as reported by the RPC `members` command. */
export type MemberStatus = 'alive' | 'leaving' | 'left' | 'failed' | 'none';

/** One cluster member, decoded from Serf's member record into plain values. */
export interface Member {
  readonly name: string;
  /** Printable IP address (IPv4 dotted quad, or IPv6). */
  readonly addr: string;
  readonly port: number;
  readonly tags: Readonly<Record<string, string>>;
  readonly status: MemberStatus;
}

/** Serf's member event types, which are also the dispatcher's filter names for them. */
export const MEMBER_EVENT_TYPES = [
  'member-join',
  'member-leave',
  'member-failed',
  'member-update',
  'member-reap',
] as const;
/** One of Serf's member event types. */
export type MemberEventType = (typeof MEMBER_EVENT_TYPES)[number];

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

/** What built-in handlers may see and do on the local agent. */
export interface AgentView {
  readonly version: string;
  /** This node's Serf name. */
  node(): string;
  uptimeSeconds(): number;
  /** Active roles, in canonical order. */
  roles(): readonly string[];
  /** Per-role state, including unknown names from the `role` tag. */
  roleStatus(): Record<string, RoleStatus>;
  /** Re-applies one role, or every active role when `role` is absent. */
  reconcile(role?: string): Promise<void>;
  /** A role's settings (`roles.<name>` of the current config; `{}` when absent). */
  roleConfig(role: string): Record<string, unknown>;
  /** What an active role reports about its work, or undefined (inactive, or nothing to say). */
  roleFacts(role: string): Readonly<Record<string, unknown>> | undefined;
}
