/**
 * Serf's gossip key as the local Serf uses it, for the controllers' host API (a joining host's
 * Serf config needs it; src/hosts/hosted.ts). Read over a short-lived RPC connection per call: a
 * join is rare, and a rotated key is picked up at once.
 */
import type { SerfClient } from './serf/client.js';

/** How to reach the local Serf's RPC (read at each call: the config may have been reloaded). */
export interface SerfRpc {
  readonly rpc_addr: string;
  readonly rpc_auth?: string;
}

/** The key every node has; with several installed, the one most nodes use (ties: the first by text). */
export function primaryKey(keys: Readonly<Record<string, number>>): string | undefined {
  return Object.entries(keys).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0]?.[0];
}

/**
 * A getter of the gossip key: undefined when Serf says its gossip is not encrypted; throws when
 * Serf cannot be asked or has no key (a host must not be sent off without one).
 */
export function gossipKeyReader(rpc: () => SerfRpc): () => Promise<string | undefined> {
  return async () => {
    const { SerfClient } = await import('./serf/client.js');
    const { rpc_addr, rpc_auth } = rpc();
    const client: SerfClient = await SerfClient.connect({
      addr: rpc_addr,
      authKey: rpc_auth || undefined,
      connectTimeoutMs: 3000,
      requestTimeoutMs: 15_000,
    });
    try {
      const stats = (await client.stats()) as { serf?: { encrypted?: string } };
      if (stats.serf?.encrypted === 'false') return undefined;
      const key = primaryKey((await client.listKeys()).keys);
      if (!key) throw new Error('Serf lists no gossip key');
      return key;
    } finally {
      client.close();
    }
  };
}

/**
 * `read`, remembered: Serf's list-keys asks every member, which takes seconds when one has failed,
 * and a join must answer within the metadata service's wait (2.5 s). So once a key was read it is
 * returned at once, and read again in the background when it is older than `freshMs` (a rotated
 * key reaches hosts within about `freshMs`; a failed background read keeps the last key and is
 * tried again at the next call). Only the very first call waits for a read (the hosts service makes
 * it when it starts), and concurrent calls share one read.
 */
export function cachedGossipKey(
  read: () => Promise<string | undefined>,
  freshMs = 60_000,
  now: () => number = Date.now,
): () => Promise<string | undefined> {
  let last: { key: string | undefined; at: number } | undefined;
  let reading: Promise<string | undefined> | undefined;
  const refresh = () =>
    (reading ??= read()
      .then((key) => {
        last = { key, at: now() };
        return key;
      })
      .finally(() => (reading = undefined)));
  return () => {
    if (!last) return refresh();
    if (now() - last.at >= freshMs) refresh().catch(() => undefined);
    return Promise.resolve(last.key);
  };
}
