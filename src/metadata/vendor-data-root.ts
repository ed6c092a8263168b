/**
 * The cluster's root as the metadata service hands it to instances (vendor-data `ca_certs`): read
 * from bucket `mammatus-ca` at most once a minute, checked against the bucket's fingerprint, and
 * kept through NATS errors (an instance booting while NATS hiccups still gets the root it had).
 *
 * No long-lived connection: the vendor-data source has no lifecycle of its own, so each refresh
 * connects, reads and closes (a few milliseconds against the local nats-server, once a minute).
 * A stale value is served while the refresh runs; only the very first request waits for it.
 */
import { X509Certificate } from 'node:crypto';
import { Kvm } from '@nats-io/kv';
import { CA_BUCKET } from '../../core/ca.js';
import type { Logger } from '../../core/contracts.js';
import { errorMessage } from '../../core/errors.js';
import { connectNats } from '../../core/nats.js';

/** What this module reads from `mammatus-ca` (src/ca/store.ts owns the bucket; the metadata service only reads). */
export interface CaPublic {
  readonly root: string;
  readonly fingerprint: string;
}

/** SHA-256 of a certificate's DER, hex lowercase (the bucket's `fingerprint`); undefined for garbage. */
function fingerprintOf(pem: string): string | undefined {
  try {
    return new X509Certificate(pem).fingerprint256.replaceAll(':', '').toLowerCase();
  } catch {
    return undefined;
  }
}

/** Options of {@link caRootCache}. */
export interface RootCacheOptions {
  /** Reads the public half of the CA (undefined: no CA); throws on a NATS error. */
  readonly fetch: () => Promise<CaPublic | undefined>;
  readonly log?: Logger;
  /** How long a read is fresh (default 60 s). */
  readonly ttlMs?: number;
  readonly now?: () => number;
}

/** The root PEM, or undefined while the cluster has no CA. */
export type CaRootSource = () => Promise<string | undefined>;

/** A cached, checked reader of the root. */
export function caRootCache(opts: RootCacheOptions): CaRootSource {
  const ttl = opts.ttlMs ?? 60_000;
  const now = opts.now ?? Date.now;
  let value: string | undefined;
  let readAt = -Infinity;
  let refreshing: Promise<void> | undefined;
  const refresh = (): Promise<void> =>
    (refreshing ??= (async () => {
      try {
        const pub = await opts.fetch();
        if (!pub) value = undefined;
        else if (fingerprintOf(pub.root) === pub.fingerprint) value = pub.root;
        else opts.log?.error('mammatus-ca: the root does not match its fingerprint; instances keep the last good one');
      } catch (err) {
        opts.log?.warn({ err: errorMessage(err) }, 'mammatus-ca not readable; instances get the last root read');
      } finally {
        readAt = now();
        refreshing = undefined;
      }
    })());
  return async () => {
    if (now() - readAt < ttl) return value;
    const first = readAt === -Infinity;
    const done = refresh();
    if (first) await done;
    return value;
  };
}

/** Reads `mammatus-ca` through a short connection to `natsUrl` with `credentials`. */
export function natsCaFetch(natsUrl: string, credentials: { readonly seed: string } | undefined): () => Promise<CaPublic | undefined> {
  return async () => {
    const nc = await connectNats(natsUrl, { name: 'mammatus-ca-root', timeoutMs: 2000, ...(credentials ? { credentials } : {}) });
    try {
      let kv;
      try {
        kv = await new Kvm(nc).open(CA_BUCKET);
      } catch (err) {
        // No bucket: no `ca init` yet.
        if (/stream not found|bucket not found|no stream matches/i.test(errorMessage(err))) return undefined;
        throw err;
      }
      const [root, fingerprint] = await Promise.all([kv.get('root'), kv.get('fingerprint')]);
      if (root?.operation !== 'PUT' || fingerprint?.operation !== 'PUT') return undefined;
      return { root: root.string(), fingerprint: fingerprint.string() };
    } finally {
      await nc.close();
    }
  };
}
