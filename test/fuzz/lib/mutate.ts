/**
 * The request mutators: byte flips, chunk inserts/deletes/duplicates, splices of two corpus
 * entries, dictionary tokens, header mutations (duplicate, missing, oversized, odd casing), framing
 * lies, and the body mutators of `mutate-body.ts`. Every choice comes from the seeded `Rng`.
 */
import type { Rng } from './rng.js';
import type { CorpusEntry, FuzzRequest } from './request.js';
import { mutateForm, mutateJson } from './mutate-body.js';
import { longString, mutateString, token, type Dictionary } from './tokens.js';

export { loadDictionary, mutateString, type Dictionary } from './tokens.js';

/** One mutation of raw bytes (a body, or a whole request on the wire). */
export function mutateBytes(rng: Rng, b: Buffer, dict: Dictionary): Buffer {
  const at = rng.int(b.length + 1);
  const len = 1 + rng.int(Math.max(1, Math.min(64, b.length - at)));
  switch (rng.int(7)) {
    case 0: {
      if (b.length === 0) return Buffer.from([rng.int(256)]);
      const out = Buffer.from(b);
      const i = Math.min(at, b.length - 1);
      out[i] = (out[i] ?? 0) ^ (1 << rng.int(8));
      return out;
    }
    case 1:
      return Buffer.concat([b.subarray(0, at), Buffer.from([rng.int(256)]), b.subarray(at)]);
    case 2:
      return Buffer.concat([b.subarray(0, at), b.subarray(at + len)]);
    case 3:
      return Buffer.concat([b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len)]);
    case 4:
      return Buffer.concat([b.subarray(0, at), Buffer.from(token(rng, dict), 'utf8'), b.subarray(at)]);
    case 5:
      return b.subarray(0, at);
    default:
      return Buffer.concat([b.subarray(0, at), Buffer.from(token(rng, dict), 'utf8'), b.subarray(at + len)]);
  }
}

/** Odd casing of a header name: upper, mixed, or with a trailing space/tab (invalid on the wire). */
function oddCase(rng: Rng, name: string): string {
  switch (rng.int(4)) {
    case 0:
      return name.toUpperCase();
    case 1:
      return name
        .split('')
        .map((c) => (rng.chance(0.5) ? c.toUpperCase() : c))
        .join('');
    case 2:
      return `${name}${rng.pick([' ', '\t', '_', '-'])}`;
    default:
      return name.replace(/-/g, rng.pick(['_', '', '--']));
  }
}

type Headers = (readonly [string, string])[];

/** One header mutation: duplicate, drop, oversize, odd-case, add from the dictionary, mutate a value. */
export function mutateHeaders(rng: Rng, headers: readonly (readonly [string, string])[], dict: Dictionary): Headers {
  const out: Headers = [...headers];
  const i = rng.int(Math.max(1, out.length));
  const h = out[i];
  switch (rng.int(7)) {
    case 0:
      if (h) out.splice(i + rng.int(out.length - i + 1), 0, [h[0], rng.chance(0.5) ? h[1] : token(rng, dict)]);
      break;
    case 1:
      if (h) out.splice(i, 1);
      break;
    case 2:
      if (h) out[i] = [h[0], longString(rng)];
      break;
    case 3:
      if (h) out[i] = [oddCase(rng, h[0]), h[1]];
      break;
    case 4:
    case 5:
      out.splice(rng.int(out.length + 1), 0, [rng.pick(dict.headerNames), token(rng, dict)]);
      break;
    default:
      if (h) out[i] = [h[0], mutateString(rng, h[1], dict)];
  }
  return out;
}

/** How a target's request bodies are structured. */
export type BodyKind = 'form' | 'json' | 'none';

/** What `mutateRequest` may do. */
export interface MutateOptions {
  readonly dict: Dictionary;
  readonly body: BodyKind;
  readonly methods: readonly string[];
  /** Also invent methods (raw sockets only: an injected request must carry a real method). */
  readonly freeMethod?: boolean;
}

/** 1–4 stacked mutations of `req`, drawing splices from `corpus`. */
export function mutateRequest(rng: Rng, req: FuzzRequest, corpus: readonly CorpusEntry[], opts: MutateOptions): FuzzRequest {
  let out: FuzzRequest = req;
  const rounds = rng.between(1, 4);
  for (let r = 0; r < rounds; r++) {
    const other = rng.pick(corpus).request;
    switch (rng.int(10)) {
      case 0:
        out = { ...out, method: !opts.freeMethod || rng.chance(0.8) ? rng.pick(opts.methods) : mutateString(rng, out.method, opts.dict) };
        break;
      case 1:
      case 2:
        out = { ...out, target: mutateTarget(rng, out.target, opts.dict, other.target) };
        break;
      case 3:
      case 4:
        out = { ...out, headers: mutateHeaders(rng, out.headers, opts.dict) };
        break;
      case 5: {
        // Splice: this request's head with the other's tail, or its body.
        const at = rng.int(out.target.length + 1);
        out = rng.chance(0.5)
          ? { ...out, target: out.target.slice(0, at) + other.target.slice(rng.int(other.target.length + 1)) }
          : { ...out, body: other.body };
        break;
      }
      case 6:
        if (rng.chance(0.3)) out = { ...out, rawFraming: true, headers: framingHeaders(rng, out) };
        else out = { ...out, body: mutateBytes(rng, out.body, opts.dict) };
        break;
      default:
        out = { ...out, body: mutateBody(rng, out.body, opts, other.body) };
    }
  }
  return out;
}

function mutateTarget(rng: Rng, target: string, dict: Dictionary, other: string): string {
  const q = target.indexOf('?');
  if (q >= 0 && rng.chance(0.4)) return `${target.slice(0, q)}?${mutateForm(rng, target.slice(q + 1), dict, other.split('?')[1] ?? '')}`;
  if (rng.chance(0.3)) {
    // Segment-level: replace or insert a path segment from the dictionary.
    const segs = (q < 0 ? target : target.slice(0, q)).split('/');
    const i = rng.int(segs.length);
    if (rng.chance(0.5)) segs[i] = rng.pick(dict.tokens);
    else segs.splice(i, 0, token(rng, dict));
    return segs.join('/') + (q < 0 ? '' : target.slice(q));
  }
  return mutateString(rng, target, dict);
}

function mutateBody(rng: Rng, body: Buffer, opts: MutateOptions, other: Buffer): Buffer {
  const text = body.toString('utf8');
  if (opts.body === 'form') return Buffer.from(mutateForm(rng, text, opts.dict, other.toString('utf8')), 'utf8');
  if (opts.body === 'json') return Buffer.from(mutateJson(rng, text, opts.dict), 'utf8');
  return rng.chance(0.8) ? Buffer.alloc(0) : Buffer.from(token(rng, opts.dict), 'utf8');
}

/** Framing the mutator chooses: lying or doubled lengths, chunked, both at once. */
function framingHeaders(rng: Rng, req: FuzzRequest): Headers {
  const headers: Headers = req.headers.filter(([n]) => n.toLowerCase() !== 'content-length');
  const n = req.body.length;
  switch (rng.int(6)) {
    case 0:
      return [...headers, ['Content-Length', String(Math.max(0, n + rng.between(-5, 5)))]];
    case 1:
      return [...headers, ['Content-Length', String(n)], ['Content-Length', String(n + 1)]];
    case 2:
      return [...headers, ['Transfer-Encoding', 'chunked']];
    case 3:
      return [...headers, ['Content-Length', String(n)], ['Transfer-Encoding', 'chunked']];
    case 4:
      return [...headers, ['Content-Length', rng.pick(['-1', '1e3', ' 5', '0x10', '99999999999999999999', ''])]];
    default:
      return headers;
  }
}
