/**
 * Join secrets of planned hosts (issue 19): the controllers' own KV bucket `mammatus-joins`, one
 * key per host, `join.<instance id>`. Only controllers reach it (nodes' NATS permissions name other
 * buckets only), so the secret is kept as it is: the metadata service must put it into the host's
 * seed. A secret is bound to the host's MAC and has an expiry, and is taken exactly once: `consume`
 * deletes the key with the revision it read (compare and delete), so of two joins racing with the
 * same secret one wins and the other is refused.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { errorMessage } from '../../core/errors.js';
import { JOIN_SECRET } from '../../core/host-record.js';

/** The bucket's name (JetStream stream `KV_mammatus-joins`). */
export const JOIN_BUCKET = 'mammatus-joins';
const WRONG_LAST_SEQUENCE = 10071;

/** One stored secret. */
export interface JoinEntry {
  readonly secret: string;
  readonly mac: string;
  readonly expires_at: string;
}

/** Why a join was refused (said to the host, and logged). */
export class JoinRefused extends Error {
  override readonly name = 'JoinRefused';
}

/** A new join secret: 32 bytes from the CSPRNG, base64url. */
export function newJoinSecret(): string {
  return randomBytes(32).toString('base64url');
}

const key = (hostId: string) => `join.${hostId}`;

function parseEntry(value: Uint8Array): JoinEntry | undefined {
  try {
    const e = JSON.parse(new TextDecoder().decode(value)) as Partial<JoinEntry>;
    return typeof e.secret === 'string' && typeof e.mac === 'string' && typeof e.expires_at === 'string' ? (e as JoinEntry) : undefined;
  } catch {
    return undefined;
  }
}

/** The secrets of planned hosts. Cheap to open; one per NATS connection. */
export class JoinSecrets {
  private constructor(private readonly kv: KV) {}

  /** Opens the bucket, creating it on first use (history 1: a consumed secret leaves nothing behind). */
  static async open(nc: NatsConnection, replicas = 1): Promise<JoinSecrets> {
    return new JoinSecrets(await new Kvm(nc).create(JOIN_BUCKET, { history: 1, replicas }));
  }

  /** Stores (or replaces) the secret of host `hostId`. */
  async put(hostId: string, entry: JoinEntry): Promise<void> {
    await this.kv.put(key(hostId), JSON.stringify(entry));
  }

  /** The stored secret of a host, if it has one (for its seed). */
  async get(hostId: string): Promise<JoinEntry | undefined> {
    const e = await this.kv.get(key(hostId));
    return e && e.operation === 'PUT' ? parseEntry(e.value) : undefined;
  }

  /** Forgets a host's secret (the host was removed). */
  async remove(hostId: string): Promise<void> {
    await this.kv.purge(key(hostId));
  }

  /**
   * Takes the secret of `hostId` if `secret` and `mac` match and it has not expired; it cannot be
   * taken again. @throws JoinRefused saying why (no secret, wrong secret, other MAC, expired, raced).
   */
  async consume(hostId: string, secret: string, mac: string, now: Date): Promise<void> {
    const e = await this.kv.get(key(hostId));
    const stored = e && e.operation === 'PUT' ? parseEntry(e.value) : undefined;
    if (!e || !stored) throw new JoinRefused('no join secret is waiting for this host (used already, or never made: mammatus host rejoin)');
    const given = Buffer.from(JOIN_SECRET.test(secret) ? secret : '');
    const want = Buffer.from(stored.secret);
    if (given.length !== want.length || !timingSafeEqual(given, want)) throw new JoinRefused('wrong join secret');
    if (stored.mac !== mac) throw new JoinRefused(`the secret is bound to ${stored.mac}, not ${mac}`);
    if (now.getTime() > Date.parse(stored.expires_at))
      throw new JoinRefused(`the join secret expired at ${stored.expires_at} (mammatus host rejoin)`);
    try {
      await this.kv.delete(key(hostId), { previousSeq: e.revision });
    } catch (err) {
      const raced = (err as { code?: unknown }).code === WRONG_LAST_SEQUENCE || /wrong last sequence/i.test(errorMessage(err));
      if (raced) throw new JoinRefused('the join secret was just used');
      throw err;
    }
  }
}
