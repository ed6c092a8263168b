/**
 * Where the cluster's CA lives: two JetStream KV buckets (issue 20).
 *
 * - `mammatus-ca`: `root`, `intermediate` (PEM) and `fingerprint` (the root's SHA-256, hex lowercase).
 *   Every admitted node may read it (roles/controller/permissions.ts); only controllers write it.
 * - `mammatus-ca-keys`: `intermediate-key` (PKCS#8 PEM) and, unless `ca init --root-key-out` took
 *   the root key off the cluster, `root-key`. Controllers only, like `mammatus-joins`.
 *
 * A node never trusts what it reads here: its admission carries the root, checked against the
 * fingerprint pinned with it (`rootToPin`, core/trust.ts `ca_root`).
 */
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { CA_BUCKET, CA_KEYS_BUCKET, checkPinnedRoot, isCaFingerprint } from '../../core/ca.js';
import { errorMessage } from '../../core/errors.js';
import { certFingerprint, type CertAndKey } from './pki.js';

/** The public half of the CA. */
export interface CaPublic {
  readonly root: string;
  readonly intermediate: string;
  readonly fingerprint: string;
}

/** The controllers-only half. */
export interface CaKeys {
  readonly intermediateKey: string;
  /** Absent when the root key is kept off the cluster. */
  readonly rootKey?: string;
}

const text = (v: Uint8Array) => new TextDecoder().decode(v);

/** True when `err` says the bucket's stream does not exist (no `ca init` yet). */
export function isNoBucket(err: unknown): boolean {
  return /stream not found|bucket not found|no stream matches/i.test(errorMessage(err));
}

/** A key's value; undefined when missing, deleted, or the bucket does not exist (binding is lazy). */
async function value(kv: KV, key: string): Promise<string | undefined> {
  try {
    const e = await kv.get(key);
    return e && e.operation === 'PUT' ? text(e.value) : undefined;
  } catch (err) {
    if (isNoBucket(err)) return undefined;
    throw err;
  }
}

/** Reads the public half from a bound bucket; undefined when a part is missing or inconsistent. */
async function readPublic(kv: KV): Promise<CaPublic | undefined> {
  const [root, intermediate, fingerprint] = await Promise.all([value(kv, 'root'), value(kv, 'intermediate'), value(kv, 'fingerprint')]);
  if (!root || !intermediate || !isCaFingerprint(fingerprint)) return undefined;
  return { root, intermediate, fingerprint };
}

/**
 * The public half of the CA as any admitted node reads it (bind only, never create): undefined
 * when no `ca init` ran (no bucket, or empty).
 */
export async function fetchCaPublic(nc: NatsConnection): Promise<CaPublic | undefined> {
  let kv: KV;
  try {
    kv = await new Kvm(nc).open(CA_BUCKET);
  } catch (err) {
    if (isNoBucket(err)) return undefined;
    throw err;
  }
  return readPublic(kv);
}

/** The root fingerprint stored in `mammatus-ca` (what admission pins), or undefined without a CA. */
export async function fetchCaFingerprint(nc: NatsConnection): Promise<string | undefined> {
  return (await fetchCaPublic(nc))?.fingerprint;
}

/** Both buckets, as controllers (and `ca init` with a controller's credentials) use them. */
export class CaStore {
  private constructor(
    private readonly pub: KV,
    private readonly keys: KV,
  ) {}

  /** Opens both buckets, creating them (history 1) when missing. */
  static async open(nc: NatsConnection, replicas = 1): Promise<CaStore> {
    const kvm = new Kvm(nc);
    const [pub, keys] = await Promise.all([
      kvm.create(CA_BUCKET, { history: 1, replicas }),
      kvm.create(CA_KEYS_BUCKET, { history: 1, replicas }),
    ]);
    return new CaStore(pub, keys);
  }

  /** Binds to both buckets; undefined when they do not exist (no `ca init` yet). */
  static async bind(nc: NatsConnection): Promise<CaStore | undefined> {
    try {
      const kvm = new Kvm(nc);
      const [pub, keys] = await Promise.all([kvm.open(CA_BUCKET), kvm.open(CA_KEYS_BUCKET)]);
      return new CaStore(pub, keys);
    } catch (err) {
      if (isNoBucket(err)) return undefined;
      throw err;
    }
  }

  /**
   * Calls `onChange` for each value either bucket holds now and for every later change. `done`
   * settles when a watch ends (the connection closed, a bucket was deleted); `stop` ends both.
   */
  async watch(onChange: () => void): Promise<{ readonly done: Promise<void>; stop(): void }> {
    const watches = await Promise.all([this.pub.watch(), this.keys.watch()]);
    const drain = async (it: AsyncIterable<unknown>) => {
      for await (const _entry of it) onChange();
    };
    return {
      done: Promise.race(watches.map((w) => drain(w))).then(
        () => undefined,
        () => undefined,
      ),
      stop: () => watches.forEach((w) => w.stop()),
    };
  }

  /** The public half, or undefined when there is no CA. */
  publicParts(): Promise<CaPublic | undefined> {
    return readPublic(this.pub);
  }

  /** The intermediate with its key (what signs node certificates), or undefined when there is no CA. */
  async intermediate(): Promise<CertAndKey | undefined> {
    const [cert, key] = await Promise.all([value(this.pub, 'intermediate'), value(this.keys, 'intermediate-key')]);
    return cert && key ? { certPem: cert, keyPem: key } : undefined;
  }

  /** The keys, or undefined when there is no CA. */
  async keyParts(): Promise<CaKeys | undefined> {
    const [intermediateKey, rootKey] = await Promise.all([value(this.keys, 'intermediate-key'), value(this.keys, 'root-key')]);
    return intermediateKey ? { intermediateKey, ...(rootKey ? { rootKey } : {}) } : undefined;
  }

  /**
   * Replaces the intermediate (rotation; the root and its fingerprint stay). The key first, the
   * certificate last: the CA files writer (files.ts) skips the moment between, when key and
   * certificate do not match, and takes the pair at the certificate's change.
   */
  async replaceIntermediate(intermediate: CertAndKey): Promise<CaPublic> {
    const before = await this.publicParts();
    if (!before) throw new Error('the cluster has no CA yet');
    await this.keys.put('intermediate-key', intermediate.keyPem);
    await this.pub.put('intermediate', intermediate.certPem);
    return { ...before, intermediate: intermediate.certPem };
  }

  /**
   * Stores a new CA. Keys first, the public root last: a reader that sees the new root also finds
   * the intermediate and its key. A root key not given is removed (it was taken off the cluster).
   */
  async write(root: string, intermediate: CertAndKey, rootKey?: string): Promise<CaPublic> {
    const fingerprint = certFingerprint(root);
    await this.keys.put('intermediate-key', intermediate.keyPem);
    if (rootKey) await this.keys.put('root-key', rootKey);
    else await this.keys.purge('root-key');
    await this.pub.put('intermediate', intermediate.certPem);
    await this.pub.put('fingerprint', fingerprint);
    await this.pub.put('root', root);
    return { root, intermediate: intermediate.certPem, fingerprint };
  }
}

/** What an admission pins: the root's fingerprint and the root itself (core/trust.ts `ca_root`). */
export interface CaPin {
  readonly ca_fingerprint: string;
  readonly ca_root: string;
}

/**
 * What a new admission pins: the admitting controller's own pin when it has one (what it trusts,
 * whatever the bucket says now), with its own root or, from credentials older than `ca_root`, the
 * bucket's root when that matches the pin; else the bucket's root (controllers alone write it);
 * undefined when the cluster has no CA. The root is checked against the fingerprint here and again
 * by the node. @throws when the bucket cannot be read, or holds no root for the controller's pin:
 * admitting without the root would leave the node without certificates until it is admitted
 * again, so the admission fails (and is tried again) instead.
 */
export async function rootToPin(
  own: { readonly ca_fingerprint?: string; readonly ca_root?: string },
  nc?: NatsConnection,
): Promise<CaPin | undefined> {
  if (own.ca_fingerprint && own.ca_root)
    return { ca_fingerprint: own.ca_fingerprint, ca_root: checkPinnedRoot(own.ca_root, own.ca_fingerprint) };
  if (!nc) {
    if (own.ca_fingerprint) throw new Error('this controller pins a CA root it does not hold, and there is no NATS to read it from');
    return undefined;
  }
  let pub: CaPublic | undefined;
  try {
    pub = await fetchCaPublic(nc);
  } catch (err) {
    throw new Error(`cannot read the CA bucket ${CA_BUCKET} for the root to pin: ${errorMessage(err)}`, { cause: err });
  }
  if (!pub && !own.ca_fingerprint) return undefined;
  const fingerprint = own.ca_fingerprint ?? pub!.fingerprint;
  if (!pub || pub.fingerprint !== fingerprint)
    throw new Error(
      `this controller pins the CA root ${fingerprint.slice(0, 16)}… but ${CA_BUCKET} holds ${pub ? `${pub.fingerprint.slice(0, 16)}…` : 'none'}: run ca init on a controller, or admit this controller again`,
    );
  return { ca_fingerprint: fingerprint, ca_root: checkPinnedRoot(pub.root, fingerprint) };
}
