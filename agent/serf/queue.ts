/**
 * A push-to-pull adapter: the socket reader pushes records without ever blocking, consumers pull
 * them with `for await`. Bounded so a stalled consumer costs memory only up to `limit` records;
 * beyond that records are dropped and counted (the same policy the serf agent applies to us).
 */
export class RecordQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiter: ((r: IteratorResult<T>) => void) | undefined;
  private failWaiter: ((err: Error) => void) | undefined;
  private done = false;
  private error: Error | undefined;
  /** Records dropped because the consumer fell `limit` records behind. */
  dropped = 0;

  constructor(
    private readonly limit = 10_000,
    private readonly onStop?: () => void,
  ) {}

  /** Adds a record; never blocks. */
  push(item: T): void {
    if (this.done) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = this.failWaiter = undefined;
      w({ value: item, done: false });
    } else if (this.items.length < this.limit) this.items.push(item);
    else this.dropped++;
  }

  /** Ends the iteration after the buffered records; with `err`, the iterator throws it at the end. */
  end(err?: Error): void {
    if (this.done) return;
    this.done = true;
    this.error = err;
    if (this.waiter && this.items.length === 0) {
      const w = this.waiter;
      const f = this.failWaiter;
      this.waiter = this.failWaiter = undefined;
      if (err && f) f(err);
      else w({ value: undefined, done: true });
    }
  }

  /** Stops the producer (e.g. sends `stop` to serf) and ends the iteration. */
  stop(): void {
    if (!this.done) this.onStop?.();
    this.end();
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        const item = this.items.shift();
        if (item !== undefined) return Promise.resolve({ value: item, done: false });
        if (this.done) return this.error ? Promise.reject(this.error) : Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => {
          this.waiter = resolve;
          this.failWaiter = reject;
        });
      },
      return: () => {
        this.stop();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
