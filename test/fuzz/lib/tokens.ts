/**
 * Dictionaries and the string-level mutation every other mutator builds on. Dictionaries live as
 * data in `test/fuzz/dict/*.json`; targets add what only code knows (action names, versions).
 */
import { readFileSync } from 'node:fs';
import type { Rng } from './rng.js';

/** What a target adds to the common tokens. */
export interface Dictionary {
  /** Tokens for targets, header values and bodies (path segments, actions, parameter names, …). */
  readonly tokens: readonly string[];
  /** Header names worth adding, duplicating or dropping. */
  readonly headerNames: readonly string[];
}

/**
 * A dictionary file, `test/fuzz/dict/<name>.json`: `{ "tokens": [...], "headerNames": [...] }`.
 * Kept as data so the lists (control characters, lone surrogates and all) stay one per line.
 */
export function loadDictionary(name: string): Dictionary {
  const file = new URL(`../dict/${name}.json`, import.meta.url);
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<Dictionary>;
  return { tokens: parsed.tokens ?? [], headerNames: parsed.headerNames ?? [] };
}

/** Tokens every target gets: traversal, encodings, separators, unicode, numbers, framing. */
export const COMMON_TOKENS: readonly string[] = loadDictionary('common').tokens;

const LONG_UNITS = ['A', '%', '/', '.', 'é', '%41', '../', '\\', '0', '[', '{"a":'];

/** A long string: bounded sizes around the limits that matter (node's 16 KiB header limit, 64 KiB). */
export function longString(rng: Rng): string {
  const unit = rng.pick(LONG_UNITS);
  const length = rng.pick([257, 1025, 4097, 8193, 17_000, 70_000]);
  return unit.repeat(Math.ceil(length / unit.length));
}

/** A dictionary token (the target's or a common one), now and then a long string. */
export function token(rng: Rng, dict: Dictionary): string {
  if (rng.chance(0.04)) return longString(rng);
  return rng.chance(0.5) ? rng.pick(dict.tokens) : rng.pick(COMMON_TOKENS);
}

const randomChar = (rng: Rng): string => String.fromCharCode(rng.chance(0.7) ? rng.between(0x20, 0x7e) : rng.int(256));

/** One mutation of a string (a target, a header value, a form value). */
export function mutateString(rng: Rng, s: string, dict: Dictionary): string {
  const at = rng.int(s.length + 1);
  const len = 1 + rng.int(Math.max(1, Math.min(32, s.length - at)));
  switch (rng.int(9)) {
    case 0:
      return s.slice(0, at) + randomChar(rng) + s.slice(at + 1);
    case 1:
      return s.slice(0, at) + token(rng, dict) + s.slice(at);
    case 2:
      return s.slice(0, at) + s.slice(at + len);
    case 3:
      return s.slice(0, at + len) + s.slice(at, at + len) + s.slice(at + len);
    case 4:
      return s.slice(0, at) + token(rng, dict) + s.slice(at + len);
    case 5:
      return s.slice(0, at);
    case 6:
      return s.slice(0, at) + s.slice(at, at + len).toUpperCase() + s.slice(at + len);
    case 7:
      return token(rng, dict);
    default:
      return (
        s.slice(0, at) +
        s
          .slice(at, at + len)
          .toLowerCase()
          .split('')
          .reverse()
          .join('') +
        s.slice(at + len)
      );
  }
}

// A token that cannot throw in encodeURIComponent (lone surrogates do).
export function safeToken(rng: Rng, dict: Dictionary): string {
  return token(rng, dict).replace(/[\ud800-\udfff]/g, '\ufffd');
}
