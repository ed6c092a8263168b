/**
 * Recently appended messages, kept in memory so the receive that usually follows a send needs no
 * `STREAM.MSG.GET`. A message at a stream sequence never changes, so an entry can only be missing,
 * never stale; entries are dropped when their message is deleted and evicted oldest first once the
 * byte bound is reached (queues are mostly first in, first out, so the oldest is the least likely
 * to be read again from here). One cache is shared by every queue of a controller, which keeps
 * the bound per process however many queues it owns.
 */
import type { StoredFields, StoredPayload } from './codec.js';

/** A message as the cache keeps it (decoded, as `QueueLog.read` returns it). */
export interface CachedMessage {
  readonly fields: StoredFields;
  readonly payload: StoredPayload;
}

interface Entry {
  readonly msg: CachedMessage;
  readonly bytes: number;
}

/**
 * Default bound: 1 MiB, counted as encoded payload plus a per-entry overhead (~1,400 messages of
 * 256 B). Only messages sent moments before their receive need to be here. Bigger bounds cost far
 * more RSS than they hold (entries live long enough to be promoted to V8's old space): in the
 * memory benchmark (100,000 messages stored) the API's RSS grew by ~97 MB with 16 MiB, ~40 MB
 * with 4 MiB, ~9 MB with 1 MiB.
 */
export const BODY_CACHE_BYTES = 1024 * 1024;
// Map entry, key string and the decoded objects: measured ~450 B beyond the payload for 256 B bodies.
const ENTRY_OVERHEAD = 450;

/** A byte-bounded, insertion-ordered cache of messages by (queue id, sequence). */
export class BodyCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(readonly maxBytes: number = BODY_CACHE_BYTES) {}

  /** Bytes held now (for tests and metrics). */
  get size(): number {
    return this.bytes;
  }

  /** Keeps `msg`; `payloadBytes` is its encoded size. Messages larger than an eighth of the bound are not kept. */
  set(queueId: string, seq: number, msg: CachedMessage, payloadBytes: number): void {
    const bytes = payloadBytes + ENTRY_OVERHEAD;
    if (bytes > this.maxBytes / 8) return;
    const key = `${queueId}:${seq}`;
    this.delete(queueId, seq);
    this.entries.set(key, { msg, bytes });
    this.bytes += bytes;
    for (const [k, e] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= e.bytes;
    }
  }

  get(queueId: string, seq: number): CachedMessage | undefined {
    return this.entries.get(`${queueId}:${seq}`)?.msg;
  }

  delete(queueId: string, seq: number): void {
    const key = `${queueId}:${seq}`;
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.bytes -= e.bytes;
  }

  /** Forgets every message of a queue (purge). */
  deleteQueue(queueId: string): void {
    const prefix = `${queueId}:`;
    for (const [k, e] of this.entries) {
      if (!k.startsWith(prefix)) continue;
      this.entries.delete(k);
      this.bytes -= e.bytes;
    }
  }
}
