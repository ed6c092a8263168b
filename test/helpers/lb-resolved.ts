/** Resolved balancers for the gateway's HAProxy tests: HTTP, one host, a TCP check, fixed timestamps. */
import type { LbServer, LoadBalancerRecord, ResolvedBalancer } from '../../core/lb-record.js';

/** `name` on `port` for `<name>.test` (or `over`'s fields), served by `servers`. */
export function resolvedBalancer(
  name: string,
  port: number,
  servers: readonly LbServer[],
  over: Partial<LoadBalancerRecord> = {},
): ResolvedBalancer {
  const T = '2026-12-01T00:00:00Z';
  return {
    record: {
      name,
      listen: { port },
      mode: 'http',
      hosts: [`${name}.test`],
      targets: [],
      health: { kind: 'tcp' },
      tls: 'none',
      balance: 'roundrobin',
      created_at: T,
      updated_at: T,
      ...over,
    },
    servers: [...servers],
  };
}
