/**
 * The agent's own metrics (docs/monitoring.md, "Every agent"), read from its state just before each
 * exposition: its version and roles, each role's state, the members its Serf knows, free space
 * where it keeps state, and the node certificate's expiry. Events, queries and applies are counted
 * where they happen (agent/dispatch/metrics.ts, roles/apply-metrics.ts).
 */
import { statfs } from 'node:fs/promises';
import type { Member } from '../core/contracts.js';
import { gauge, onCollect } from '../core/metrics.js';
import { provenRoles } from '../core/members.js';
import type { AgentView } from './types.js';

const info = gauge<'version' | 'roles'>({
  name: 'mammatus_agent_info',
  help: "The agent's version and the roles it runs (1).",
  labelNames: ['version', 'roles'],
});
const roleState = gauge<'role' | 'state'>({
  name: 'mammatus_role_state',
  help: "Each role's state on this node: 1 for the current one (ok, error, pending).",
  labelNames: ['role', 'state'],
});
const member = gauge<'member' | 'status' | 'roles'>({
  name: 'mammatus_serf_member',
  help: "The members this node's Serf knows, by status and the roles they prove (1).",
  labelNames: ['member', 'status', 'roles'],
});
const fsAvail = gauge<'path'>({
  name: 'mammatus_filesystem_avail_bytes',
  help: 'Space free for unprivileged use on the filesystem holding path.',
  labelNames: ['path'],
});
const fsSize = gauge<'path'>({
  name: 'mammatus_filesystem_size_bytes',
  help: 'Size of the filesystem holding path.',
  labelNames: ['path'],
});
const certNotAfter = gauge({
  name: 'mammatus_tls_cert_not_after_seconds',
  help: 'When the node certificate expires (Unix time); absent without one.',
});

/** What the collectors read. */
export interface AgentMetricsSource {
  readonly view: AgentView;
  /** The members Serf knows (this node's view). */
  members(): readonly Member[];
  /** The state directory (its filesystem is watched beside `/`). */
  stateDir(): string;
}

/** The states a role can be in: each is exported, the current one as 1. */
const STATES = ['ok', 'error', 'pending'] as const;

/** Sets the agent's gauges from `source` (synchronous parts). */
export function collectAgentState(source: AgentMetricsSource): void {
  const statuses = source.view.roleStatus();
  info.reset();
  info.set({ version: source.view.version, roles: [...source.view.roles()].sort().join(',') }, 1);
  roleState.reset();
  for (const [role, status] of Object.entries(statuses))
    for (const state of STATES) roleState.set({ role, state }, status.state === state ? 1 : 0);
  member.reset();
  // The roles each member proves (its trust tag), not the ones its tag merely asks for.
  for (const m of source.members()) member.set({ member: m.name, status: m.status, roles: provenRoles(m) }, 1);
  // Absent without a certificate (0 would read as "expired in 1970" and fire the expiry alert).
  const notAfter = Date.parse(source.view.tls?.()?.not_after ?? '');
  if (Number.isFinite(notAfter)) certNotAfter.set(Math.floor(notAfter / 1000));
  else certNotAfter.remove();
}

/** Sets the filesystem gauges of `/` and the state directory (one statfs each). */
export async function collectFilesystems(paths: readonly string[]): Promise<void> {
  for (const path of new Set(paths)) {
    const s = await statfs(path).catch(() => undefined);
    if (!s) {
      fsAvail.remove({ path });
      fsSize.remove({ path });
      continue;
    }
    fsAvail.set({ path }, s.bavail * s.bsize);
    fsSize.set({ path }, s.blocks * s.bsize);
  }
}

/** Registers the agent's collectors; returns how to remove them. */
export function registerAgentCollectors(source: AgentMetricsSource): () => void {
  const removers = [
    onCollect('agent', () => collectAgentState(source)),
    onCollect('filesystems', () => collectFilesystems(['/', source.stateDir()])),
  ];
  return () => removers.forEach((remove) => remove());
}
