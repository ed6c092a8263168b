/**
 * The metadata service's memory of proxy signatures it has accepted, so that a signed request
 * captured on the wire (or repeated by a tenant who saw its headers) is refused the second time.
 *
 * A signature is only valid within `windowS` of its own timestamp, so only signatures whose time is
 * within the window of now need remembering: they are kept in buckets of `windowS` seconds by their
 * signed time and a bucket is dropped once every signature in it has expired. The cache is bounded:
 * when it holds `maxEntries`, new signatures are refused (the caller answers 503 and the client
 * retries) rather than forgetting one that could then be replayed.
 */

/** What `admit` decided. */
export type ReplayVerdict = 'fresh' | 'replayed' | 'full';

/** Remembers accepted signatures for their validity window. */
export class ReplayCache {
  private readonly buckets = new Map<number, Set<string>>();
  private size = 0;

  constructor(
    private readonly windowS: number,
    private readonly maxEntries = 1_000_000,
  ) {}

  /** How many signatures are remembered. */
  get entries(): number {
    return this.size;
  }

  /**
   * Records `signature` (signed at `timeS`, already checked to lie within the window of `nowMs`):
   * `fresh` the first time, `replayed` after that, `full` when the cache cannot remember it.
   */
  admit(signature: string, timeS: number, nowMs: number): ReplayVerdict {
    this.prune(nowMs);
    // 128 bits of an HMAC-SHA256 tell signatures apart as well as 256 do, at half the memory.
    signature = signature.slice(0, 32);
    const key = Math.floor(timeS / this.windowS);
    let bucket = this.buckets.get(key);
    if (bucket?.has(signature)) return 'replayed';
    if (this.size >= this.maxEntries) return 'full';
    if (!bucket) this.buckets.set(key, (bucket = new Set()));
    bucket.add(signature);
    this.size++;
    return 'fresh';
  }

  /** Drops buckets whose every signature is older than the window. */
  private prune(nowMs: number): void {
    const oldestValid = Math.floor(nowMs / 1000) - this.windowS;
    for (const [key, bucket] of this.buckets) {
      // The newest time in bucket `key` is (key + 1) * windowS - 1.
      if ((key + 1) * this.windowS - 1 < oldestValid) {
        this.size -= bucket.size;
        this.buckets.delete(key);
      }
    }
  }
}
