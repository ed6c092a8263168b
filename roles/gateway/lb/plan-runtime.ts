/**
 * Decides how a change of the resolved balancers reaches a running HAProxy (pure). Targets come and
 * go all the time (instances launched, deleted, readdressed) and must not cost a reload: those are
 * runtime API changes (`add server`, `set server ... addr`, maintenance + `del server`). Anything
 * else (a balancer created or removed, its listen port, hosts, path, mode, TLS, health check or
 * balance algorithm) changes frontends, maps or backend options, and takes a reload of the new
 * files. The files are written either way, so a later reload keeps what the runtime API did.
 */
import type { LbServer, LoadBalancerRecord, ResolvedBalancer } from '../../../core/lb-record.js';
import { backendName, serverAddress, serverName } from './names.js';

/** One server change through the runtime API. */
export type RuntimeChange =
  | { readonly op: 'add'; readonly backend: string; readonly server: string; readonly address: string }
  | { readonly op: 'readdress'; readonly backend: string; readonly server: string; readonly addr: string; readonly port: number }
  | { readonly op: 'remove'; readonly backend: string; readonly server: string };

/** What applying the new balancers takes. */
export interface RuntimePlan {
  /**
   * Why a reload is needed; empty = the runtime changes are enough. With a reload the new files
   * hold every server already, so `changes` need not be applied.
   */
  readonly reload: readonly string[];
  /** Server changes, removals first (a backend is never briefly larger than both sets). */
  readonly changes: readonly RuntimeChange[];
}

/** The fields whose change needs a reload (everything but targets and timestamps). */
const SHAPE: readonly (keyof LoadBalancerRecord)[] = ['listen', 'mode', 'hosts', 'path', 'health', 'tls', 'balance'];

/** Plans the move from `before` to `after`. */
export function planRuntimeChanges(before: readonly ResolvedBalancer[], after: readonly ResolvedBalancer[]): RuntimePlan {
  const old = new Map(before.map((b) => [b.record.name, b]));
  const now = new Map(after.map((b) => [b.record.name, b]));
  const reload: string[] = [];
  const removals: RuntimeChange[] = [];
  const rest: RuntimeChange[] = [];
  for (const name of [...old.keys()].sort()) if (!now.has(name)) reload.push(`balancer ${name} removed`);
  for (const name of [...now.keys()].sort()) {
    const a = now.get(name)!;
    const b = old.get(name);
    if (!b) {
      reload.push(`balancer ${name} added`);
      continue;
    }
    const changed = SHAPE.filter((k) => JSON.stringify(b.record[k]) !== JSON.stringify(a.record[k]));
    if (changed.length) reload.push(`balancer ${name}: ${changed.join(', ')} changed`);
    const backend = backendName(a.record);
    const was = byName(b.servers);
    const is = byName(a.servers);
    for (const [n] of was) if (!is.has(n)) removals.push({ op: 'remove', backend, server: n });
    for (const [n, s] of is) {
      const p = was.get(n);
      if (!p) rest.push({ op: 'add', backend, server: n, address: serverAddress(s) });
      else if (p.addr !== s.addr || p.port !== s.port) rest.push({ op: 'readdress', backend, server: n, addr: s.addr, port: s.port });
    }
  }
  return { reload, changes: [...removals, ...rest] };
}

function byName(servers: readonly LbServer[]): Map<string, LbServer> {
  const entries = servers.map((s): [string, LbServer] => [serverName(s), s]);
  return new Map(entries.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)));
}
