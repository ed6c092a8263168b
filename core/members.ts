/** Reading a node's roles from its Serf tags. Pure; malformed tags never throw. */
import { ROLE_NAMES, type RoleName } from '../roles/types.js';

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
