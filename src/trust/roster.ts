/**
 * The roster: every admitted node, in the JetStream KV bucket `mammatus-nodes` (one key
 * `node.<name>` per node, its public nkey and roles; nothing secret). Only controllers may read or
 * write it. Each controller watches it and renders one nats-server user per entry, so an admission
 * or a revocation reaches every controller's server within a watch round trip and a SIGHUP.
 */
import { readFileSync } from 'node:fs';
import { KvWatchInclude, Kvm, type KV, type KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger, RosterFeedFactory } from '../../core/contracts.js';
import { writeFileAtomic } from '../../core/files.js';
import { detach } from '../../core/errors.js';
import { ROLE_NAMES, type RoleName } from '../../core/members.js';
import { connectNats } from '../../core/nats.js';
import { ROSTER_BUCKET, checkNodeName, type AdmittedNode } from '../../core/trust.js';

const key = (node: string) => `node.${node}`;

/** Reads and writes the roster. */
export class Roster {
  private constructor(readonly kv: KV) {}

  /** Binds to the bucket (which a controller created). */
  static async bind(nc: NatsConnection): Promise<Roster> {
    return new Roster(await new Kvm(nc).open(ROSTER_BUCKET));
  }

  /** Opens the bucket, creating it (with `replicas`) when missing. */
  static async open(nc: NatsConnection, replicas = 1): Promise<Roster> {
    return new Roster(await new Kvm(nc).create(ROSTER_BUCKET, { history: 1, replicas }));
  }

  /** Adds or replaces a node's entry. */
  async put(node: AdmittedNode): Promise<void> {
    checkNodeName(node.node);
    await this.kv.put(key(node.node), JSON.stringify(node));
  }

  /** The entry of `node`, or undefined. */
  async get(node: string): Promise<AdmittedNode | undefined> {
    checkNodeName(node);
    const e = await this.kv.get(key(node));
    return e ? parseAdmitted(e) : undefined;
  }

  /** Removes a node's entry; false when it had none. */
  async revoke(node: string): Promise<boolean> {
    const had = (await this.get(node)) !== undefined;
    if (had) await this.kv.delete(key(node));
    return had;
  }

  /** Every admitted node, sorted by name. */
  async list(): Promise<AdmittedNode[]> {
    const keys: string[] = [];
    for await (const k of await this.kv.keys('node.>')) keys.push(k);
    const entries = await Promise.all(keys.map((k) => this.kv.get(k)));
    return entries
      .map((e) => (e ? parseAdmitted(e) : undefined))
      .filter((n): n is AdmittedNode => n !== undefined)
      .sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  }
}

/** An entry as an admitted node; undefined for a deletion or anything malformed. */
export function parseAdmitted(entry: KvEntry): AdmittedNode | undefined {
  if (entry.operation !== 'PUT') return undefined;
  try {
    const n = entry.json<AdmittedNode>();
    const ok =
      typeof n.node === 'string' &&
      entry.key === key(n.node) &&
      typeof n.nkey === 'string' &&
      /^U[A-Z2-7]{55}$/.test(n.nkey) &&
      Array.isArray(n.roles) &&
      n.roles.every((r: RoleName) => ROLE_NAMES.includes(r));
    return ok ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Follows the roster over its own connection (reconnecting forever); re-reads after a lost watch.
 * With `cacheFile`, the last copy read is kept there and served at once on the next start, before
 * NATS answers: a controller restarted while the cluster has no quorum keeps its users.
 */
export const watchRoster: RosterFeedFactory = (servers, credentials, onChange, log, cacheFile) => {
  let nodes = new Map<string, AdmittedNode>();
  let synced = false;
  let stopped = false;
  let nc: NatsConnection | undefined;
  let stopWatch: (() => void) | undefined;
  const cached = cacheFile ? readCache(cacheFile, log) : undefined;
  if (cached) {
    nodes = new Map(cached.map((n) => [n.node, n]));
    synced = true;
  }
  const changed = () => {
    if (cacheFile)
      detach(writeFileAtomic(cacheFile, `${JSON.stringify([...nodes.values()])}\n`, 0o600), (err) =>
        log.warn({ err }, 'roster cache not written'),
      );
    onChange();
  };
  const follow = async (conn: NatsConnection): Promise<void> => {
    while (!stopped && !conn.isClosed()) {
      try {
        const roster = await Roster.bind(conn);
        // Changes first, then everything, so no change between the two is missed.
        const watcher = await roster.kv.watch({ key: 'node.>', include: KvWatchInclude.UpdatesOnly });
        stopWatch = () => watcher.stop();
        let live = false;
        const pending: KvEntry[] = [];
        const apply = (e: KvEntry) => {
          const n = parseAdmitted(e);
          const name = e.key.slice('node.'.length);
          if (n) nodes.set(name, n);
          else nodes.delete(name);
        };
        const changes = (async () => {
          for await (const e of watcher) {
            if (!live) pending.push(e);
            else {
              apply(e);
              changed();
            }
          }
        })();
        // A fresh copy, swapped in whole: a render never sees half a roster.
        const fresh = new Map((await roster.list()).map((n) => [n.node, n]));
        nodes = fresh;
        for (const e of pending) apply(e);
        live = true;
        synced = true;
        changed();
        // Until the watch ends (the stream went away, or stop); then everything is read again,
        // the last copy serving meanwhile: dropping every user would lock the cluster out.
        await changes;
      } catch (err) {
        if (stopped) return;
        log.warn({ err }, 'roster not readable yet; retrying');
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  };
  detach(
    connectNats(servers, { name: 'mammatus-roster', persistent: true, credentials }).then((conn) => {
      if (stopped) return void conn.close().catch(() => undefined);
      nc = conn;
      return follow(conn);
    }),
    (err) => log.error({ err }, 'following the roster failed'),
  );
  return {
    snapshot: () => (synced ? [...nodes.values()] : undefined),
    async stop() {
      stopped = true;
      stopWatch?.();
      await nc?.close().catch(() => undefined);
    },
  };
};

/** The roster as last cached, or undefined (absent, unreadable: logged, then read from NATS). */
function readCache(file: string, log: Logger): AdmittedNode[] | undefined {
  try {
    const list = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    if (!Array.isArray(list)) throw new Error('not a list');
    return list.filter(
      (n: Partial<AdmittedNode>) => typeof n?.node === 'string' && typeof n.nkey === 'string' && Array.isArray(n.roles),
    ) as AdmittedNode[];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ err, file }, 'roster cache unreadable; waiting for NATS');
    return undefined;
  }
}
