/**
 * Join secrets of planned hosts (issue 19): the controllers' own KV bucket `mammatus-joins`, one
 * key per host, `join.<instance id>`. Only controllers reach it (nodes' NATS permissions name other
 * buckets only), so the secret is kept as it is: the metadata service must put it into the host's
 * seed. A secret is bound to the host's MAC and has an expiry, and is taken exactly once: `consume`
 * replaces it with a spent marker (compare and set on the revision it read), so of two joins racing
 * with the same secret one wins and the other is refused. The marker holds the host's nkey and a
 * hash of its box key for {@link REPEAT_WINDOW_MS}: the same host asking again with the same secret,
 * nkey and box (its answer was lost: the metadata service gave up waiting) is let through again, and
 * only it can open the answer. Anything else against a spent secret is refused.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { errorMessage } from '../../core/errors.js';
import { JOIN_SECRET } from '../../core/host-record.js';

/** The bucket's name (JetStream stream `KV_mammatus-joins`). */
export const JOIN_BUCKET = 'mammatus-joins';
const WRONG_LAST_SEQUENCE = 10071;

/** How long a spent secret still lets the same host (same nkey, same box) ask again. */
export const REPEAT_WINDOW_MS = 5 * 60_000;

/** One stored secret. */
export interface JoinEntry {
  readonly secret: string;
  readonly mac: string;
  readonly expires_at: string;
  /** Set when the secret was taken: by which key (nkey, sha256 of the box key) and until when a repeat is answered. */
  readonly spent?: { readonly nkey: string; readonly box: string; readonly until: string };
}

/** What a join offers with its secret. */
export interface JoinAttempt {
  readonly secret: string;
  readonly mac: string;
  readonly nkey: string;
  readonly box: string;
}

/** How a secret was taken: first by this join, or a repeat of the same host's join within the window. */
export type JoinUse = 'first' | 'repeat';

/** Why a join was refused (said to the host, and logged). */
export class JoinRefused extends Error {
  override readonly name = 'JoinRefused';
}

/** A new join secret: 32 bytes from the CSPRNG, base64url. */
export function newJoinSecret(): string {
  return randomBytes(32).toString('base64url');
}

const key = (hostId: string) => `join.${hostId}`;
const boxHash = (box: string) => createHash('sha256').update(box).digest('hex');

function parseEntry(value: Uint8Array): JoinEntry | undefined {
  try {
    const e = JSON.parse(new TextDecoder().decode(value)) as Partial<JoinEntry>;
    const spent = e.spent === undefined || (typeof e.spent === 'object' && e.spent !== null && typeof e.spent.until === 'string');
    return typeof e.secret === 'string' && typeof e.mac === 'string' && typeof e.expires_at === 'string' && spent
      ? (e as JoinEntry)
      : undefined;
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

  /** The stored secret of a host, if one waits to be used (for its seed); a spent one is not. */
  async get(hostId: string): Promise<JoinEntry | undefined> {
    const e = await this.kv.get(key(hostId));
    const entry = e && e.operation === 'PUT' ? parseEntry(e.value) : undefined;
    return entry?.spent ? undefined : entry;
  }

  /** True when the host's secret was spent less than {@link REPEAT_WINDOW_MS} ago (a repeat may still be answered). */
  async repeatable(hostId: string, now: Date): Promise<boolean> {
    const e = await this.kv.get(key(hostId));
    const entry = e && e.operation === 'PUT' ? parseEntry(e.value) : undefined;
    return entry?.spent !== undefined && now.getTime() <= Date.parse(entry.spent.until);
  }

  /** Forgets a host's secret (the host was removed). */
  async remove(hostId: string): Promise<void> {
    await this.kv.purge(key(hostId));
  }

  /**
   * Takes the secret of `hostId` if the secret and MAC match and it has not expired; it cannot be
   * taken again, except by a repeat of the same join (same nkey and box key) within
   * {@link REPEAT_WINDOW_MS}. With `repeatOnly` (the host is recorded as joined) only such a repeat
   * passes. @throws JoinRefused saying why (no secret, wrong secret, other MAC, expired, spent, raced).
   */
  async consume(hostId: string, attempt: JoinAttempt, now: Date, repeatOnly = false): Promise<JoinUse> {
    const e = await this.kv.get(key(hostId));
    const stored = e && e.operation === 'PUT' ? parseEntry(e.value) : undefined;
    if (!e || !stored) throw new JoinRefused('no join secret is waiting for this host (used already, or never made: mammatus host rejoin)');
    const given = Buffer.from(JOIN_SECRET.test(attempt.secret) ? attempt.secret : '');
    const want = Buffer.from(stored.secret);
    if (given.length !== want.length || !timingSafeEqual(given, want)) throw new JoinRefused('wrong join secret');
    if (stored.mac !== attempt.mac) throw new JoinRefused(`the secret is bound to ${stored.mac}, not ${attempt.mac}`);
    if (stored.spent) {
      const same = stored.spent.nkey === attempt.nkey && stored.spent.box === boxHash(attempt.box);
      if (same && now.getTime() <= Date.parse(stored.spent.until)) return 'repeat';
      throw new JoinRefused('the join secret was used already (mammatus host rejoin for a new one)');
    }
    if (repeatOnly) throw new JoinRefused('the host has joined already (mammatus host rejoin for a new secret)');
    if (now.getTime() > Date.parse(stored.expires_at))
      throw new JoinRefused(`the join secret expired at ${stored.expires_at} (mammatus host rejoin)`);
    const until = new Date(now.getTime() + REPEAT_WINDOW_MS).toISOString();
    const spent: JoinEntry = { ...stored, spent: { nkey: attempt.nkey, box: boxHash(attempt.box), until } };
    try {
      await this.kv.update(key(hostId), JSON.stringify(spent), e.revision);
    } catch (err) {
      const raced = (err as { code?: unknown }).code === WRONG_LAST_SEQUENCE || /wrong last sequence/i.test(errorMessage(err));
      if (raced) throw new JoinRefused('the join secret was just used');
      throw err;
    }
    return 'first';
  }
}
