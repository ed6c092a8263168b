/**
 * Handler filters in Serf's own event-filter grammar (the same one `-event-handler` and the RPC
 * `stream` command use): `user:NAME`, `query:NAME`, `user`, `query`, `member-join`, … , `*`.
 * Names match exactly; Serf does not trim, so neither do we.
 */
import { MEMBER_EVENT_TYPES, type MemberEventType } from '../../core/contracts.js';

/** A parsed filter item. `name` is absent when the item matches every user event or query. */
export type EventFilter =
  { readonly type: 'user' | 'query'; readonly name?: string } | { readonly type: MemberEventType } | { readonly type: '*' };

// Serf accepts any non-empty name; we refuse whitespace and commas, which can never round-trip
// through a comma-separated stream filter.
const NAME = /^[^\s,]+$/;

/** Parses one filter item; throws `RangeError` naming the bad text. */
export function parseFilter(text: string): EventFilter {
  if (text === '*') return { type: '*' };
  if ((MEMBER_EVENT_TYPES as readonly string[]).includes(text)) return { type: text as MemberEventType };
  if (text === 'user' || text === 'query') return { type: text };
  const m = /^(user|query):(.*)$/.exec(text);
  if (m) {
    const name = m[2];
    if (!NAME.test(name)) throw new RangeError(`invalid event filter "${text}": the name must be non-empty, without spaces or commas`);
    if (m[1] === 'query' && name.startsWith('_serf_'))
      throw new RangeError(`invalid event filter "${text}": _serf_ names are internal to Serf`);
    return { type: m[1] as 'user' | 'query', name };
  }
  throw new RangeError(`invalid event filter "${text}": expected *, user[:NAME], query[:NAME] or one of ${MEMBER_EVENT_TYPES.join(', ')}`);
}

/** Parses Serf's comma-separated list form. */
export function parseFilterList(text: string): EventFilter[] {
  return text === '' ? [{ type: '*' }] : text.split(',').map(parseFilter);
}

/** The canonical text of a filter, as Serf's stream command accepts it. */
export function formatFilter(f: EventFilter): string {
  return 'name' in f && f.name !== undefined ? `${f.type}:${f.name}` : f.type;
}

/** Does `filter` select an event of this type (and name, for user events and queries)? */
export function filterMatches(filter: EventFilter, type: string, name?: string): boolean {
  if (filter.type === '*') return true;
  if (filter.type !== type) return false;
  return !('name' in filter) || filter.name === undefined || filter.name === name;
}

/** The smallest Serf stream filter covering every given filter (sorted, duplicates removed). */
export function streamFilterFor(filters: readonly EventFilter[]): string {
  if (filters.some((f) => f.type === '*')) return '*';
  const wide = new Set(filters.filter((f) => !('name' in f) || f.name === undefined).map((f) => f.type));
  const items = new Set<string>();
  for (const f of filters) {
    if ('name' in f && f.name !== undefined && wide.has(f.type)) continue;
    items.add(formatFilter(f));
  }
  return [...items].sort().join(',');
}
