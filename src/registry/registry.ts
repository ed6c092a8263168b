/**
 * The instance registry: one JetStream KV bucket shared by every controller. A record lives under
 * `instance.<id>`; its name, MACs and IPs are claimed under `name.<name>`, `mac.<hex>` and
 * `ip.<addr>`, each pointing at the id. Claims are taken with KV `create` (which fails when the key
 * exists), so two writers racing for one name or MAC cannot both win; records change only with
 * `update(…, revision)`, so a concurrent change is detected and retried, never overwritten.
 *
 * Claims come before the record; a writer that dies in between leaves a claim whose record does not
 * exist, which a later writer takes over once it is older than `STALE_CLAIM_MS`.
 */
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { buildRecord, normalizeMac, validateRecord, type InstanceInput, type InstanceRecord } from '../../core/instance-record.js';
import { errorMessage } from '../../core/errors.js';

/** The bucket's name (JetStream stream `KV_mammatus-instances`). */
export const REGISTRY_BUCKET = 'mammatus-instances';
/** A claim without a record is taken over after this long (a register that crashed half way). */
const STALE_CLAIM_MS = 30_000;
// JetStream's "wrong last sequence": what a `create` of an existing key or a stale `update` gets.
const WRONG_LAST_SEQUENCE = 10071;

/** A name, MAC or IP already belongs to another instance. */
export class RegistryConflictError extends Error {
  override readonly name = 'RegistryConflictError';
}

/** No instance has this id or name. */
export class InstanceNotFoundError extends Error {
  override readonly name = 'InstanceNotFoundError';
}

/** KV keys of a record and of its claims. */
export const registryKeys = {
  record: (id: string) => `instance.${id}`,
  name: (name: string) => `name.${name}`,
  mac: (mac: string) => `mac.${normalizeMac(mac).replace(/:/g, '')}`,
  // KV keys allow neither ':' nor '%': IPv6 colons become '_'.
  ip: (ip: string) => `ip.${ip.toLowerCase().replace(/:/g, '_')}`,
};

/** Every claim key of a record, each with the words used in a conflict message. */
function claimsOf(r: InstanceRecord): { key: string; what: string }[] {
  return [
    { key: registryKeys.name(r.name), what: `name ${r.name}` },
    ...r.macs.map((m) => ({ key: registryKeys.mac(m), what: `MAC ${m}` })),
    ...r.ips.map((ip) => ({ key: registryKeys.ip(ip), what: `IP ${ip}` })),
  ];
}

function isWrongLastSequence(err: unknown): boolean {
  return (err as { code?: unknown }).code === WRONG_LAST_SEQUENCE || /wrong last sequence/i.test(String(errorMessage(err)));
}

/** Options of `InstanceRegistry.open`. */
export interface RegistryOptions {
  /** JetStream replicas of the bucket (1 per controller up to 3); only used when the bucket is created. */
  readonly replicas?: number;
  /** Only bind to the bucket, never create it: what a node that may only read can do. */
  readonly bind?: boolean;
  /** The clock (tests). */
  readonly now?: () => Date;
}

/** Reads and writes instance records. One per NATS connection; cheap to create. */
export class InstanceRegistry {
  private constructor(
    /** The underlying bucket (the metadata service watches it). */
    readonly kv: KV,
    private readonly now: () => Date,
  ) {}

  /** Opens the bucket, creating it on first use. */
  static async open(nc: NatsConnection, opts: RegistryOptions = {}): Promise<InstanceRegistry> {
    const kvm = new Kvm(nc);
    const kv = opts.bind
      ? await kvm.open(REGISTRY_BUCKET)
      : await kvm.create(REGISTRY_BUCKET, { history: 5, replicas: opts.replicas ?? 1 });
    return new InstanceRegistry(kv, opts.now ?? (() => new Date()));
  }

  /** Validates and stores a new instance; its name, MACs and IPs must be free. */
  async register(input: InstanceInput): Promise<InstanceRecord> {
    const record = buildRecord(input, this.now());
    const claimed: { key: string; revision: number }[] = [];
    try {
      for (const claim of claimsOf(record)) claimed.push({ key: claim.key, revision: await this.claim(claim.key, claim.what, record.id) });
      await this.kv.create(registryKeys.record(record.id), JSON.stringify(record));
      return record;
    } catch (err) {
      await this.release(claimed);
      throw err;
    }
  }

  /** The record with this id or name, or `undefined`. */
  async find(idOrName: string): Promise<InstanceRecord | undefined> {
    return (await this.findEntry(idOrName))?.record;
  }

  /** The record with this id or name; throws `InstanceNotFoundError`. */
  async get(idOrName: string): Promise<InstanceRecord> {
    const found = await this.find(idOrName);
    if (!found) throw new InstanceNotFoundError(`no instance ${idOrName}`);
    return found;
  }

  /** Every record, sorted by name. A value that is not a valid record is skipped. */
  async list(): Promise<InstanceRecord[]> {
    const keys: string[] = [];
    for await (const key of await this.kv.keys('instance.>')) keys.push(key);
    const records = await Promise.all(keys.map((k) => this.kv.get(k).then((e) => (e ? parseEntry(e) : undefined))));
    return records.filter((r): r is InstanceRecord => r !== undefined).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Removes an instance and frees its name, MACs and IPs; returns what was removed. */
  async remove(idOrName: string): Promise<InstanceRecord> {
    const found = await this.findEntry(idOrName);
    if (!found) throw new InstanceNotFoundError(`no instance ${idOrName}`);
    await this.kv.delete(registryKeys.record(found.record.id), { previousSeq: found.revision });
    await this.release(
      claimsOf(found.record).map((c) => ({ key: c.key })),
      found.record.id,
    );
    return found.record;
  }

  /**
   * Changes a record with `change` (which must keep the id); claims new names/MACs/IPs first and frees
   * the old ones after. Retried when another writer changed the record meanwhile.
   */
  async update(
    idOrName: string,
    change: (r: InstanceRecord) => Omit<InstanceRecord, 'id' | 'created_at' | 'updated_at'>,
  ): Promise<InstanceRecord> {
    for (let attempt = 0; ; attempt++) {
      const found = await this.findEntry(idOrName);
      if (!found) throw new InstanceNotFoundError(`no instance ${idOrName}`);
      const old = found.record;
      const next = validateRecord({ ...change(old), id: old.id, created_at: old.created_at, updated_at: this.now().toISOString() });
      const oldKeys = new Set(claimsOf(old).map((c) => c.key));
      const added = claimsOf(next).filter((c) => !oldKeys.has(c.key));
      const claimed: { key: string; revision: number }[] = [];
      try {
        for (const c of added) claimed.push({ key: c.key, revision: await this.claim(c.key, c.what, old.id) });
        await this.kv.update(registryKeys.record(old.id), JSON.stringify(next), found.revision);
      } catch (err) {
        await this.release(claimed);
        if (isWrongLastSequence(err) && attempt < 5) continue;
        throw err;
      }
      const kept = new Set(claimsOf(next).map((c) => c.key));
      await this.release(
        claimsOf(old).filter((c) => !kept.has(c.key)),
        old.id,
      );
      return next;
    }
  }

  private async findEntry(idOrName: string): Promise<{ record: InstanceRecord; revision: number } | undefined> {
    let id = idOrName;
    if (!/^i-[0-9a-f]{17}$/.test(idOrName)) {
      const claim = await this.kv.get(registryKeys.name(idOrName)).catch(() => null);
      if (!claim || claim.operation !== 'PUT') return undefined;
      id = claim.string();
    }
    const entry = await this.kv.get(registryKeys.record(id));
    const record = entry ? parseEntry(entry) : undefined;
    return record && entry ? { record, revision: entry.revision } : undefined;
  }

  /** Takes `key` for `id`; returns the claim's revision or throws `RegistryConflictError`. */
  private async claim(key: string, what: string, id: string): Promise<number> {
    try {
      return await this.kv.create(key, id);
    } catch (err) {
      if (!isWrongLastSequence(err)) throw err;
    }
    const holder = await this.kv.get(key);
    if (holder && holder.operation === 'PUT') {
      const owner = holder.string();
      const ownerExists = (await this.kv.get(registryKeys.record(owner)))?.operation === 'PUT';
      const stale = this.now().getTime() - holder.created.getTime() > STALE_CLAIM_MS;
      if (owner === id) return holder.revision;
      if (ownerExists || !stale)
        throw new RegistryConflictError(`${what} is already used by ${ownerExists ? owner : 'an instance being registered'}`);
      try {
        return await this.kv.update(key, id, holder.revision);
      } catch (err) {
        if (isWrongLastSequence(err)) throw new RegistryConflictError(`${what} was claimed by another writer just now`);
        throw err;
      }
    }
    // Deleted between our create and get: try once more.
    return this.kv.create(key, id);
  }

  /** Frees claims (only those still pointing at `owner`, when given); errors are left to a later writer. */
  private async release(claims: readonly { key: string; revision?: number }[], owner?: string): Promise<void> {
    await Promise.all(
      claims.map(async ({ key, revision }) => {
        try {
          if (revision === undefined) {
            const e = await this.kv.get(key);
            if (!e || e.operation !== 'PUT' || (owner && e.string() !== owner)) return;
            revision = e.revision;
          }
          await this.kv.delete(key, { previousSeq: revision });
        } catch {
          // A claim someone else changed meanwhile is theirs now; one we could not free goes stale.
        }
      }),
    );
  }
}

/** A bucket entry as a record, or `undefined` when it is a deletion or not a valid record. */
export function parseEntry(entry: KvEntry): InstanceRecord | undefined {
  if (entry.operation !== 'PUT') return undefined;
  try {
    return validateRecord(entry.json());
  } catch {
    return undefined;
  }
}
