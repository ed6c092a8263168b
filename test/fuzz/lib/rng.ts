/**
 * The fuzzers' only source of chance: a seeded mulberry32 generator, so a run is fully determined
 * by its seed and count (MAMMATUS_FUZZ_SEED, MAMMATUS_FUZZ_COUNT) and any failure can be replayed.
 */

/** A seeded pseudo-random generator. */
export interface Rng {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  /** An integer in [lo, hi]. */
  between(lo: number, hi: number): number;
  /** True with probability `p`. */
  chance(p: number): boolean;
  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T;
}

/** mulberry32: 32 bits of state, good enough spread for picking mutations, and trivially replayable. */
export function createRng(seed: number): Rng {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  return {
    next,
    int,
    between: (lo, hi) => lo + int(hi - lo + 1),
    chance: (p) => next() < p,
    pick: <T>(items: readonly T[]): T => {
      if (items.length === 0) throw new Error('pick from an empty list');
      return items[int(items.length)];
    },
  };
}

/** The seed of iteration `i` of a run: each iteration can be replayed alone from (seed, i). */
export function iterationSeed(seed: number, i: number): number {
  let h = (seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** The default seed: fixed, so CI runs are reproducible; set MAMMATUS_FUZZ_SEED=random to explore. */
export const DEFAULT_SEED = 0x6d616d6d;
/** The default number of mutated requests per target (issue #16 asks for at least 10,000). */
export const DEFAULT_COUNT = 10_000;

/** Seed and count of a run, from the environment. */
export interface FuzzSettings {
  readonly seed: number;
  readonly count: number;
}

/**
 * Reads MAMMATUS_FUZZ_SEED (a number, hex `0x…`, or `random`) and MAMMATUS_FUZZ_COUNT.
 * @throws Error on a value that is not a number, so a typo never silently fuzzes with another seed.
 */
export function fuzzSettings(env: NodeJS.ProcessEnv = process.env): FuzzSettings {
  const rawSeed = env.MAMMATUS_FUZZ_SEED?.trim();
  let seed = DEFAULT_SEED;
  if (rawSeed === 'random') seed = Math.floor(Math.random() * 2 ** 32);
  else if (rawSeed) {
    seed = Number(rawSeed);
    if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32)
      throw new Error(`MAMMATUS_FUZZ_SEED: not a 32-bit unsigned integer: ${rawSeed}`);
  }
  const rawCount = env.MAMMATUS_FUZZ_COUNT?.trim();
  const count = rawCount ? Number(rawCount) : DEFAULT_COUNT;
  if (!Number.isInteger(count) || count < 1) throw new Error(`MAMMATUS_FUZZ_COUNT: not a positive integer: ${rawCount}`);
  return { seed: seed >>> 0, count };
}
