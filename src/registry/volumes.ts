/**
 * The volume registry (issue 18): one JetStream KV bucket, `mammatus-volumes`, one key per volume,
 * `volume.<name>`. The name is the key, so KV `create` (which fails when the key exists) is the
 * whole claim: two writers racing for one name cannot both win, and no separate claim key can be
 * left behind. Every change is `update(…, revision)` (compare and set) and retried a few times
 * when another writer changed the record meanwhile, never overwritten.
 *
 * Life of a volume: `create` writes it `creating`; the first `serving` report of its storage node
 * makes it `available`; `markDeleting` makes it `deleting`, and the storage node's `absent` report
 * (target and backing store gone) removes the record. `remove` deletes a record at once: for a
 * volume whose storage node is gone for good (`volume rm --force`).
 */
import { randomInt } from 'node:crypto';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { errorMessage } from '../../core/errors.js';
import {
  checkVolumeRecord,
  VolumeRecordError,
  type VolumeAttachment,
  type VolumeBacking,
  type VolumeObserved,
  type VolumeRecord,
} from '../../core/volume-record.js';

/** The bucket's name (JetStream stream `KV_mammatus-volumes`). */
export const VOLUME_BUCKET = 'mammatus-volumes';
/** Where a volume's backing file goes when the storage node named no other place (`roles.storage.path`'s default). */
export const DEFAULT_VOLUME_DIR = '/var/lib/mammatus/volumes';
const WRONG_LAST_SEQUENCE = 10071;
/** An observed error is cut to this many characters. */
const MAX_ERROR = 300;

/** A name is taken, a volume is attached elsewhere, a resize shrinks: the change is refused. */
export class VolumeConflictError extends Error {
  override readonly name = 'VolumeConflictError';
}

/** No volume has this name. */
export class VolumeNotFoundError extends Error {
  override readonly name = 'VolumeNotFoundError';
}

/** The KV key of a volume. */
export const volumeKey = (name: string): string => `volume.${name}`;

function isWrongLastSequence(err: unknown): boolean {
  return (err as { code?: unknown }).code === WRONG_LAST_SEQUENCE || /wrong last sequence/i.test(errorMessage(err));
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * `length` characters of [A-Za-z0-9] from the CSPRNG (uniform: `randomInt` rejects biased draws).
 * Only letters and digits: tgt's config and shells must never see `$`, quotes, `#` or backquotes.
 */
export function randomAlnum(length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += ALNUM[randomInt(ALNUM.length)];
  return s;
}

/** What `create` needs; the rest (CHAP, times, state) the registry makes. */
export interface VolumeInput {
  readonly name: string;
  readonly size_bytes: number;
  readonly node: string;
  /** Default: a sparse file `<DEFAULT_VOLUME_DIR>/<name>.img`. */
  readonly backing?: VolumeBacking;
}

/** Options of `VolumeRegistry.open`. */
export interface VolumeRegistryOptions {
  /** JetStream replicas of the bucket; only used when the bucket is created. */
  readonly replicas?: number;
  /** Only bind to the bucket, never create it. */
  readonly bind?: boolean;
  /** The clock (tests). */
  readonly now?: () => Date;
}

/** The record minus what the registry owns (name, CHAP, creation time). */
export type VolumeChange = (v: VolumeRecord) => VolumeRecord;

/** Reads and writes volume records. One per NATS connection; cheap to create. */
export class VolumeRegistry {
  private constructor(
    /** The underlying bucket (the controllers watch it to tell nodes about changes). */
    readonly kv: KV,
    private readonly now: () => Date,
  ) {}

  /** Opens the bucket, creating it on first use (unless `bind`). */
  static async open(nc: NatsConnection, opts: VolumeRegistryOptions = {}): Promise<VolumeRegistry> {
    const kvm = new Kvm(nc);
    const kv = opts.bind ? await kvm.open(VOLUME_BUCKET) : await kvm.create(VOLUME_BUCKET, { history: 5, replicas: opts.replicas ?? 1 });
    return new VolumeRegistry(kv, opts.now ?? (() => new Date()));
  }

  /** Stores a new volume, `creating`, with fresh CHAP credentials; a taken name is refused. */
  async create(input: VolumeInput): Promise<VolumeRecord> {
    const at = this.now().toISOString();
    const record = checkVolumeRecord({
      name: input.name,
      size_bytes: input.size_bytes,
      node: input.node,
      backing: input.backing ?? { kind: 'file', path: `${DEFAULT_VOLUME_DIR}/${input.name}.img` },
      state: 'creating',
      chap: { user: `mammatus-${randomAlnum(8)}`, secret: randomAlnum(16) },
      created_at: at,
      updated_at: at,
    });
    try {
      await this.kv.create(volumeKey(record.name), JSON.stringify(record));
    } catch (err) {
      if (isWrongLastSequence(err)) throw new VolumeConflictError(`volume ${record.name} already exists`);
      throw err;
    }
    return record;
  }

  /** The volume with this name and its revision, or `undefined`. */
  async findEntry(name: string): Promise<{ record: VolumeRecord; revision: number } | undefined> {
    if (!/^[a-z0-9-]{1,63}$/.test(name)) return undefined;
    const entry = await this.kv.get(volumeKey(name));
    const record = entry ? parseVolumeEntry(entry) : undefined;
    return record && entry && record.name === name ? { record, revision: entry.revision } : undefined;
  }

  /** The volume with this name, or `undefined`. */
  async find(name: string): Promise<VolumeRecord | undefined> {
    return (await this.findEntry(name))?.record;
  }

  /** The volume with this name; throws `VolumeNotFoundError`. */
  async get(name: string): Promise<VolumeRecord> {
    const found = await this.find(name);
    if (!found) throw new VolumeNotFoundError(`no volume ${name}`);
    return found;
  }

  /** Every volume, sorted by name; a value that is not a valid record is skipped. */
  async list(): Promise<VolumeRecord[]> {
    const keys: string[] = [];
    for await (const key of await this.kv.keys('volume.>')) keys.push(key);
    const records = await Promise.all(keys.map((k) => this.kv.get(k).then((e) => (e ? parseVolumeEntry(e) : undefined))));
    return records.filter((r): r is VolumeRecord => r !== undefined).sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * Changes a record with `change` (which may throw to refuse); the name, CHAP and creation time
   * stay. With `revision` the change applies only to that revision (no retry: the caller decided
   * on what it read); without, a concurrent change makes it re-read and try again (5 times).
   */
  async update(name: string, change: VolumeChange, revision?: number): Promise<VolumeRecord> {
    for (let attempt = 0; ; attempt++) {
      const found = await this.findEntry(name);
      if (!found) throw new VolumeNotFoundError(`no volume ${name}`);
      if (revision !== undefined && found.revision !== revision)
        throw new VolumeConflictError(`volume ${name} changed since it was read (revision ${found.revision}, not ${revision})`);
      const old = found.record;
      const next = checkVolumeRecord({
        ...change(old),
        name: old.name,
        chap: old.chap,
        created_at: old.created_at,
        updated_at: this.now().toISOString(),
      });
      try {
        await this.kv.update(volumeKey(name), JSON.stringify(next), found.revision);
        return next;
      } catch (err) {
        if (isWrongLastSequence(err) && revision === undefined && attempt < 5) continue;
        if (isWrongLastSequence(err)) throw new VolumeConflictError(`volume ${name} was changed by another writer just now`);
        throw err;
      }
    }
  }

  /** Attaches to an instance; refused while attached to another one, or while deleting. Idempotent. */
  attach(name: string, attachment: VolumeAttachment): Promise<VolumeRecord> {
    return this.update(name, (v) => {
      if (v.state === 'deleting') throw new VolumeConflictError(`volume ${name} is being deleted`);
      if (v.attached && v.attached.instance !== attachment.instance)
        throw new VolumeConflictError(`volume ${name} is attached to ${v.attached.instance}; detach it first`);
      return { ...v, attached: { ...attachment } };
    });
  }

  /** Detaches; a volume attached to nothing is left as it is. */
  detach(name: string): Promise<VolumeRecord> {
    return this.update(name, (v) => {
      const { attached: _attached, ...rest } = v;
      return rest;
    });
  }

  /** Grows to `sizeBytes`; a smaller size is refused (volumes only grow), the same size changes nothing. */
  resize(name: string, sizeBytes: number): Promise<VolumeRecord> {
    return this.update(name, (v) => {
      if (v.state === 'deleting') throw new VolumeConflictError(`volume ${name} is being deleted`);
      if (sizeBytes < v.size_bytes) throw new VolumeConflictError(`volume ${name} is ${v.size_bytes} bytes: volumes only grow`);
      return { ...v, size_bytes: sizeBytes };
    });
  }

  /** Marks a volume `deleting` (its storage node removes target, backing and then the record); refused while attached. */
  markDeleting(name: string): Promise<VolumeRecord> {
    return this.update(name, (v) => {
      if (v.attached) throw new VolumeConflictError(`volume ${name} is attached to ${v.attached.instance}; detach it first`);
      return { ...v, state: 'deleting' };
    });
  }

  /** Deletes the record at once (nothing on the storage node is touched); returns what it was. */
  async remove(name: string): Promise<VolumeRecord> {
    const found = await this.findEntry(name);
    if (!found) throw new VolumeNotFoundError(`no volume ${name}`);
    try {
      await this.kv.delete(volumeKey(name), { previousSeq: found.revision });
    } catch (err) {
      if (isWrongLastSequence(err)) throw new VolumeConflictError(`volume ${name} was changed by another writer just now`);
      throw err;
    }
    return found.record;
  }

  /**
   * Stores what `node` reports about a volume it serves: refused unless the record names `node`.
   * The first `serving` makes a `creating` volume `available`; `absent` of a `deleting` one removes
   * the record. Returns `gone` when the record no longer exists.
   */
  async report(name: string, node: string, observed: VolumeObserved, attempt = 0): Promise<'ok' | 'gone'> {
    const found = await this.findEntry(name);
    if (!found) return 'gone';
    if (found.record.node !== node) throw new VolumeConflictError(`volume ${name} is not served by ${node}`);
    if (observed.state === 'absent' && found.record.state === 'deleting') {
      try {
        await this.kv.delete(volumeKey(name), { previousSeq: found.revision });
        return 'ok';
      } catch (err) {
        // Changed between the read and the delete: decide again on what it is now.
        if (isWrongLastSequence(err) && attempt < 5) return this.report(name, node, observed, attempt + 1);
        throw err;
      }
    }
    const stored: VolumeObserved = {
      state: observed.state,
      ...(observed.error !== undefined ? { error: String(observed.error).slice(0, MAX_ERROR) } : {}),
      ...(observed.lun !== undefined ? { lun: observed.lun } : {}),
      ...(observed.portal !== undefined ? { portal: observed.portal } : {}),
      at: this.now().toISOString(),
    };
    try {
      await this.update(name, (v) => {
        if (v.node !== node) throw new VolumeConflictError(`volume ${name} is not served by ${node}`);
        const state = v.state === 'creating' && stored.state === 'serving' ? 'available' : v.state;
        return { ...v, state, observed: stored, ...(stored.lun !== undefined ? { lun: stored.lun } : {}) };
      });
    } catch (err) {
      if (err instanceof VolumeNotFoundError) return 'gone';
      if (err instanceof VolumeRecordError) throw new VolumeConflictError(`bad report: ${err.message}`);
      throw err;
    }
    return 'ok';
  }
}

/** A bucket entry as a volume record, or `undefined` when it is a deletion or not a valid record. */
export function parseVolumeEntry(entry: KvEntry): VolumeRecord | undefined {
  if (entry.operation !== 'PUT') return undefined;
  try {
    return checkVolumeRecord(entry.json());
  } catch {
    return undefined;
  }
}
