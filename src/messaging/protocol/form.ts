/**
 * Query protocol parameters: decoding `application/x-www-form-urlencoded` text (POST bodies and GET
 * query strings alike) and reading the indexed names AWS uses for lists, maps and structures,
 * e.g. `AttributeName.1`, `Attribute.1.Name`, `SendMessageBatchRequestEntry.2.MessageAttribute.1.Value.DataType`,
 * `Attributes.entry.1.key`, `PublishBatchRequestEntries.member.1.Id`.
 */
import { commonError } from '../errors.js';

/** Decoded parameters by name. */
export type Params = ReadonlyMap<string, string>;

/**
 * Decodes form text: `+` is a space (awscli sends spaces that way, JS sends `%20`), `%XX` are UTF-8
 * bytes. A later duplicate name replaces an earlier one.
 * @throws MessagingError `MalformedQueryString` for broken escapes or invalid UTF-8.
 */
export function parseForm(text: string): Map<string, string> {
  const params = new Map<string, string>();
  if (text === '') return params;
  for (const pair of text.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = decode(eq < 0 ? pair : pair.slice(0, eq));
    params.set(name, eq < 0 ? '' : decode(pair.slice(eq + 1)));
  }
  return params;
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    throw commonError('MalformedQueryString', 'The query string contains a syntax error or an invalid character encoding.');
  }
}

/** Merges query-string and body parameters; the body wins on a clash. */
export function mergeParams(...sources: readonly Params[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const source of sources) for (const [k, v] of source) out.set(k, v);
  return out;
}

const INDEX = /^(\d{1,4})(?:\.(.+))?$/;

/**
 * The values of `<prefix>.N`, ordered by N (gaps are tolerated: the numbers only order).
 * `indexedValues(p, 'AttributeName')` reads `AttributeName.1=All&AttributeName.2=Policy`.
 */
export function indexedValues(params: Params, prefix: string): string[] {
  const found: [number, string][] = [];
  for (const [name, value] of params) {
    if (!name.startsWith(`${prefix}.`)) continue;
    const m = INDEX.exec(name.slice(prefix.length + 1));
    if (m && m[2] === undefined) found.push([Number(m[1]), value]);
  }
  return found.sort((a, b) => a[0] - b[0]).map(([, v]) => v);
}

/**
 * The sub-parameters of each `<prefix>.N.<rest>`, ordered by N, with `<prefix>.N.` removed:
 * `indexedGroups(p, 'Attribute')` turns `Attribute.1.Name=a&Attribute.1.Value=b` into `[{Name: a, Value: b}]`.
 */
export function indexedGroups(params: Params, prefix: string): Params[] {
  const groups = new Map<number, Map<string, string>>();
  for (const [name, value] of params) {
    if (!name.startsWith(`${prefix}.`)) continue;
    const m = INDEX.exec(name.slice(prefix.length + 1));
    if (!m || m[2] === undefined) continue;
    const n = Number(m[1]);
    let group = groups.get(n);
    if (!group) groups.set(n, (group = new Map<string, string>()));
    group.set(m[2], value);
  }
  return [...groups.entries()].sort((a, b) => a[0] - b[0]).map(([, g]) => g);
}

/** The parameters under `<prefix>.`, with the prefix removed (`Value.DataType` → `DataType`). */
export function subParams(params: Params, prefix: string): Params {
  const out = new Map<string, string>();
  for (const [name, value] of params) if (name.startsWith(`${prefix}.`)) out.set(name.slice(prefix.length + 1), value);
  return out;
}
