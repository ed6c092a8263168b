/**
 * A read-through cache over JetStream KV records, kept fresh by a watch: reads on the hot path
 * (every queue operation needs its queue's attributes) cost no round trip, and a miss reads the
 * bucket, so a record created on another controller a moment ago is still found.
 */
import { KvWatchInclude, type KV, type KvEntry } from '@nats-io/kv';
import type { Logger } from '../../../core/contracts.js';
import { detach } from '../../../core/errors.js';

interface Slot<T> {
  readonly value: T | undefined;
  readonly revision: number;
}

/** Cached, parsed records of one key prefix (`q.`, `t.`, `s.`). */
export class KvCache<T> {
  private readonly slots = new Map<string, Slot<T>>();
  private stopped = false;
  private watcher?: { stop(): void };
  /** Called after a record changed or was deleted (by anyone). */
  onChange?: (key: string, value: T | undefined) => void;

  constructor(
    private readonly kv: KV,
    private readonly prefix: string,
    private readonly parse: (entry: KvEntry) => T,
    private readonly log: Logger,
  ) {}

  /** Starts the watch of updates; restarts it if it ends while the cache is in use. */
  async start(): Promise<void> {
    const iter = await this.kv.watch({ key: `${this.prefix}>`, include: KvWatchInclude.UpdatesOnly });
    this.watcher = iter;
    const follow = async () => {
      try {
        for await (const e of iter) this.store(e);
      } catch (err) {
        this.log.warn({ err, prefix: this.prefix }, 'kv watch ended');
      }
      // A failed restart is tried again by nothing: the next reader sees a cold cache and reads KV.
      if (!this.stopped)
        setTimeout(
          () => detach(this.start(), (err) => this.log.warn({ err, prefix: this.prefix }, 'kv watch did not restart')),
          1000,
        ).unref();
    };
    detach(follow(), (err) => this.log.warn({ err, prefix: this.prefix }, 'kv watch failed'));
  }

  stop(): void {
    this.stopped = true;
    this.watcher?.stop();
  }

  private store(e: KvEntry): void {
    const name = e.key.slice(this.prefix.length);
    const old = this.slots.get(name);
    if (old && old.revision >= e.revision) return;
    let value: T | undefined;
    if (e.operation === 'PUT') {
      try {
        value = this.parse(e);
      } catch (err) {
        this.log.warn({ err, key: e.key }, 'unreadable record ignored');
      }
    }
    this.slots.set(name, { value, revision: e.revision });
    this.onChange?.(name, value);
  }

  /** The record and its revision, from the cache or the bucket. */
  async getEntry(name: string): Promise<{ value: T; revision: number } | undefined> {
    let slot = this.slots.get(name);
    if (!slot) {
      const e = await this.kv.get(`${this.prefix}${name}`);
      if (e) this.store(e);
      slot = this.slots.get(name);
    }
    return slot?.value === undefined ? undefined : { value: slot.value, revision: slot.revision };
  }

  async get(name: string): Promise<T | undefined> {
    return (await this.getEntry(name))?.value;
  }

  /** Reads the bucket (not the cache): for compare-and-set loops after a conflict. */
  async fresh(name: string): Promise<{ value: T; revision: number } | undefined> {
    const e = await this.kv.get(`${this.prefix}${name}`);
    if (e) this.store(e);
    const slot = this.slots.get(name);
    return slot?.value === undefined ? undefined : { value: slot.value, revision: slot.revision };
  }

  /** Records the outcome of our own write at once (the watch confirms it later). */
  remember(name: string, value: T | undefined, revision: number): void {
    const old = this.slots.get(name);
    if (old && old.revision >= revision) return;
    this.slots.set(name, { value, revision });
    this.onChange?.(name, value);
  }

  /** Marks our own delete at once (the watch brings the delete marker's revision later). */
  forget(name: string): void {
    const old = this.slots.get(name);
    this.slots.set(name, { value: undefined, revision: old?.revision ?? 0 });
    this.onChange?.(name, undefined);
  }

  /** All names with a live record, read from the bucket (sorted). */
  async names(): Promise<string[]> {
    const out: string[] = [];
    for await (const k of await this.kv.keys(`${this.prefix}>`)) out.push(k.slice(this.prefix.length));
    return out.sort();
  }

  /** Every live record (bucket keys, values through the cache). */
  async all(): Promise<{ name: string; value: T }[]> {
    const names = await this.names();
    const values = await Promise.all(names.map((n) => this.get(n)));
    return names.flatMap((name, i) => (values[i] === undefined ? [] : [{ name, value: values[i] }]));
  }
}
