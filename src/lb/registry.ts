/**
 * The load balancer registry (issue 21): one JetStream KV bucket, `mammatus-lb`, one key per
 * balancer, `lb.<name>`. The name is the key, so KV `create` (which fails when the key exists) is
 * the whole claim of a name. Operators write it from controller nodes with their credentials (as
 * `instance register` does); gateways only read and watch it (roles/controller/permissions.ts).
 *
 * A create is also checked against the balancers already stored (core/lb-conflicts.ts, the rule the gateway applies too). Two
 * creates racing for one listener could both pass that check, so each one looks again after its
 * write, by the rule every reader applies (`olderFirst`: the earlier `created_at`, then the lower
 * name): a record that conflicts with an older one withdraws itself. That alone is not enough when
 * the older record was written last: the newer one may have looked before it existed and been
 * told it won. So the older one waits (up to `settleMs`) for such records to withdraw; one still
 * there had missed it, and the older one withdraws instead. Either way the record that stays is
 * the one readers serve. A withdrawal that fails after retries is reported, never swallowed: the
 * bucket then holds both, readers serve the older, and the operator is told to `lb rm` it.
 */
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { errorMessage } from '../../core/errors.js';
import type { LoadBalancerRecord } from '../../core/lb-record.js';
import { conflicts, olderFirst } from '../../core/lb-conflicts.js';
import { byText, checkLoadBalancerRecord, makeLoadBalancerRecord, type LoadBalancerInput } from './record.js';
import { LbRecordError } from '../../core/lb-syntax.js';

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

/** A record was written, lost a race, and could not be deleted again: it must be removed by hand. */
export class LbWithdrawError extends Error {
  override readonly name = 'LbWithdrawError';
  constructor(
    readonly lbName: string,
    why: string,
    options?: ErrorOptions,
  ) {
    super(`lb ${lbName}: ${why}; written but could not withdraw; run \`lb rm ${lbName}\``, options);
  }
}

/** What `remove` deleted: the record, or (`malformed`, why) a value that was not this name's record. */
export interface LbRemoval {
  readonly record?: LoadBalancerRecord;
  readonly malformed?: string;
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
  /** How long a racing create waits for a newer rival to withdraw (see the header); default 2000 ms. */
  readonly settleMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
    private readonly settleMs: number,
  ) {}

  /** Opens the bucket, creating it on first use (unless `bind`). */
  static async open(nc: NatsConnection, opts: LbRegistryOptions = {}): Promise<LbRegistry> {
    const kvm = new Kvm(nc);
    const kv = opts.bind ? await kvm.open(LB_BUCKET) : await kvm.create(LB_BUCKET, { history: 5, replicas: opts.replicas ?? 1 });
    return new LbRegistry(kv, opts.now ?? (() => new Date()), opts.settleMs ?? 2000);
  }

  /**
   * Checks and stores a new balancer; refuses a taken name (`LbConflictError`), a balancer that
   * clashes with a stored one (`LbConflictError`, naming it) and a malformed one (`LbRecordError`).
   * `LbWithdrawError` when it lost a race and could not delete itself again.
   */
  async create(input: LoadBalancerInput): Promise<LoadBalancerRecord> {
    return this.add(makeLoadBalancerRecord(input, this.now()));
  }

  /** `create` of a record built beforehand (the CLI checks its flags before it connects). */
  async add(candidate: LoadBalancerRecord): Promise<LoadBalancerRecord> {
    const record = checkLoadBalancerRecord(candidate);
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
    const lost = await this.raced(record, revision);
    if (lost) {
      await withdraw(this.kv, record.name, revision, lost);
      throw new LbConflictError(`lb ${record.name}: ${lost}`);
    }
    return record;
  }

  /** After writing `record` at `revision`: why it must withdraw, or undefined (see the header). */
  private async raced(record: LoadBalancerRecord, revision: number): Promise<string | undefined> {
    const rivals = (await this.entries()).filter((e) => e.record.name !== record.name && conflicts([e.record], record).length > 0);
    const older = rivals.filter((e) => olderFirst(e.record, record) < 0).map((e) => e.record);
    if (older.length > 0) return `${conflicts(older, record).join('; ')} (written at the same time; the older stays)`;
    // Newer by the rule but written first: its writer may have looked before this record existed.
    let waiting = rivals.filter((e) => e.revision < revision);
    for (const deadline = Date.now() + this.settleMs; waiting.length > 0 && Date.now() < deadline;) {
      await sleep(Math.min(100, this.settleMs));
      const now = new Map((await this.entries()).map((e) => [e.record.name, e.revision]));
      waiting = waiting.filter((e) => now.get(e.record.name) === e.revision);
    }
    if (waiting.length === 0) return undefined;
    const kept = waiting.map((e) => e.record);
    return `${conflicts(kept, record).join('; ')} (written at the same time, and it was told it won first; it stays)`;
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

  /**
   * Deletes a balancer; returns what it was. A value under its key that is not its record (one a
   * foreign writer left) is deleted too, so it cannot hold the name forever: `malformed` says why
   * it was not a record. The gateway drops the balancer at its next apply.
   */
  async remove(name: string): Promise<LbRemoval> {
    if (!/^[A-Za-z0-9_=-]{1,253}$/.test(name)) throw new LbNotFoundError(`no lb ${name}`);
    const entry = await this.kv.get(lbKey(name));
    if (!entry || entry.operation !== 'PUT') throw new LbNotFoundError(`no lb ${name}`);
    const removal = readRemoval(entry, name);
    try {
      await this.kv.delete(lbKey(name), { previousSeq: entry.revision });
    } catch (err) {
      if (isWrongLastSequence(err)) throw new LbConflictError(`lb ${name} was changed by another writer just now`);
      throw err;
    }
    return removal;
  }
}

function readRemoval(entry: KvEntry, name: string): LbRemoval {
  try {
    const record = checkLoadBalancerRecord(entry.json());
    return record.name === name ? { record } : { malformed: `it holds lb ${record.name}'s record` };
  } catch (err) {
    return { malformed: err instanceof LbRecordError ? err.message : `not JSON (${errorMessage(err)})` };
  }
}

/**
 * Deletes the record a create just wrote (only that revision), retrying a failure a few times;
 * `LbWithdrawError` when it still fails. `why` is what it lost to.
 */
export async function withdraw(kv: KV, name: string, revision: number, why: string, attempts = 3): Promise<void> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    if (i > 0) await sleep(100 * i);
    try {
      await kv.delete(lbKey(name), { previousSeq: revision });
      return;
    } catch (err) {
      last = err;
    }
  }
  throw new LbWithdrawError(name, `${why} (${errorMessage(last)})`, { cause: last });
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
