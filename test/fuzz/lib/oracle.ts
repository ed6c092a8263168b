/**
 * What the fuzzers check besides status codes: XML well-formedness of Query answers, the heap
 * coming back after a run, and the run loop that turns a failure into a replayable report.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { createRng, iterationSeed, type Rng } from './rng.js';
import { requestText, type CorpusEntry, type FuzzRequest } from './request.js';

const NAME = '[A-Za-z_][A-Za-z0-9_.:-]*';
const TAG = new RegExp(`^<(/?)(${NAME})((?:\\s+${NAME}="[^"<&]*")*)\\s*(/?)>`);
// Characters XML 1.0 forbids even as text (see src/messaging/protocol/xml.ts).
const NOT_XML_CHAR = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;
const ENTITY = /^&(?:lt|gt|amp|quot|apos|#x[0-9A-Fa-f]+|#[0-9]+);/;

/**
 * Why `text` is not a well-formed XML document of the subset AWS Query answers use (declaration,
 * elements, attributes, text, the five entities and character references), or undefined when it is.
 */
export function xmlProblem(text: string): string | undefined {
  let s = text.replace(/^<\?xml[^?]*\?>/, '');
  if (NOT_XML_CHAR.test(s)) return 'a character XML 1.0 does not allow';
  const stack: string[] = [];
  let roots = 0;
  while (s.length > 0) {
    const lt = s.indexOf('<');
    const textPart = lt < 0 ? s : s.slice(0, lt);
    for (let amp = textPart.indexOf('&'); amp >= 0; amp = textPart.indexOf('&', amp + 1)) {
      if (!ENTITY.test(textPart.slice(amp))) return `a bare '&' at ${JSON.stringify(textPart.slice(amp, amp + 12))}`;
    }
    if (stack.length === 0 && textPart.trim() !== '') return 'text outside the root element';
    if (lt < 0) break;
    s = s.slice(lt);
    const m = TAG.exec(s);
    if (!m) return `a broken tag at ${JSON.stringify(s.slice(0, 24))}`;
    const [whole, close, name = '', , selfClose] = m;
    if (close && selfClose) return `a tag both closing and empty: ${whole}`;
    if (close) {
      if (stack.pop() !== name) return `</${name}> closes the wrong element`;
    } else if (!selfClose) {
      if (stack.length === 0) roots++;
      stack.push(name);
    } else if (stack.length === 0) roots++;
    s = s.slice(whole.length);
  }
  if (stack.length > 0) return `unclosed <${stack.join('><')}>`;
  return roots === 1 ? undefined : `${roots} root elements`;
}

let gcFn: (() => void) | undefined | null = null;

/** A full garbage collection when this node lets us turn one on; false when it does not. */
export function collectGarbage(): boolean {
  if (gcFn === null) {
    // vitest starts workers without --expose-gc; the flag can still be set at run time and a fresh
    // context then has `gc`. If that ever stops working the check falls back to a settle only.
    try {
      setFlagsFromString('--expose-gc');
      gcFn = runInNewContext('gc') as () => void;
    } catch {
      gcFn = undefined;
    }
  }
  if (!gcFn) return false;
  gcFn();
  return true;
}

/** The heap in use after a collection (or a short settle when none is available). */
export async function settledHeap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 20));
    collectGarbage();
  }
  return process.memoryUsage().heapUsed;
}

/** Heap growth allowed after a run, once its servers are closed (issue #16: back to baseline). */
export const HEAP_TOLERANCE_BYTES = 64 * 1024 * 1024;

/**
 * One iteration's check: throws (any error) when the oracle is violated. A check that changes the
 * request before sending it (signing, say) puts what it sent in `sent`, which is what gets saved.
 */
export type FuzzOne = (req: FuzzRequest, rng: Rng, i: number, sent: { request?: FuzzRequest }) => Promise<void>;

/** How a run went. */
export interface RunStats {
  /** Requests sent: the corpus replayed as is, then `count` mutated ones. */
  readonly replayed: number;
  readonly mutated: number;
  readonly ms: number;
}

/**
 * Replays the corpus unchanged (so every saved finding is re-checked), then sends `count` mutated
 * requests. On the first failure it writes the request as a corpus file under the OS temp dir and
 * throws an error naming the target, seed and iteration, and how to replay it.
 */
export async function runFuzz(opts: {
  readonly target: string;
  readonly seed: number;
  readonly count: number;
  readonly corpus: readonly CorpusEntry[];
  readonly mutate: (rng: Rng, seed: FuzzRequest) => FuzzRequest;
  readonly one: FuzzOne;
}): Promise<RunStats> {
  const started = Date.now();
  const fail = (req: FuzzRequest, what: string, err: unknown): never => {
    const dir = path.join(os.tmpdir(), 'mammatus-fuzz');
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `${opts.target}-${opts.seed}-${what.replace(/\W+/g, '_')}.${req.wire ? 'raw' : 'http'}`);
    writeFileSync(file, req.wire ?? requestText(req));
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(
      `fuzz ${opts.target}: ${what} failed (MAMMATUS_FUZZ_SEED=${opts.seed} MAMMATUS_FUZZ_COUNT=${opts.count}): ${why}\n` +
        `request saved as ${file}; copy it into test/fuzz/corpus/${opts.target}/ to keep it as a regression seed`,
      { cause: err },
    );
  };
  for (const [i, entry] of opts.corpus.entries()) {
    const sent: { request?: FuzzRequest } = {};
    try {
      await opts.one(entry.request, createRng(iterationSeed(opts.seed, -1 - i)), -1 - i, sent);
    } catch (err) {
      fail(sent.request ?? entry.request, `corpus entry ${entry.name}`, err);
    }
  }
  for (let i = 0; i < opts.count; i++) {
    const rng = createRng(iterationSeed(opts.seed, i));
    const req = opts.mutate(rng, rng.pick(opts.corpus).request);
    const sent: { request?: FuzzRequest } = {};
    try {
      await opts.one(req, rng, i, sent);
    } catch (err) {
      fail(sent.request ?? req, `iteration ${i}`, err);
    }
  }
  return { replayed: opts.corpus.length, mutated: opts.count, ms: Date.now() - started };
}
