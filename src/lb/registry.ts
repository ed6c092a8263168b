/**
 * The load balancer registry (issue 21): one JetStream KV bucket, `mammatus-lb`, one key per
 * balancer, `lb.<name>`. The name is the key, so KV `create` (which fails when the key exists) is
 * the whole claim of a name. Operators write it from controller nodes with their credentials (as
 * `instance register` does); gateways only read and watch it (roles/controller/permissions.ts).
 *
 * A create is also checked against the balancers already stored (src/lb/conflicts.ts). Two
 * creates racing for one listener could both pass that check, so each one looks again after its
 * write: a record that conflicts with one of a lower revision (written earlier) withdraws itself.
 * The earlier record never withdraws for a later one, so one of any conflicting set survives.
 */
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { errorMessage } from '../../core/errors.js';
import type { LoadBalancerRecord } from '../../core/lb-record.js';
import { conflicts } from './conflicts.js';
import { byText, checkLoadBalancerRecord, makeLoadBalancerRecord, type LoadBalancerInput } from './record.js';

/** The bucket's name (JetStream stream `KV_mammatus-lb`). */
export const LB_BUCKET = 'mammatus-lb';
// JetStream's "wrong last sequence": what a `create` of an existing key or a stale delete gets.
const WRONG_LAST_SEQUENCE = 10071;

/** A name is taken, or the balancer would clash with another on its listener. */
export class LbConflictError extends Error {
  override readonly name = 'LbConflictError';
}

/** No balancer has this name. */
export class LbNotFoundError extends Error {
  override readonly name = 'LbNotFoundError';
}

/** The KV key of a balancer. */
export const lbKey = (name: string): string => `lb.${name}`;

function isWrongLastSequence(err: unknown): boolean {
  return (err as { code?: unknown }).code === WRONG_LAST_SEQUENCE || /wrong last sequence/i.test(errorMessage(err));
}

/** Options of `LbRegistry.open`. */
export interface LbRegistryOptions {
  /** JetStream replicas of the bucket; only used when the bucket is created. */
  readonly replicas?: number;
  /** Only bind to the bucket, never create it: what a gateway (read-only) does. */
  readonly bind?: boolean;
  /** The clock (tests). */
  readonly now?: () => Date;
}

/** A record with the bucket revision it was read at. */
export interface LbEntry {
  readonly record: LoadBalancerRecord;
  readonly revision: number;
}

/** Reads and writes balancer records. One per NATS connection; cheap to create. */
export class LbRegistry {
  private constructor(
    /** The underlying bucket (a gateway watches it). */
    readonly kv: KV,
    private readonly now: () => Date,
  ) {}

  /** Opens the bucket, creating it on first use (unless `bind`). */
  static async open(nc: NatsConnection, opts: LbRegistryOptions = {}): Promise<LbRegistry> {
    const kvm = new Kvm(nc);
    const kv = opts.bind ? await kvm.open(LB_BUCKET) : await kvm.create(LB_BUCKET, { history: 5, replicas: opts.replicas ?? 1 });
    return new LbRegistry(kv, opts.now ?? (() => new Date()));
  }

  /**
   * Checks and stores a new balancer; refuses a taken name (`LbConflictError`), a balancer that
   * clashes with a stored one (`LbConflictError`, naming it) and a malformed one (`LbRecordError`).
   */
  async create(input: LoadBalancerInput): Promise<LoadBalancerRecord> {
    const record = makeLoadBalancerRecord(input, this.now());
    const before = await this.entries();
    if (before.some((e) => e.record.name === record.name)) throw new LbConflictError(`lb ${record.name} already exists`);
    const clash = conflicts(
      before.map((e) => e.record),
      record,
    );
    if (clash.length > 0) throw new LbConflictError(`lb ${record.name}: ${clash.join('; ')}`);
    let revision: number;
    try {
      revision = await this.kv.create(lbKey(record.name), JSON.stringify(record));
    } catch (err) {
      if (isWrongLastSequence(err)) throw new LbConflictError(`lb ${record.name} already exists`);
      throw err;
    }
    const earlier = (await this.entries()).filter((e) => e.revision < revision).map((e) => e.record);
    const raced = conflicts(earlier, record);
    if (raced.length > 0) {
      await this.kv.delete(lbKey(record.name), { previousSeq: revision }).catch(() => undefined);
      throw new LbConflictError(`lb ${record.name}: ${raced.join('; ')} (written at the same time; the earlier stays)`);
    }
    return record;
  }

  /** The balancer with this name and its revision, or `undefined`. */
  async findEntry(name: string): Promise<LbEntry | undefined> {
    if (!/^[a-z0-9-]{1,63}$/.test(name)) return undefined;
    const entry = await this.kv.get(lbKey(name));
    const record = entry ? parseLbEntry(entry) : undefined;
    return record && entry && record.name === name ? { record, revision: entry.revision } : undefined;
  }

  /** The balancer with this name; throws `LbNotFoundError`. */
  async get(name: string): Promise<LoadBalancerRecord> {
    const found = await this.findEntry(name);
    if (!found) throw new LbNotFoundError(`no lb ${name}`);
    return found.record;
  }

  /** Every balancer with its revision, sorted by name; a value that is not a valid record is skipped. */
  async entries(): Promise<LbEntry[]> {
    const keys: string[] = [];
    for await (const key of await this.kv.keys('lb.>')) keys.push(key);
    const found = await Promise.all(
      keys.map(async (k) => {
        const e = await this.kv.get(k);
        const record = e ? parseLbEntry(e) : undefined;
        return record && e && lbKey(record.name) === k ? { record, revision: e.revision } : undefined;
      }),
    );
    return found.filter((e): e is LbEntry => e !== undefined).sort((a, b) => byText(a.record.name, b.record.name));
  }

  /** Every balancer, sorted by name. */
  async list(): Promise<LoadBalancerRecord[]> {
    return (await this.entries()).map((e) => e.record);
  }

  /** Deletes a balancer; returns what it was. The gateway drops it at its next apply. */
  async remove(name: string): Promise<LoadBalancerRecord> {
    const found = await this.findEntry(name);
    if (!found) throw new LbNotFoundError(`no lb ${name}`);
    try {
      await this.kv.delete(lbKey(name), { previousSeq: found.revision });
    } catch (err) {
      if (isWrongLastSequence(err)) throw new LbConflictError(`lb ${name} was changed by another writer just now`);
      throw err;
    }
    return found.record;
  }
}

/** A bucket entry as a balancer record, or `undefined` when it is a deletion or not a valid record. */
export function parseLbEntry(entry: KvEntry): LoadBalancerRecord | undefined {
  if (entry.operation !== 'PUT') return undefined;
  try {
    return checkLoadBalancerRecord(entry.json());
  } catch {
    return undefined;
  }
}
