/**
 * SNS subscription filter policies (pure). Scope `MessageAttributes` compares String, Number and
 * String.Array attributes (Binary never matches); scope `MessageBody` walks the JSON body, nested.
 * AND across keys, OR within a key's list, `$or` at any level; operators: exact string/number,
 * `prefix`, `suffix`, `equals-ignore-case`, `anything-but` (values, `prefix`, `suffix`),
 * `numeric` (=, <, <=, >, >= and ranges), `exists`, `cidr` (IPv4).
 */
import { snsError } from '../errors.js';
import type { SnsMessageAttributes } from '../sns-engine.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
/** A checked filter policy (the parsed JSON). */
export type FilterPolicy = { readonly [key: string]: Json };

const MAX_KEYS = 5;
const MAX_COMBINATIONS = 150;
const OPERATORS = new Set(['prefix', 'suffix', 'equals-ignore-case', 'anything-but', 'numeric', 'exists', 'cidr']);

function invalid(reason: string): Error {
  return snsError('InvalidParameter', `Invalid parameter: FilterPolicy: ${reason}`);
}

function isObject(v: Json | undefined): v is { [k: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses and checks a FilterPolicy attribute value; `bodyScope` allows nested keys. */
export function parseFilterPolicy(text: string, bodyScope: boolean): FilterPolicy {
  let parsed: Json;
  try {
    parsed = JSON.parse(text) as Json;
  } catch {
    throw invalid('failed to parse JSON.');
  }
  if (!isObject(parsed)) throw invalid('Filter policy must be a JSON object.');
  let leaves = 0;
  let combinations = 1;
  const check = (policy: { [k: string]: Json }, depth: number) => {
    for (const [key, value] of Object.entries(policy)) {
      if (key === '$or') {
        if (!Array.isArray(value) || value.length < 2 || !value.every(isObject))
          throw invalid('$or must be a list of at least two objects.');
        for (const sub of value) check(sub, depth);
        continue;
      }
      if (isObject(value)) {
        if (!bodyScope) throw invalid(`"${key}" must be a list; nested keys need FilterPolicyScope MessageBody.`);
        check(value, depth + 1);
        continue;
      }
      if (!Array.isArray(value) || value.length === 0) throw invalid(`"${key}" must be a non-empty list.`);
      for (const cond of value) checkCondition(key, cond);
      leaves += 1;
      combinations *= value.length;
    }
  };
  check(parsed, 0);
  if (leaves > MAX_KEYS && !bodyScope) throw invalid(`Filter policy can not have more than ${MAX_KEYS} keys.`);
  if (combinations > MAX_COMBINATIONS) throw invalid(`Filter policy is too complex (more than ${MAX_COMBINATIONS} combinations).`);
  return parsed;
}

function checkCondition(key: string, cond: Json): void {
  if (cond === null || typeof cond === 'string' || typeof cond === 'number' || typeof cond === 'boolean') return;
  if (!isObject(cond)) throw invalid(`"${key}": nested lists are not allowed.`);
  const ops = Object.keys(cond);
  if (ops.length !== 1 || !OPERATORS.has(ops[0])) throw invalid(`"${key}": unrecognized operator ${ops.join(', ')}.`);
  const op = ops[0];
  const arg = cond[op];
  if (op === 'numeric') parseNumeric(key, arg);
  if (op === 'exists' && typeof arg !== 'boolean') throw invalid(`"${key}": exists must be true or false.`);
  if ((op === 'prefix' || op === 'suffix' || op === 'equals-ignore-case') && typeof arg !== 'string')
    throw invalid(`"${key}": ${op} needs a string.`);
  if (op === 'cidr' && (typeof arg !== 'string' || !parseCidr(arg))) throw invalid(`"${key}": malformed CIDR.`);
}

type Cmp = readonly [string, number];
function parseNumeric(key: string, arg: Json): Cmp[] {
  if (!Array.isArray(arg) || arg.length === 0 || arg.length % 2 !== 0 || arg.length > 4)
    throw invalid(`"${key}": numeric needs one or two comparisons.`);
  const out: Cmp[] = [];
  for (let i = 0; i < arg.length; i += 2) {
    const op = arg[i];
    const n = arg[i + 1];
    if (typeof op !== 'string' || !['=', '<', '<=', '>', '>='].includes(op) || typeof n !== 'number' || Math.abs(n) > 1e9)
      throw invalid(`"${key}": bad numeric comparison.`);
    out.push([op, n]);
  }
  return out;
}

function parseCidr(text: string): { base: number; mask: number } | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text);
  if (!m) return undefined;
  const parts = m.slice(1, 5).map(Number);
  const bits = Number(m[5]);
  if (parts.some((p) => p > 255) || bits > 32) return undefined;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return { base: (ipv4(parts) & mask) >>> 0, mask };
}

function ipv4(parts: readonly number[]): number {
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

/** One value as the matcher sees it: a string or a number (or null/boolean from a JSON body). */
type Value = string | number | boolean | null;

function matchesCondition(cond: Json, value: Value): boolean {
  if (!isObject(cond))
    return cond === value || (typeof cond === 'number' && typeof value === 'string' && value !== '' && Number(value) === cond);
  const [op, arg] = Object.entries(cond)[0];
  const s = typeof value === 'string' ? value : undefined;
  switch (op) {
    case 'prefix':
      return s !== undefined && s.startsWith(arg as string);
    case 'suffix':
      return s !== undefined && s.endsWith(arg as string);
    case 'equals-ignore-case':
      return s !== undefined && s.toLowerCase() === (arg as string).toLowerCase();
    case 'numeric': {
      const n = typeof value === 'number' ? value : s !== undefined && s.trim() !== '' ? Number(s) : NaN;
      if (Number.isNaN(n)) return false;
      return parseNumeric('', arg).every(([o, x]) =>
        o === '=' ? n === x : o === '<' ? n < x : o === '<=' ? n <= x : o === '>' ? n > x : n >= x,
      );
    }
    case 'anything-but': {
      if (isObject(arg)) return !matchesCondition(arg, value);
      const list = Array.isArray(arg) ? arg : [arg];
      return !list.some((c) => matchesCondition(c, value));
    }
    case 'cidr': {
      const net = parseCidr(arg as string);
      const m = s === undefined ? null : /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
      return Boolean(net && m && (ipv4(m.slice(1).map(Number)) & net.mask) >>> 0 === net.base);
    }
    default:
      return false;
  }
}

/** Does a key's condition list match `values` (absent = undefined; several = an array's elements)? */
function matchesKey(conditions: Json[], values: Value[] | undefined): boolean {
  return conditions.some((cond) => {
    if (isObject(cond) && 'exists' in cond) return cond.exists === (values !== undefined);
    return values !== undefined && values.some((v) => matchesCondition(cond, v));
  });
}

function matchesAttributes(policy: { [k: string]: Json }, attributes: SnsMessageAttributes): boolean {
  return Object.entries(policy).every(([key, value]) => {
    if (key === '$or') return (value as { [k: string]: Json }[]).some((sub) => matchesAttributes(sub, attributes));
    return matchesKey(value as Json[], attributeValues(attributes, key));
  });
}

// Body scope: the values of `key` in `objects` (array values contribute each scalar element).
function bodyValues(objects: readonly { [k: string]: Json }[], key: string): Value[] | undefined {
  const vals: Value[] = [];
  let present = false;
  for (const o of objects) {
    if (!(key in o)) continue;
    present = true;
    const v = o[key];
    for (const x of Array.isArray(v) ? v : [v]) if (!isObject(x) && !Array.isArray(x)) vals.push(x);
  }
  return present ? vals : undefined;
}

function matchesBody(policy: { [k: string]: Json }, node: Json): boolean {
  const objects = (Array.isArray(node) ? node : [node]).filter(isObject);
  return Object.entries(policy).every(([key, value]) => {
    if (key === '$or') return (value as { [k: string]: Json }[]).some((sub) => matchesBody(sub, node));
    if (isObject(value)) {
      const children = objects.filter((o) => key in o).flatMap((o) => (Array.isArray(o[key]) ? o[key] : [o[key] as Json]));
      return children.some((c) => isObject(c) && matchesBody(value, c));
    }
    return matchesKey(value as Json[], bodyValues(objects, key));
  });
}

function attributeValues(attributes: SnsMessageAttributes, key: string): Value[] | undefined {
  const a = attributes[key];
  if (!a) return undefined;
  const type = a.DataType.split('.')[0];
  // SNS compares String, String.Array and Number attributes only: a Binary one counts as absent.
  if (type === 'Binary') return undefined;
  if (a.StringValue === undefined) return [];
  if (a.DataType === 'String.Array') {
    try {
      const list = JSON.parse(a.StringValue) as Json;
      return Array.isArray(list) ? list.filter((x): x is Value => !isObject(x) && !Array.isArray(x)) : [];
    } catch {
      return [];
    }
  }
  return type === 'Number' ? [Number(a.StringValue)] : [a.StringValue];
}

/**
 * Does a message pass `policy`? Scope `MessageBody` needs a JSON object body: anything else does
 * not match (AWS drops such messages for body-scoped subscriptions too).
 */
export function matchesFilterPolicy(
  policy: FilterPolicy,
  scope: string | undefined,
  attributes: SnsMessageAttributes,
  body: string,
): boolean {
  if (scope === 'MessageBody') {
    let parsed: Json;
    try {
      parsed = JSON.parse(body) as Json;
    } catch {
      return false;
    }
    return isObject(parsed) && matchesBody(policy, parsed);
  }
  return matchesAttributes(policy, attributes);
}
