/**
 * Queue records in the `mammatus_sqs` bucket: `q.<name>` holds id, attributes and tags;
 * `gone.<name>` the time of a DeleteQueue (a name is blocked for 60 s, as on AWS). Writes are
 * compare-and-set on the key's revision, so two controllers changing one queue do not lose an update.
 */
import { randomBytes } from 'node:crypto';
import type { KV, KvEntry } from '@nats-io/kv';
import type { Logger } from '../../../core/contracts.js';
import { sqsError } from '../errors.js';
import { KvCache } from './kv-cache.js';

/** One queue as stored. */
export interface QueueRecord {
  /** Random hex, new per CreateQueue: names the queue's subjects and its owner lease. */
  readonly id: string;
  readonly name: string;
  /** The settable attributes, defaults applied. */
  readonly attributes: Readonly<Record<string, string>>;
  readonly tags: Readonly<Record<string, string>>;
  /** Epoch seconds. */
  readonly createdAt: number;
  readonly modifiedAt: number;
}

const RECREATE_BLOCK_MS = 60_000;
const CAS_ATTEMPTS = 10;

/** The queue catalogue. */
export class QueueCatalog {
  readonly cache: KvCache<QueueRecord>;

  constructor(
    private readonly kv: KV,
    log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.cache = new KvCache(kv, 'q.', (e: KvEntry) => e.json<QueueRecord>(), log);
  }

  start(): Promise<void> {
    return this.cache.start();
  }

  stop(): void {
    this.cache.stop();
  }

  get(name: string): Promise<QueueRecord | undefined> {
    return this.cache.get(name);
  }

  /** @throws SqsError `QueueDoesNotExist`. */
  async require(name: string): Promise<QueueRecord> {
    const r = await this.cache.get(name);
    if (!r) throw sqsError('QueueDoesNotExist');
    return r;
  }

  /**
   * Creates the record, or returns the existing one (`created: false`) for the caller's
   * idempotency check. @throws SqsError `QueueDeletedRecently`.
   */
  async create(
    name: string,
    attributes: Record<string, string>,
    tags: Record<string, string>,
  ): Promise<{ record: QueueRecord; created: boolean }> {
    for (let i = 0; i < CAS_ATTEMPTS; i += 1) {
      const existing = await this.cache.fresh(name);
      if (existing) return { record: existing.value, created: false };
      const gone = await this.kv.get(`gone.${name}`);
      if (gone?.operation === 'PUT' && this.now() - Number(gone.string()) < RECREATE_BLOCK_MS) throw sqsError('QueueDeletedRecently');
      const at = Math.floor(this.now() / 1000);
      const record: QueueRecord = { id: randomBytes(8).toString('hex'), name, attributes, tags, createdAt: at, modifiedAt: at };
      try {
        const revision = await this.kv.create(`q.${name}`, JSON.stringify(record));
        this.cache.remember(name, record, revision);
        return { record, created: true };
      } catch {
        // Someone created it first; the next round reads theirs.
      }
    }
    throw new Error(`could not create queue record ${name}`);
  }

  /** Applies `change` with compare-and-set; `change` may throw (validation) to abort. */
  async update(name: string, change: (r: QueueRecord) => QueueRecord): Promise<QueueRecord> {
    for (let i = 0; i < CAS_ATTEMPTS; i += 1) {
      const current = i === 0 ? await this.cache.getEntry(name) : await this.cache.fresh(name);
      if (!current) throw sqsError('QueueDoesNotExist');
      const next = change(current.value);
      try {
        const revision = await this.kv.update(`q.${name}`, JSON.stringify(next), current.revision);
        this.cache.remember(name, next, revision);
        return next;
      } catch {
        // Changed meanwhile (or our cache was behind): read again and retry.
      }
    }
    throw new Error(`could not update queue record ${name}: too much contention`);
  }

  /** Deletes the record and blocks the name for 60 s. */
  async delete(name: string): Promise<QueueRecord> {
    const current = await this.cache.fresh(name);
    if (!current) throw sqsError('QueueDoesNotExist');
    await this.kv.put(`gone.${name}`, String(this.now()));
    await this.kv.delete(`q.${name}`);
    this.cache.forget(name);
    return current.value;
  }

  /** Every queue, sorted by name. */
  async list(): Promise<QueueRecord[]> {
    return (await this.cache.all()).map((e) => e.value);
  }
}
