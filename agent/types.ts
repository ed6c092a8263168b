/** What the agent shows of itself to its handlers (`handlers/`). */
import type { RoleStatus } from '../roles/types.js';

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
