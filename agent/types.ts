/** What the agent shows of itself to its handlers (`handlers/`). */
import type { RoleStatus } from '../roles/types.js';
import type { Verdict } from './dispatch/signatures.js';

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
  /** What trust looks like from here (the `trust` section of the status answer). */
  trust?(): TrustStatus;
  /** This node's certificate (issue 20; the `tls` section of the status answer), absent before any attempt. */
  tls?(): TlsStatus | undefined;
  /** What this node made of signed envelope `id` of event `name` (`mammatus.verdict`). */
  verdict?(name: string, id: string): Verdict | undefined;
}

/** The `tls` section of a status answer: the node certificate's expiry, next renewal and last failure. */
export interface TlsStatus {
  readonly not_after: string | null;
  readonly renew_at: string | null;
  readonly last_error: string | null;
  /** Certificates this agent obtained since it started (first issue and renewals). */
  readonly issued?: number;
}

/** The `trust` section of a status answer. */
export interface TrustStatus {
  /** The roles this node's credentials admit it with; absent when it holds none. */
  readonly admitted?: readonly string[];
  /** What weakens the node's trust (Serf gossip not encrypted, no RPC auth key, no credentials). */
  readonly errors: readonly string[];
}
