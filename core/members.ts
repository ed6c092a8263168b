/**
 * What a Serf member's tags say: its roles (`role`, comma-separated) and whether it runs an agent
 * (`mammatus`, the agent's version). Pure; malformed tags never throw.
 */
import type { Member } from './contracts.js';

/** The four role names a node's `role` tag may carry. */
export const ROLE_NAMES = ['gateway', 'compute', 'storage', 'controller'] as const;

/** One of the known role names. */
export type RoleName = (typeof ROLE_NAMES)[number];

/** Tag the agent sets to its version once it is ready. */
export const AGENT_TAG = 'mammatus';

/** Tag naming the node's roles. */
export const ROLE_TAG = 'role';

/** The roles a `role` tag names, and the names it carries that are not roles. */
export interface ParsedRoles {
  /** Known roles, in the canonical order of ROLE_NAMES, without duplicates. */
  readonly roles: RoleName[];
  /** Unknown names, as written (trimmed), in tag order. */
  readonly unknown: string[];
}

/** Parses the comma-separated `role` tag; absent or empty means no role. */
export function parseRoleTag(tag: string | undefined): ParsedRoles {
  const names = (tag ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const known = new Set<RoleName>();
  const unknown: string[] = [];
  for (const n of names) {
    if ((ROLE_NAMES as readonly string[]).includes(n)) known.add(n as RoleName);
    else if (!unknown.includes(n)) unknown.push(n);
  }
  return { roles: ROLE_NAMES.filter((r) => known.has(r)), unknown };
}

/** True when the member's `role` tag names `role` (what it asks to be, not what it may be: `actsAs`). */
export function hasRole(member: Member, role: RoleName): boolean {
  return member.tags[ROLE_TAG] !== undefined && parseRoleTag(member.tags[ROLE_TAG]).roles.includes(role);
}

/**
 * True when the member is to be treated as a `role` node: its tag names the role and, when trust
 * was checked (`Member.trusted`), its admission includes it. A member tagged controller without
 * controller credentials gets no route, no registry traffic, no metadata requests.
 */
export function actsAs(member: Member, role: RoleName): boolean {
  return hasRole(member, role) && (member.trusted === undefined || member.trusted.includes(role));
}

/** The roles `member` asks for in its tag and proves (`actsAs`), sorted and comma-separated. */
export function provenRoles(member: Member): string {
  return parseRoleTag(member.tags[ROLE_TAG])
    .roles.filter((r) => actsAs(member, r))
    .sort()
    .join(',');
}

/** The alive members that act as `role` (`actsAs`), sorted by name. */
export function aliveWithRole(members: readonly Member[], role: RoleName): Member[] {
  return members.filter((m) => m.status === 'alive' && actsAs(m, role)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
