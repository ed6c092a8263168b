/**
 * Structure-aware body mutations: Query forms (pairs duplicated, dropped, renamed, re-indexed,
 * spliced, a second `Action=`) and JSON (type confusion, unknown and `__proto__` keys, bounded deep
 * nesting, duplicate keys). Every choice comes from the seeded `Rng`.
 */
import type { Rng } from './rng.js';
import { longString, mutateString, safeToken, token, type Dictionary } from './tokens.js';

/** One mutation of a form body or query string: pairs duplicated, dropped, renamed, re-valued, spliced. */
export function mutateForm(rng: Rng, form: string, dict: Dictionary, other: string): string {
  const pairs = form.split('&');
  const i = rng.int(pairs.length);
  const pair = pairs[i] ?? '';
  const eq = pair.indexOf('=');
  const name = eq < 0 ? pair : pair.slice(0, eq);
  const value = eq < 0 ? '' : pair.slice(eq + 1);
  const enc = (s: string) => (rng.chance(0.7) ? encodeURIComponent(s) : s);
  switch (rng.int(8)) {
    case 0:
      pairs.splice(rng.int(pairs.length + 1), 0, pair);
      break;
    case 1:
      pairs.splice(i, 1);
      break;
    case 2:
      pairs[i] = `${name}=${enc(safeToken(rng, dict))}`;
      break;
    case 3:
      pairs[i] =
        `${name.replace(/\.\d+(\.|$)/, (_m, tail: string) => `.${rng.pick(['0', '2', '-1', '10', '11', '99999', '00001', 'x'])}${tail}`)}=${value}`;
      break;
    case 4:
      pairs.splice(rng.int(pairs.length + 1), 0, `${enc(rng.pick(dict.tokens))}=${enc(safeToken(rng, dict))}`);
      break;
    case 5: {
      const others = other.split('&');
      pairs.splice(rng.int(pairs.length + 1), 0, ...others.slice(rng.int(others.length)));
      break;
    }
    case 6:
      pairs.splice(rng.int(pairs.length + 1), 0, `Action=${rng.pick(dict.tokens)}`);
      break;
    default:
      pairs[i] = `${name}=${mutateString(rng, value, dict)}`;
  }
  return pairs.join('&');
}

/** Values that are the wrong JSON type for almost any field. */
function confusing(rng: Rng, dict: Dictionary): unknown {
  switch (rng.int(14)) {
    case 0:
      return null;
    case 1:
      return rng.pick([0, -1, 1.5, 1e308, -1e308, 2 ** 53 + 2, 4294967296, -0]);
    case 2:
      return rng.chance(0.5);
    case 3:
      return '';
    case 4:
      return [];
    case 5:
      return {};
    case 6:
      return [token(rng, dict)];
    case 7:
      return { [rng.pick(dict.tokens)]: token(rng, dict) };
    case 8: {
      // Deep nesting, bounded: deep enough to hurt a recursive walker, not the test process.
      let v: unknown = 1;
      const depth = rng.pick([16, 128, 1024, 4000]);
      for (let d = 0; d < depth; d++) v = rng.chance(0.5) ? [v] : { a: v };
      return v;
    }
    case 9:
      return longString(rng);
    case 10:
      return { __proto__: { polluted: true }, constructor: { prototype: { polluted: true } } };
    default:
      return token(rng, dict);
  }
}

/** One structural mutation of a JSON body; text that does not parse is mutated as bytes. */
export function mutateJson(rng: Rng, text: string, dict: Dictionary): string {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return mutateString(rng, text, dict);
  }
  // Collect (parent, key) slots, bounded.
  const slots: [Record<string, unknown> | unknown[], string | number][] = [];
  const walk = (v: unknown, depth: number): void => {
    if (depth > 8 || slots.length > 200 || v === null || typeof v !== 'object') return;
    for (const [k, child] of Object.entries(v)) {
      slots.push([v as Record<string, unknown>, Array.isArray(v) ? Number(k) : k]);
      walk(child, depth + 1);
    }
  };
  walk(doc, 0);
  if (slots.length === 0 || rng.chance(0.05)) return JSON.stringify(confusing(rng, dict));
  const [parent, key] = rng.pick(slots);
  const rec = parent as Record<string | number, unknown>;
  switch (rng.int(5)) {
    case 0:
      delete rec[key];
      break;
    case 1:
      if (!Array.isArray(parent)) rec[rng.pick(dict.tokens)] = confusing(rng, dict);
      else parent.push(confusing(rng, dict));
      break;
    case 2:
      if (typeof rec[key] === 'string') rec[key] = mutateString(rng, rec[key], dict).replace(/[\ud800-\udfff]/g, '\ufffd');
      else rec[key] = confusing(rng, dict);
      break;
    default:
      rec[key] = confusing(rng, dict);
  }
  const out = JSON.stringify(doc);
  // Sometimes a duplicated key: JSON.stringify cannot write one, text surgery can.
  if (rng.chance(0.1) && out.startsWith('{"')) return out.replace(/^\{("[^"]*":[^,}]*)/, '{$1,$1');
  return out;
}
