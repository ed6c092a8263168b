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
}
